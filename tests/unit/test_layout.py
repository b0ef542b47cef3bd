"""The tree shows the data path: the edges import the shared package, never each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
EDGES = ("connectors", "pipelines", "dashboards")


def _imported_top_levels(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", EDGES)
def test_edge_packages_never_import_each_other(package: str) -> None:
    others = set(EDGES) - {package}
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imported_top_levels(path) & others)
        for path in (ROOT / package).rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_shared_package_imports_no_edge() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imported_top_levels(path) & set(EDGES))
        for path in (ROOT / "asbuilt").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_required_top_level_exists() -> None:
    required = ["pipelines", "connectors", "dashboards", "sql", "tests", "infra", "pyproject.toml"]
    assert [name for name in required if not (ROOT / name).exists()] == []
