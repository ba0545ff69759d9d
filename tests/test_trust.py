"""Never a false pass: a verdict rests only on traffic the server saw; every path
a run will write is checked before it starts, and a write that fails after
measuring never loses the verdict; every run ends by itself."""
from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path

import pytest
import requests

import harness.report.files
from harness import Experiment, Settings, run
from harness.faces.cli import main

from .tools import USER_PYTEST, default_requests_per_round, run_harness


ROOT = Path(__file__).resolve().parent.parent
RUN_DEADLINE_S = 60  # four runs sharing 2 cores, each ends after its first round (~1 s)

# name: a target that never gives the server anything to count, and what the one line must say
NOTHING = {
    "no-request": ("tests.sample_clients:no_request", "the server received 0 on 0 connections"),
    "system-exit": ("tests.sample_clients:exits", f"every request failed ({default_requests_per_round()}); the first: SystemExit: 4"),
    "keyboard-interrupt": ("tests.sample_clients:interrupts", f"every request failed ({default_requests_per_round()}); the first: KeyboardInterrupt"),
    "base-exception": ("tests.sample_clients:raises_base_exception", "the first: Abandoned: gave up"),
}


@pytest.fixture(scope="module")
def never_reached(tmp_path_factory):
    base = tmp_path_factory.mktemp("never_reached")
    runs = {name: (["run", target, "--expect", "plateau", "--results-dir", str(base / name)], ROOT)
            for name, (target, _) in NOTHING.items()}
    outcomes = run_harness(runs, base, at_once=len(runs), deadline_s=RUN_DEADLINE_S)
    # no --json is written without a verdict: the result is the one in the results directory
    return {name: (status, out, err, _written(base / name)) for name, (status, out, err, _) in outcomes.items()}


def _written(folder: Path):
    found = list(folder.glob("*.json"))
    return json.loads(found[0].read_text()) if found else None


@pytest.mark.parametrize("name", list(NOTHING))
def test_a_client_the_server_never_saw_is_not_judged(never_reached, name):
    status, out, err, data = never_reached[name]
    assert status == 3, out + err
    assert err.count("\n") == 1 and err.startswith("harness: could not measure: nothing measured: "), err
    assert NOTHING[name][1] in err, err
    assert "Traceback" not in out + err and "verdict:" not in out, out + err
    assert data is not None and data["complete"] is False and "nothing measured" in data["error"], data
    assert data["verdict"] is None and data["passed"] is False


def test_a_base_exception_fails_its_own_request_only(tmp_path):
    """A target that raises KeyboardInterrupt on every 5th call: those requests fail, counted by
    type; the rest are judged as usual; the harness goes on."""
    session, calls, lock = requests.Session(), [0], threading.Lock()

    def sometimes_interrupted(url: str) -> int:
        with lock:
            calls[0] += 1
            nth = calls[0]
        if nth % 5 == 0:
            raise KeyboardInterrupt
        return session.get(url, timeout=10).status_code

    try:
        result = run(Experiment(sometimes_interrupted, expect="plateau", settings=Settings(results_dir=str(tmp_path))))
    finally:
        session.close()
    assert result.passed and result.trend_verdict == "plateau", result.explain()
    assert result.figures.errors == {"KeyboardInterrupt": result.figures.failed} and result.figures.failed > 0


def test_a_result_carries_what_the_server_counted(tmp_path):
    """Beside the client's count of its requests, the server's own: every request driven was received and
    served, on as many connections as it accepted (stdlib-fixed: one a request)."""
    result = run(Experiment("stdlib-fixed", settings=Settings(cycles=3, rounds=2, plots="off",
                                                              results_dir=str(tmp_path))))
    driven = result.figures.requests + (result.figures.sweep_requests or 0)
    counted = result.server["counted"]
    assert result.passed and result.figures.failed == 0, result.explain()
    assert counted["requests_received"] == counted["requests_served"] == driven, (counted, driven)
    assert counted["connections_accepted"] == driven and counted["hung_up_early"] == 0, counted
    assert json.loads(json.dumps(result.as_dict()))["server"]["counted"] == counted  # in the JSON written


@pytest.mark.parametrize("argv, needle", [
    (["--results-dir", "{file}"], "--results-dir: '{file}' is a file, not a folder"),
    (["--results-dir", "{file}/below"], "--results-dir: '{file}/below': '{file}' is a file, not a folder"),
    (["--json", ""], "argument --json: an empty path"),
    (["--json", "{dir}"], "argument --json: '{dir}' is a folder, not a file"),
    (["--json", "{file}/x.json"], "argument --json: '{file}/x.json': '{file}' is a file, not a folder"),
    # a name longer than the system allows (found by the fuzzer): named, shortened, never a traceback
    (["--results-dir", "9" * 5000], "--results-dir: '99999999999999999999999999999...99999999999999999999999999999' "
                                    "(5000 characters): not a usable path (File name too long)"),
    (["--json", "9" * 5000], "argument --json: '99999999999999999999999999999...99999999999999999999999999999' "
                             "(5000 characters): not a usable path (File name too long)"),
], ids=["results-dir-file", "results-dir-below-file", "json-empty", "json-folder", "json-below-file",
        "results-dir-too-long", "json-too-long"])
def test_outputs_are_checked_before_anything_starts(tmp_path, capsys, argv, needle):
    (tmp_path / "a_file").write_text("")
    fill = {"file": str(tmp_path / "a_file"), "dir": str(tmp_path)}
    assert main(["run", "fixed", *(a.format(**fill) for a in argv)]) == 2
    out, err = capsys.readouterr()
    assert out == "", "nothing may start before the outputs are checked"
    assert err == f"harness: error: {needle.format(**fill)}\n"


def test_a_write_that_fails_after_measuring_keeps_the_verdict(tmp_path, capsys, monkeypatch):
    def refuse(path, text):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(harness.report.files, "atomic_write", refuse)
    status = main(["run", "fixed", "--results-dir", str(tmp_path), "--json", str(tmp_path / "x.json")])
    out, err = capsys.readouterr()
    assert status == 0, out + err  # the verdict's status: plateau, as expected of the fixed client
    assert "verdict: plateau" in out
    lines = err.splitlines()
    assert len(lines) == 2 and all(line.startswith("harness: could not write ") for line in lines), err
    assert "Permission denied" in lines[0] and "--json" in lines[1], err


@pytest.mark.parametrize("argv, needle", [
    (["run", "faulty", "--deadline", "1"], "passed its deadline of 1 s (--deadline)"),
    (["run", "--cmd", "sleep 30; curl -s {url}", "--deadline", "1"], "passed its deadline of 1 s (--deadline)"),
], ids=["rounds", "command"])
def test_a_run_stops_at_its_deadline_and_keeps_what_it_measured(tmp_path, capsys, argv, needle):
    assert main([*argv, "--results-dir", str(tmp_path)]) == 3
    _, err = capsys.readouterr()
    assert err.startswith("harness: could not measure: ") and needle in err and err.count("\n") == 1, err
    data = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert data["complete"] is False and needle in data["error"] and data["samples"]


@pytest.mark.parametrize("argv, needle", [
    (["--delay", "1e9"], "--delay: '1e9' must be <= 3600"),
    (["--cycles", "10000000"], "--cycles: '10000000' must be <= 100000"),
    (["--period", "1e9"], "--period: '1e9' must be <= 60"),
    (["--rounds", "1000000"], "--rounds: '1000000' must be <= 100"),
    (["--deadline", "1e9"], "--deadline: '1e9' must be <= 86400"),
], ids=["delay", "cycles", "period", "rounds", "deadline"])
def test_absurd_values_are_refused(capsys, argv, needle):
    assert main(["run", "fixed", *argv]) == 2
    assert capsys.readouterr().err == f"harness: error: {needle}\n"


def test_a_module_that_exits_at_import_is_one_line(capsys):
    assert main(["run", "tests.programs.exits_at_import:fetch"]) == 2
    err = capsys.readouterr().err
    assert err == ("harness: error: target 'tests.programs.exits_at_import:fetch': cannot import "
                   "'tests.programs.exits_at_import': SystemExit: 4\n")


@pytest.mark.parametrize("env, argv, needle", [
    ({"LEAK_ROUNDS": "1"}, [], "LEAK_ROUNDS: '1' must be >= 2"),
    ({}, ["--rounds", "1"], "--rounds: '1' must be >= 2"),
    ({"LEAK_ROUNDS": "8"}, [], "--max-rounds (default): 6 must be >= LEAK_ROUNDS (8)"),
], ids=["env", "flag", "env-against-default"])
def test_a_bad_value_names_where_it_came_from(monkeypatch, capsys, env, argv, needle):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(["run", "fixed", *argv]) == 2
    assert capsys.readouterr().err == f"harness: error: {needle}\n"


def test_a_bad_ini_value_names_the_ini_key(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\nleak_rounds = 1\n")
    (tmp_path / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
    done = subprocess.run([*USER_PYTEST], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in os.environ.items() if not k.startswith("LEAK_")})
    assert done.returncode == 4  # pytest's usage error
    assert "leak harness: leak_rounds (ini): '1' must be >= 2" in done.stderr and "Traceback" not in done.stderr
