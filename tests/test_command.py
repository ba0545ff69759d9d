"""``harness run --cmd``: programs that run their own loop, in any language, judged
from the time series alone. Most are programs no one here wrote (curl, ab, wrk,
bash); the Node.js and Python ones are ours, in tests/programs/.

Runs go three at a time, as separate processes: on 2 cores they load each
other, which is part of the test (a verdict must hold on a busy machine). Nine at
once slow psutil's socket scans to ~3 samples a second, too few to judge 6 s by.
"""
import sys
from pathlib import Path

import pytest

from tests.tools import run_harness, tool


ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = ROOT / "tests" / "programs"
DURATION_S = 6  # 4.5 s judged after the warm-up: 5 windows of 0.9 s; ~10 samples/s with three runs at once
AT_ONCE = 3
RUN_DEADLINE_S = 120  # three 6-s runs sharing 2 cores, plus starting and stopping; generous for slow CI
PY = sys.executable
# curl-loop ends by itself (30 x ~0.25 s), well inside its own longer run: ending near 4 s, as 15 curls did, a
# loaded machine could leave a window of its series with too few samples to judge, and an ended command is not
# sampled longer
# python-large-pool fills its pool of 24 in an opening burst (uncapped, its pool grew by record bursts for the
# whole run and on a soak's loaded machine rose past the server's peak in flight, undecided even in 12 s):
# 6 runs at once beside 2 CPU hogs judged 24 -> 24 -> 24 -> 24 -> 24 in 6 s, peak 24.
DURATIONS_S = {"curl-loop": 15}
BASH_LEAK = ('for i in $(seq 1 200); do exec {fd}<>/dev/tcp/{host}/{port}; '
             'printf "GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n" >&$fd; sleep 0.05; done')

# name: (command, tools it needs as (program, Debian package), --expect, verdict that must be measured)
CASES = {
    "curl-loop": ("for i in $(seq 1 30); do curl -s -o /dev/null {url}; done", [("curl", "curl")],
                  "plateau", "plateau"),
    "ab-keep-alive": ("ab -k -q -n 100000 -c 10 {url}", [("ab", "apache2-utils")], "plateau", "plateau"),
    "ab-no-keep-alive": ("ab -q -n 100000 -c 10 {url}", [("ab", "apache2-utils")], "plateau", "plateau"),
    "wrk": ("wrk -c 20 -t 2 -d 60 {url}", [("wrk", "wrk")], "plateau", "plateau"),
    "bash-fds-never-closed": (BASH_LEAK, [("bash", "bash")], "growth", "growth"),
    "node-agent-per-request": (f"node {PROGRAMS}/agent_per_request.js {{url}} 60", [("node", "nodejs")],
                               "growth", "growth"),
    "node-shared-agent": (f"node {PROGRAMS}/shared_agent.js {{url}} 60", [("node", "nodejs")], "plateau", "plateau"),
    "python-large-pool": (f"{PY} {PROGRAMS}/bursty_client.py {{url}} large-pool 60", [], "plateau", "plateau"),
    # its pool grows 6 -> 15 with its rate while the server sees at most ~7 in flight: answers read late count in
    # flight (judged growth without them)
    "python-late-reader": (f"{PY} {PROGRAMS}/late_reader.py {{url}} 7", [], "plateau", "plateau"),
    # gated the wrong way on purpose: the gate must fail, with the sockets listed
    "python-slow-leak": (f"{PY} {PROGRAMS}/bursty_client.py {{url}} slow-leak 60", [], "plateau", "growth"),
}


@pytest.fixture(scope="module")
def judged(tmp_path_factory):
    base = tmp_path_factory.mktemp("commands")
    runs = {name: (["run", "--cmd", command, "--duration", str(DURATIONS_S.get(name, DURATION_S)), "--expect", expect,
                    "--results-dir", str(base / name)], ROOT)
            for name, (command, _, expect, _) in CASES.items()}
    return run_harness(runs, base, at_once=AT_ONCE, deadline_s=RUN_DEADLINE_S)


@pytest.mark.parametrize("name", list(CASES))
def test_command_judged_right(judged, name):
    _, tools, expect, measured = CASES[name]
    for program, package in tools:
        tool(program, package)
    returncode, out, err, data = judged[name]
    assert data is not None, out + err
    assert data["verdict"] == measured, out + err
    assert returncode == (0 if expect == measured else 1), out + err
    assert data["figures"]["requests"] > 0 and data["complete"] is True


def test_a_command_that_ends_ends_the_experiment(judged):
    tool("curl", "curl")
    _, out, err, data = judged["curl-loop"]
    f = data["figures"]
    assert f["stopped_by_harness"] is False and f["exit_status"] == 0, out + err
    assert f["ran_s"] < DURATIONS_S["curl-loop"] and f["requests"] == 30, out + err
    # curl opens a connection per request and closes it: churn of one new connection each
    assert f["new_connections_per_request"] == 1.0


def test_a_command_that_runs_on_is_stopped_at_its_duration(judged):
    tool("wrk", "wrk")
    _, out, err, data = judged["wrk"]
    f = data["figures"]
    assert f["stopped_by_harness"] is True, out + err
    # SIGTERM went out at DURATION_S; 1 s covers the harness noticing and the group ending
    assert DURATION_S <= f["ran_s"] < DURATION_S + 1, out + err
    assert "command stopped by the harness" in out


def test_failed_gate_lists_what_grew(judged):
    returncode, out, _, data = judged["python-slow-leak"]
    assert "FAILED: expected plateau, measured growth" in out
    assert out.count("local port") >= 5 and "ESTABLISHED" in out
    assert data["judgement"]["trend"]["floors"] == data["figures"]["floors"]
