"""``python -m harness watch --pid N``: a running process judged from its held
sockets by remote endpoint, whatever server it talks to."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.faces.cli import main

from .tools import tool

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "tests" / "programs" / "watched_client.py"
WATCH_S = "3"  # 60 samples: enough windows for the series verdict (it needs 15 after its warm-up)
RUNS_S = "20"  # the watched program outlives the watch; it is ended after


@pytest.fixture
def own_server():
    """A keep-alive server of the test's own, not the harness's (tests/programs/keepalive_server.py)."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "programs" / "keepalive_server.py")],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        port = re.search(r"port (\d+)", proc.stdout.readline()).group(1)  # waits on its line
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def watched(command: list[str], tmp_path: Path, plots: bool = False) -> tuple[int, str, dict]:
    """Watch the process ``command`` starts; its picture only with ``plots`` (a PNG costs ~0.7 s of CPU)."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() in ("started", "")
        done = subprocess.run([sys.executable, "-m", "harness", "watch", "--pid", str(proc.pid), "--duration", WATCH_S,
                               "--json", str(tmp_path / "w.json"), "--results-dir", str(tmp_path),
                               "--plots", "on" if plots else "off"],
                              cwd=ROOT, capture_output=True, text=True, timeout=60)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    data = json.loads((tmp_path / "w.json").read_text()) if (tmp_path / "w.json").exists() else {}
    return done.returncode, done.stdout + done.stderr, data


def test_a_leaking_process_is_growth(own_server, tmp_path):
    status, out, data = watched([sys.executable, str(CLIENT), own_server, "leak", RUNS_S], tmp_path, plots=True)
    endpoint = own_server[len("http://"):-1]
    assert status == 0 and data["verdict"] == "growth", out
    assert data["figures"]["endpoints"][endpoint]["verdict"] == "growth", out
    assert f"{endpoint}" in out and "watched" in out and (tmp_path / f"watch-{data['figures']['pid']}.csv").is_file()
    picture = tmp_path / f"watch-{data['figures']['pid']}.png"
    assert f"plot: {picture}" in out and picture.read_bytes().startswith(b"\x89PNG"), out


def test_undecided_for_want_of_samples_it_samples_longer_three_times_at_most(own_server, tmp_path, capsys):
    """0.4 s of samples, one each 0.1 s, cannot fill the verdict's windows (15 after the warm-up): undecided, so
    0.2 s more, three times (still 10 samples at most), then said."""
    proc = subprocess.Popen([sys.executable, str(CLIENT), own_server, "pool", RUNS_S], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() in ("started", "")
        code = main(["watch", "--pid", str(proc.pid), "--duration", "0.4", "--sample-interval", "0.1",
                     "--json", str(tmp_path / "w.json"), "--results-dir", str(tmp_path), "--plots", "off"])
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    data = json.loads((tmp_path / "w.json").read_text())
    out = capsys.readouterr().out
    assert code == 0 and data["verdict"] == "undecided" and "too few samples" in data["summary"], data["summary"]
    assert out.count("s more") == 3, out
    assert 1.0 <= data["figures"]["ran_s"] < 2.0, data["figures"]  # 0.4 + 3 x 0.2, not more (a sample's time above)


def test_a_command_undecided_near_its_deadline_is_said_undecided_not_cut(tmp_path, capsys):
    """Sampling longer stops short of --deadline: 1 s (4 samples, too few), 0.5 s more, and 0.5 s more again
    would pass the 1.9 s deadline, so the verdict is undecided, complete; without that bound the run would be cut
    at its deadline, incomplete, exit 3. 0.4 s between the last check and the deadline: a wake-up that late on a
    loaded machine would cut it all the same."""
    command = f"{sys.executable} {CLIENT} {{url}} pool {RUNS_S}"
    code = main(["run", "--cmd", command, "--duration", "1", "--sample-interval", "0.25", "--deadline", "1.9",
                 "--plots", "off", "--results-dir", str(tmp_path)])
    out = capsys.readouterr().out
    data = json.loads((tmp_path / "command.json").read_text())
    assert code == 0 and data["complete"] is True and data["verdict"] == "undecided", out
    assert out.count("s more") == 2 and "would pass --deadline 1.9 s" in out, out


def test_a_pooling_process_is_a_plateau(start_slow_server, tmp_path):
    server = start_slow_server(delay=0.05)
    status, out, data = watched([sys.executable, str(CLIENT), server.url, "pool", RUNS_S], tmp_path)
    assert status == 0 and data["verdict"] == "plateau", out
    assert data["figures"]["endpoints"][f"{server.host}:{server.port}"]["peak_held"] == 1, out


def test_a_bash_loop_of_curl_is_a_plateau(start_slow_server, tmp_path):
    curl = tool("curl", "curl")
    server = start_slow_server(delay=0.1)  # each curl holds its socket a while: samples see it
    loop = f"echo started; for i in $(seq 1 200); do {curl} -s -o /dev/null {server.url}; done"
    status, out, data = watched(["bash", "-c", loop], tmp_path)
    assert status == 0 and data["verdict"] == "plateau", out  # the children's sockets are the loop's


@pytest.mark.parametrize("pid, needle", [("999999999", "--pid 999999999: no such process"),
                                         ("0", "argument --pid: '0' must be >= 1"),
                                         ("x", "argument --pid: 'x' is not a whole number")])
def test_a_bad_pid_is_one_line(capsys, pid, needle):
    assert main(["watch", "--pid", pid]) == 2
    assert capsys.readouterr().err == f"harness: error: {needle}\n"


def test_a_command_without_url_is_watched(own_server, tmp_path, capsys):
    """``run --cmd`` naming no slow server ({url}) talks to what it likes: it is watched."""
    command = f"{sys.executable} {CLIENT} {own_server} leak {RUNS_S}"
    assert main(["run", "--cmd", command, "--duration", WATCH_S, "--results-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "verdict: growth" in out and f"{own_server[len('http://'):-1]}" in out, out
    data = json.loads((tmp_path / "watch-command.json").read_text())
    assert data["scenario"] == "watch" and data["target"] == command and data["verdict"] == "growth"
