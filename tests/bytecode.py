"""The session's bytecode cache (PYTHONPYCACHEPREFIX, see conftest.py), seeded from the
bytecode already installed.

With a prefix, Python reads compiled modules only from it: the ``__pycache__`` folders
that pip and Python's own installer wrote beside the packages and the standard library
are never read. A fresh prefix (a new virtual environment, as in CI and a soak's first
run) then had every process compile what it imports: aiohttp, imported inside a sample
client's first request, held its event loop's thread compiling for over 20 s in a loaded
soak, and a round of 23 requests never started. Seeding links those files into the
prefix, where Python looks for them: ~13,000 links, ~1 s (most of it the kernel's).
"""
from __future__ import annotations

import os
import shutil
import sys

SKIPPED = {"test", "tests", "idlelib", "tkinter", "turtledemo", "lib2to3", "ensurepip"}
TAG = f".{sys.implementation.cache_tag}.pyc"  # the plain level: not .opt-1.pyc nor .opt-2.pyc


def prefix_path(prefix: str, source: str) -> str:
    """Where Python looks for ``source``'s bytecode under ``prefix`` (as ``cache_from_source``
    does with ``sys.pycache_prefix``): the source's folder, made relative, below the prefix."""
    folder, name = os.path.split(os.path.abspath(source))
    return os.path.join(prefix, folder.lstrip(os.sep), name.rpartition(".")[0] + TAG)


def seed(prefix: str, roots: list[str]) -> int:
    """Link every installed ``__pycache__/*.<tag>.pyc`` under ``roots`` whose source is beside it
    into ``prefix`` (copied where a link cannot be made); returns how many. A file the prefix
    has already is kept. Python checks each against its source as it would in ``__pycache__``."""
    seeded = 0
    for root in roots:
        for folder, dirs, files in os.walk(root):
            if os.path.basename(folder) != "__pycache__":
                # packages' own test suites (the standard library's test/ alone is ~900 modules) are never imported
                dirs[:] = [d for d in dirs if d == "__pycache__" or not (d.startswith(".") or d in SKIPPED)]
                continue
            source_folder = os.path.dirname(folder)
            for name in files:
                if not name.endswith(TAG):
                    continue
                source = os.path.join(source_folder, name[:-len(TAG)] + ".py")
                if not os.path.exists(source):
                    continue
                target = prefix_path(prefix, source)
                if os.path.exists(target):
                    continue
                os.makedirs(os.path.dirname(target), exist_ok=True)
                try:
                    os.link(os.path.join(folder, name), target)
                except OSError:  # another file system, or links refused: a copy
                    shutil.copy2(os.path.join(folder, name), target)
                seeded += 1
    return seeded


def installed_roots() -> list[str]:
    """The folders whose bytecode is installed: the standard library and the import path's
    site-packages (this interpreter's)."""
    import sysconfig

    paths = sysconfig.get_paths()
    return sorted({paths["stdlib"], paths["purelib"], paths["platlib"]})
