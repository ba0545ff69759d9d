"""``harness run`` on clients that are not the harness's own: other libraries,
other leak shapes, a large pool, a user's module. Each must be judged right.

All runs start at once, as separate processes: on 2 cores they load each
other, which is part of the test (a verdict must hold on a busy machine).
"""
from pathlib import Path

import pytest

from .tools import run_harness


ROOT = Path(__file__).resolve().parent.parent
RUN_DEADLINE_S = 120  # nine runs of ~2.5 s each sharing 2 cores; generous for a slow CI machine

# name: (target, --expect given, verdict that must be measured)
CASES = {
    "urllib3-pool-per-request": ("tests.sample_clients:urllib3_pool_per_request", "growth", "growth"),
    "stream-unclosed": ("tests.sample_clients:requests_stream_unclosed", "growth", "growth"),
    "http-client-closed": ("tests.sample_clients:http_client_closed", "plateau", "plateau"),
    "large-pool": ("tests.sample_clients:requests_large_pool", "plateau", "plateau"),
    # gated the wrong way on purpose: the gate must fail, with the sockets listed
    "one-leak-in-four": ("tests.sample_clients:requests_leak_one_in_four", "plateau", "growth"),
    "user-module": ("my_scraper:scrape", "plateau", "plateau"),
    "urlopen-unclosed": ("tests.sample_clients:urlopen_unclosed", "growth", "growth"),  # CLOSE_WAIT
    "asyncio-kept": ("tests.sample_clients:asyncio_connection_kept", "growth", "growth"),
    "asyncio-closed": ("tests.sample_clients:asyncio_connection_closed", "plateau", "plateau"),
}

USER_MODULE = (
    "import requests\n"
    "_s = requests.Session()\n"
    "def scrape(url):\n"
    "    return _s.get(url, timeout=10).status_code\n"
)


@pytest.fixture(scope="module")
def judged(tmp_path_factory):
    base = tmp_path_factory.mktemp("judging")
    (base / "my_scraper.py").write_text(USER_MODULE)
    runs = {name: (["run", target, "--expect", expect, "--results-dir", str(base / name)],
                   base if target.startswith("my_scraper") else ROOT)
            for name, (target, expect, _) in CASES.items()}
    return run_harness(runs, base, at_once=len(runs), deadline_s=RUN_DEADLINE_S)


@pytest.mark.parametrize("name", list(CASES))
def test_judged_right(judged, name):
    _, expect, measured = CASES[name]
    returncode, out, err, data = judged[name]
    assert data is not None, out + err
    assert data["verdict"] == measured, out + err
    assert returncode == (0 if expect == measured else 1), out + err
    assert f"verdict: {measured}" in out


def test_failed_gate_lists_what_grew(judged):
    returncode, out, _, data = judged["one-leak-in-four"]
    assert "FAILED: expected plateau, measured growth" in out
    # a growth verdict needs the residual 5 above the peak in flight, so at least 5 held sockets are listed
    assert out.count("local port") >= 5 and "ESTABLISHED" in out
    established = [s for s in data["sockets_left"] if s["state"] == "ESTABLISHED"]
    assert len(established) == data["figures"]["residuals"][-1]


def test_result_json_carries_the_series(judged):
    data = judged["large-pool"][3]
    assert data["complete"] is True
    assert data["requests"] == sum(r["requests"] for r in data["rounds"]) == data["figures"]["requests"]
    assert {"t", "established", "time_wait", "in_flight"} <= set(data["samples"][0])
    # a large pool keeps what it had in flight at once, more than the 2 a capped pool keeps,
    # and is still a plateau
    assert data["figures"]["residuals"][-1] > 2
