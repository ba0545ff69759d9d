import os
import stat
import subprocess
import sys

from harness.report.files import SAMPLE_COLUMNS, atomic_write, process_umask, samples_csv
from harness.sampling import Sample


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "deep" / "r.json"
    atomic_write(path, "one")
    atomic_write(path, "two")
    assert path.read_text() == "two"
    assert os.listdir(path.parent) == ["r.json"]


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "r.json"
    atomic_write(path, "old")

    class Boom:
        def __str__(self):
            raise RuntimeError

    try:
        atomic_write(path, Boom())  # type: ignore[arg-type]
    except TypeError:
        pass
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["r.json"]


def test_samples_csv_has_a_header_and_a_row_per_sample():
    sample = Sample(t=0.5, round=1, cycle=2, in_flight=3, in_flight_peak=4, established=5, time_wait=6,
                    close_wait=0, other=0, server_established=5)
    lines = samples_csv([sample, sample]).splitlines()
    assert lines[0].split(",") == [c for c in SAMPLE_COLUMNS if c != "held_by_host"]
    assert lines[1].startswith("0.5,1,2,3,4,5,6") and len(lines) == 3


def test_samples_csv_has_a_column_per_host():
    sample = Sample(t=0.5, round=1, cycle=2, in_flight=3, in_flight_peak=4, established=5, time_wait=6,
                    close_wait=0, other=0, server_established=5, held_by_host=(2, 3))
    lines = samples_csv([sample], ["127.0.0.2:80", "127.0.0.3:81"]).splitlines()
    assert lines[0].endswith(",held@127.0.0.2:80,held@127.0.0.3:81")
    assert lines[1].endswith(",2,3")


def test_results_have_the_mode_a_plain_open_would_give(tmp_path):
    """Written atomically through mkstemp (0600), yet shareable: 0666 less the umask, as CI artifact uploads
    run as another user need. A run under umask 027 gives 0640 to every file, the picture and the report included."""
    done = subprocess.run(["bash", "-c", f"umask 027 && exec {sys.executable} -m harness run stdlib-fixed --cycles 3 "
                                         f"--rounds 2 --results-dir {tmp_path}"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert set(modes) == {"tcp_count-stdlib-fixed.json", "tcp_count-stdlib-fixed.csv", "tcp_count-stdlib-fixed.png",
                          "report.html"}
    assert set(modes.values()) == {0o640}, {name: oct(mode) for name, mode in modes.items()}
    assert process_umask() == os.umask(os.umask(0o022))  # read without changing it: what the process has
    written = atomic_write(tmp_path / "x.json", "{}")
    assert stat.S_IMODE(written.stat().st_mode) == 0o666 & ~process_umask()
