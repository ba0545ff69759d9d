import pytest

from harness.scenarios import measure


@pytest.fixture
def experiment(slow_server, leak_settings, record_experiment):
    """``experiment(scenario, target, **kw)``: measure on a fresh server, record it, return the result."""

    def run(scenario: str, target: str, **kwargs):
        result = measure(scenario, target, leak_settings, slow_server, **kwargs)
        return record_experiment(result)

    return run


def pytest_collection_modifyitems(items):
    for item in items:
        if "experiments" in item.nodeid.split("/")[0]:
            item.add_marker(pytest.mark.experiment)
