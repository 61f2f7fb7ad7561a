"""Phase M.9–M.11 and 0.x: lean_github_pairs, sft_dataset, contrastive_pool, release_bundle."""
# No `from __future__ import annotations` in defs/: Dagster inspects the context annotation.

import json
from dataclasses import asdict

import dagster as dg

from burnqed_assets.data.duck import connect as duckdb_connect
from burnqed_assets.data.decontam import decontaminate, find_matches, load_benchmark_problems, reachable_from_split
from burnqed_assets.data.io import iter_jsonl, read_json, write_json
from burnqed_assets.data.lean_github import filter_lean_github
from burnqed_assets.data.release import build_release
from burnqed_assets.data.sft import (
    SplitVerification,
    benchmark_names,
    build_contrastive_pool,
    build_sft_dataset,
    load_statements,
    verify_split,
)
from burnqed_assets.defs.checks import gate, target
from burnqed_assets.defs.inputs import raw_inputs
from burnqed_assets.resources import BurnqedConfig
from burnqed_assets.settings import Settings

GROUP = "phase_m_sft_data"
BENCHMARK_INPUTS = ("minif2f_v2s", "minif2f_v2c", "minif2f_v1")  # decontamination: never train on them


def _benchmarks(settings: Settings) -> set[str]:
    i = settings.inputs
    return benchmark_names([i.minif2f_v2s.path, i.minif2f_v2c.path, i.minif2f_v1.path])


def decontamination_path(settings: Settings):
    return settings.paths.decontamination


def _benchmark_problems(settings: Settings) -> list:
    i = settings.inputs
    return load_benchmark_problems({"minif2f_v1": i.minif2f_v1.path, "minif2f_v2s": i.minif2f_v2s.path,
                                    "minif2f_v2c": i.minif2f_v2c.path})


def _training_statements(settings: Settings) -> dict[str, str]:
    """Prefixed training theorem -> formal statement, for every theorem whose statement is known."""
    traced_dir = settings.inputs.goedel_recorded_traces.path
    statement_files = sorted(traced_dir.glob("*statements.jsonl")) if traced_dir.is_dir() else []
    statements = load_statements(statement_files, _proof_files(settings))
    return {f"goedel::{name}": st.formal_statement for name, st in statements.items()}


def _contaminated(settings: Settings) -> list[str]:
    return list(read_json(decontamination_path(settings))["dropped_theorems"])


def _proof_files(settings: Settings) -> list:
    """Goedel proofs JSONL files {problem_id, full_proof}: the raw input, then the migrated 4.27 text
    (later files win when both name a theorem)."""
    raw = settings.inputs.goedel_proofs.path
    migrated = settings.paths.migration.proofs
    return [p for p in (raw, migrated) if p.is_file()]


def _preview(path, n: int = 3) -> str:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if len(rows) >= n:
                break
            rows.append(json.loads(line))
    return "\n\n".join(f"**{r['theorem']}**\n```\n{r['prompt']}{r['completion']}\n```" for r in rows)


@dg.asset(group_name=GROUP, deps=raw_inputs("lean_github"),
          description="Task M.9: LEAN-GitHub rows filtered (long states, no-goals, sorry; trivial tactics "
          "subsampled at a fixed seed) into github::-prefixed traced pairs (data/traced/lean_github_pairs.jsonl).")
def lean_github_pairs(context: dg.AssetExecutionContext, burnqed: BurnqedConfig) -> dg.MaterializeResult:
    settings = burnqed.settings()
    settings.require_inputs("lean_github")
    d = settings.data
    res = filter_lean_github(settings.inputs.lean_github.path, settings.paths.lean_github_pairs, seed=d.seed,
                             trivial_keep_rate=d.lean_github_trivial_keep_rate,
                             max_state_chars=d.lean_github_max_state_chars)
    write_json(settings.paths.lean_github_report, res.as_dict())
    for line in res.bad_line_examples:
        context.log.warning(f"unreadable LEAN-GitHub row: {line}")
    return dg.MaterializeResult(metadata={
        "path": str(settings.paths.lean_github_pairs),
        "input": str(settings.inputs.lean_github.path),
        "rows_read": res.rows_read,
        "kept_pairs": res.kept_pairs,
        "kept_theorems": res.kept_theorems,
        "keep_rate": float(res.keep_rate),
        "dropped": dg.MetadataValue.json(res.dropped),
        "trivial_rows": res.trivial_rows,
        "trivial_kept": res.trivial_kept,
        "trivial_keep_rate": d.lean_github_trivial_keep_rate,
        "seed": d.seed,
        "bad_lines": res.bad_lines,
        "bad_line_examples": dg.MetadataValue.json(res.bad_line_examples),
    })


@dg.asset_check(asset=lean_github_pairs, description="Every LEAN-GitHub row was readable (bad rows named file:line).")
def lean_github_rows_readable(burnqed: BurnqedConfig) -> dg.AssetCheckResult:
    r = read_json(burnqed.settings().paths.lean_github_report)
    n, examples = int(r["bad_lines"]), r["bad_line_examples"]
    return target(n == 0, f"{n} unreadable LEAN-GitHub row(s)" + (f": {'; '.join(examples[:5])}" if n else ""),
                  bad_lines=n)


@dg.asset(group_name=GROUP, deps=["clean_pool", "lean_github_pairs", "goedel_427_proofs",
                                  *raw_inputs("goedel_recorded_traces", "goedel_proofs", *BENCHMARK_INPUTS)],
          description="Decontamination gate (before SFT and the contrastive pool): every Goedel and LEAN-GitHub "
          "pair and every known statement compared with every miniF2F v1/v2s/v2c problem (test and valid) by "
          "normalised statement, normalised root goal and long n-gram overlap → data/sft/decontamination.json "
          "(matches with evidence, theorems to drop).")
def benchmark_decontamination(context: dg.AssetExecutionContext, burnqed: BurnqedConfig) -> dg.MaterializeResult:
    settings = burnqed.settings()
    problems = _benchmark_problems(settings)
    result = decontaminate({"goedel_clean": settings.paths.clean_pairs, "lean_github": settings.paths.lean_github_pairs},
                           problems, _training_statements(settings), settings.data.decontam_ngram_tokens)
    write_json(decontamination_path(settings), result.as_dict())
    for m in result.matches[:20]:
        context.log.warning(f"benchmark match ({m['rule']}): {m['theorem']} ~ {m['benchmark']}")
    return dg.MaterializeResult(metadata={
        "path": str(decontamination_path(settings)),
        "benchmark_problems": len(problems),
        "benchmarks": dg.MetadataValue.json(result.benchmarks),
        "pairs_checked": result.pairs_checked,
        "statements_checked": result.statements_checked,
        "matches": len(result.matches),
        "matches_by_rule": dg.MetadataValue.json(result.matches_by_rule),
        "dropped_theorems": result.dropped_count,
        "dropped_by_prefix": dg.MetadataValue.json(result.dropped_by_prefix),
        "dropped_examples": dg.MetadataValue.json(result.dropped_theorems[:20]),
        "ngram_tokens": result.ngram_tokens,
    })


@dg.asset_check(asset=benchmark_decontamination, blocking=True,
                description="ABORT gate: decontamination compared against all three miniF2F versions, both splits "
                "(an empty or missing benchmark file would make it vacuous).")
def decontamination_covers_benchmarks(burnqed: BurnqedConfig) -> dg.AssetCheckResult:
    info = read_json(decontamination_path(burnqed.settings()))
    bench = info["benchmarks"]
    missing = [f"{src}:{split}" for src in ("minif2f_v1", "minif2f_v2s", "minif2f_v2c") for split in ("test", "valid")
               if not bench.get(src, {}).get(split)]
    return gate(not missing, f"compared with {bench}" + (f"; missing {missing}" if missing else ""),
                benchmarks=dg.MetadataValue.json(bench), dropped_theorems=int(info["dropped_count"]))


@dg.asset(group_name=GROUP, deps=["clean_pool", "lean_github_pairs", "benchmark_decontamination",
                                  *raw_inputs(*BENCHMARK_INPUTS)],
          description="Task M.10: clean Goedel pool + LEAN-GitHub pairs, deduplicated (same prompt+completion "
          "once across sources), sorry-filtered, miniF2F names and decontamination matches excluded, 95/5 "
          "theorem-level split stratified by source → data/sft/{train,val}.jsonl, stats.json.")
def sft_dataset(context: dg.AssetExecutionContext, burnqed: BurnqedConfig) -> dg.MaterializeResult:
    settings = burnqed.settings()
    stats = build_sft_dataset(settings.paths.clean_pairs, settings.paths.lean_github_pairs, settings.paths.sft,
                              seed=settings.data.seed, val_fraction=settings.data.val_fraction,
                              benchmark=_benchmarks(settings), contaminated=_contaminated(settings))
    return dg.MaterializeResult(metadata={
        "train_path": str(settings.paths.sft_train),
        "val_path": str(settings.paths.sft_val),
        "stats_path": str(settings.paths.sft_stats),
        "total_pairs": stats.total_pairs,
        "train_pairs": stats.train_pairs,
        "val_pairs": stats.val_pairs,
        "train_theorems": stats.train_theorems,
        "val_theorems": stats.val_theorems,
        "by_source": dg.MetadataValue.json({k: v.as_dict() for k, v in stats.by_source.items()}),
        "dropped": dg.MetadataValue.json(asdict(stats.dropped)),
        "preview": dg.MetadataValue.md(_preview(settings.paths.sft_train)),
    })


def _verified(settings: Settings) -> SplitVerification:
    return verify_split(settings.paths.sft, _benchmarks(settings))


@dg.asset_check(asset=sft_dataset, blocking=True,
                description="ABORT gate (Gotcha 11): no theorem and no prompt+completion appears in both train and val.")
def sft_no_theorem_leak(burnqed: BurnqedConfig) -> dg.AssetCheckResult:
    v = _verified(burnqed.settings())
    n, n_pairs = v.leaked_theorems, v.pairs_in_both_splits
    desc = f"{n} theorems and {n_pairs} prompt+completion pairs in both train and val"
    if n or n_pairs:
        desc += f": {v.leak_examples[:5] + v.pairs_in_both_examples[:5]}"
    return gate(n == 0 and n_pairs == 0, desc, leaked_theorems=n, pairs_in_both_splits=n_pairs)


@dg.asset_check(asset=sft_dataset, blocking=True,
                description="ABORT gate: no miniF2F (v1/v2s/v2c, test and valid) root goal is reachable from a train "
                "or val prompt (whitespace-free equality or a long shared n-gram), re-read from the written files.")
def sft_no_benchmark_statement(burnqed: BurnqedConfig) -> dg.AssetCheckResult:
    settings = burnqed.settings()
    hits = reachable_from_split(settings.paths.sft, _benchmark_problems(settings), settings.data.decontam_ngram_tokens)
    examples = [f"{h['theorem']} ~ {h['benchmark']} ({h['rule']})" for h in hits[:5]]
    return gate(not hits, f"{len(hits)} benchmark goals reachable from the SFT data" + (f": {examples}" if hits else ""),
                reachable=len(hits))


@dg.asset_check(asset=sft_dataset, blocking=True,
                description="ABORT gate (0.6): every prompt has the DeepSeek-native prefix and closing fence; "
                "every completion is non-empty.")
def sft_prompt_format(burnqed: BurnqedConfig) -> dg.AssetCheckResult:
    v = _verified(burnqed.settings())
    n, bad = v.bad_format_pairs, v.unreadable_lines
    desc = f"{n} records with a bad prompt/completion, {bad} unreadable lines"
    if n or bad:
        desc += ": " + "; ".join(v.bad_format_examples[:5] + v.unreadable_examples[:5])
    return gate(n == 0 and bad == 0, desc, bad_format_pairs=n, unreadable_lines=bad)


@dg.asset_check(asset=sft_dataset, blocking=True,
                description="ABORT gate (0.1): SFT pairs >= min_sft_pairs and both sources present.")
def sft_size_and_sources(burnqed: BurnqedConfig) -> dg.AssetCheckResult:
    settings = burnqed.settings()
    v = _verified(settings)
    total = v.train_pairs + v.val_pairs
    need = settings.thresholds.min_sft_pairs
    by_source = v.pairs_by_source
    missing = [s for s in ("goedel_workbook", "lean_github") if not by_source.get(s)]
    ok = total >= need and not missing
    desc = f"{total} SFT pairs (need >= {need}); by source {by_source}" + (f"; missing {missing}" if missing else "")
    return gate(ok, desc, total_pairs=total, min_sft_pairs=need, pairs_by_source=dg.MetadataValue.json(by_source))


@dg.asset_check(asset=sft_dataset, blocking=True,
                description="Gate: no miniF2F (v2s/v2c/v1) problem name appears in train or val.")
def sft_no_benchmark_theorems(burnqed: BurnqedConfig) -> dg.AssetCheckResult:
    v = _verified(burnqed.settings())
    hits = v.benchmark_theorems
    return gate(not hits, f"{len(hits)} benchmark theorems in the SFT data" + (f": {hits[:5]}" if hits else ""),
                benchmark_theorems=len(hits))


@dg.asset(group_name=GROUP, deps=["clean_pool", "exploration_report", "benchmark_decontamination",
                                  *raw_inputs("goedel_recorded_traces", "goedel_proofs", *BENCHMARK_INPUTS)],
          description="Task M.10/0.6: Goedel theorems with depth >= 3 (2 when fewer than contrastive_min_theorems "
          "qualify) with root state, formal statement and header → data/sft/contrastive_pool.json.")
def contrastive_pool(context: dg.AssetExecutionContext, burnqed: BurnqedConfig) -> dg.MaterializeResult:
    settings = burnqed.settings()
    traced_dir = settings.inputs.goedel_recorded_traces.path
    statement_files = sorted(traced_dir.glob("*statements.jsonl")) if traced_dir.is_dir() else []
    statements = load_statements(statement_files, _proof_files(settings))
    dest = settings.paths.contrastive_pool
    d = settings.data
    info = build_contrastive_pool(settings.paths.clean_pairs, dest, d.contrastive_min_depth,
                                  d.contrastive_fallback_depth, d.contrastive_min_theorems, statements,
                                  _benchmarks(settings), contaminated=_contaminated(settings))
    context.log.info(info.decision)
    return dg.MaterializeResult(metadata={
        "path": str(dest),
        "theorems": info.theorems,
        "depth_threshold": info.depth_threshold,
        "fallback_used": info.fallback_used,
        "decision": info.decision,
        "eligible_at_min_depth": info.eligible_at_min_depth,
        "with_formal_statement": info.with_statement,
        "excluded_benchmark_names": info.excluded_benchmark,
        "excluded_contaminated": info.excluded_contaminated,
        "statement_sources": dg.MetadataValue.json([str(p) for p in statement_files + _proof_files(settings)]),
    })


@dg.asset_check(asset=contrastive_pool, description="Success metric: contrastive pool >= min_contrastive_pool theorems.")
def contrastive_pool_size(burnqed: BurnqedConfig) -> dg.AssetCheckResult:
    settings = burnqed.settings()
    n = len(read_json(settings.paths.contrastive_pool))
    need = settings.thresholds.min_contrastive_pool
    return target(n >= need, f"contrastive pool {n} theorems (target >= {need})", theorems=n, target=need)


@dg.asset_check(asset=contrastive_pool, blocking=True,
                description="ABORT gate: no pool theorem matches a miniF2F problem (statement, root goal, n-gram), "
                "re-checked on the written pool.")
def contrastive_pool_decontaminated(burnqed: BurnqedConfig) -> dg.AssetCheckResult:
    settings = burnqed.settings()
    entries = read_json(settings.paths.contrastive_pool)
    con = duckdb_connect()
    con.execute("CREATE OR REPLACE TEMP TABLE pool_states (theorem VARCHAR, source VARCHAR, state VARCHAR)")
    if entries:
        con.executemany("INSERT INTO pool_states VALUES (?, ?, ?)",
                        [[e["theorem"], e.get("source"), e.get("root_state")] for e in entries])
    statements = {e["theorem"]: e["formal_statement"] for e in entries if e.get("formal_statement")}
    hits = find_matches(con, ["pool_states"], _benchmark_problems(settings), statements,
                        settings.data.decontam_ngram_tokens)
    examples = [f"{h['theorem']} ~ {h['benchmark']} ({h['rule']})" for h in hits[:5]]
    return gate(not hits, f"{len(hits)} benchmark matches in the contrastive pool" + (f": {examples}" if hits else ""),
                matches=len(hits), theorems=len(entries))


@dg.asset(group_name=GROUP, deps=["clean_pool", "sft_dataset", "goedel_427_proofs", *raw_inputs("goedel_proofs")],
          description="Task M.11: release bundle (Parquet of proofs and pairs, changelog, dropped list, "
          "lean-toolchain, manifest) under data/release; nothing is uploaded.")
def release_bundle(context: dg.AssetExecutionContext, burnqed: BurnqedConfig) -> dg.MaterializeResult:
    settings = burnqed.settings()
    proofs = _proof_files(settings)
    mig = settings.paths.migration
    migration_dropped = [{**r, "stage": "migration (M.1-M.3)"} for _, r in iter_jsonl(mig.dropped)] \
        if mig.dropped.exists() else []
    info = build_release(settings.paths.release, settings.paths.clean_pairs,
                         read_json(settings.paths.clean_pool_report), settings.lean.lean_version, settings.profile,
                         lean_dir=mig.lean, proofs_jsonl=proofs[-1] if proofs else None,
                         extra_dropped=migration_dropped)
    changelog = settings.paths.release_changelog.read_text(encoding="utf-8")
    return dg.MaterializeResult(metadata={
        "release_dir": info.release_dir,
        "proofs": info.proofs,
        "pairs": info.pairs,
        "dropped_theorems": info.dropped_theorems,
        "proofs_origin": info.proofs_origin,
        "files": dg.MetadataValue.json(info.files),
        "changelog": dg.MetadataValue.md(changelog),
    })


defs = dg.Definitions(
    assets=[lean_github_pairs, benchmark_decontamination, sft_dataset, contrastive_pool, release_bundle],
    asset_checks=[lean_github_rows_readable, decontamination_covers_benchmarks, sft_no_theorem_leak, sft_prompt_format,
                  sft_size_and_sources, sft_no_benchmark_theorems, sft_no_benchmark_statement, contrastive_pool_size,
                  contrastive_pool_decontaminated],
)
