"""Phase M.1–M.5 steps as plain functions of the settings (the defs layer only wraps them).

Each returns a metadata dict (counts, rates, paths) and writes its outputs atomically.
Demo: no Lean runs. Migration verdicts are the ones recorded with the Goedel proofs,
labelled `recorded`; benchmark compile checks report "not run"; tracing reads the recorded
traces. Full: the supervised Lean REPL (`make_lean_env`) and LeanDojo.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from burnqed_assets.data.io import LineReport, atomic_open, iter_jsonl, read_json, write_json, write_jsonl
from burnqed_assets.data.schema import GOEDEL_SOURCE, prefixed
from burnqed_assets.lean.benchmarks import align_splits, compile_statements, load_benchmark_file, port_statements
from burnqed_assets.lean.env import LeanEnv
from burnqed_assets.lean.factory import make_lean_env
from burnqed_assets.lean.migration import (
    lean_checker,
    load_goedel_source,
    load_rename_table,
    migrate_proofs,
    recorded_checker,
)
from burnqed_assets.lean.tracing import (
    LeanDojoTracer,
    RecordedTracer,
    ReplTracer,
    Tracer,
    trace_corpus,
)
from burnqed_assets.settings import Settings

log = logging.getLogger(__name__)

RECORDED_LABEL = "recorded (kimina-lean-server verify result, Lean v4.15; not re-run here)"
BENCHMARKS = {  # asset key -> (input name, source label, output stem)
    "minif2f_v2s_427": ("minif2f_v2s", "minif2f_v2s", "minif2f_v2s"),
    "minif2f_v2c_427": ("minif2f_v2c", "minif2f_v2c", "minif2f_v2c"),
    "minif2f_v1": ("minif2f_v1", "minif2f_v1", "minif2f_v1"),
}


def _env(settings: Settings, env: LeanEnv | None) -> tuple[LeanEnv, bool]:
    return (env, False) if env is not None else (make_lean_env(settings), True)


# ---------------------------------------------------------------------------- M.1 source
def goedel_source(settings: Settings) -> dict[str, Any]:
    """Normalise the Goedel source proofs into one JSONL (`problem_id`, `full_proof`, ...)."""
    settings.require_inputs("goedel_proofs")
    report = LineReport()
    dest = settings.paths.goedel_source_proofs
    n = write_jsonl(dest, load_goedel_source(settings.inputs.goedel_proofs.path, report))
    for bad in report.bad[:20]:
        log.warning("bad Goedel source row: %s", bad)
    return {"path": str(dest), "proofs": n, "input": str(settings.inputs.goedel_proofs.path), **report.as_metadata()}


# ---------------------------------------------------------------------------- M.1–M.3 migration
def goedel_migration(settings: Settings, env: LeanEnv | None = None,
                     progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    settings.require_inputs("rename_table")
    rules = load_rename_table(settings.inputs.rename_table.path)
    src = settings.paths.goedel_source_proofs
    if not src.exists():
        raise FileNotFoundError(f"{src} is missing: materialize goedel_source_proofs first")
    records = [r for _, r in iter_jsonl(src)]
    use_lean = settings.lean.backend == "repl" or env is not None
    lean_stats: dict[str, Any] = {}
    if use_lean:
        lean_env, own = _env(settings, env)
        try:
            result = migrate_proofs(records, lean_checker(lean_env, settings.lean.allowed_axioms), rules,
                                    f"lean ({lean_env.name})", recompile_after_fix=True, progress=progress)
            lean_stats = dict(lean_env.stats())
        finally:
            if own:
                lean_env.close()
    else:
        result = migrate_proofs(records, recorded_checker(), rules, RECORDED_LABEL, recompile_after_fix=False,
                                progress=progress)
    paths = settings.paths.migration
    _write_lean_files(paths.lean, result.migrated)
    write_jsonl(paths.proofs, result.migrated)
    write_json(paths.changelog, result.changelog)
    write_jsonl(paths.dropped, result.dropped)
    summary = {**result.summary(), "profile": settings.profile, "lean_version": settings.lean.lean_version,
               "lean_stats": lean_stats}
    write_json(paths.summary, summary)
    return {**summary, "paths": {k: str(v) for k, v in paths.as_dict().items()}}


def _write_lean_files(folder: Path, migrated: list[dict[str, Any]]) -> None:
    """One `.lean` file per surviving proof; files of proofs no longer surviving are removed."""
    folder.mkdir(parents=True, exist_ok=True)
    keep = set()
    for rec in migrated:
        name = f"{rec['problem_id']}.lean"
        keep.add(name)
        with atomic_open(folder / name) as fh:
            fh.write(rec["full_proof"])
    for stale in folder.glob("*.lean"):
        if stale.name not in keep:
            stale.unlink()


# ---------------------------------------------------------------------------- M.4 benchmarks
def port_benchmark(settings: Settings, asset_key: str, env: LeanEnv | None = None,
                   progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    input_name, source, stem = BENCHMARKS[asset_key]
    settings.require_inputs(input_name, "rename_table")
    records, report = load_benchmark_file(settings.inputs.all()[input_name].path, source)
    realigned = None
    if input_name != "minif2f_v1" and settings.inputs.minif2f_v1.path.exists():
        v1, _ = load_benchmark_file(settings.inputs.minif2f_v1.path, "minif2f_v1")
        records, realigned = align_splits(records, {r["name"]: r["split"] for r in v1})
    ported = port_statements(records, load_rename_table(settings.inputs.rename_table.path))
    files = settings.paths.benchmark(stem)
    write_json(files.all_splits, ported)
    test = [r for r in ported if r["split"] == "test"]
    write_json(files.test, test)
    write_jsonl(files.test_jsonl, test)
    write_json(files.valid, [r for r in ported if r["split"] == "valid"])
    use_lean = settings.lean.backend == "repl" or env is not None
    if use_lean:
        lean_env, own = _env(settings, env)
        try:
            failures = compile_statements(ported, lean_env, progress=progress)
            compile_report: dict[str, Any] = {"checked": True, "backend": lean_env.name, "total": len(ported),
                                              "compiled": len(ported) - len(failures), "failures": failures,
                                              "lean_stats": dict(lean_env.stats())}
        finally:
            if own:
                lean_env.close()
    else:
        compile_report = {"checked": False, "backend": settings.lean.backend, "total": len(ported),
                          "compiled": None, "failures": [],
                          "note": "not run: replay backend (no Lean in the demo profile); statements were "
                                  "normalised and ported by the rename table only"}
    write_json(files.compile_report, compile_report)
    splits = {s: sum(r["split"] == s for r in ported) for s in ("test", "valid")}
    return {"records": len(ported), "splits": splits, "source": source,
            "input": str(settings.inputs.all()[input_name].path),
            "statements_edited": sum(bool(r["port_edits"]) for r in ported),
            "split_labels_realigned_to_minif2f_v1": realigned,
            "with_goal": sum(bool(r.get("goal")) for r in ported), "compile": compile_report,
            "sorry_placeholders": [r["name"] for r in ported if r["sorry_placeholder"]],
            "paths": {k: str(v) for k, v in files.as_dict().items()}, **report.as_metadata()}


def benchmark_compile_report(settings: Settings, asset_key: str) -> dict[str, Any]:
    return read_json(settings.paths.benchmark(BENCHMARKS[asset_key][2]).compile_report)


# ---------------------------------------------------------------------------- M.5 tracing
def make_tracer(settings: Settings) -> tuple[Tracer, str]:
    if settings.lean.backend == "replay":
        traced = settings.inputs.goedel_recorded_traces.path
        files = sorted(traced.glob("*_traces.jsonl")) if traced.is_dir() else [traced]
        return RecordedTracer(files), "recorded traces (" + ", ".join(f.name for f in files) + ")"
    if settings.lean.tracer == "repl":
        return ReplTracer(_ReplEnvFactory(settings)), "lean REPL replay of top-level tactics"
    if settings.lean.tracer == "leandojo":
        return LeanDojoTracer(settings.paths.goedel_427_dir), "LeanDojo"
    raise ValueError(f"unknown settings.lean.tracer {settings.lean.tracer!r} (leandojo | repl)")


class _ReplEnvFactory:
    """Picklable: each tracing worker builds its own supervised REPL."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def __call__(self) -> LeanEnv:
        return make_lean_env(self.settings)


def goedel_tracing(settings: Settings, tracer: Tracer | None = None, tracer_label: str | None = None,
                   progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    migrated = settings.paths.migration.proofs
    if not migrated.exists():
        raise FileNotFoundError(f"{migrated} is missing: materialize goedel_427_proofs first")
    theorems = [{"name": prefixed(GOEDEL_SOURCE, r["problem_id"]), "full_proof": r["full_proof"]}
                for _, r in iter_jsonl(migrated)]
    if tracer is None:
        tracer, tracer_label = make_tracer(settings)
    if isinstance(tracer, RecordedTracer):
        # Demo: recorded theorems without a Goedel source proof (hand-written deep traces) are traced too.
        # Theorems the migration dropped stay out.
        dropped_path = settings.paths.migration.dropped
        dropped = {prefixed(GOEDEL_SOURCE, r["problem_id"]) for _, r in iter_jsonl(dropped_path)} \
            if dropped_path.exists() else set()
        known = {t["name"] for t in theorems} | dropped
        theorems += [{"name": n, "full_proof": ""} for n in tracer.theorems() if n not in known]
    prepare = getattr(tracer, "prepare", None)
    if callable(prepare):
        prepare()
    paths = settings.paths.tracing
    workers = 1 if isinstance(tracer, RecordedTracer) else settings.lean.trace_workers
    run = trace_corpus(theorems, tracer, paths.pairs, paths.checkpoints,
                       chunk_size=settings.lean.trace_chunk_size, workers=workers,
                       timeout_s=settings.lean.theorem_timeout_s, progress=progress)
    report = {**run.as_metadata(), "tracer": tracer_label, "workers": workers,
              "chunk_size": settings.lean.trace_chunk_size, "timeout_s": settings.lean.theorem_timeout_s,
              "failures": run.failures, "profile": settings.profile}
    if isinstance(tracer, RecordedTracer):
        report["recorded_bad_lines"] = tracer.report.bad_count
    write_json(paths.report, report)
    return {**report, "paths": {k: str(v) for k, v in paths.as_dict().items()}}
