"""Row 3: close on error (after a failed request, idle connections are closed)."""
import pytest


@pytest.mark.parametrize(
    "variant, failure",
    [("faulty", "reset"), ("fixed", "reset"), ("fixed", "timeout")],
    ids=["faulty-reset", "fixed-reset", "fixed-timeout"],
)
def test_close_on_error(experiment, variant, failure):
    name = f"close_on_error-{variant}" if failure == "reset" else f"close_on_error_{failure}-{variant}"
    result = experiment(variant, "close_on_error", params={"failure": failure}, name=name)
    assert result.passed, result.explain()
    assert result.figures.idle_before > 0, "the warm-up left no idle socket to close"
    closed_all = result.figures.after_error == 0
    assert closed_all is (variant == "fixed"), result.explain()
    if failure == "timeout":
        assert result.figures.hung_up_early == 1, "the server should notice the client that timed out"
