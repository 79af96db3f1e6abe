"""No import runs up the layers: the lake and its failpoints import nothing from the job runner, the
jobs or reporting, and the runtime (job runner, locks, stages, cache, tracking) nothing from reporting."""
import ast
from pathlib import Path

import pytest

from conftest import ROOT

LIB = ROOT / "lib" / "recsynth"
ABOVE_THE_LAKE = ("recsynth.runtime", "recsynth.reporting", "recsynth.tasks", "recsynth.pipeline")
ABOVE_THE_RUNTIME = ("recsynth.reporting", "recsynth.tasks", "recsynth.pipeline")


def imported(path: Path) -> set[str]:
    """Every module `path` imports, at the top or inside a function (`from recsynth import x` as recsynth.x)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def upward(path: Path, above: tuple[str, ...]) -> list[str]:
    return sorted(name for name in imported(path) if any(name == a or name.startswith(a + ".") for a in above))


@pytest.mark.parametrize("module", ["lake.py", "faults.py"])
def test_the_lake_imports_nothing_above_it(module):
    assert upward(LIB / module, ABOVE_THE_LAKE) == []


@pytest.mark.parametrize("module", sorted(p.name for p in (LIB / "runtime").glob("*.py")))
def test_the_runtime_imports_no_reporting(module):
    assert upward(LIB / "runtime" / module, ABOVE_THE_RUNTIME) == []
