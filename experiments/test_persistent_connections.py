"""Row 1 of the seed's table: persistent connections (new connections per request)."""
import pytest


@pytest.mark.parametrize("variant", ["faulty", "fixed"])
def test_persistent_connections(experiment, variant):
    result = experiment(variant, "persistent_connections")
    assert result.passed, result.explain()
    expected = {"faulty": False, "fixed": True}[variant]
    assert result.figures.persistent is expected, result.explain()
