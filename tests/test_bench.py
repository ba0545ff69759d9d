"""``harness bench`` works end to end at small sizes (its figures are for people
to read; no time is asserted here)."""
import json

from harness.bench import ONE_PROCESS, bench_sampler, bench_server, bench_watch, server_ratios, table
from harness.faces.cli import main


def test_sampler_and_server_figures_at_small_sizes():
    lines = []
    sampler, peers = bench_sampler([20], lines.append)
    assert set(sampler) == {"netlink", "netlink+tcp_info", "psutil"} and all(20 in by_size for by_size in sampler.values())
    # the sampler beside its peers, each round in the same run: ratios are ours over theirs
    rounds = peers[20]
    assert len(rounds["vs_dump"]) == len(rounds["vs_ss"]) == 3 and all(r > 0 for r in rounds["vs_dump"] + rounds["vs_ss"])
    assert rounds["vs_ss"][0] == round(rounds["sampler_ms"][0] / rounds["ss_ms"][0], 3)
    server = bench_server([50], lines.append, delay=0.1, rounds=2, peers=("aiohttp", ONE_PROCESS), workers=2)
    row = server[50]
    assert "server     50 connections, 2 workers:" in lines[-3]
    # the slow server in one process beside its two workers, as a peer
    assert set(row["peers"]) == {"aiohttp", ONE_PROCESS} and len(row["vs"][ONE_PROCESS]["p50_ratio"]) == 2
    assert row["dropped"] == 0 and row["p50_overhead_ms"] is not None and row["rss_mb"] > 0
    assert row["p50_overhead_ms"] <= row["p99_overhead_ms"] <= row["max_overhead_ms"]
    # the aiohttp.web peer held the same requests, each round beside ours
    theirs = row["peers"]["aiohttp"]
    assert len(theirs) == len(row["rounds"]) == 2 and all(r["dropped"] == 0 and r["rss_mb"] > 0 for r in theirs)
    assert len(row["vs"]["aiohttp"]["p99_ratio"]) == 2
    assert server_ratios(server, "aiohttp")[50].keys() == {"p50_ratio", "p99_ratio"}
    text = table({"sampler_ms": sampler, "sampler_peers": peers, "server": server})
    assert "sampler netlink" in text and "server     50 connections" in text
    assert "x the bare dump (goal <= 1.5: " in text and "x ss (goal <= 0.5: " in text


def test_watch_sample_figures_beside_psutil():
    lines = []
    figures = bench_watch([5], lines.append, rounds=2)
    row = figures[5]
    assert len(row["sample_ms"]) == len(row["psutil_ms"]) == len(row["vs_psutil"]) == 2
    assert row["vs_psutil"][0] == round(row["sample_ms"][0] / row["psutil_ms"][0], 3)
    assert "watch sample, a process holding     5 sockets" in table({"watch": figures})


def test_bad_part_is_one_line(capsys, tmp_path):
    assert main(["bench", "--only", "sampler,warp", "--results-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == ("harness: error: --only 'sampler,warp': parts are sampler, server, "
                                               "verdict, sites, watch")


def test_bench_json_is_written(tmp_path, capsys, monkeypatch):
    import harness.bench as bench

    monkeypatch.setattr(bench, "SAMPLER_SOCKETS", (10,))  # the real sizes take a minute; the file is the point
    assert main(["bench", "--only", "sampler", "--results-dir", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "bench.json").read_text())
    assert set(data) >= {"sampler_ms", "sampler_vs_ss", "sampler_vs_dump", "machine", "goals"}
    assert "10" in data["sampler_ms"]["netlink"] and data["sampler_vs_dump"]["10"] > 0
    assert f"figures: {tmp_path / 'bench.json'}" in capsys.readouterr().out


def test_the_seed_pairs_verdict_goal_is_judged():
    from harness.bench import GOALS, table

    goal = GOALS["seed_pair_verdict_s"]
    met = table({"verdict_s": {"tcp_count-faulty": goal - 0.3, "tcp_count-fixed": goal, "idle_handling-fixed": 2.0}})
    assert f"the seed's pair, run faulty {goal - 0.3:.2f} s, run fixed {goal:.2f} s; goal <= {goal} s each: met" in met
    missed = table({"verdict_s": {"tcp_count-faulty": goal - 0.3, "tcp_count-fixed": goal + 0.01}})
    assert missed.endswith(f"goal <= {goal} s each: NOT met")
