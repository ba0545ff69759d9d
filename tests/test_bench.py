"""``harness bench`` works end to end at small sizes (its figures are for people
to read; no time is asserted here)."""
import json

from harness.bench import WORKERS, _hold, bench_sampler, bench_server, bench_watch, server_ratios, table
from harness.faces.cli import main
from harness.server import ServerProcess


def test_sampler_and_server_figures_at_small_sizes():
    lines = []
    sampler, peers = bench_sampler([20], lines.append)
    assert set(sampler) == {"netlink", "netlink+tcp_info", "psutil"} and all(20 in by_size for by_size in sampler.values())
    # the sampler beside its peers, each round in the same run: ratios are ours over theirs
    rounds = peers[20]
    assert len(rounds["vs_dump"]) == len(rounds["vs_ss"]) == 3 and all(r > 0 for r in rounds["vs_dump"] + rounds["vs_ss"])
    assert rounds["vs_ss"][0] == round(rounds["sampler_ms"][0] / rounds["ss_ms"][0], 3)
    server = bench_server([50], lines.append, delay=0.1, rounds=2, peers=("aiohttp", WORKERS), workers=2)
    row = server[50]
    assert "server     50 connections: p50 +" in lines[-3]
    # the slow server as it runs by default (one process), its --workers 2 beside it as a peer
    assert set(row["peers"]) == {"aiohttp", WORKERS} and len(row["vs"][WORKERS]["p50_ratio"]) == 2
    assert row["dropped"] == 0 and row["p50_overhead_ms"] is not None and row["rss_mb"] > 0
    assert row["p50_overhead_ms"] <= row["p99_overhead_ms"] <= row["max_overhead_ms"]
    # the aiohttp.web peer held the same requests, each round beside ours
    theirs = row["peers"]["aiohttp"]
    assert len(theirs) == len(row["rounds"]) == 2 and all(r["dropped"] == 0 and r["rss_mb"] > 0 for r in theirs)
    assert len(row["vs"]["aiohttp"]["p99_ratio"]) == 2
    assert server_ratios(server, "aiohttp")[50].keys() == {"p50_ratio", "p99_ratio", "pss_ratio"}
    assert row["vs"]["aiohttp"]["pss_ratio"][0] == round(row["rounds"][0]["pss_mb"] / theirs[0]["pss_mb"], 3)
    text = table({"sampler_ms": sampler, "sampler_peers": peers, "server": server})
    assert "sampler netlink" in text and "server     50 connections" in text
    assert "x the bare dump (goal <= 1.5: " in text and "x ss (goal <= 0.5: " in text


def test_a_servers_memory_is_read_with_every_request_in_flight():
    delay = 0.6  # memory is read at 0.3 s, 20 requests read in ~1 ms: 0.3 s of a loaded machine's lateness left
    with ServerProcess(delay=delay, track_interval=3600) as server:
        figures = _hold(server, 20, delay)
    assert len(figures["latencies"]) == 20 and figures["pss_mb"] > 0
    # halfway through the delay after the burst, no answer yet: a server holding the 20 requests
    assert figures["answered_before_memory"] == 0
    assert delay / 2 <= figures["memory_after_s"] < delay


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
    # repeated, the figure is the median, shown with its range
    repeated = table({"verdict_s": {"tcp_count-faulty": 1.0, "tcp_count-fixed": 1.4},
                      "seed_pair_verdict_s": {"faulty": [1.1, 0.9, 1.0], "fixed": [1.4, 1.3, 1.7]}})
    assert f"run faulty 1.00 (0.90-1.10) s, run fixed 1.40 (1.30-1.70) s; goal <= {goal} s each: met" in repeated


def test_the_server_is_judged_against_go_on_latency_and_memory():
    """Ours (one process) and ours with --workers, each beside Go: p99 <= 0.5, p50 <= 1, memory <= 0.75."""
    from harness.bench import GOALS, _round_ratios

    def row(p50: float, p99: float, pss: float) -> dict:
        return {"p50_overhead_ms": p50, "p99_overhead_ms": p99, "pss_mb": pss}

    ratios = _round_ratios([row(10, 20, 30), row(12, 30, 40)], [row(20, 80, 40), row(10, 60, 40)])
    assert ratios == {"p50_ratio": [0.5, 1.2], "p99_ratio": [0.25, 0.5], "pss_ratio": [0.75, 1.0]}
    text = table({"server_workers": 2,
                  "server_vs_go": {"5000": {"p50_ratio": 0.5, "p99_ratio": 0.4, "pss_ratio": 0.9}},
                  "workers_vs_go": {"5000": {"p50_ratio": 0.8, "p99_ratio": 0.6, "pss_ratio": 0.7}}})
    ours, workers = text.splitlines()
    assert ours.startswith("server   5000 connections, ours vs go: p50 0.5, p99 0.4, memory 0.9")
    assert ours.endswith(f"p50 <= 1: met; memory <= {GOALS['server_vs_go_pss']}: NOT met")
    assert workers.startswith("server   5000 connections, ours with 2 workers vs go: p50 0.8, p99 0.6, memory 0.7")
    assert workers.endswith(f"p50 <= 1: NOT met; memory <= {GOALS['server_vs_go_pss']}: met")
    # 1,000 connections are shown beside Go, not judged: the issue sets its goals at 5,000 and 10,000
    small = table({"server_vs_go": {"1000": {"p50_ratio": 0.9, "p99_ratio": 0.4, "pss_ratio": 1.0}}})
    assert small.endswith("memory 1.0   (goals are set at 5,000 and 10,000)") and "NOT met" not in small
