"""``--max-churn``: the optional second gate, on new connections per request."""
import dataclasses

import pytest

MAX_CHURN = 0.5  # between the two variants below: aiohttp's pool reuses (~0.2), urlopen never does (1.0)


@pytest.mark.parametrize("variant, passes", [("aiohttp-fixed", True), ("stdlib-fixed", False)])
def test_churn_gate(experiment, leak_settings, variant, passes):
    settings = dataclasses.replace(leak_settings, max_churn=MAX_CHURN)
    result = experiment(variant, settings=settings, expect="plateau", name=f"churn_gate-{variant}")
    churn = next(c for c in result.verdict.checks if c.name == "churn")
    assert result.verdict.trend.verdict == "plateau", result.explain()  # no leak either way
    assert churn.passed is passes and result.passed is passes, result.explain()
