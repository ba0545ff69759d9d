"""Row 2: idle handling (idle connections closed after the idle timeout, no traffic)."""
import pytest


@pytest.mark.parametrize("variant", ["faulty", "fixed"])
def test_idle_handling(experiment, variant):
    result = experiment(variant, "idle_handling")
    assert result.passed, result.explain()
    closes = result.figures.closed_after_s is not None
    assert closes is (variant == "fixed"), result.explain()
