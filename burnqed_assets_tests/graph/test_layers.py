"""The layer picture of docs/architecture.md, enforced: defs -> domain -> paths/settings -> libraries.

Scans imports with `ast` (module level and inside functions), so a lazy import counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "burnqed_assets"
DOMAIN = ("lean", "data", "models", "search", "ebm", "joint", "reports")
CONFIG_MODULES = ("models/config.py", "ebm/config.py", "joint/config.py", "search/config.py")
HEAVY = ("torch", "transformers", "trl", "peft", "dagster", "numpy", "pandas", "duckdb", "pyarrow")


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def _top(names: set[str]) -> set[str]:
    return {n.split(".")[0] for n in names}


def domain_modules() -> list[Path]:
    return sorted(p for pkg in DOMAIN for p in (PACKAGE / pkg).rglob("*.py"))


@pytest.mark.parametrize("module", domain_modules(), ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_domain_never_imports_dagster_or_the_defs_layer(module: Path):
    names = imports(module)
    assert "dagster" not in _top(names), f"{module}: the domain layer never imports dagster"
    upward = {n for n in names if n.startswith(("burnqed_assets.defs", "burnqed_assets.definitions",
                                                 "burnqed_assets.resources", "burnqed_assets.tools"))}
    assert not upward, f"{module} imports the layer above it: {sorted(upward)}"


def test_paths_is_the_ground_floor():
    names = imports(PACKAGE / "paths.py")
    assert not {n for n in names if n.startswith("burnqed_assets")}, "paths.py imports nothing of the package"


@pytest.mark.parametrize("rel", CONFIG_MODULES)
def test_config_classes_load_no_heavy_library(rel: str):
    names = imports(PACKAGE / rel)
    assert not (_top(names) & set(HEAVY)), f"{rel} must stay light: settings.py imports it"
    assert not {n for n in names if n.startswith("burnqed_assets")}, f"{rel} imports nothing of the package"


def test_settings_imports_only_paths_and_the_config_classes():
    package = {n for n in imports(PACKAGE / "settings.py") if n.startswith("burnqed_assets.")}
    allowed = {"burnqed_assets.paths"} | {"burnqed_assets." + r[:-3].replace("/", ".") for r in CONFIG_MODULES}
    assert {n for n in package if not any(n == a or n.startswith(a + ".") for a in allowed)} == set()
