"""Phase M.1–M.5: Goedel migration, miniF2F port, tracing (goedel_traced_pairs).

Thin layer over `burnqed_assets.lean.phase_m`. Tracing runs the REPL's allTactics through the
warm Lean pool in both profiles; demo: the REPL at the end of the pipe is the stand-in (recorded
transitions, no Lean) and migration verdicts are the recorded ones, and every verdict says so;
full: the supervised Lean 4.27 REPL.
"""
# No `from __future__ import annotations` in defs/: Dagster inspects the context annotation.

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from burnqed_assets.defs.checks import gate, not_run, target
from burnqed_assets.defs.inputs import LEAN_ENV_INPUTS, raw_inputs
from burnqed_assets.lean import phase_m
from burnqed_assets.resources import BurnqedConfig
from burnqed_assets.settings import get_settings

GROUP = "phase_m_migration"


def _table(rows: dict, header: tuple = ("category", "count")) -> dg.MetadataValue:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows.items()]
    return dg.MetadataValue.md("\n".join(lines))


@dg.asset(group_name=GROUP, deps=raw_inputs("goedel_proofs"), description="Task M.1 input: the Goedel Lean-workbook proofs (problem_id, full_proof), "
          "read from the profile's input and normalised to data/lean/workbook/goedel_proofs_source/proofs.jsonl.")
def goedel_source_proofs(context: dg.AssetExecutionContext, burnqed: BurnqedConfig) -> dg.MaterializeResult:
    src = phase_m.goedel_source(burnqed.settings())
    for bad in src.bad_line_examples:
        context.log.warning(f"bad Goedel source row: {bad}")
    return dg.MaterializeResult(metadata={
        "path": str(src.path), "input": str(src.input), "proofs": src.proofs, "bad_lines": src.bad_lines,
        "bad_line_examples": list(src.bad_line_examples)})


@dg.asset_check(asset=goedel_source_proofs,
                description="Every Goedel source row was readable: a bad row is named file:line where it enters.")
def goedel_source_rows_readable(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    event = context.instance.get_latest_materialization_event(goedel_source_proofs.key)
    meta = event.asset_materialization.metadata if event and event.asset_materialization else {}
    n = int(getattr(meta.get("bad_lines"), "value", 0) or 0)
    examples = list(getattr(meta.get("bad_line_examples"), "value", None) or [])
    return target(n == 0, f"{n} unreadable Goedel source row(s)" + (f": {'; '.join(examples[:5])}" if n else ""),
                  bad_lines=n)


# One partition per Phase M chunk (settings.lean.trace_chunk_size items each), shared by the
# migration check (chunks of the Goedel source proofs) and tracing (chunks of the migrated
# theorems): a failed chunk re-runs alone, the UI shows progress per chunk. The single-run
# backfill policy makes a range of chunks (a backfill, or `materialize_all`) one run whose step
# works through the chunks on the warm pool. (The name is kept: other modules import it.)
TRACE_CHUNKS = dg.StaticPartitionsDefinition(phase_m.trace_chunk_keys(get_settings()))


def all_trace_chunks_tags() -> dict[str, str]:
    """Run tags that select every Phase M chunk in one run (jobs over the whole graph use them)."""
    keys = TRACE_CHUNKS.get_partition_keys()
    return {ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]}


def _chunk_keys(indices) -> list[str]:
    return [phase_m.trace_chunk_key(i) for i in indices]


@dg.asset(group_name=GROUP, deps=["goedel_source_proofs", *raw_inputs("rename_table", *LEAN_ENV_INPUTS)],
          partitions_def=TRACE_CHUNKS,
          backfill_policy=dg.BackfillPolicy.single_run(),
          description="Tasks M.1–M.3: compile each Goedel proof on Lean 4.27, auto-fix with the rename table "
          "(data/demo/migration/rename_table.json), re-compile, triage the rest; writes one .lean per survivor, "
          "the Lake project, migrated_proofs.jsonl, changelog.json, dropped.jsonl, migration_summary.json. "
          "One partition per chunk of `lean.trace_chunk_size` source proofs (results and done markers under "
          "goedel_proofs_427/checkpoints; a finished chunk is never redone); the outputs are rebuilt from every "
          "finished chunk, in order, so they equal one whole run byte for byte. Demo: compile verdicts are the "
          "ones recorded with the data (labelled `recorded`), not a Lean run.")
def goedel_427_proofs(context: dg.AssetExecutionContext, burnqed: BurnqedConfig) -> dg.MaterializeResult:
    settings = burnqed.settings()
    chunks = [phase_m.trace_chunk_index(k) for k in context.partition_keys]
    out = phase_m.goedel_migration(settings, progress=context.log.info, chunks=chunks)
    s = out.summary
    context.log.info(f"survival {s.survival_rate:.2%} ({s.survivors}/{s.total}), verdicts: {s.verdict_source}")
    return dg.MaterializeResult(metadata={
        "total": s.total, "compiled": s.compiled, "fixed_by_rename": s.fixed_by_rename,
        "survivors": s.survivors, "dropped": s.dropped,
        "survival_rate": dg.MetadataValue.float(float(s.survival_rate)),
        "verdict_source": s.verdict_source, "triage": _table(s.triage),
        "edits_by_rule": _table(s.edits_by_rule, ("rule", "proofs edited")),
        "chunks_this_run": ", ".join(context.partition_keys), "chunks": out.chunks,
        "chunks_skipped_resumed": out.chunks_skipped_resumed, "missing_chunks": _chunk_keys(out.missing_chunks),
        "lake_commit": str(out.lake_project.commit), "lean_stats": dg.MetadataValue.json(out.lean_stats),
        "profile": settings.profile, **{f"path_{k}": str(v) for k, v in out.paths.as_dict().items()}})


def _survival(burnqed: BurnqedConfig) -> tuple:
    settings = burnqed.settings()
    summary = phase_m.migration_summary(settings)
    return settings, float(summary["survival_rate"]), summary


def _of_chunks(summary: dict) -> str:
    missing = summary.get("missing_chunks") or []
    return f"; over {summary.get('chunks', 0) - len(missing)}/{summary.get('chunks', 0)} chunks" if missing else ""


@dg.asset_check(asset=goedel_427_proofs, blocking=True,
                description="Gotcha 16: migration survival must not fall below the red line (90%).")
def migration_survival_red_line(burnqed: BurnqedConfig) -> dg.AssetCheckResult:
    settings, rate, summary = _survival(burnqed)
    red = settings.thresholds.migration_survival_red_line
    return gate(rate >= red, f"survival {rate:.2%} (red line {red:.0%}; verdicts: {summary['verdict_source']}"
                f"{_of_chunks(summary)})", survival_rate=rate, red_line=red, dropped=summary["dropped"])


@dg.asset_check(asset=goedel_427_proofs, description="Task M.3 target: survival ≥ 95%.")
def migration_survival_target(burnqed: BurnqedConfig) -> dg.AssetCheckResult:
    settings, rate, summary = _survival(burnqed)
    goal = settings.thresholds.migration_survival_target
    return target(rate >= goal, f"survival {rate:.2%} (target {goal:.0%}{_of_chunks(summary)})",
                  survival_rate=rate, target=goal)


@dg.asset_check(asset=goedel_427_proofs, blocking=True,
                description="Every migration chunk that holds source proofs is finished, so tracing and the data "
                "assets read the whole migrated corpus (a failed or never-run chunk partition blocks them).")
def migration_chunks_complete(burnqed: BurnqedConfig) -> dg.AssetCheckResult:
    summary = phase_m.migration_summary(burnqed.settings())
    missing = _chunk_keys(summary["missing_chunks"])
    chunks = int(summary["chunks"])
    return gate(not missing, f"{chunks - len(missing)}/{chunks} migration chunks finished"
                + (f"; re-run partition(s) {', '.join(missing)}" if missing else ""),
                missing_chunks=missing, chunks=chunks)


def _benchmark_asset(key: str, description: str) -> dg.AssetsDefinition:
    input_name = phase_m.BENCHMARKS[key][0]
    # v2s/v2c take their split labels from v1; every port applies the rename table
    reads = dict.fromkeys([input_name, "minif2f_v1", "rename_table", *LEAN_ENV_INPUTS])

    @dg.asset(name=key, group_name=GROUP, deps=raw_inputs(*reads), description=description)
    def _asset(context: dg.AssetExecutionContext, burnqed: BurnqedConfig) -> dg.MaterializeResult:
        port = phase_m.port_benchmark(burnqed.settings(), key)
        comp = port.compile
        return dg.MaterializeResult(metadata={
            "records": port.records, "test": port.splits["test"], "valid": port.splits["valid"],
            "source": port.source, "input": str(port.input), "statements_edited": port.statements_edited,
            "with_goal": port.with_goal, "compile_checked": comp.checked,
            "sorry_placeholder_statements": len(port.sorry_placeholders),
            "sorry_placeholder_examples": list(port.sorry_placeholders[:10]),
            "compiled": comp.compiled if comp.compiled is not None else "not run",
            "compile_note": comp.note, **{f"path_{k}": str(v) for k, v in port.paths.as_dict().items()}})

    return _asset


def _compile_check(asset: dg.AssetsDefinition, key: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=asset, name=f"{key}_statements_compile", blocking=True,
                    description="Task M.4 gate: every ported statement elaborates on Lean 4.27 (full profile). "
                    "In the demo no Lean runs and the check says 'not run'.")
    def _check(burnqed: BurnqedConfig) -> dg.AssetCheckResult:
        settings = burnqed.settings()
        report = phase_m.benchmark_compile_report(settings, key)
        if not report.checked:
            return not_run(report.note or f"no Lean backend ({report.backend})", checked=False, backend=report.backend)
        total, compiled = report.total, report.compiled or 0
        rate = compiled / total if total else 0.0
        need = settings.thresholds.min_benchmark_compile_rate
        return gate(rate >= need, f"{compiled}/{total} statements compile on Lean {settings.lean.lean_version}",
                    compile_rate=rate, failures=[str(f.get("name")) for f in report.failures[:50]])

    return _check


minif2f_v2s_427 = _benchmark_asset(
    "minif2f_v2s_427", "Task M.4: miniF2F-v2s (`informal statement` key) normalised and ported to 4.27 → "
    "data/benchmarks/minif2f_v2s_test_427.json (+ valid, all). Evaluation data: never training data.")
minif2f_v2c_427 = _benchmark_asset(
    "minif2f_v2c_427", "Task M.4: miniF2F-v2c normalised and ported to 4.27 → "
    "data/benchmarks/minif2f_v2c_test_427.json (+ valid, all). Evaluation data: never training data.")
minif2f_v1 = _benchmark_asset(
    "minif2f_v1", "Task M.4: miniF2F v1 (DeepSeek-Prover-V1.5 Lean 4 port, with root `goal`) normalised, "
    "`∑ x in s` ported → data/benchmarks/minif2f_v1_test.json (+ valid, all). Evaluation data only.")
BENCHMARK_ASSETS = [minif2f_v2s_427, minif2f_v2c_427, minif2f_v1]
BENCHMARK_CHECKS = [_compile_check(a, a.key.to_user_string()) for a in BENCHMARK_ASSETS]


# Every tracing chunk reads the whole migrated Lake project, so it depends on every migration
# chunk (not on the migration chunk of the same key).
@dg.asset(group_name=GROUP, deps=[dg.AssetDep("goedel_427_proofs", partition_mapping=dg.AllPartitionMapping()),
                                  *raw_inputs(*LEAN_ENV_INPUTS)],
          partitions_def=TRACE_CHUNKS,
          backfill_policy=dg.BackfillPolicy.single_run(),
          description="Task M.5: traced (state, tactic) pairs of the migrated Goedel proofs → "
          "data/traced/goedel_427_pairs.jsonl. One partition per chunk of `lean.trace_chunk_size` theorems "
          "(checkpoints under data/traced/checkpoints; a finished chunk is never redone); the pairs file is "
          "rebuilt from every finished chunk, in order. Tracer: the REPL's allTactics through the warm Lean "
          "pool (Ray actors or in-process, settings.pool; one header import per worker, pool counters in "
          "metadata); per-theorem timeout, whole-theorem rejection on banned constructs. "
          "Demo: the REPL stand-in answers from the recorded traces (data/demo/traced/*_traces.jsonl), no Lean run.")
def goedel_traced_pairs(context: dg.AssetExecutionContext, burnqed: BurnqedConfig) -> dg.MaterializeResult:
    settings = burnqed.settings()
    chunks = [phase_m.trace_chunk_index(k) for k in context.partition_keys]
    report = phase_m.goedel_tracing(settings, progress=context.log.info, chunks=chunks)
    paths = settings.paths.tracing
    return dg.MaterializeResult(metadata={
        "path": str(paths.pairs), "report": str(paths.report), "tracer": report.tracer,
        "chunks_this_run": ", ".join(context.partition_keys),
        "theorems": report.theorems, "traced_ok": report.traced_ok, "failed": report.failed,
        "timeouts": report.timeouts, "rejected_banned": report.rejected_banned, "rows": report.rows,
        "chunks": report.chunks, "chunks_skipped_resumed": report.chunks_skipped_resumed,
        "missing_chunks": _chunk_keys(report.missing_chunks),
        "zombies_killed": report.zombies_killed, "workers": report.workers,
        "lean_pool": dg.MetadataValue.json(report.lean_pool),
        "pool_backend": str(report.lean_pool.get("pool", "none")),
        "failure_rate": dg.MetadataValue.float(float(report.failure_rate)),
        "failure_examples": [str(f) for f in report.failures[:10]]})


@dg.asset_check(asset=goedel_traced_pairs, blocking=True,
                description="Task M.5 gate: tracing failure rate ≤ 20% (else a Mathlib/REPL version mismatch).")
def tracing_failure_rate(burnqed: BurnqedConfig) -> dg.AssetCheckResult:
    settings = burnqed.settings()
    report = phase_m.tracing_report(settings)
    rate, limit = report.failure_rate, settings.thresholds.max_tracing_failure_rate
    return gate(rate <= limit, f"tracing failure rate {rate:.2%} (limit {limit:.0%}; tracer: {report.tracer})",
                failure_rate=rate, limit=limit, theorems=report.theorems, rejected_banned=report.rejected_banned)


@dg.asset_check(asset=goedel_traced_pairs, blocking=True,
                description="Every tracing chunk that holds theorems is finished, so downstream assets read the "
                "whole corpus (a failed or never-run chunk partition blocks them).")
def tracing_chunks_complete(burnqed: BurnqedConfig) -> dg.AssetCheckResult:
    report = phase_m.tracing_report(burnqed.settings())
    missing = _chunk_keys(report.missing_chunks)
    return gate(not missing, f"{report.chunks - len(missing)}/{report.chunks} chunks traced"
                + (f"; re-run partition(s) {', '.join(missing)}" if missing else ""),
                missing_chunks=missing, chunks=report.chunks)


defs = dg.Definitions(
    assets=[goedel_source_proofs, goedel_427_proofs, *BENCHMARK_ASSETS, goedel_traced_pairs],
    asset_checks=[goedel_source_rows_readable, migration_survival_red_line, migration_survival_target,
                  migration_chunks_complete, *BENCHMARK_CHECKS, tracing_failure_rate, tracing_chunks_complete],
)
