"""The layers: ``models`` (what a user's process loads) <- ``serve``, ``eval``, ``training``
(``training`` may use ``eval``'s data and metrics); nothing imports upward, and no module imports
itself round a loop. Every import counts, those inside functions too."""
import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("models", "serve", "eval", "training")
ALLOWED = {"models": {"models"}, "serve": {"models", "serve"}, "eval": {"models", "eval"},
           "training": {"models", "eval", "training"}}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The project modules ``path`` imports (``from pkg import mod`` counts as ``pkg.mod`` when
    that is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in found if m in known}


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")}
    known = set(files)
    return {m: imports_of(p, known) - {m} for m, p in files.items()}


def test_no_module_imports_a_layer_above_its_own():
    upward = [f"{m} -> {d}" for m, deps in graph().items() for d in deps
              if d.split(".")[0] not in ALLOWED[m.split(".")[0]]]
    assert not upward, upward


def test_no_import_loop():
    g = graph()
    state: dict[str, int] = {}
    loops = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in sorted(g[m]):
            if state.get(d) == 1:
                loops.append(" -> ".join(path[path.index(d):] + [d]) if d in path else f"{m} -> {d}")
            elif d not in state:
                visit(d, path + [d])
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m, [m])
    assert not loops, loops


@pytest.mark.parametrize("package", PACKAGES)
def test_the_walk_sees_each_package(package):
    """The walk finds modules and imports to judge (a test that could not fail would pass here)."""
    g = graph()
    assert any(m.startswith(package + ".") for m in g)
    assert any(d.startswith("models.") for m, deps in g.items() if m.startswith(package) for d in deps)
