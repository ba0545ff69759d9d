"""The seed's scraper in Go (tests/programs/scraper.go), built from source where ``go`` is
installed, judged over HTTPS: a new http.Client per request grows, the shared one stays flat.
Go trusts the harness's CA through SSL_CERT_FILE, as the harness sets it under --tls."""
from pathlib import Path

import pytest

from harness.peers import build_go

from .tools import run_harness, tool

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "tests" / "programs" / "scraper.go"
DURATION_S = 5  # judged windows after the warm-up: ~100 requests each way at 20 a second and more


@pytest.fixture(scope="module")
def judged(tmp_path_factory):
    tool("go", "golang-go")
    folder = tmp_path_factory.mktemp("go")
    binary = build_go(str(folder), SOURCE)
    runs = {mode: (["run", "--tls", "--cmd", f"{binary} {mode} {{url}} 60", "--duration", str(DURATION_S),
                    "--expect", "growth" if mode == "faulty" else "plateau"], ROOT) for mode in ("faulty", "fixed")}
    return run_harness(runs, folder, at_once=2, deadline_s=120)  # the two side by side: a minute is 10x enough


def test_go_clients_over_https_are_judged_right(judged):
    wrong = {}
    for mode, verdict in (("faulty", "growth"), ("fixed", "plateau")):
        code, out, err, data = judged[mode]
        if code != 0 or data is None or data["verdict"] != verdict:
            wrong[mode] = (out + err)[-800:]
        elif not data["server"]["url"].startswith("https://") or data["figures"]["requests"] < 40:
            wrong[mode] = f"{data['server']}, {data['figures']['requests']} requests"  # counted by the server
    assert not wrong, wrong
