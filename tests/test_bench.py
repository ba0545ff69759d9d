"""``harness bench`` works end to end at small sizes (its figures are for people
to read; no time is asserted here)."""
import json

from harness.bench import bench_sampler, bench_server, table
from harness.faces.cli import main


def test_sampler_and_server_figures_at_small_sizes():
    lines = []
    sampler = bench_sampler([20], lines.append)
    assert set(sampler) == {"netlink", "netlink+tcp_info", "psutil"} and all(20 in by_size for by_size in sampler.values())
    server = bench_server([50], lines.append, delay=0.1)
    row = server[50]
    assert row["dropped"] == 0 and row["p50_overhead_ms"] is not None and row["rss_mb"] > 0
    assert row["p50_overhead_ms"] <= row["p99_overhead_ms"] <= row["max_overhead_ms"]
    text = table({"sampler_ms": sampler, "server": server})
    assert "sampler netlink" in text and "server     50 connections" in text


def test_bad_part_is_one_line(capsys, tmp_path):
    assert main(["bench", "--only", "sampler,warp", "--results-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == "harness: error: --only 'sampler,warp': parts are sampler, server, verdict, sites"


def test_bench_json_is_written(tmp_path, capsys, monkeypatch):
    import harness.bench as bench

    monkeypatch.setattr(bench, "SAMPLER_SOCKETS", (10,))  # the real sizes take a minute; the file is the point
    assert main(["bench", "--only", "sampler", "--results-dir", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "bench.json").read_text())
    assert set(data) >= {"sampler_ms", "machine", "goals"} and "10" in data["sampler_ms"]["netlink"]
    assert f"figures: {tmp_path / 'bench.json'}" in capsys.readouterr().out
