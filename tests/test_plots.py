"""Pictures: one PNG per run, faulty and fixed side by side; without matplotlib,
everything else is still written and the harness says how to get plots."""
import struct
import sys

from harness.driving import ExperimentResult
from harness.faces.cli import main
from harness.judging import Check, combine
from harness.report.plots import group_pairs, write_plot
from harness.sampling import Sample


def result(name, held):
    samples = [Sample(t=i * 0.05, round=1, cycle=i, in_flight=i % 3, in_flight_peak=2, established=h, time_wait=i,
                      close_wait=0, other=0, server_established=h) for i, h in enumerate(held)]
    r = ExperimentResult(name=name, scenario="tcp_count", target=name, settings={}, samples=samples, complete=True)
    r.verdict = combine(None, None, [Check("c", True, "ok")])
    return r


def test_pairs_are_grouped_by_name_leaky_variant_first():
    names = ["tcp_count-fixed", "tcp_count-faulty", "tcp_count-httpx-fixed", "tcp_count-httpx-faulty-stream",
             "command"]
    rows = group_pairs([result(n, [1, 2]) for n in names])
    assert [[r.name for r in row] for row in rows] == [
        ["tcp_count-faulty", "tcp_count-fixed"],
        ["tcp_count-httpx-faulty-stream", "tcp_count-httpx-fixed"],
        ["command"],
    ]


def test_png_is_written(tmp_path):
    path = write_plot([result("tcp_count-faulty", range(40)), result("tcp_count-fixed", [2] * 40)],
                      tmp_path / "p.png", "for i in $(seq 1 3); do curl $URL; done")  # $ is not math here
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 600 and height > 200 and len(data) > 10_000  # two panels, drawn, not an empty canvas
    assert [p.name for p in tmp_path.iterdir()] == ["p.png"]  # written atomically: no temp file left


def test_without_matplotlib_everything_else_is_written(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    code = main(["run", "stdlib-fixed", "--cycles", "3", "--rounds", "2", "--results-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "no plot: plots need matplotlib: pip install 'tcp-leak-harness[plots]'" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "tcp_count-stdlib-fixed.csv",
                                                           "tcp_count-stdlib-fixed.json"]
