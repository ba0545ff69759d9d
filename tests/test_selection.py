"""``-k faulty`` and ``-k fix`` select exactly the experiments of that variant."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def collected(*args: str) -> list[str]:
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return [line for line in done.stdout.splitlines() if "::" in line]


def test_keyword_selection_is_exact():
    everything = collected()
    experiments = [t for t in everything if t.startswith("experiments/")]
    by_faulty, by_fix = collected("-k", "faulty"), collected("-k", "fix")
    assert by_faulty and by_fix
    assert all(t.startswith("experiments/") and "faulty" in t and "fixed" not in t for t in by_faulty), by_faulty
    assert all(t.startswith("experiments/") and "fixed" in t and "faulty" not in t for t in by_fix), by_fix
    assert sorted(by_faulty + by_fix) == sorted(experiments)  # every experiment is one or the other
    assert not set(by_faulty) & set(by_fix)
