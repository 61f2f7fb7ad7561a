"""Phase M.1–M.5 steps as plain functions of the settings (the defs layer only wraps them).

Each returns a metadata dict (counts, rates, paths) and writes its outputs atomically.
Tracing runs the REPL's allTactics through the warm worker pool in both profiles (demo: the
REPL stand-in answers from the recorded traces). Demo migration verdicts are the ones recorded
with the Goedel proofs, labelled `recorded`; benchmark compile checks report "not run" there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from burnqed_assets.data.io import LineReport, atomic_open, iter_jsonl, read_json, write_json, write_jsonl
from burnqed_assets.data.schema import GOEDEL_SOURCE, prefixed
from burnqed_assets.lean.benchmarks import align_splits, compile_statements, load_benchmark_file, port_statements
from burnqed_assets.lean.env import LeanEnv
from burnqed_assets.lean.factory import make_lean_env
from burnqed_assets.lean.lake_project import lake_project_exists, read_lake_project, write_lake_project
from burnqed_assets.lean.migration import (
    lean_checker,
    load_goedel_source,
    load_rename_table,
    migrate_batch,
    migrate_proofs,
    pool_check_many,
)
from burnqed_assets.lean.ray_pool import make_lean_pool
from burnqed_assets.lean.tracing import LeanDojoTracer, ReplTraceJob, finished_marker, plan_chunks, trace_corpus
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
@dataclass(frozen=True)
class SourceProofs:
    """What M.1 wrote: the normalised proofs file, how many proofs, and the unreadable input rows."""

    path: Path
    input: Path
    proofs: int
    rows_read: int
    bad_lines: int
    bad_line_examples: tuple[str, ...]


def goedel_source(settings: Settings) -> SourceProofs:
    """Normalise the Goedel source proofs into one JSONL (`problem_id`, `full_proof`, ...)."""
    settings.require_inputs("goedel_proofs")
    report = LineReport()
    dest = settings.paths.goedel_source_proofs
    n = write_jsonl(dest, load_goedel_source(settings.inputs.goedel_proofs.path, report))
    for bad in report.bad[:20]:
        log.warning("bad Goedel source row: %s", bad)
    return SourceProofs(path=dest, input=settings.inputs.goedel_proofs.path, proofs=n, rows_read=report.rows,
                        bad_lines=report.bad_count, bad_line_examples=tuple(str(b) for b in report.bad[:10]))


# ---------------------------------------------------------------------------- M.1–M.3 migration
def goedel_migration(settings: Settings, env: LeanEnv | None = None,
                     progress: Callable[[int], None] | None = None, pool: Any = None) -> dict[str, Any]:
    settings.require_inputs("rename_table")
    rules = load_rename_table(settings.inputs.rename_table.path)
    src = settings.paths.goedel_source_proofs
    if not src.exists():
        raise FileNotFoundError(f"{src} is missing: materialize goedel_source_proofs first")
    records = [r for _, r in iter_jsonl(src)]
    lean_stats: dict[str, Any] = {}
    if env is not None:  # one given env, one proof at a time (tests, notebooks)
        result = migrate_proofs(records, lean_checker(env, settings.lean.allowed_axioms), rules,
                                f"lean ({env.name})", recompile_after_fix=True, progress=progress)
        lean_stats = dict(env.stats())
    else:
        # Both profiles: every proof compiled on the warm pool (header imported once per worker),
        # the auto-fix pass re-compiles only the failures. The stand-in's verdicts are the ones
        # recorded for the original texts, so the demo cannot re-compile an edited text: its
        # edits are applied and logged for 4.27, labelled as not re-compiled.
        standin = settings.lean.backend == "standin"
        own = pool is None
        pool = pool if pool is not None else make_lean_pool(settings)  # Ray actors or local threads
        try:
            label = f"REPL stand-in: {RECORDED_LABEL}" if standin else f"lean {settings.lean.lean_version} (REPL pool)"
            result = migrate_batch(records, pool_check_many(pool, settings.lean.allowed_axioms, progress), rules,
                                   label, recompile_after_fix=not standin)
            lean_stats = pool.stats()
        finally:
            if own:
                pool.close()
    paths = settings.paths.migration
    _write_lean_files(paths.lean, result.migrated)
    lake = write_lake_project(paths.lake_project, result.migrated, settings.lean.lean_version,
                              settings.lean.mathlib_rev)
    write_jsonl(paths.proofs, result.migrated)
    write_json(paths.changelog, result.changelog)
    write_jsonl(paths.dropped, result.dropped)
    summary = {**result.summary(), "profile": settings.profile, "lean_version": settings.lean.lean_version,
               "lean_stats": lean_stats, "lake_project": lake.as_metadata()}
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
                          "note": "not run: the REPL stand-in (no Lean in the demo profile); statements were "
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
def make_tracer(settings: Settings) -> tuple[Any, str]:
    """The M.5 tracer: the REPL's allTactics through the warm pool (default) or LeanDojo."""
    if settings.lean.tracer == "repl":
        return ReplTraceJob(), "REPL allTactics through the warm Lean pool"
    if settings.lean.tracer == "leandojo":
        return LeanDojoTracer(settings.paths.migration.lake_project), "LeanDojo"
    raise ValueError(f"unknown settings.lean.tracer {settings.lean.tracer!r} (repl | leandojo)")


def standin_extra_theorems(settings: Settings, known: set[str]) -> list[dict[str, Any]]:
    """Stand-in only (the demo corpus): recorded theorems without a Goedel source proof (the
    hand-written deep traces) are traced too. Their proof file is their recorded statement
    followed by the recorded top-level tactics of their first proof variant."""
    from burnqed_assets.lean.factory import replay_sources
    from burnqed_assets.lean.repl_standin import load_traces

    src = replay_sources(settings)
    statements: dict[str, dict[str, Any]] = {}
    for path in src["statements"]:
        for _, rec in iter_jsonl(path):
            name = str(rec.get("theorem") or rec.get("name") or "").split("::", 1)[-1]
            if name and rec.get("formal_statement"):
                statements[name] = rec
    out = []
    for bare, rows in load_traces(src["trace_rows"]).items():
        name = prefixed(GOEDEL_SOURCE, bare)
        if name in known:
            continue
        st = statements.get(bare)
        proof = ""
        if st is not None:
            first: list[str] = []
            for r in rows:
                if first and int(r.get("depth", 0)) == 0:
                    break  # the next proof variant starts again at the root
                first.append(str(r["tactic"]))
            body = "".join("\n  " + "\n  ".join(t.splitlines()) for t in first)
            proof = str(st.get("header") or "") + str(st["formal_statement"]).rstrip() + body + "\n"
        out.append({"name": name, "full_proof": proof})
    return out


def trace_chunk_key(index: int) -> str:
    """Dagster partition key of tracing chunk `index`."""
    return f"chunk_{index:03d}"


def trace_chunk_keys(settings: Settings) -> list[str]:
    return [trace_chunk_key(i) for i in range(settings.lean.trace_partitions)]


def trace_chunk_index(key: str) -> int:
    if not key.startswith("chunk_") or not key[6:].isdigit():
        raise ValueError(f"not a tracing chunk partition key: {key!r} (chunk_000, chunk_001, ...)")
    return int(key[6:])


def tracing_theorems(settings: Settings) -> tuple[list[dict[str, Any]], Any]:
    """The theorems to trace, in chunk order, and the migrated Lake project they come from:
    one module per migrated proof, plus (stand-in only) the recorded theorems without a Goedel
    source proof. Theorems the migration dropped stay out."""
    project_dir = settings.paths.migration.lake_project
    if not lake_project_exists(project_dir):
        raise FileNotFoundError(f"{project_dir} is missing: materialize goedel_427_proofs first")
    project = read_lake_project(project_dir)  # the migrated Lake project: one module per proof
    theorems = [{"name": prefixed(GOEDEL_SOURCE, pid), "full_proof": project.module_file(mod).read_text(encoding="utf-8"),
                 "module": mod} for mod, pid in project.modules.items()]
    if settings.lean.backend == "standin":
        dropped_path = settings.paths.migration.dropped
        dropped = {prefixed(GOEDEL_SOURCE, r["problem_id"]) for _, r in iter_jsonl(dropped_path)} \
            if dropped_path.exists() else set()
        theorems += standin_extra_theorems(settings, {t["name"] for t in theorems} | dropped)
    capacity = settings.lean.trace_partitions * settings.lean.trace_chunk_size
    if len(theorems) > capacity:
        raise ValueError(
            f"{len(theorems)} theorems to trace exceed the {settings.lean.trace_partitions} tracing partitions of "
            f"{settings.lean.trace_chunk_size} theorems ({capacity}): raise settings.lean.trace_partitions "
            f"in the {settings.profile!r} profile")
    return theorems, project


def goedel_tracing(settings: Settings, tracer: Any = None, tracer_label: str | None = None,
                   progress: Callable[[str], None] | None = None, pool: Any = None,
                   chunks: Iterable[int] | None = None) -> dict[str, Any]:
    """Trace the chunks `chunks` (default: all; Dagster partitions) and rebuild the pairs file
    from every finished chunk. The pool (settings.pool: Ray actors or local threads) is only
    started when an asked chunk is unfinished. A chunk that fails is reported in
    `chunk_errors` while the others finish, and this raises after writing the report, so the
    failed chunk's partition is re-run alone."""
    theorems, project = tracing_theorems(settings)
    if tracer is None:
        tracer, tracer_label = make_tracer(settings)
    prepare = getattr(tracer, "prepare", None)
    if callable(prepare):
        prepare()
    paths = settings.paths.tracing
    size = settings.lean.trace_chunk_size
    planned = plan_chunks(theorems, size)
    wanted = range(len(planned)) if chunks is None else [i for i in chunks if i < len(planned)]
    needs_work = any(finished_marker(paths.checkpoints, i, planned[i]) is None for i in wanted)
    use_pool = isinstance(tracer, ReplTraceJob)
    own_pool = use_pool and pool is None and needs_work  # no pool start when every asked chunk is done
    if own_pool:
        pool = make_lean_pool(settings)
    try:
        run = trace_corpus(theorems, tracer, paths.pairs, paths.checkpoints, chunk_size=size,
                           workers=settings.lean.pool_workers, timeout_s=settings.lean.theorem_timeout_s,
                           progress=progress, pool=pool if use_pool else None, only_chunks=chunks)
        pool_stats = pool.stats() if use_pool and pool is not None else {}
    finally:
        if own_pool:
            pool.close()
    report = {**run.as_metadata(), "tracer": tracer_label,
              "workers": pool.size if use_pool and pool is not None else settings.lean.pool_workers,
              "chunk_size": size, "partitions": settings.lean.trace_partitions, "chunks_with_theorems": len(planned),
              "chunks_this_run": sorted(set(range(len(planned)) if chunks is None else chunks)),
              "timeout_s": settings.lean.theorem_timeout_s, "failures": run.failures, "profile": settings.profile,
              "lean_backend": settings.lean.backend, "lean_pool": pool_stats, "lake_project": project.as_metadata()}
    write_json(paths.report, report)
    if run.chunk_errors:
        raise RuntimeError("tracing chunk(s) failed; finished chunks are kept, re-run the failed partition(s): "
                           + "; ".join(run.chunk_errors))
    return {**report, "paths": {k: str(v) for k, v in paths.as_dict().items()}}
