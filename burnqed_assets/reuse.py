"""Re-runs reuse: an asset whose inputs, settings and code are unchanged returns its previous output.

Before an asset computes, its *fingerprint* is the hash of
  - its code: the sources of the whole `burnqed_assets` package and the asset's code version
    (any code change reruns everything: never a stale output for a subtle import);
  - its settings: the profile's complete `Settings` (data root, every section and threshold);
  - its inputs: the fingerprints of its upstream assets, and the content fingerprint of each
    raw input it reads (`deps` on `raw_*`, `data.inputs.observe_input`); in the full profile also
    the base model and Lean project directories, which live outside the graph.
The fingerprint file (`<data root>/.fingerprints/<asset>.json`, `Paths.fingerprint_file`) keeps
the fingerprint, the materialization's metadata and check results, and the size of every output
file its metadata names. When the fingerprint matches and those files are intact, the asset
is not computed: the step re-emits the stored metadata with `reused=True` and the run it came
from. Anything else recomputes, and the file is removed first, so a failed or interrupted
step never leaves a fingerprint that vouches for half an output.

`BURNQED_REUSE=0` turns reuse off (the test suite does, except the tests of reuse itself).
A partitioned asset (static partitions) is reused only by a run over all its partitions (what
`materialize_all` does); a run over some of them computes and removes the fingerprint, so its
downstream assets recompute too.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

REUSE_ENV = "BURNQED_REUSE"
PACKAGE_DIR = Path(__file__).resolve().parent


def reuse_enabled() -> bool:
    return os.environ.get(REUSE_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


@functools.lru_cache(maxsize=1)
def package_code_hash() -> str:
    """sha256 over the package's Python sources (path + content), in path order."""
    h = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        h.update(str(path.relative_to(PACKAGE_DIR)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _dir_stamp(path: Path) -> str:
    """Names, sizes and mtimes of a directory's top-level entries (models, Lean projects)."""
    if not path.exists():
        return "missing"
    entries = sorted(path.iterdir()) if path.is_dir() else [path]
    return ";".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in entries)


def raw_input_stamp(settings: Any, names: Iterable[str]) -> dict[str, str]:
    from burnqed_assets.data.inputs import observe_input

    specs = settings.inputs.all()
    return {name: observe_input(specs[name].path).fingerprint for name in sorted(names) if name in specs}


def compute_fingerprint(asset_key: str, code_version: str | None, settings: Any,
                        upstream: dict[str, str], raw_inputs: dict[str, str]) -> str:
    parts = {
        "asset": asset_key,
        "code": package_code_hash(),
        "code_version": code_version,
        "settings": repr(settings),
        "upstream": upstream,
        "raw_inputs": raw_inputs,
    }
    if not getattr(settings, "is_demo", True):
        parts["outside_inputs"] = {"base_model": _dir_stamp(Path(settings.model.base_model_path)),
                                   "lean_project": _dir_stamp(Path(settings.lean.project_dir))
                                   if settings.lean.project_dir else None}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class StoredCheck:
    """An asset check result as the fingerprint file keeps it (metadata serialized by Dagster's serdes)."""

    asset_key: str | None
    check_name: str
    passed: bool
    severity: str
    description: str | None
    metadata: str


@dataclass(frozen=True)
class FingerprintRecord:
    """`<data root>/.fingerprints/<asset>.json`: what a reused step gives back, and what vouches for it."""

    fingerprint: str
    asset: str
    run_id: str | None
    metadata: str  # the materialization's metadata, serialized by Dagster's serdes
    checks: list[StoredCheck] = field(default_factory=list)
    outputs: dict[str, int | None] = field(default_factory=dict)  # output path -> file size (None: a folder)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> FingerprintRecord:
        raw = json.loads(text)
        return cls(fingerprint=raw["fingerprint"], asset=raw["asset"], run_id=raw.get("run_id"),
                   metadata=raw["metadata"], checks=[StoredCheck(**c) for c in raw.get("checks") or []],
                   outputs=raw.get("outputs") or {})


def read_fingerprint(path: Path) -> FingerprintRecord | None:
    """The record, or None when it is missing or unreadable (then the asset computes)."""
    try:
        return FingerprintRecord.from_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _output_files(metadata: dict[str, dg.MetadataValue], root: Path) -> dict[str, int | None]:
    """Files and folders under the data root that the metadata names, with file sizes."""
    found: dict[str, int | None] = {}
    for value in metadata.values():
        text = getattr(value, "value", None)
        if not isinstance(text, str) or not text.startswith(str(root)) or "\n" in text:
            continue
        p = Path(text)
        if p.is_file():
            found[text] = p.stat().st_size
        elif p.is_dir():
            found[text] = None
    return found


def outputs_intact(stored: FingerprintRecord) -> bool:
    for path, size in stored.outputs.items():
        p = Path(path)
        if size is None and not p.is_dir():
            return False
        if size is not None and (not p.is_file() or p.stat().st_size != size):
            return False
    return True


def _serialize_result(result: dg.MaterializeResult) -> tuple[str, list[StoredCheck]]:
    from dagster._core.definitions.metadata import normalize_metadata
    from dagster._serdes import serialize_value

    metadata = normalize_metadata(dict(result.metadata or {}), allow_invalid=True)
    checks = [StoredCheck(asset_key=c.asset_key.to_user_string() if c.asset_key else None, check_name=c.check_name,
                          passed=bool(c.passed), severity=c.severity.value, description=c.description,
                          metadata=serialize_value(normalize_metadata(dict(c.metadata or {}), allow_invalid=True)))
              for c in (result.check_results or ())]
    return serialize_value(metadata), checks


def _restore_checks(checks: list[StoredCheck]) -> list[dg.AssetCheckResult]:
    from dagster._serdes import deserialize_value

    return [dg.AssetCheckResult(
        asset_key=dg.AssetKey.from_user_string(c.asset_key) if c.asset_key else None,
        check_name=c.check_name, passed=c.passed, severity=dg.AssetCheckSeverity(c.severity),
        description=c.description, metadata=deserialize_value(c.metadata)) for c in checks]


def _with_metadata(result: dg.MaterializeResult, extra: dict[str, Any]) -> dg.MaterializeResult:
    return dg.MaterializeResult(asset_key=result.asset_key, metadata={**(result.metadata or {}), **extra},
                                check_results=result.check_results, data_version=result.data_version,
                                tags=result.tags)


def _run_partitions(context: Any) -> tuple[str, ...]:
    try:
        return tuple(context.partition_keys)
    except Exception:  # not a partitioned run
        return ()


def _reusing(fn: Callable[..., Any], key: str, code_version: str | None, materializable_deps: list[str],
             raw_deps: list[str], all_partitions: tuple[str, ...] | None = None) -> Callable[..., Any]:
    if getattr(fn, "_burnqed_reuse", False):
        return fn

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        burnqed = kwargs.get("burnqed")
        if burnqed is None or not reuse_enabled():
            return fn(*args, **kwargs)
        context = dg.AssetExecutionContext.get()
        settings = burnqed.settings()
        paths = settings.paths
        partitions: tuple[str, ...] = ()
        if all_partitions is not None:
            partitions = _run_partitions(context) if context is not None else ()
            if set(partitions) != set(all_partitions):  # some chunks only: compute, vouch for nothing
                paths.fingerprint_file(key).unlink(missing_ok=True)
                return fn(*args, **kwargs)
        elif context is not None and context.has_partition_key:
            return fn(*args, **kwargs)
        upstream: dict[str, str] = {}
        for dep in materializable_deps:
            stored = read_fingerprint(paths.fingerprint_file(dep))
            upstream[dep] = stored.fingerprint if stored else "unknown"
        fingerprint = compute_fingerprint(key + (f"[{','.join(sorted(partitions))}]" if partitions else ""),
                                          code_version, settings, upstream, raw_input_stamp(settings, raw_deps))
        fp_file = paths.fingerprint_file(key)
        stored = read_fingerprint(fp_file)
        known_upstream = "unknown" not in upstream.values()
        if known_upstream and stored and stored.fingerprint == fingerprint and outputs_intact(stored):
            from dagster._serdes import deserialize_value

            if context is not None:
                context.log.info(f"reused: inputs, settings and code unchanged since run {stored.run_id} "
                                 f"(fingerprint {fingerprint[:12]})")
            return dg.MaterializeResult(
                metadata={**deserialize_value(stored.metadata), "reused": True,
                          "reused_from_run": str(stored.run_id), "fingerprint": fingerprint[:16]},
                check_results=_restore_checks(stored.checks))
        fp_file.unlink(missing_ok=True)  # recomputing: the old fingerprint vouches for nothing now
        result = fn(*args, **kwargs)
        if not isinstance(result, dg.MaterializeResult):
            return result
        result = _with_metadata(result, {"reused": False, "fingerprint": fingerprint[:16]})
        if known_upstream:
            try:
                metadata, checks = _serialize_result(result)
            except Exception as exc:  # unserializable metadata: compute again next time
                if context is not None:
                    context.log.warning(f"no fingerprint written (metadata not serializable: {exc})")
                return result
            from dagster._serdes import deserialize_value

            record = FingerprintRecord(fingerprint=fingerprint, asset=key,
                                       run_id=context.run.run_id if context else None, metadata=metadata,
                                       checks=checks, outputs=_output_files(deserialize_value(metadata), paths.root))
            fp_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = fp_file.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(record.to_json(), encoding="utf-8")
            os.replace(tmp, fp_file)
        return result

    wrapper._burnqed_reuse = True  # type: ignore[attr-defined]
    return wrapper


def with_reuse(assets: Iterable[Any]) -> None:
    """Wrap the compute function of every single-asset definition with the fingerprint check, in
    place (as run_log.fail_actionably does; guarded by burnqed_assets_tests/ops/test_ops_reuse.py)."""
    from dagster._core.definitions.decorators.op_decorator import DecoratedOpFunction

    from burnqed_assets.defs.inputs import input_name

    assets = [a for a in assets if isinstance(a, dg.AssetsDefinition)]
    materializable = {k for a in assets if a.is_materializable for k in a.keys}
    for a in assets:
        if not a.is_materializable or len(a.keys) != 1:
            continue
        all_partitions = None
        if a.partitions_def is not None:
            if not isinstance(a.partitions_def, dg.StaticPartitionsDefinition):
                continue  # time windows and dynamic partitions: always computed
            all_partitions = tuple(a.partitions_def.get_partition_keys())
        node = a.node_def
        if not isinstance(node, dg.OpDefinition) or not isinstance(node.compute_fn, DecoratedOpFunction):
            continue
        (key,) = a.keys
        deps = [d.asset_key for spec in a.specs for d in spec.deps]
        code_version = (a.code_versions_by_key or {}).get(key)
        wrapped = _reusing(node.compute_fn.decorated_fn, key.to_user_string(), code_version,
                           sorted(d.to_user_string() for d in deps if d in materializable),
                           sorted(n for n in (input_name(d) for d in deps) if n), all_partitions)
        node._compute_fn = DecoratedOpFunction(wrapped)  # noqa: SLF001
