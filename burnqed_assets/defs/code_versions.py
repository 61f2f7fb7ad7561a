"""A `code_version` for every asset: a hash of the code it runs.

The version covers the asset's compute function and every burnqed_assets module that its defs
module or the function imports, transitively (the domain code, paths and settings it calls).
A code or settings fix changes the versions of exactly the assets that run that code, so the
UI's staleness view shows what the fix invalidates and "materialize stale" re-runs only that.
"""
# No `from __future__ import annotations` in defs/: Dagster inspects annotations.

import ast
import functools
import hashlib
import inspect
import textwrap
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import dagster as dg

PACKAGE = "burnqed_assets"
PACKAGE_DIR = Path(__file__).resolve().parents[1]
# Wiring that every asset shares but that computes nothing (the graph assembly itself).
NOT_CODE = frozenset({f"{PACKAGE}.definitions", f"{PACKAGE}.defs.operations", f"{PACKAGE}.defs.code_versions"})


def _module_file(name: str) -> Optional[Path]:
    parts = name.split(".")[1:]
    base = PACKAGE_DIR.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_modules(tree: ast.AST, current: str) -> set[str]:
    """burnqed_assets modules named by the imports in `tree` (`from pkg import mod` counts mod)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative import
                module = ".".join(current.split(".")[: -node.level] + ([module] if module else []))
            names = [module] + [f"{module}.{a.name}" for a in node.names]
        for name in names:
            if (name == PACKAGE or name.startswith(PACKAGE + ".")) and _module_file(name) and name not in NOT_CODE:
                found.add(name)
    return found


@functools.lru_cache(maxsize=None)
def _module_info(name: str) -> tuple[str, frozenset[str]]:
    """(sha256 of the module's source, the burnqed_assets modules it imports)."""
    path = _module_file(name)
    source = path.read_bytes() if path else b""
    tree = ast.parse(source) if source else ast.Module(body=[], type_ignores=[])
    return hashlib.sha256(source).hexdigest(), frozenset(_imported_modules(tree, name))


def module_closure(roots: set[str]) -> list[str]:
    """`roots` and every burnqed_assets module they import, transitively, sorted."""
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name in seen or name in NOT_CODE:
            continue
        seen.add(name)
        stack.extend(_module_info(name)[1])
    return sorted(seen)


def code_version_of(fn: Callable[..., Any]) -> str:
    """12 hex digits over the function's source and the modules it (and its module) import."""
    source = textwrap.dedent(inspect.getsource(fn))
    module = fn.__module__
    roots = {module} | _imported_modules(ast.parse(source), module)
    h = hashlib.sha256(source.encode())
    for name in module_closure(roots):
        h.update(f"{name}\0{_module_info(name)[0]}\0".encode())
    return h.hexdigest()[:12]


def _compute_fn(assets_def: dg.AssetsDefinition) -> Optional[Callable[..., Any]]:
    if not assets_def.is_executable or not assets_def.is_materializable:
        return None
    compute = getattr(assets_def.op, "compute_fn", None)
    return getattr(compute, "decorated_fn", None)


def code_versions(defs: dg.Definitions) -> dict[dg.AssetKey, str]:
    """Key → code version of every materializable asset in `defs` (owners' explicit ones kept)."""
    versions: dict[dg.AssetKey, str] = {}
    for item in defs.assets or []:
        if not isinstance(item, dg.AssetsDefinition):
            continue
        fn = _compute_fn(item)
        if fn is None:
            continue
        version = code_version_of(fn)
        for spec in item.specs:
            versions[spec.key] = spec.code_version or version
    return versions


def with_code_versions(defs: dg.Definitions) -> dg.Definitions:
    versions = code_versions(defs)

    def apply(spec: dg.AssetSpec) -> dg.AssetSpec:
        version = versions.get(spec.key)
        return spec if version is None or spec.code_version == version else \
            spec.replace_attributes(code_version=version)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return defs.map_asset_specs(func=apply)
