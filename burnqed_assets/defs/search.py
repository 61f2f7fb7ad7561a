"""Phase 1.3–1.4 (and the 2.6 tooling): contrastive_pool_2k, trajectories, miniF2F LLM-only evals."""
# No `from __future__ import annotations` in defs/: Dagster inspects the context annotation.

import dagster as dg

from burnqed_assets.data.io import read_json
from burnqed_assets.defs.checks import metric_check, target
from burnqed_assets.defs.inputs import LEAN_ENV_INPUTS, raw_inputs
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
    if info["missing_statement"]:
        context.log.warning(f"{info['missing_statement']} deep theorem(s) lack a formal statement and cannot be "
                            f"searched, e.g. {info['missing_statement_examples'][:3]}")
    context.log.info(f"selected {info['selected']} of {info['pool_size']} theorems")
    return dg.MaterializeResult(metadata=_meta(info))


@dg.asset(group_name=GROUP, deps=["contrastive_pool_2k", "merged_iter0", *raw_inputs(*LEAN_ENV_INPUTS)],
          op_tags=GPU_TAG,
          description="Plan Task 1.3: best-first search with the full per-theorem budget on the selected pool "
          "(Gotcha 8: depth over breadth) → data/trajectories/search_iter0.parquet (every node of every tree: "
          "proof path positive, other expanded states negative, unproved trees unknown) + trajectory_stats.json. "
          "Resumes per theorem after an interruption.")
def trajectories(context: dg.AssetExecutionContext, burnqed: BurnqedConfig,
                 sglang: SGLangServerResource) -> dg.MaterializeResult:
    settings = burnqed.settings()
    with sglang.policy(settings, settings.paths.merged_model(0), say=context.log.info) as policy:
        info = pipeline.generate_trajectories(settings, policy=policy, say=context.log.info)
    context.log.info(f"proved {info['theorems_proved']}/{info['theorems_attempted']}, "
                     f"{info['total_records']} records, deep share {info['deep_state_share']:.3f}")
    meta = _meta(info, skip=("search_config",))
    meta["search_config"] = dg.MetadataValue.json(info["search_config"])
    plot = pipeline.plot_depth_distribution(info, settings.paths.depth_distribution_plot)
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
        context.log.info(f"{benchmark}: proved {info['proved']}/{info['attempted']} ({info['rate']:.3f})")
        meta = _meta(info, skip=("stats", "proved_names"))
        meta["proved_names"] = dg.MetadataValue.json(info["proved_names"][:50])
        meta["label_counts"] = dg.MetadataValue.json(info["stats"]["label_counts"])
        meta["stop_reasons"] = dg.MetadataValue.json(info["stats"]["stop_reasons"])
        meta["rate"] = dg.MetadataValue.float(float(info["rate"]))
        return dg.MaterializeResult(metadata=meta)

    return _asset


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
    asset_checks=[trajectories_deep_state_share, trajectories_have_both_labels, minif2f_v2s_llm_rate],
)
