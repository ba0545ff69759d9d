"""``-k faulty``, ``-k fix`` and ``-k LIBRARY`` select exactly the experiments of that kind or library."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# One interpreter collects three times (all, -k faulty, -k fix): pytest's own -k, not a copy of it.
COLLECT = """
import json, sys, pytest
class Ids:
    def __init__(self): self.ids = []
    def pytest_collection_finish(self, session): self.ids = [item.nodeid for item in session.items]
out = {}
for keyword in ("", "faulty", "fix", "httpx"):
    ids = Ids()
    args = ["--collect-only", "-q", "-p", "no:cacheprovider"] + (["-k", keyword] if keyword else [])
    code = pytest.main(args, plugins=[ids])
    out[keyword] = ids.ids if code == 0 else code
print("SELECTION " + json.dumps(out))
"""


def test_keyword_selection_is_exact():
    done = subprocess.run([sys.executable, "-c", COLLECT], capture_output=True, text=True, cwd=ROOT, timeout=60)
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("SELECTION ")]
    assert done.returncode == 0 and line, done.stdout + done.stderr
    selected = json.loads(line[0].split(" ", 1)[1])
    everything, by_faulty, by_fix = selected[""], selected["faulty"], selected["fix"]
    experiments = [t for t in everything if t.startswith("experiments/")]
    assert by_faulty and by_fix
    assert all(t.startswith("experiments/") and "faulty" in t and "fixed" not in t for t in by_faulty), by_faulty
    assert all(t.startswith("experiments/") and "fixed" in t and "faulty" not in t for t in by_fix), by_fix
    assert sorted(by_faulty + by_fix) == sorted(experiments)  # every experiment is one or the other
    from harness.clients import VARIANTS
    httpx_names = {v.name for v in VARIANTS if v.library == "httpx"}
    assert sorted(t.split("[")[1].rstrip("]") for t in selected["httpx"]) == sorted(httpx_names), selected["httpx"]
