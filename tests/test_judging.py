"""``harness run`` on clients that are not the harness's own: other libraries,
other leak shapes, a large pool. Each is judged right, end to end."""
import json
import subprocess
import sys

import pytest

from harness.options import Settings
from harness.scenarios import measure

from . import sample_clients


@pytest.fixture(autouse=True)
def _release_sample_clients():
    yield
    sample_clients.release_all()


@pytest.mark.parametrize(
    "function, expected",
    [
        ("urllib3_pool_per_request", "growth"),
        ("requests_stream_unclosed", "growth"),
        ("http_client_closed", "plateau"),
    ],
)
def test_judged_in_process(function, expected, slow_server, tmp_path):
    result = measure("tcp_count", f"tests.sample_clients:{function}", Settings(results_dir=str(tmp_path)),
                     slow_server, expect=expected)
    assert result.passed, result.explain()


def harness_run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", "run", *args], capture_output=True, text=True,
                          timeout=60, cwd=cwd)


def test_large_pool_is_a_plateau_with_json(tmp_path):
    out = tmp_path / "large.json"
    done = harness_run("tests.sample_clients:requests_large_pool", "--expect", "plateau", "--json", str(out),
                       "--results-dir", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verdict: plateau" in done.stdout
    data = json.loads(out.read_text())
    assert data["verdict"] == "plateau" and data["complete"] is True
    assert data["requests"] == sum(r["requests"] for r in data["rounds"])
    # a large pool keeps what it had in flight, and more than any small cap would
    assert max(data["figures"]["residuals"]) > 5
    assert {"t", "established", "time_wait", "in_flight"} <= set(data["samples"][0])


def test_one_leak_in_four_requests_is_growth_and_fails_a_plateau_gate(tmp_path):
    done = harness_run("tests.sample_clients:requests_leak_one_in_four", "--expect", "plateau",
                       "--results-dir", str(tmp_path))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "verdict: growth" in done.stdout and "FAILED: expected plateau, measured growth" in done.stdout
    assert "ESTABLISHED" in done.stdout and "local port" in done.stdout  # the sockets are listed


def test_user_module_beside_the_working_directory(tmp_path):
    (tmp_path / "my_scraper.py").write_text(
        "import requests\n"
        "_s = requests.Session()\n"
        "def scrape(url):\n"
        "    return _s.get(url, timeout=10).status_code\n"
    )
    done = harness_run("my_scraper:scrape", "--expect", "plateau", "--results-dir", str(tmp_path / "r"),
                       cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
