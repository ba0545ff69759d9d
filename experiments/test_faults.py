"""The seed's pair against a server that misbehaves on purpose: what the faulty
client leaves behind, and that the fixed one stays bounded and recovers."""
import pytest

from harness import HANG_EVERY, STOP_AFTER, default_expectation, override

EVERY = 10  # one request in ten gets the fault: the rest of each round still runs

# fault name: (server fault flags, scenario)
FAULTS = {
    "idle-close": ({"idle_close": 0.3}, "tcp_count"),  # shorter than the fixed client's own 0.5 s idle timeout
    "reset-mid-response": ({"fault": "reset-mid-response", "every": EVERY}, "tcp_count"),
    "truncated-body": ({"fault": "truncate", "every": EVERY}, "tcp_count"),
    "hang": ({"fault": "hang", "every": HANG_EVERY}, "hang"),
    "stop-accepting": ({"stop_accepting_after": STOP_AFTER}, "stop_accepting"),
    # over HTTPS: the TCP connection ends under the TLS session (no close_notify), and handshakes that never end
    "tls-unclean-close": ({"fault": "unclean-close", "every": EVERY}, "tcp_count"),
    "tls-stalled-handshake": ({}, "stalled_handshake"),
}
CASES = [(fault, variant) for fault in FAULTS for variant in ("faulty", "fixed")]


@pytest.mark.parametrize("fault, variant", CASES, ids=[f"{f}-{v}" for f, v in CASES])
def test_fault(experiment, leak_settings, fault, variant):
    flags, scenario = FAULTS[fault]
    expect = default_expectation(variant) if scenario == "tcp_count" else None
    settings = override(leak_settings, tls="on") if fault.startswith("tls-") else leak_settings
    result = experiment(variant, scenario, faults=flags, expect=expect, name=f"fault-{fault}-{variant}",
                        settings=settings)
    assert result.passed, result.explain()
    last = result.rounds[-1] if result.rounds else {}
    if fault == "idle-close" and variant == "faulty":
        # the server closed them; the client never will: every kept socket sits in CLOSE_WAIT, and that is a leak
        assert last["close_wait"] > 0 and result.verdict.trend.verdict == "growth", result.explain()
    if fault.startswith("tls-"):
        assert result.settings["tls"] is True and result.server["url"].startswith("https://"), result.server
    if fault == "tls-unclean-close":  # every 10th answer ended without close_notify, and the rounds went on
        assert result.figures.requests > 0 and result.rounds, result.explain()
    if fault in ("reset-mid-response", "truncated-body"):
        # some requests failed, and the rounds went on: the fixed client recovered every time
        assert 0 < result.figures.failed < result.figures.requests, result.explain()
