import pytest

from harness.options import OPTIONS, Settings, settings_from
from harness.values import OptionError
from harness.driving import make_schedule


def test_schedule_is_reproducible_and_bounded():
    a = make_schedule(cycles=50, period=0.05, extra_max=3, seed=7)
    assert a == make_schedule(cycles=50, period=0.05, extra_max=3, seed=7)
    assert a != make_schedule(cycles=50, period=0.05, extra_max=3, seed=8)
    assert a.cycles == 50 and all(0 <= e <= 3 for e in a.extras)
    assert a.requests == sum(1 + e for e in a.extras)
    assert make_schedule(cycles=4, period=1, extra_max=0, seed=1).requests == 4


def test_defaults_and_precedence():
    assert settings_from({}, environ={}) == Settings()
    env = {"LEAK_DELAY": "0.5", "LEAK_CYCLES": "7"}
    s = settings_from({"cycles": "3"}, environ=env)
    assert (s.delay, s.cycles) == (0.5, 3)  # the command line beats the environment


@pytest.mark.parametrize(
    "values, message",
    [
        ({"cycles": "0"}, "--cycles: '0' must be >= 1"),
        ({"delay": "-1"}, "--delay: '-1' must be a finite number >= 0"),
        ({"period": "abc"}, "--period: 'abc' is not a number"),
        ({"delay": "nan"}, "--delay: 'nan' must be a finite number >= 0"),
        ({"rounds": "1"}, "--rounds: '1' must be >= 2"),
        ({"rounds": "4", "max_rounds": "3"}, "--max-rounds: 3 must be >= --rounds (4)"),
    ],
)
def test_bad_values_name_the_option_and_value(values, message):
    with pytest.raises(OptionError) as info:
        settings_from(values, environ={})
    assert str(info.value) == message


def test_bad_environment_value_names_the_variable():
    with pytest.raises(OptionError, match="LEAK_SEED: 'x' is not a whole number"):
        settings_from({}, environ={"LEAK_SEED": "x"})


def test_every_option_has_flag_ini_env_and_help():
    for option in OPTIONS:
        assert option.flag.startswith("--") and option.ini.startswith("leak_") and option.env.startswith("LEAK_")
        assert option.help
