"""Phase 1.3–1.4 (and the 2.6 tooling): contrastive_pool_2k, trajectories, miniF2F LLM-only evals.

Every search runs on the warm Lean pool (settings.pool: Ray actors or threads; one job per
theorem); `trajectories` is partitioned by chunk like goedel_traced_pairs (the same partitions,
so one run covers both), and its pool counters and fan-out split are in its metadata.
"""
# No `from __future__ import annotations` in defs/: Dagster inspects the context annotation.

import dagster as dg

from burnqed_assets.data.io import read_json
from burnqed_assets.defs.checks import gate, metric_check, target
from burnqed_assets.defs.inputs import LEAN_ENV_INPUTS, raw_inputs
from burnqed_assets.defs.migration import TRACE_CHUNKS
from burnqed_assets.lean import phase_m
from burnqed_assets.reports.plots import png_markdown
from burnqed_assets.resources import BurnqedConfig, SGLangServerResource
from burnqed_assets.search import pipeline
from burnqed_assets.settings import GPU_TAG

GROUP = "phase_1_search"


def _meta(info: dict, skip: tuple = ()) -> dict:
    out = {}
    for k, v in info.items():
        if k in skip or v is None:
            continue
        if isinstance(v, (dict, list)):
            out[k] = dg.MetadataValue.json(v)
        elif isinstance(v, str) and k.endswith("path"):
            out[k] = dg.MetadataValue.path(v)
        else:
            out[k] = v
    return out


@dg.asset(group_name=GROUP, deps=["contrastive_pool"],
          description="Plan Task 1.3 selection: at most settings.search.max_theorems theorems of the "
          "contrastive pool with max_depth >= 3 and a formal statement, harder sources first "
          "(IMO/USAMO > AIME > AMC/MATH > others), then deeper proofs → data/sft/contrastive_pool_2k.json.")
def contrastive_pool_2k(context: dg.AssetExecutionContext, burnqed: BurnqedConfig) -> dg.MaterializeResult:
    settings = burnqed.settings()
    info = pipeline.build_contrastive_pool_2k(settings)
    if info.missing_statement:
        context.log.warning(f"{info.missing_statement} deep theorem(s) lack a formal statement and cannot be "
                            f"searched, e.g. {info.missing_statement_examples[:3]}")
    context.log.info(f"selected {info.selected} of {info.pool_size} theorems")
    return dg.MaterializeResult(metadata=_meta(info.metadata()))


def _chunk_keys(indices: list) -> list:
    return [phase_m.trace_chunk_key(i) for i in indices]


@dg.asset(group_name=GROUP, deps=["contrastive_pool_2k", "merged_iter0", *raw_inputs(*LEAN_ENV_INPUTS)],
          op_tags=GPU_TAG, partitions_def=TRACE_CHUNKS, backfill_policy=dg.BackfillPolicy.single_run(),
          description="Plan Task 1.3: best-first search with the full per-theorem budget on the selected pool "
          "(Gotcha 8: depth over breadth) → data/trajectories/search_iter0.parquet (every node of every tree: "
          "proof path positive, other expanded states negative, unproved trees unknown) + trajectory_stats.json. "
          "One partition per chunk of settings.search.trajectory_chunk_size theorems (the chunk partitions of "
          "goedel_traced_pairs; a finished chunk, under data/trajectories/search_iter0_chunks, is never searched "
          "again; inside a chunk the run resumes per theorem); the deliverable is rebuilt from every finished "
          "chunk, in order. Searches run on the warm Lean pool (one job per theorem, header imported once per "
          "worker; pool counters in metadata) and are fanned out over the policy endpoints from one queue.")
def trajectories(context: dg.AssetExecutionContext, burnqed: BurnqedConfig,
                 sglang: SGLangServerResource) -> dg.MaterializeResult:
    settings = burnqed.settings()
    chunks = [phase_m.trace_chunk_index(k) for k in context.partition_keys]
    run = pipeline.generate_trajectories(
        settings, chunks=chunks, say=context.log.info,
        session=lambda: sglang.policy(settings, settings.paths.merged_model(0), say=context.log.info))
    stats = run.stats
    context.log.info(f"proved {stats.theorems_proved}/{stats.theorems_attempted}, {stats.total_records} records, "
                     f"deep share {stats.deep_state_share:.3f}; chunks searched now: "
                     f"{', '.join(_chunk_keys(run.chunks_searched)) or 'none (all finished)'}")
    meta = _meta({**stats.as_dict(), "path": run.path, "stats_path": run.stats_path,
                  "results_path": run.results_path, "proved_names": run.proved_names, "profile": run.profile,
                  "lean_backend": run.lean_backend, "policy_backend": run.policy_backend,
                  "searched_theorems": run.searched_theorems, "resumed_theorems": run.resumed_theorems,
                  "chunk_size": run.chunk_size, "chunks": run.chunks,
                  "endpoint_theorems": run.endpoint_theorems})
    meta.update({"search_config": dg.MetadataValue.json(run.search_config),
                 "chunks_this_run": ", ".join(_chunk_keys(run.chunks_this_run)),
                 "chunks_searched": ", ".join(_chunk_keys(run.chunks_searched)),
                 "missing_chunks": _chunk_keys(run.missing_chunks),
                 "lean_pool": dg.MetadataValue.json(run.lean_pool),
                 "pool_backend": str(run.lean_pool.get("pool", "none (no chunk to search)")),
                 "pool_imports": int(run.lean_pool.get("imports", 0)),
                 "pool_reuses": int(run.lean_pool.get("reuses", 0))})
    plot = pipeline.plot_depth_distribution(stats, settings.paths.depth_distribution_plot)
    meta["depth_plot"] = dg.MetadataValue.md(png_markdown(plot, "States per depth"))
    return dg.MaterializeResult(metadata=meta)


@dg.asset_check(asset=trajectories, description="Share of trajectory states at depth >= 4 reaches "
                "settings.thresholds.min_deep_state_share (plan Task 1.3, WARN).")
def trajectories_deep_state_share(burnqed: BurnqedConfig) -> dg.AssetCheckResult:
    settings = burnqed.settings()
    stats = read_json(settings.paths.trajectory_stats)
    share = float(stats["deep_state_share"])
    minimum = settings.thresholds.min_deep_state_share
    return target(share >= minimum, f"deep-state share {share:.3f} (target >= {minimum})",
                  deep_state_share=share, target=minimum, total_records=stats["total_records"])


@dg.asset_check(asset=trajectories, description="The trajectories carry both labels (at least one proof "
                "found, and negatives beside it): the EBM needs both (WARN).")
def trajectories_have_both_labels(burnqed: BurnqedConfig) -> dg.AssetCheckResult:
    settings = burnqed.settings()
    stats = read_json(settings.paths.trajectory_stats)
    labels = stats["label_counts"]
    ok = labels.get("positive", 0) > 0 and labels.get("negative", 0) > 0
    return target(ok, f"positive={labels.get('positive', 0)} negative={labels.get('negative', 0)} "
                  f"unknown={labels.get('unknown', 0)}", theorems_proved=stats["theorems_proved"], **labels)


@dg.asset_check(asset=trajectories, blocking=True,
                description="Every trajectory chunk that holds theorems is searched, so downstream assets (the "
                "embeddings, the EBM) read the whole pool's trees (a failed or never-run chunk partition blocks them).")
def trajectory_chunks_complete(burnqed: BurnqedConfig) -> dg.AssetCheckResult:
    stats = read_json(burnqed.settings().paths.trajectory_stats)
    missing = _chunk_keys(stats["missing_chunks"])
    return gate(not missing, f"{stats['chunks'] - len(missing)}/{stats['chunks']} chunks searched"
                + (f"; re-run partition(s) {', '.join(missing)}" if missing else ""),
                missing_chunks=missing, chunks=stats["chunks"])


def _eval_asset(benchmark: str, dep: str, name: str, task: str):
    @dg.asset(name=name, group_name=GROUP, deps=[dep, "merged_iter0", *raw_inputs(*LEAN_ENV_INPUTS)],
              op_tags=GPU_TAG,
              description=f"Plan Task {task}: LLM-only best-first search on {benchmark} (evaluation budget "
              "settings.search.eval_max_nodes; first settings.search.max_eval_theorems problems) → per-problem "
              "results Parquet under data/evals/iter_0/, trajectories under data/trajectories/, proved/attempted/rate.")
    def _asset(context: dg.AssetExecutionContext, burnqed: BurnqedConfig,
               sglang: SGLangServerResource) -> dg.MaterializeResult:
        settings = burnqed.settings()
        with sglang.policy(settings, settings.paths.merged_model(0), say=context.log.info) as policy:
            info = pipeline.evaluate_minif2f(settings, benchmark, policy=policy, say=context.log.info)
        context.log.info(f"{benchmark}: proved {info.proved}/{info.attempted} ({info.rate:.3f})")
        summary = info.summary()
        meta = _meta(summary, skip=("stats", "proved_names"))
        meta.update(search_run_metadata(info))
        meta["label_counts"] = dg.MetadataValue.json(info.evaluation.stats.label_counts)
        meta["stop_reasons"] = dg.MetadataValue.json(info.evaluation.stats.stop_reasons)
        return dg.MaterializeResult(metadata=meta)

    return _asset


def search_run_metadata(info: pipeline.MiniF2FEvaluation) -> dict:
    """What every evaluation asset shows of its search run: rate, names, pool counters, fan-out."""
    return {"rate": dg.MetadataValue.float(float(info.rate)),
            "proved_names": dg.MetadataValue.json(info.proved_names[:50]),
            "lean_pool": dg.MetadataValue.json(info.lean_pool),
            "pool_imports": int(info.lean_pool.get("imports", 0)),
            "pool_reuses": int(info.lean_pool.get("reuses", 0)),
            "endpoint_theorems": dg.MetadataValue.json(info.evaluation.endpoint_theorems)}


minif2f_v2s_iter0 = _eval_asset("minif2f_v2s", "minif2f_v2s_427", "minif2f_v2s_iter0", "1.4")
minif2f_v1_iter0 = _eval_asset("minif2f_v1", "minif2f_v1", "minif2f_v1_iter0", "1.4")


@dg.asset_check(asset=minif2f_v2s_iter0, blocking=True,
                description="miniF2F-v2s LLM-only prove rate ≥ target (WARN); below the red line ERROR in full "
                "(WARN in demo). Thresholds: settings.thresholds.minif2f_llm_target / _red_line.")
def minif2f_v2s_llm_rate(burnqed: BurnqedConfig) -> dg.AssetCheckResult:
    settings = burnqed.settings()
    summary = read_json(settings.paths.search_summary(0, "llm", "minif2f_v2s"))
    t = settings.thresholds
    return metric_check(settings, float(summary["rate"]), t.minif2f_llm_target, t.minif2f_llm_red_line,
                        "miniF2F-v2s LLM-only rate")


defs = dg.Definitions(
    assets=[contrastive_pool_2k, trajectories, minif2f_v2s_iter0, minif2f_v1_iter0],
    asset_checks=[trajectories_deep_state_share, trajectories_have_both_labels, trajectory_chunks_complete,
                  minif2f_v2s_llm_rate],
)
