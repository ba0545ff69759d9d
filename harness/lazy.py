"""Names a package exports but imports only when first asked for (PEP 562)."""
from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(package: str, homes: Mapping[str, str], namespace: dict[str, Any]) -> Callable[[str], Any]:
    """A module ``__getattr__``: each name in ``homes`` is imported from its module
    (``homes[name]``, relative to ``package``) at its first use and kept in ``namespace``,
    so importing the package costs nothing until then (~1 µs a later lookup: a global)."""
    def __getattr__(name: str) -> Any:
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{homes[name]}", package), name)
        namespace[name] = value
        return value
    return __getattr__
