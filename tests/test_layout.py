"""The layout's rules (docs/layout.md), read from the source: the library never imports its command lines,
its modules import each other without a circle, and the track is asked of its `Track`, never compared.

Imports are found by parsing each file (`ast`): those at the top, inside functions and under
TYPE_CHECKING alike, since a late or type-only import is where a circle would hide."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from arc_trm.tracks import TRACKS

ROOT = Path(__file__).resolve().parents[1]
COMMAND_LINES = ("evaluation", "submissions")


def library_modules() -> dict[str, Path]:
    """Module name -> file of everything under arc_trm/."""
    modules = {}
    for path in sorted((ROOT / "arc_trm").rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imported_names(path: Path) -> set[str]:
    """Every module name an import statement of the file names (`from a.b import c` names a.b and a.b.c)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))  # relative: reported by the test below
    return names


def test_the_library_never_imports_its_command_lines():
    found = sorted(
        f"{path.relative_to(ROOT)}: {name}" for path in library_modules().values() for name in imported_names(path)
        if name.split(".")[0] in COMMAND_LINES or name.startswith(".")
    )
    assert found == [], "arc_trm/ imports a command-line package (or imports relatively): " + "; ".join(found)


def test_the_library_imports_without_a_circle():
    modules = library_modules()
    graph = {name: sorted(n for n in imported_names(path) if n in modules and n != name) for name, path in modules.items()}
    done: set[str] = set()

    def circle_from(name: str, path: list[str]) -> list[str] | None:
        """A circle through the imports reached from `name`, as the modules along it, or None."""
        if name in path:
            return path[path.index(name):] + [name]
        if name in done:
            return None
        for imported in graph[name]:
            circle = circle_from(imported, path + [name])
            if circle is not None:
                return circle
        done.add(name)
        return None

    for name in graph:
        circle = circle_from(name, [])
        assert circle is None, "an import circle: " + " -> ".join(circle)


def compared_constants(node: ast.Compare) -> set[object]:
    """The literals a comparison tests against (`x == "a"`, `x in ("a", "b")`), not those inside calls."""
    sides = [node.left, *node.comparators]
    items = [item for side in sides for item in (side.elts if isinstance(side, (ast.Tuple, ast.List, ast.Set)) else [side])]
    return {item.value for item in items if isinstance(item, ast.Constant)}


def test_no_track_name_is_compared_outside_the_tracks():
    """`data.track == "arc"`, `track in ("sudoku", "maze")`, `__import__(f"arc_trm.data.{track}")`: the
    code that depends on the track asks the track table (arc_trm/tracks/) instead."""
    files = [p for p in library_modules().values() if "tracks" not in p.relative_to(ROOT / "arc_trm").parts[:1]]
    files += sorted((ROOT / "evaluation").rglob("*.py")) + sorted((ROOT / "submissions").rglob("*.py"))
    found = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Compare) and compared_constants(node) & set(TRACKS):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "__import__":
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    assert found == [], "track names compared outside arc_trm/tracks/: " + "; ".join(found)


@pytest.mark.parametrize("source, found", [
    ("if config.data.track != 'arc': pass", True),
    ("ok = track in ('sudoku', 'maze')", True),
    ("ok = TRACKS.get(info.get('track', 'arc')) is ARC", False),
])
def test_the_track_name_check_sees_comparisons(source, found):
    compares = [node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Compare)]
    assert any(compared_constants(node) & set(TRACKS) for node in compares) == found
