"""Phase M.1–M.5 steps as plain functions of the settings (the defs layer only wraps them).

Each writes its outputs atomically and returns a dataclass of what it wrote (counts, rates,
paths): `SourceProofs`, `MigrationOutcome`, `BenchmarkPort`, `TracingReport`.
Migration and tracing run in chunks of `settings.lean.trace_chunk_size` (the Dagster
partitions `chunk_000`...): a finished chunk is never redone, and the deliverable is rebuilt
from every finished chunk in order, so any mix of chunk runs gives the bytes of one whole run.
Tracing runs the REPL's allTactics through the warm worker pool in both profiles (demo: the
REPL stand-in answers from the recorded traces). Demo migration verdicts are the ones recorded
with the Goedel proofs, labelled `recorded`; benchmark compile checks report "not run" there.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from burnqed_assets.data.io import LineReport, atomic_open, file_sha256, iter_jsonl, read_json, write_json, write_jsonl
from burnqed_assets.data.schema import GOEDEL_SOURCE, prefixed
from burnqed_assets.lean.benchmarks import align_splits, compile_statements, load_benchmark_file, port_statements
from burnqed_assets.lean.env import LeanEnv
from burnqed_assets.lean.factory import make_lean_env
from burnqed_assets.lean.lake_project import LakeProject, lake_project_exists, read_lake_project, write_lake_project
from burnqed_assets.lean.migration import (
    CheckMany,
    MigratedProof,
    MigrationResult,
    MigrationSummary,
    finished_migration_chunk,
    lean_checker,
    load_goedel_source,
    load_rename_table,
    migrate_chunk,
    migration_chunk_id,
    one_at_a_time,
    pool_check_many,
)
from burnqed_assets.lean.ray_pool import make_lean_pool
from burnqed_assets.lean.tracing import (
    LeanDojoTracer,
    ReplTraceJob,
    TheoremFailure,
    finished_marker,
    plan_chunks,
    run_chunks,
    trace_corpus,
)
from burnqed_assets.paths import BenchmarkPaths, MigrationPaths
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


# ---------------------------------------------------------------------------- chunks (partitions)
def trace_chunk_key(index: int) -> str:
    """Dagster partition key of Phase M chunk `index` (migration and tracing share the keys)."""
    return f"chunk_{index:03d}"


def trace_chunk_keys(settings: Settings) -> list[str]:
    return [trace_chunk_key(i) for i in range(settings.lean.trace_partitions)]


def trace_chunk_index(key: str) -> int:
    if not key.startswith("chunk_") or not key[6:].isdigit():
        raise ValueError(f"not a Phase M chunk partition key: {key!r} (chunk_000, chunk_001, ...)")
    return int(key[6:])


def _check_capacity(settings: Settings, items: int, what: str) -> None:
    capacity = settings.lean.trace_partitions * settings.lean.trace_chunk_size
    if items > capacity:
        raise ValueError(
            f"{items} {what} exceed the {settings.lean.trace_partitions} Phase M chunk partitions of "
            f"{settings.lean.trace_chunk_size} ({capacity}): raise settings.lean.trace_partitions "
            f"in the {settings.profile!r} profile")


# ---------------------------------------------------------------------------- M.1–M.3 migration
@dataclass(frozen=True)
class MigrationOutcome:
    """What M.1–M.3 wrote: the merged summary of every finished chunk (`summary`, also in
    migration_summary.json), the Lake project, and this run's chunk and pool facts. The pool
    counters are a measurement of this run, so they are returned, not written into the summary
    (a re-run from the chunks must give the same bytes)."""

    summary: MigrationSummary
    lake_project: LakeProject
    paths: MigrationPaths
    proofs_in_source: int
    chunks: int  # chunks holding proofs
    chunks_this_run: tuple[int, ...]
    chunks_skipped_resumed: int
    missing_chunks: tuple[int, ...]  # not finished (yet): the summary covers the others only
    chunk_errors: tuple[str, ...]
    lean_stats: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not self.missing_chunks


def migration_summary(settings: Settings) -> dict[str, Any]:
    """The stored migration_summary.json (checks and tracing read it)."""
    return read_json(settings.paths.migration.summary)


def _migration_pass_key(settings: Settings, label: str, recompile: bool) -> str:
    """What besides its proofs decides a chunk's result (part of each chunk's id)."""
    rename = settings.inputs.rename_table.path
    return json.dumps({"rename_table": file_sha256(rename), "verdicts": label, "recompile": recompile,
                       "axioms": list(settings.lean.allowed_axioms), "lean": settings.lean.lean_version})


def goedel_migration(settings: Settings, env: LeanEnv | None = None, progress: Callable[[str], None] | None = None,
                     pool: Any = None, chunks: Iterable[int] | None = None) -> MigrationOutcome:
    """Migrate the chunks `chunks` (default: all; Dagster partitions) of the Goedel source
    proofs, then rebuild every deliverable (the .lean files, the Lake project, migrated_proofs,
    changelog, dropped, summary) from every finished chunk, in order. The pool is started only
    when an asked chunk is unfinished. A chunk that fails is reported in `chunk_errors` while
    the others finish, and this raises after writing the deliverables, so the failed chunk's
    partition is re-run alone."""
    settings.require_inputs("rename_table")
    rules = load_rename_table(settings.inputs.rename_table.path)
    src = settings.paths.goedel_source_proofs
    if not src.exists():
        raise FileNotFoundError(f"{src} is missing: materialize goedel_source_proofs first")
    records = [r for _, r in iter_jsonl(src)]
    _check_capacity(settings, len(records), "Goedel source proofs")
    planned = plan_chunks(records, settings.lean.trace_chunk_size)
    wanted = sorted({i for i in (range(len(planned)) if chunks is None else chunks) if i < len(planned)})
    # Both profiles: every proof compiled on the warm pool (header imported once per worker),
    # the auto-fix pass re-compiles only the failures. The stand-in's verdicts are the ones
    # recorded for the original texts, so the demo cannot re-compile an edited text: its edits
    # are applied and logged for 4.27, labelled as not re-compiled. One given env (tests,
    # notebooks) checks one proof at a time.
    standin = env is None and settings.lean.backend == "standin"
    if env is not None:
        label = f"lean ({env.name})"
    else:
        label = f"REPL stand-in: {RECORDED_LABEL}" if standin else f"lean {settings.lean.lean_version} (REPL pool)"
    recompile = not standin
    pass_key = _migration_pass_key(settings, label, recompile)
    paths = settings.paths.migration
    needs_work = any(finished_migration_chunk(paths.checkpoints, i, migration_chunk_id(planned[i], pass_key)) is None
                     for i in wanted)
    own_pool = env is None and pool is None and needs_work  # no pool start when every asked chunk is done
    if own_pool:
        pool = make_lean_pool(settings)  # Ray actors or local threads
    try:
        check_many: CheckMany = _no_pool  # every asked chunk was finished: nothing to check
        if env is not None:
            check_many = one_at_a_time(lean_checker(env, settings.lean.allowed_axioms))
        elif pool is not None:
            check_many = pool_check_many(pool, settings.lean.allowed_axioms)
        outcomes = run_chunks(
            wanted, lambda i: migrate_chunk(i, planned[i], check_many, rules, label, recompile, paths.checkpoints,
                                            pass_key),
            lambda result: f"{result.survivors}/{result.total} survive", progress, label="migration chunk")
        errors, skipped = outcomes.errors, outcomes.skipped
        if env is not None:
            lean_stats = dict(env.stats())
        else:
            lean_stats = pool.stats() if pool is not None else {}
    finally:
        if own_pool:
            pool.close()
    parts: list[MigrationResult] = []
    missing: list[int] = []
    for index, chunk in enumerate(planned):
        done = finished_migration_chunk(paths.checkpoints, index, migration_chunk_id(chunk, pass_key))
        if done is None:
            missing.append(index)
        else:
            parts.append(done)
    merged = MigrationResult.concat(parts, label)
    rows = [m.as_row() for m in merged.migrated]
    _write_lean_files(paths.lean, merged.migrated)
    lake = write_lake_project(paths.lake_project, rows, settings.lean.lean_version, settings.lean.mathlib_rev)
    write_jsonl(paths.proofs, rows)
    write_json(paths.changelog, [c.as_row() for c in merged.changelog])
    write_jsonl(paths.dropped, [d.as_row() for d in merged.dropped])
    summary = merged.summary()
    write_json(paths.summary, {**summary.as_json(), "profile": settings.profile,
                               "lean_version": settings.lean.lean_version, "lake_project": lake.as_metadata(),
                               "proofs_in_source": len(records), "chunk_size": settings.lean.trace_chunk_size,
                               "chunks": len(planned), "missing_chunks": missing})
    if errors:
        raise RuntimeError("migration chunk(s) failed; finished chunks are kept, re-run the failed partition(s): "
                           + "; ".join(errors))
    return MigrationOutcome(summary=summary, lake_project=lake, paths=paths, proofs_in_source=len(records),
                            chunks=len(planned), chunks_this_run=tuple(wanted), chunks_skipped_resumed=skipped,
                            missing_chunks=tuple(missing), chunk_errors=tuple(errors), lean_stats=lean_stats)


def _no_pool(items: list[tuple[dict[str, Any], str]]) -> list[Any]:
    raise RuntimeError("no Lean pool was started: every asked chunk looked finished")


def _write_lean_files(folder: Path, migrated: list[MigratedProof]) -> None:
    """One `.lean` file per surviving proof; files of proofs no longer surviving are removed."""
    folder.mkdir(parents=True, exist_ok=True)
    keep = set()
    for rec in migrated:
        name = f"{rec.problem_id}.lean"
        keep.add(name)
        with atomic_open(folder / name) as fh:
            fh.write(rec.full_proof)
    for stale in folder.glob("*.lean"):
        if stale.name not in keep:
            stale.unlink()


# ---------------------------------------------------------------------------- M.4 benchmarks
@dataclass(frozen=True)
class CompileReport:
    """Task M.4's compile check of a ported benchmark (`<stem>_compile_report.json`)."""

    checked: bool
    backend: str
    total: int
    compiled: int | None  # None: not run (no Lean backend)
    failures: tuple[dict[str, Any], ...] = ()
    note: str = ""
    lean_stats: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"checked": self.checked, "backend": self.backend, "total": self.total,
                               "compiled": self.compiled, "failures": list(self.failures)}
        if self.checked:
            out["lean_stats"] = self.lean_stats
        else:
            out["note"] = self.note
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CompileReport:
        return cls(checked=bool(data["checked"]), backend=str(data["backend"]), total=int(data.get("total", 0)),
                   compiled=None if data.get("compiled") is None else int(data["compiled"]),
                   failures=tuple(data.get("failures") or ()), note=str(data.get("note") or ""),
                   lean_stats=dict(data.get("lean_stats") or {}))


@dataclass(frozen=True)
class BenchmarkPort:
    """What M.4 wrote for one benchmark: records per split, the port's edits, the compile check."""

    records: int
    splits: dict[str, int]
    source: str
    input: Path
    statements_edited: int
    split_labels_realigned_to_minif2f_v1: int | None
    with_goal: int
    compile: CompileReport
    sorry_placeholders: tuple[str, ...]
    paths: BenchmarkPaths
    input_report: dict[str, Any]  # rows read and bad lines of the input file


def port_benchmark(settings: Settings, asset_key: str, env: LeanEnv | None = None,
                   progress: Callable[[int], None] | None = None) -> BenchmarkPort:
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
            compile_report = CompileReport(checked=True, backend=lean_env.name, total=len(ported),
                                           compiled=len(ported) - len(failures), failures=tuple(failures),
                                           lean_stats=dict(lean_env.stats()))
        finally:
            if own:
                lean_env.close()
    else:
        compile_report = CompileReport(
            checked=False, backend=settings.lean.backend, total=len(ported), compiled=None,
            note="not run: the REPL stand-in (no Lean in the demo profile); statements were "
                 "normalised and ported by the rename table only")
    write_json(files.compile_report, compile_report.as_json())
    return BenchmarkPort(
        records=len(ported), splits={s: sum(r["split"] == s for r in ported) for s in ("test", "valid")},
        source=source, input=settings.inputs.all()[input_name].path,
        statements_edited=sum(bool(r["port_edits"]) for r in ported),
        split_labels_realigned_to_minif2f_v1=realigned, with_goal=sum(bool(r.get("goal")) for r in ported),
        compile=compile_report, sorry_placeholders=tuple(r["name"] for r in ported if r["sorry_placeholder"]),
        paths=files, input_report=report.as_metadata())


def benchmark_compile_report(settings: Settings, asset_key: str) -> CompileReport:
    return CompileReport.from_json(read_json(settings.paths.benchmark(BENCHMARKS[asset_key][2]).compile_report))


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


def tracing_theorems(settings: Settings) -> tuple[list[dict[str, Any]], Any]:
    """The theorems to trace, in chunk order, and the migrated Lake project they come from:
    one module per migrated proof, plus (stand-in only) the recorded theorems without a Goedel
    source proof. Theorems the migration dropped stay out."""
    project_dir = settings.paths.migration.lake_project
    if not lake_project_exists(project_dir):
        raise FileNotFoundError(f"{project_dir} is missing: materialize goedel_427_proofs first")
    summary_path = settings.paths.migration.summary
    missing = (read_json(summary_path).get("missing_chunks") or []) if summary_path.exists() else []
    if missing:  # a partial Lake project would trace a partial corpus under complete-looking chunks
        raise FileNotFoundError(
            "goedel_427_proofs is incomplete: migration chunk partition(s) "
            f"{', '.join(trace_chunk_key(i) for i in missing)} not finished; materialize them first")
    project = read_lake_project(project_dir)  # the migrated Lake project: one module per proof
    theorems = [{"name": prefixed(GOEDEL_SOURCE, pid), "full_proof": project.module_file(mod).read_text(encoding="utf-8"),
                 "module": mod} for mod, pid in project.modules.items()]
    if settings.lean.backend == "standin":
        dropped_path = settings.paths.migration.dropped
        dropped = {prefixed(GOEDEL_SOURCE, r["problem_id"]) for _, r in iter_jsonl(dropped_path)} \
            if dropped_path.exists() else set()
        theorems += standin_extra_theorems(settings, {t["name"] for t in theorems} | dropped)
    _check_capacity(settings, len(theorems), "theorems to trace")
    return theorems, project


@dataclass(frozen=True)
class TracingReport:
    """What M.5 wrote (`goedel_427_trace_report.json`, the checks read it): the totals over every
    finished chunk, this run's chunks, the pool counters, the Lake project traced."""

    theorems: int
    traced_ok: int
    failed: int
    timeouts: int
    rejected_banned: int
    rows: int
    chunks: int
    chunks_skipped_resumed: int
    zombies_killed: int
    failure_rate: float
    missing_chunks: tuple[int, ...]
    chunk_errors: tuple[str, ...]
    tracer: str
    workers: int
    chunk_size: int
    partitions: int
    chunks_with_theorems: int
    chunks_this_run: tuple[int, ...]
    timeout_s: float
    failures: tuple[TheoremFailure, ...]
    profile: str
    lean_backend: str
    lean_pool: dict[str, Any]
    lake_project: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"theorems": self.theorems, "traced_ok": self.traced_ok, "failed": self.failed,
                "timeouts": self.timeouts, "rejected_banned": self.rejected_banned, "rows": self.rows,
                "chunks": self.chunks, "chunks_skipped_resumed": self.chunks_skipped_resumed,
                "zombies_killed": self.zombies_killed, "failure_rate": self.failure_rate,
                "missing_chunks": list(self.missing_chunks), "chunk_errors": list(self.chunk_errors),
                "tracer": self.tracer, "workers": self.workers, "chunk_size": self.chunk_size,
                "partitions": self.partitions, "chunks_with_theorems": self.chunks_with_theorems,
                "chunks_this_run": list(self.chunks_this_run), "timeout_s": self.timeout_s,
                "failures": [f.as_row() for f in self.failures], "profile": self.profile,
                "lean_backend": self.lean_backend, "lean_pool": self.lean_pool, "lake_project": self.lake_project}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TracingReport:
        return cls(
            theorems=int(data["theorems"]), traced_ok=int(data["traced_ok"]), failed=int(data["failed"]),
            timeouts=int(data["timeouts"]), rejected_banned=int(data["rejected_banned"]), rows=int(data["rows"]),
            chunks=int(data["chunks"]), chunks_skipped_resumed=int(data["chunks_skipped_resumed"]),
            zombies_killed=int(data["zombies_killed"]), failure_rate=float(data["failure_rate"]),
            missing_chunks=tuple(int(i) for i in data["missing_chunks"]),
            chunk_errors=tuple(str(e) for e in data.get("chunk_errors") or ()), tracer=str(data["tracer"]),
            workers=int(data["workers"]), chunk_size=int(data["chunk_size"]), partitions=int(data["partitions"]),
            chunks_with_theorems=int(data["chunks_with_theorems"]),
            chunks_this_run=tuple(int(i) for i in data["chunks_this_run"]), timeout_s=float(data["timeout_s"]),
            failures=tuple(TheoremFailure.from_row(f) for f in data.get("failures") or ()),
            profile=str(data["profile"]), lean_backend=str(data["lean_backend"]),
            lean_pool=dict(data.get("lean_pool") or {}), lake_project=dict(data.get("lake_project") or {}))


def tracing_report(settings: Settings) -> TracingReport:
    """The stored tracing report (the checks read it)."""
    return TracingReport.from_json(read_json(settings.paths.tracing.report))


def goedel_tracing(settings: Settings, tracer: Any = None, tracer_label: str | None = None,
                   progress: Callable[[str], None] | None = None, pool: Any = None,
                   chunks: Iterable[int] | None = None) -> TracingReport:
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
    report = TracingReport(
        theorems=run.theorems, traced_ok=run.ok, failed=run.failed, timeouts=run.timeouts,
        rejected_banned=run.rejected, rows=run.rows, chunks=run.chunks, chunks_skipped_resumed=run.chunks_skipped,
        zombies_killed=run.zombies_killed, failure_rate=round(run.failure_rate, 6),
        missing_chunks=tuple(run.missing_chunks), chunk_errors=tuple(run.chunk_errors), tracer=str(tracer_label),
        workers=pool.size if use_pool and pool is not None else settings.lean.pool_workers,
        chunk_size=size, partitions=settings.lean.trace_partitions, chunks_with_theorems=len(planned),
        chunks_this_run=tuple(sorted(set(range(len(planned)) if chunks is None else chunks))),
        timeout_s=settings.lean.theorem_timeout_s, failures=tuple(run.failures), profile=settings.profile,
        lean_backend=settings.lean.backend, lean_pool=pool_stats, lake_project=project.as_metadata())
    write_json(paths.report, report.as_json())
    if run.chunk_errors:
        raise RuntimeError("tracing chunk(s) failed; finished chunks are kept, re-run the failed partition(s): "
                           + "; ".join(run.chunk_errors))
    return report
