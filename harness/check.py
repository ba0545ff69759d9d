"""One experiment on one client, start to finish: what ``leak_check`` runs.

``check()`` starts a slow server of its own, judges a request function (or a
catalog name, or ``module:function``) by rounds, or a command by its time
series, stops the server, and returns the written result. The pytest fixture
only adds failing the test; users can call this from any code.
"""
from __future__ import annotations

from collections.abc import Callable

from .command import measure_command
from .experiment import ExperimentResult
from .options import Settings
from .scenarios import measure, target_label
from .server_process import ServerProcess


def check(
    target: str | Callable[[str], object] | None = None,
    *,
    cmd: str | None = None,
    expect: str | None = "plateau",
    settings: Settings | None = None,
    name: str | None = None,
    on_server: Callable[[ServerProcess], None] = lambda server: None,
) -> ExperimentResult:
    """Judge ``target`` (a request function, catalog name or ``module:function``) or
    ``cmd`` (a shell command with ``{url}``); returns the result, written to
    ``settings.results_dir``. Costs about 2.5 s for a target with the default
    options, ``settings.duration`` s (or less) for a command.

    ``on_server`` is told of the server once it is started (to report its stderr).
    Raises ValueError unless exactly one of ``target`` and ``cmd`` is given.
    """
    if (target is None) == (cmd is None):
        raise ValueError("give a target (a request function or name) or cmd=..., not both or neither")
    settings = settings or Settings()
    server = ServerProcess(delay=settings.delay)
    with server:
        on_server(server)
        if cmd is not None:
            return measure_command(cmd, settings, server, expect=expect, name=name or "command")
        return measure("tcp_count", target, settings, server, expect=expect,  # type: ignore[arg-type]
                       name=name or f"leak_check-{target_label(target)}")
