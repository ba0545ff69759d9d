"""The session's scratch folders (conftest.py): one set for a whole pytest-xdist session, removed at its end."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# A plugin each process of the nested session loads (controller and workers): it writes down the folders it was given.
REPORT = """
import os
def pytest_sessionstart(session):
    with open(os.path.join(os.environ["SCRATCH_OUT"], str(os.getpid())), "w") as f:
        f.write(os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] + "\\n" + os.environ["PYTHONPYCACHEPREFIX"])
"""


def nested_session(tmp_path: Path, plugin: str, workers: int) -> tuple[subprocess.CompletedProcess, Path]:
    """pytest on tests/test_layout.py with ``plugin`` (its source) loaded in each process and
    ``workers`` pytest-xdist workers; returns the process and the folder its plugin writes in."""
    (tmp_path / "scratch_plugin.py").write_text(plugin)
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "SCRATCH_OUT": str(out), "PYTHONPATH": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "scratch_plugin",
                           "-n", str(workers), f"--basetemp={tmp_path / 'base'}", "tests/test_layout.py"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    return done, out


def test_workers_share_the_controllers_scratch_folders_and_it_removes_them(tmp_path):
    done, out = nested_session(tmp_path, REPORT, workers=2)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    given = {path.name: path.read_text().splitlines() for path in out.iterdir()}
    assert len(given) == 3, given  # the controller and its two workers
    assert len({tuple(folders) for folders in given.values()}) == 1, given  # the same folders in each
    hypothesis_home = next(iter(given.values()))[0]
    assert Path(hypothesis_home).name.startswith("harness-hypothesis-")
    assert not os.path.exists(hypothesis_home)  # removed by the controller at its end


# A plugin that interrupts the session the moment its Hypothesis folder exists, before conftest.py can record it.
INTERRUPT_AT_MAKING = """
import os, signal, tempfile
made = tempfile.mkdtemp
def mkdtemp(*args, **kwargs):
    folder = made(*args, **kwargs)
    if kwargs.get("prefix") == "harness-hypothesis-":
        with open(os.path.join(os.environ["SCRATCH_OUT"], "made"), "w") as f:
            f.write(folder)
        os.kill(os.getpid(), signal.SIGINT)  # a Ctrl-C: Python raises it at its next instruction, here
    return folder
tempfile.mkdtemp = mkdtemp
"""


def test_a_ctrl_c_as_the_folders_are_made_leaves_none(tmp_path):
    done, out = nested_session(tmp_path, INTERRUPT_AT_MAKING, workers=0)
    assert done.returncode == 2, done.stdout + done.stderr  # pytest's status for an interrupted session
    made = (out / "made").read_text()
    left = os.path.exists(made)
    shutil.rmtree(made, ignore_errors=True)  # should it be left, this test does not leave it too
    assert Path(made).name.startswith("harness-hypothesis-") and not left, made


def test_a_fresh_bytecode_cache_is_seeded_with_the_installed_bytecode(tmp_path):
    """With PYTHONPYCACHEPREFIX, Python reads bytecode only from the prefix: a fresh one had each
    process compile what it imports (a soak's first run: aiohttp compiled on a client's loop for
    over 20 s). Seeded, importing aiohttp (and all it imports) compiles and writes nothing."""
    import asyncio.base_events

    from tests import bytecode

    prefix = tmp_path / "pycache"
    assert bytecode.seed(str(prefix), bytecode.installed_roots()) > 1000  # the standard library's alone is more

    def cached() -> dict[str, tuple[int, int]]:
        return {str(p): (p.stat().st_ino, p.stat().st_mtime_ns) for p in prefix.rglob("*.pyc")}

    before = cached()
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(prefix)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # it would write what it compiled
    subprocess.run([sys.executable, "-c", "import aiohttp, httpx"], env=env, check=True, timeout=60)
    written = {path for path, stamp in cached().items() if before.get(path) != stamp}
    assert written == set(), sorted(written)[:10]  # every module found compiled, and found valid
    # what seeding links is where Python looks: the same path as its own rule gives
    pythons_rule = subprocess.run(
        [sys.executable, "-c", "import importlib.util as u, asyncio.base_events as m; print(u.cache_from_source(m.__file__))"],
        env=env, capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    assert pythons_rule == bytecode.prefix_path(str(prefix), asyncio.base_events.__file__)
