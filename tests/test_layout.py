"""The package layout keeps its promises: arrows go one way, judging is pure, and
``experiments/`` use only what a user of the library could.

Imports are read from the source (``ast``), lazy ones inside functions included,
so a cycle hidden in a function body is found too.
"""
from __future__ import annotations

import ast
import functools
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT / "harness"

# part -> the parts it may import. A part is a package of harness/ or a top-level module.
ALLOWED: dict[str, set[str]] = {
    "limits": set(),
    "values": set(),  # what a flag, an ini key or an environment variable may hold, and the errors of bad ones
    "tcp_info": set(),  # the kernel's struct tcp_info, as the sampler and the server read it
    "lazy": set(),  # names a package exports, imported at their first use
    "options": {"sampling", "values"},  # the --sampler option's choices come from the backend registry
    "server": {"values", "limits", "lazy", "tcp_info"},
    "clients": set(),
    "sampling": {"tcp_info"},
    "judging": set(),
    "driving": {"values", "options", "server", "sampling", "judging"},
    "scenarios": {"values", "options", "server", "clients", "sampling", "judging", "driving"},
    "runner": {"values", "options", "server", "clients", "sampling", "judging", "driving", "scenarios"},
    "report": {"sampling", "judging", "driving", "scenarios"},
    "peers": {"server"},  # other servers doing the slow server's job, for the bench to compare with
    "bench": {"limits", "values", "options", "server", "clients", "sampling", "report", "runner", "scenarios",
              "peers"},
    "socket_leaks": {"values", "options", "sampling", "judging"},
    "faces": {"values", "options", "server", "clients", "sampling", "judging", "driving", "scenarios", "runner",
              "report", "bench", "socket_leaks"},
}
FACES = {"faces"}
PURE_STDLIB = {"__future__", "collections", "dataclasses", "math", "typing"}  # all that judging may import


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports, anywhere in the file."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found |= {f"{target}.{alias.name}" for alias in node.names}
    return found


MODULES = {module_name(p): p for p in sorted(HARNESS.rglob("*.py"))}


@functools.cache
def graph() -> dict[str, set[str]]:
    """{module: the harness modules it imports}: ~0.3 s of parsing, made by the first test that asks (at import
    time it cost every pytest-xdist worker that, since each collects every module)."""
    return {name: {m for m in imports(path) if m in MODULES and m != name} for name, path in MODULES.items()}


def part(module: str) -> str | None:
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else None  # None: harness/__init__ (the lazy public API)


def test_every_part_is_in_the_table():
    parts = {part(m) for m in MODULES} - {None, "__main__"}
    assert parts == set(ALLOWED), "a new part needs its row in ALLOWED"


def test_the_allowed_arrows_form_no_cycle():
    seen: dict[str, int] = {}

    def visit(p: str, path: list[str]) -> None:
        assert seen.get(p) != 1, f"cycle in ALLOWED: {' -> '.join(path + [p])}"
        if seen.get(p) == 2:
            return
        seen[p] = 1
        for q in ALLOWED[p]:
            visit(q, path + [p])
        seen[p] = 2

    for p in ALLOWED:
        visit(p, [])


# one test each, listing every offender: parametrized ids would carry module names such as
# harness.clients.faulty into `pytest -k faulty`
def test_arrows_go_one_way():
    wrong = {}
    for module in sorted(m for m in MODULES if part(m) in ALLOWED):
        mine = part(module)
        bad = {m for m in graph()[module] if part(m) not in (mine, None) and part(m) not in ALLOWED[mine]}
        if bad:
            wrong[module] = f"imports {sorted(bad)}; {mine} may import only {sorted(ALLOWED[mine])}"
    assert not wrong, wrong


def test_nothing_imports_a_face():
    for module, targets in graph().items():
        if part(module) not in FACES and module not in ("harness.__main__",):
            assert not {t for t in targets if part(t) in FACES}, module


def test_no_import_cycle_between_modules():
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def strong(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph()[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for v in graph():
        if v not in index:
            strong(v)
    assert not cycles, f"import cycles: {cycles}"


def test_judging_imports_no_io():
    wrong = {}
    for module in sorted(m for m in MODULES if part(m) == "judging"):
        outside = {m.split(".")[0] for m in imports(MODULES[module]) if not m.startswith("harness")}
        if not outside <= PURE_STDLIB:
            wrong[module] = sorted(outside - PURE_STDLIB)
    assert not wrong, wrong


def test_experiments_use_only_the_public_api():
    import harness

    public = {"harness"} | {f"harness.{name}" for name in harness.__all__}
    wrong = {}
    for path in sorted((ROOT / "experiments").glob("*.py")):
        private = sorted(m for m in imports(path) if m.split(".")[0] == "harness" and m not in public)
        if private:
            wrong[path.name] = private
    assert not wrong, f"experiments reach inside the harness: {wrong}"


def test_the_public_api_loads_lazily():
    """``import harness`` (as ``python -m harness.server`` does first) loads no HTTP client library."""
    import subprocess

    done = subprocess.run([sys.executable, "-c", "import sys, harness.server; "
                           "print(sorted({'requests', 'httpx', 'aiohttp', 'urllib3'} & set(sys.modules)))"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
