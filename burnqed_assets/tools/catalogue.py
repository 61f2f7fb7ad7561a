"""Generate docs/catalogue.md from the Definitions: `python -m burnqed_assets.tools.catalogue`
(or the `burnqed-catalogue` console script).

`--check` exits 1 when the file on disk differs from what the Definitions give (CI and a
test use it). A tool outside the asset layer: it imports the finished Definitions, which defs/ modules must not.
"""

import argparse
import sys
from pathlib import Path
from typing import Optional

import dagster as dg

from burnqed_assets.defs import operations
from burnqed_assets.reports.catalogue import AssetEntry, CheckEntry, data_paths, render_catalogue
from burnqed_assets.paths import CATALOGUE_DOC
from burnqed_assets.settings import GPU_TAG, GPU_TAG_KEY

CATALOGUE_PATH = CATALOGUE_DOC
_FILE_METADATA_KEYS = ("path", "paths", "files", "writes", "output", "outputs")


def _checks_by_asset(defs: dg.Definitions) -> dict[dg.AssetKey, list[CheckEntry]]:
    out: dict[dg.AssetKey, list[CheckEntry]] = {}
    containers = list(defs.asset_checks or []) + [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    seen: set[tuple[dg.AssetKey, str]] = set()
    for container in containers:
        for spec in getattr(container, "check_specs", []) or []:
            if (spec.asset_key, spec.name) in seen:
                continue
            seen.add((spec.asset_key, spec.name))
            out.setdefault(spec.asset_key, []).append(CheckEntry(spec.name, bool(spec.blocking), spec.description or ""))
    return out


def _gpu_keys(defs: dg.Definitions) -> set[dg.AssetKey]:
    keys: set[dg.AssetKey] = set()
    for a in defs.assets or []:
        if isinstance(a, dg.AssetsDefinition) and a.is_executable and (a.op.tags or {}).get(GPU_TAG_KEY) == GPU_TAG[GPU_TAG_KEY]:
            keys.update(a.keys)
    return keys


def _files(spec: dg.AssetSpec) -> tuple[str, ...]:
    files = data_paths(spec.description or "")
    for key in _FILE_METADATA_KEYS:
        value = (spec.metadata or {}).get(key)
        value = getattr(value, "value", value)
        for item in value if isinstance(value, (list, tuple)) else [value] if value else []:
            if str(item) not in files:
                files.append(str(item))
    return tuple(files)


def catalogue_entries(defs: dg.Definitions) -> list[AssetEntry]:
    """One plain record per executable asset of `defs`."""
    executable = defs.resolve_asset_graph().executable_asset_keys
    checks = _checks_by_asset(defs)
    gpu = _gpu_keys(defs)
    entries = []
    for spec in operations.iter_specs(defs):
        if spec.key not in executable:
            continue
        cond = spec.automation_condition
        entries.append(
            AssetEntry(
                key=spec.key.to_user_string(),
                group=spec.group_name or "default",
                description=spec.description or "",
                deps=tuple(sorted(d.asset_key.to_user_string() for d in spec.deps)),
                checks=tuple(checks.get(spec.key, [])),
                gpu=spec.key in gpu,
                automation=(cond.get_label() or type(cond).__name__) if cond is not None else None,
                files=_files(spec),
            )
        )
    return entries


def render(defs: Optional[dg.Definitions] = None) -> str:
    if defs is None:
        from burnqed_assets.definitions import defs as loaded

        defs = loaded
    return render_catalogue(catalogue_entries(defs))


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Generate docs/catalogue.md from the Definitions.")
    parser.add_argument("--output", type=Path, default=CATALOGUE_PATH)
    parser.add_argument("--check", action="store_true", help="exit 1 when the file is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is stale: run `python -m burnqed_assets.tools.catalogue`", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date")
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(args.output)
    print(f"wrote {args.output} ({text.count(chr(10))} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
