import os

from harness.report.files import SAMPLE_COLUMNS, atomic_write, samples_csv
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
