"""Row 4: TCP count. The faulty client's count keeps increasing; the fixed one's stays stable."""
import pytest

from harness import default_expectation


@pytest.mark.parametrize("variant", ["faulty", "fixed"])
def test_tcp_count(experiment, variant):
    expect = default_expectation(variant)
    result = experiment(variant, expect=expect)
    assert result.passed, result.explain()
    assert result.verdict.trend.verdict == expect
