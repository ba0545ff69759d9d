"""The pytest plugin in a user's own project: a fresh folder with no conftest,
where only the installed package's pytest11 entry point can provide ``leak_check``."""
import json
import re
import subprocess
import xml.etree.ElementTree as ET

import pytest

from .tools import USER_PYTEST, default_requests_per_round


USER_TESTS = '''
import sys
import requests

_kept = []
_shared = requests.Session()


def leaky(url):
    session = requests.Session()
    _kept.append(session)
    return session.get(url).status_code


def healthy(url):
    return _shared.get(url, timeout=10).status_code


def test_healthy_client(leak_check):
    result = leak_check(healthy)
    assert result.verdict.trend.verdict == "plateau"


def test_leaky_client_caught(leak_check):
    result = leak_check(leaky, expect="growth", cycles=8)
    assert result.figures["residuals"][-1] > result.figures["residuals"][0]


def test_leaky_client_gated(leak_check):
    leak_check(leaky)


def test_catalog_name(leak_check):
    leak_check("httpx-fixed")


def test_command(leak_check):
    # 30 requests (~7 s), ending by themselves well inside 20 s: a 15-request command (~4 s) beside a loaded soak's
    # workers once left a window of its series with too few samples to judge
    result = leak_check(cmd=sys.executable + " -c \\"import urllib.request; "
                            "[urllib.request.urlopen('{url}').read() for _ in range(30)]\\"", duration=20)
    assert result.figures["requests"] == 30 and not result.figures["stopped_by_harness"]


def test_bad_option(leak_check):
    leak_check(healthy, cycles=0)


def test_no_request(leak_check):
    leak_check(lambda url: 200)


def test_target_raises(leak_check):
    def broken(url):
        raise RuntimeError("client bug")
    leak_check(broken)


def test_unknown_target(leak_check):
    leak_check("nosuchvariant")


def test_expect_maybe(leak_check):
    leak_check(healthy, expect="maybe")


def test_cmd_without_url(leak_check):
    leak_check(cmd="curl http://127.0.0.1:1/")
'''
# test name: the one line its failure must be (no traceback of the harness's own)
PER_ROUND = default_requests_per_round()  # every request of the one round run
ONE_LINE_FAILURES = {
    "test_bad_option": "leak_check: cycles=0: '0' must be >= 1",
    "test_no_request": f"leak_check: nothing measured: the client reported {PER_ROUND} of {PER_ROUND} requests done, the server "
                       "received 0 on 0 connections; a target must make one request to the URL it is given",
    "test_target_raises": f"leak_check: nothing measured: every request failed ({PER_ROUND}); the first: RuntimeError: client bug",
    "test_unknown_target": "leak_check: unknown variant 'nosuchvariant': see `python -m harness list`, or give "
                           "package.module:function",
    "test_expect_maybe": "leak_check: expect='maybe': expect growth or plateau (or None)",
    "test_cmd_without_url": "leak_check: command 'curl http://127.0.0.1:1/': use {url}, or {host} and {port}, so it "
                            "talks to the slow server",
}
EXPECTED = {  # test name: passed?
    "test_healthy_client": True,
    "test_leaky_client_caught": True,
    "test_leaky_client_gated": False,
    "test_catalog_name": True,
    "test_command": True,
    **{name: False for name in ONE_LINE_FAILURES},
}


@pytest.fixture(scope="module")
def user_run(tmp_path_factory):
    project = tmp_path_factory.mktemp("user_project")
    (project / "test_my_client.py").write_text(USER_TESTS)
    # its own config, as a user's project has: under another project (a soak's --basetemp inside this repository)
    # pytest would otherwise take that one's ini, its addopts and its conftest.py
    (project / "pytest.ini").write_text("[pytest]\n")
    # under pytest-xdist, two workers: the session's summary and picture must still cover every experiment
    done = subprocess.run([*USER_PYTEST, "--junitxml=junit.xml",
                           "-o", "junit_family=xunit1", "-n", "2", "--basetemp", str(project / "basetemp")],
                          cwd=project, capture_output=True, text=True, timeout=180)
    cases = {case.get("name"): case for case in ET.parse(project / "junit.xml").getroot().iter("testcase")}
    return project, done, cases


def test_every_user_test_has_the_outcome_it_should(user_run):
    _, done, cases = user_run
    outcomes = {name: case.find("failure") is None and case.find("error") is None for name, case in cases.items()}
    assert outcomes == EXPECTED, done.stdout[-4000:]
    assert "leak harness: delay=0.2s" in done.stdout  # the plugin's header: loaded without any conftest


def test_failure_message_lists_the_sockets(user_run):
    _, done, cases = user_run
    message = cases["test_leaky_client_gated"].find("failure").get("message")
    assert "expected plateau, measured growth" in message
    assert message.count("ESTABLISHED") >= 5  # growth ends >= 5 held sockets above the peak in flight, each listed


@pytest.mark.parametrize("name", list(ONE_LINE_FAILURES))
def test_what_cannot_be_judged_is_one_clear_line(user_run, name):
    _, _, cases = user_run
    failure = cases[name].find("failure")
    assert failure.get("message") == "Failed: " + ONE_LINE_FAILURES[name]
    assert "harness/" not in (failure.text or ""), failure.text  # no traceback of the harness's own


def test_results_are_written_in_the_user_project(user_run):
    project, done, _ = user_run
    for name in ("test_healthy_client", "test_leaky_client_gated", "test_command"):
        assert (project / "results" / f"{name}.json").is_file(), sorted(p.name for p in project.glob("results/*"))
    # every experiment any worker ran is in the one summary, and in the one picture the controller drew
    written = sorted(p.stem for p in (project / "results").glob("*.json") if p.name != "summary.json")
    summary = json.loads((project / "results" / "summary.json").read_text())
    assert sorted(e["name"] for e in summary["experiments"]) == written and len(written) >= 5, written
    assert (project / "results" / "summary.md").is_file()
    assert sorted(p.name for p in (project / "results").glob("*.png")) == ["experiments.png"]
    page = (project / "results" / "report.html").read_text()  # the page a person opens: every experiment's section
    assert sorted(re.findall(r'<section id="experiment-([^"]+)"', page)) == written
    assert "; report results/report.html" in done.stdout, done.stdout[-3000:]  # and the terminal says where it is
