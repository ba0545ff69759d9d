"""Experiments use only what a user of the library could: the plugin's fixtures
(``run_experiment``, ``leak_settings``, ``start_slow_server``) and ``harness``'s
public API."""
import pytest

from harness import Experiment


@pytest.fixture
def experiment(run_experiment, leak_settings):
    """``experiment(target, scenario="tcp_count", **fields)``: one ``Experiment``
    with the session's settings, run on servers of its own, written and recorded."""

    def run(target, scenario: str = "tcp_count", **fields):
        fields.setdefault("settings", leak_settings)
        return run_experiment(Experiment(target, scenario=scenario, **fields))

    return run


def pytest_collection_modifyitems(items):
    for item in items:
        if "experiments" in item.nodeid.split("/")[0]:
            item.add_marker(pytest.mark.experiment)
