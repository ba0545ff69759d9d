"""The command line: bad input is one line and exit 2; interrupts keep results."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness.faces.cli import main

from .interrupting import interrupt, still_running

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["run", "nosuchvariant"], "unknown variant 'nosuchvariant'"),
        (["run", "no_such_module_xyz:f"], "cannot import 'no_such_module_xyz'"),
        (["run", "os:no_such_function"], "module 'os' has no 'no_such_function'"),
        (["run", "os:sep"], "'sep' is not callable"),
        (["run", "tests.sample_clients:requests_large_pool", "--cycles", "0"], "--cycles: '0' must be >= 1"),
        (["run", "tests.sample_clients:requests_large_pool", "--delay", "-1"], "--delay: '-1' must be a finite number >= 0"),
        (["run", "tests.sample_clients:requests_large_pool", "--period", "soon"], "--period: 'soon' is not a number"),
        (["run", "tests.sample_clients:requests_large_pool", "--expect", "maybe"], "invalid choice: 'maybe'"),
        (["compare", "--extra-max", "-2"], "--extra-max: '-2' must be >= 0"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "a command is needed"),
        (["run"], "run needs a TARGET or --cmd COMMAND"),
        (["run", "fixed", "--cmd", "curl {url}"], "run needs a TARGET or --cmd COMMAND"),
        (["run", "--cmd", "   "], "an empty command"),
        (["run", "--cmd", "curl {url}", "--duration", "0"], "--duration: '0' must be > 0"),
        (["run", "fixed", "--max-churn", "1.5"], "--max-churn: '1.5' must be a fraction of requests, 0..1"),
    ],
    ids=["variant", "module", "function", "not-callable", "cycles", "delay", "period", "expect", "extra-max",
         "command", "no-command", "run-nothing", "run-both", "cmd-empty", "duration", "max-churn"],
)
def test_bad_input_is_one_line_and_exit_2(argv, needle, capsys):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and needle in err and err.startswith("harness: error: "), err


def test_bad_input_from_a_shell_has_no_traceback():
    done = subprocess.run([sys.executable, "-m", "harness", "run", "x.y:z", "--seed", "one"],
                          capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == "harness: error: --seed: 'one' is not a whole number"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_interrupted_run_keeps_what_it_measured(sig, tmp_path):
    # the first round is done; the second takes ~2.5 s with a delay of 2 s, time enough for the signal to land in
    # it (with 0.05 s, on a loaded machine, the run twice ended first: reading the run's sockets with psutil, to
    # know its servers, took that long)
    done = interrupt(["run", "tests.sample_clients:urllib3_pool_per_request", "--results-dir", str(tmp_path),
                      "--delay", "2"], lambda lines: "round 1:" in lines[-1], sig)
    assert done.children, "the server should be running mid-experiment"
    assert done.status == 130, done.stderr
    assert "interrupted" in done.stderr and "Traceback" not in done.stderr
    data = json.loads((tmp_path / "tcp_count-tests.sample_clients_urllib3_pool_per_request.json").read_text())
    assert data["complete"] is False and data["error"].startswith("KeyboardInterrupt")
    assert data["samples"] and data["rounds"][0]["residual"] > 0
    assert not still_running(done.children)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_a_client_whose_every_request_fails_is_not_judged(tmp_path, capsys):
    assert main(["run", "tests.sample_clients:always_fails", "--results-dir", str(tmp_path)]) == 3
    err = capsys.readouterr().err
    assert "every request failed" in err and "RuntimeError: client bug" in err
    data = json.loads((tmp_path / "tcp_count-tests.sample_clients_always_fails.json").read_text())
    assert data["complete"] is False


def test_list_shows_every_catalog_variant_once(capsys):
    from harness.clients import VARIANTS, resolve

    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for variant in VARIANTS:
        mine = [ln for ln in lines if ln.split()[0] == variant.name]
        assert len(mine) == 1 and variant.summary in mine[0], lines
        client = resolve(variant.name)  # every name listed is one that run accepts
        (getattr(client, "close", None) or (lambda: None))()


def test_command_that_never_reaches_the_server_exits_3_with_its_stderr(tmp_path):
    done = subprocess.run([sys.executable, "-m", "harness", "run", "--cmd", "echo no such host >&2; exit 7 # {url}",
                           "--results-dir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "made no request to the server" in done.stderr and "exit status 7" in done.stderr
    assert "no such host" in done.stderr
    saved = json.loads((tmp_path / "command.json").read_text())
    assert saved["complete"] is False and "made no request" in saved["error"]


def test_the_console_script_is_python_m_harness():
    """``pip install`` puts ``tcp-leaks`` beside the interpreter: the same commands, its own name in its usage."""
    script = Path(sys.executable).with_name("tcp-leaks")
    listed = subprocess.run([str(script), "list"], capture_output=True, text=True, timeout=60)
    module = subprocess.run([sys.executable, "-m", "harness", "list"], capture_output=True, text=True, timeout=60)
    assert listed.returncode == module.returncode == 0 and listed.stdout == module.stdout, listed.stderr
    usage = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert usage.stdout.startswith("usage: tcp-leaks "), usage.stdout[:200]
