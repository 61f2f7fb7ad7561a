"""Phase 3–4.3: joint_iter1 (joint SFT + EBM training) and the configs B/C of the A/B/C comparison.

Config A is the Phase 2 baseline itself (embedding_metrics, ebm_metrics_iter0, minif2f_v2s_iter0_ebm).
Configs B and C reuse the Phase 2 asset factories on the iter_1 merged model, so all three are
measured by the same code:
    B = iter_1 merged model + a decoupled head trained on frozen iter_1 embeddings (ebm_iter1_decoupled)
    C = iter_1 merged model + the head trained jointly in joint_iter1
"""
# No `from __future__ import annotations` in defs/: Dagster inspects the context annotation.

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

from burnqed_assets.data.io import read_json
from burnqed_assets.defs.checks import not_run, target
from burnqed_assets.defs.inputs import LEAN_ENV_INPUTS, raw_inputs
from burnqed_assets.defs.ebm import (
    build_ebm_metric_checks,
    build_ebm_metrics_asset,
    build_ebm_search_asset,
    build_ebm_training_asset,
    build_search_check,
)
from burnqed_assets.defs.embeddings import (
    TRAJECTORIES_ITERATION,
    build_embedding_metric_checks,
    build_embedding_metrics_asset,
    build_embeddings_asset,
)
from burnqed_assets.resources import BurnqedConfig, SGLangServerResource
from burnqed_assets.settings import GPU_TAG

if TYPE_CHECKING:  # the domain modules load torch: imported inside the asset, named here for the hints
    from burnqed_assets.joint.monitoring import AbortReason, AbortThresholds
    from burnqed_assets.joint.train import SmokeResult

GROUP_JOINT = "phase_3_joint"
GROUP_COMPARE = "phase_4_comparison"
ABORT_CHECK = "joint_training_abort_conditions"
SMOKE_CHECK = "joint_smoke_step"


def abort_check_result(abort: "AbortReason | None", steps_done: int,
                       thresholds: "AbortThresholds") -> dg.AssetCheckResult:
    """FAILED blocking ERROR with the reason and the plan's remedy when the run aborted."""
    limits = dg.MetadataValue.json(asdict(thresholds))
    if abort:
        return dg.AssetCheckResult(
            check_name=ABORT_CHECK, passed=False, severity=dg.AssetCheckSeverity.ERROR,
            description=f"ABORT at step {abort.step} ({abort.condition}): {abort.message}. Remedy: {abort.remedy}",
            metadata={"condition": abort.condition, "step": abort.step, "remedy": abort.remedy, "thresholds": limits})
    return dg.AssetCheckResult(
        check_name=ABORT_CHECK, passed=True, severity=dg.AssetCheckSeverity.ERROR,
        description=f"no abort condition fired in {steps_done} steps",
        metadata={"steps_done": steps_done, "thresholds": limits})


def smoke_check_result(smoke: "SmokeResult | None") -> dg.AssetCheckResult:
    """Task 3.5: one batch forward+backward gave finite losses and gradients in LoRA and head."""
    if smoke is None:
        return dg.AssetCheckResult(check_name=SMOKE_CHECK, passed=False, severity=dg.AssetCheckSeverity.ERROR,
                                   description="no smoke step recorded for this run")
    meta = {k: v for k, v in smoke.to_json().items() if isinstance(v, (int, float, str, bool)) and v is not None}
    return dg.AssetCheckResult(
        check_name=SMOKE_CHECK, passed=smoke.passed, severity=dg.AssetCheckSeverity.ERROR,
        description=(f"sft={smoke.losses.sft_loss:.4g} ebm={smoke.losses.ebm_loss:.4g} "
                     f"|grad| lora={smoke.lora_grad_norm:.3g} head={smoke.head_grad_norm:.3g}"),
        metadata=meta)


def _last(rows: list[dict[str, Any]], key: str) -> float | None:
    return float(rows[-1][key]) if rows and rows[-1].get(key) is not None else None


@dg.asset(
    group_name=GROUP_JOINT, deps=["sft_dataset", "trajectories", "base_model"], op_tags=GPU_TAG,
    check_specs=[
        dg.AssetCheckSpec(ABORT_CHECK, asset="joint_iter1", blocking=True,
                          description="The plan's Task 4.1 abort conditions (centroid_l2, SFT loss, EBM rank-1, "
                                      "temperature stuck at a bound, NaN) did not fire; a failure names the "
                                      "condition and the plan's remedy."),
        dg.AssetCheckSpec(SMOKE_CHECK, asset="joint_iter1", blocking=True,
                          description="Task 3.5: one batch forward+backward gives finite losses and nonzero "
                                      "finite gradients in both the LoRA adapter and the EBM head."),
    ],
    description="Joint SFT + λ·InfoNCE training of iter_1 (plan Tasks 3.1–4.2): the BASE model with a fresh "
                "LoRA (r from settings.joint), the same GoalConditionedEnergyHead as iter_0, gradient through "
                "the positive and one hard negative, separate lr for LoRA and head, monitoring with the plan's "
                "abort conditions, checkpoints every save_every steps (resumes after interruption). Exports "
                "data/models/merged/iter_1 and data/checkpoints/ebm/iter_1/goal_conditioned_head.pt.")
def joint_iter1(context: dg.AssetExecutionContext, burnqed: BurnqedConfig) -> dg.MaterializeResult:
    from burnqed_assets.data.token_geometry import recommended_max_length
    from burnqed_assets.joint.monitoring import HEALTHY_TEMPERATURE, AbortThresholds
    from burnqed_assets.joint.train import train_joint
    from burnqed_assets.reports.plots import png_markdown

    settings = burnqed.settings()
    paths = settings.paths
    sft_len, sft_src = recommended_max_length(paths.token_geometry, "sft", settings.sft.max_length)
    enc_len, enc_src = recommended_max_length(paths.token_geometry, "encode", settings.ebm.encode_max_length)
    config = settings.joint.for_run(settings, sft_max_length=sft_len, encode_max_length=enc_len)
    thresholds = AbortThresholds.from_settings(settings)
    context.log.info(f"joint iter_1: {config.total_steps} steps, λ={config.lambda_ebm}, r={config.lora_r}, "
                     f"sft max_length {sft_len} ({sft_src}), encode max_length {enc_len} ({enc_src})")
    result = train_joint(config, thresholds, paths.sft_train, paths.search_trajectories(TRAJECTORIES_ITERATION),
                         settings.model.base_model_path, paths.lora_checkpoint(1), paths.merged_model(1),
                         paths.ebm_checkpoint(1), iter0_head_path=paths.ebm_checkpoint(0),
                         log=context.log.info, how_to_obtain=settings.model.how_to_obtain)
    if result.aborted:
        context.log.error(f"joint training aborted: {result.abort}")
    meta: dict[str, Any] = {
        "status": result.status, "steps_done": result.steps_done, "total_steps": result.total_steps,
        "resumed_from_step": result.resumed_from_step, "seconds": round(result.seconds, 2),
        "seconds_per_step": result.seconds_per_step, "profile": settings.profile,
        "attn_implementation": result.attn_implementation, "train_tokens": result.train_tokens,
        "tokens_per_s": result.tokens_per_s, "peak_memory_gb": result.peak_memory_gb,
        "peak_memory_kind": result.peak_memory_kind,
        "abort": dg.MetadataValue.json(result.abort.as_dict()) if result.abort else "none",
        "final_sft_loss": _last(result.train_log, "sft_loss"), "final_ebm_loss": _last(result.train_log, "ebm_loss"),
        "final_lambda_ebm_loss": _last(result.train_log, "lambda_ebm_loss"),
        "final_temperature": _last(result.train_log, "temperature"),
        "temperature_logs_outside_healthy_range": sum(
            1 for r in result.train_log if not HEALTHY_TEMPERATURE[0] <= r["temperature"] <= HEALTHY_TEMPERATURE[1]),
        "final_centroid_l2": _last(result.probe_log, "centroid_l2"), "final_rank1": _last(result.probe_log, "rank1"),
        "probe_is_heldout": result.probe_is_heldout, "lora_targets": result.lora_targets,
        "head_hidden_dims": result.head_hidden_dims, "sft_max_length": sft_len, "encode_max_length": enc_len,
        "config": dg.MetadataValue.json({k: v for k, v in vars(config).items()}),
        "data": dg.MetadataValue.json(result.data.as_metadata()),
        "train_log": dg.MetadataValue.json(result.train_log), "probe_log": dg.MetadataValue.json(result.probe_log),
        "checkpoint_dir": dg.MetadataValue.path(result.checkpoint_dir),
        "summary_path": dg.MetadataValue.path(str(paths.joint_run_summary)),
    }
    if result.merged_dir:
        meta["merged_dir"] = dg.MetadataValue.path(result.merged_dir)
        meta["head_path"] = dg.MetadataValue.path(result.head_path)
    if result.plot_path:
        meta["monitoring_plot"] = dg.MetadataValue.md(png_markdown(result.plot_path, "joint training monitoring"))
    meta = {k: v for k, v in meta.items() if v is not None}
    return dg.MaterializeResult(metadata=meta, check_results=[
        abort_check_result(result.abort, result.steps_done, thresholds), smoke_check_result(result.smoke)])


# --- configs B and C (Task 4.3), built by the Phase 2 factories ---------------------------------

embeddings_iter1 = build_embeddings_asset(
    "embeddings_iter1", iteration=1, model_asset="joint_iter1", group_name=GROUP_COMPARE)
embedding_metrics_iter1 = build_embedding_metrics_asset(
    "embedding_metrics_iter1", iteration=1, embeddings_asset="embeddings_iter1", group_name=GROUP_COMPARE)
ebm_iter1_decoupled = build_ebm_training_asset(
    "ebm_iter1_decoupled", config="B", embeddings_iteration=1, embeddings_asset="embeddings_iter1",
    group_name=GROUP_COMPARE)
ebm_metrics_config_b = build_ebm_metrics_asset(
    "ebm_metrics_config_b", config="B", ebm_asset="ebm_iter1_decoupled", embeddings_iteration=1,
    embeddings_asset="embeddings_iter1", group_name=GROUP_COMPARE)
ebm_metrics_config_c = build_ebm_metrics_asset(
    "ebm_metrics_config_c", config="C", ebm_asset="joint_iter1", embeddings_iteration=1,
    embeddings_asset="embeddings_iter1", group_name=GROUP_COMPARE)
minif2f_v2s_config_b = build_ebm_search_asset(
    "minif2f_v2s_config_b", config="B", model_asset="joint_iter1", ebm_asset="ebm_iter1_decoupled", iteration=1,
    tag="config_b", group_name=GROUP_COMPARE)
minif2f_v2s_config_c = build_ebm_search_asset(
    "minif2f_v2s_config_c", config="C", model_asset="joint_iter1", ebm_asset="joint_iter1", iteration=1,
    tag="config_c", group_name=GROUP_COMPARE)


@dg.asset(group_name=GROUP_COMPARE, deps=["joint_iter1", "minif2f_v2s_427", *raw_inputs(*LEAN_ENV_INPUTS)],
          op_tags=GPU_TAG,
          description="miniF2F-v2s LLM-only with the iter_1 merged model (plan Success Metrics: iter_1 LLM-only "
                      "target; the decision's iter_1 ≈ iter_0 reading). Same search code and budget as "
                      "minif2f_v2s_iter0 → data/evals/iter_1/minif2f_v2s_llm.json.")
def minif2f_v2s_iter1(context: dg.AssetExecutionContext, burnqed: BurnqedConfig,
                      sglang: SGLangServerResource) -> dg.MaterializeResult:
    from burnqed_assets.defs.search import search_run_metadata
    from burnqed_assets.search import pipeline

    settings = burnqed.settings()
    with sglang.policy(settings, settings.paths.merged_model(1), say=context.log.info) as policy:
        info = pipeline.evaluate_minif2f(settings, "minif2f_v2s", policy=policy, iteration=1, tag="llm")
    context.log.info(f"minif2f_v2s iter_1 LLM-only: proved {info.proved}/{info.attempted} ({info.rate:.3f})")
    meta: dict[str, Any] = {"proved": info.proved, "attempted": info.attempted, "errors": info.errors,
                            "benchmark_size": info.benchmark_size}
    meta.update(search_run_metadata(info))
    meta.update({"profile": settings.profile,
                 "summary_path": dg.MetadataValue.path(str(settings.paths.search_summary(1, "llm")))})
    return dg.MaterializeResult(metadata=meta)


@dg.asset_check(asset=minif2f_v2s_iter1, name="minif2f_v2s_iter1_llm_rate",
                description="iter_1 miniF2F-v2s LLM-only ≥ target (WARN); below the red line ERROR in full.")
def minif2f_v2s_iter1_llm_rate(burnqed: BurnqedConfig) -> dg.AssetCheckResult:
    from burnqed_assets.defs.checks import metric_check

    s = burnqed.settings()
    return metric_check(s, _metric(s.paths.search_summary(1, "llm"), "rate"), s.thresholds.minif2f_llm_target,
                        s.thresholds.minif2f_llm_red_line, "miniF2F-v2s LLM-only iter_1")


def _metric(path: Path, key: str) -> float | None:
    if not path.exists():
        return None
    value = read_json(path).get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


@dg.asset_check(asset=embedding_metrics_iter1, name="centroid_l2_held",
                description="iter_1 target: centroid_l2 ≥ the iter_0 value (joint training protected the "
                            "embedding space; plan Success Metrics, Task 4.4 question 2). WARN.")
def centroid_l2_held(burnqed: BurnqedConfig) -> dg.AssetCheckResult:
    s = burnqed.settings()
    c0, c1 = _metric(s.paths.embedding_metrics(0), "centroid_l2"), _metric(s.paths.embedding_metrics(1), "centroid_l2")
    if c0 is None or c1 is None:
        return not_run(f"centroid_l2 not available (iter_0={c0}, iter_1={c1})", iter0=c0, iter1=c1)
    return target(c1 >= c0, f"centroid_l2 iter_1={c1:.4g} vs iter_0={c0:.4g}", iter0=c0, iter1=c1,
                  profile=s.profile)


defs = dg.Definitions(
    assets=[joint_iter1, embeddings_iter1, embedding_metrics_iter1, ebm_iter1_decoupled, ebm_metrics_config_b,
            ebm_metrics_config_c, minif2f_v2s_config_b, minif2f_v2s_config_c, minif2f_v2s_iter1],
    asset_checks=[
        centroid_l2_held,
        minif2f_v2s_iter1_llm_rate,
        *build_embedding_metric_checks("embedding_metrics_iter1", iteration=1),
        *build_ebm_metric_checks("ebm_metrics_config_b", "B"),
        *build_ebm_metric_checks("ebm_metrics_config_c", "C"),
        build_search_check("minif2f_v2s_config_b", 1, "config_b",
                           name="minif2f_v2s_config_b_rate", label="miniF2F-v2s config B (iter_1 + decoupled EBM)"),
        build_search_check("minif2f_v2s_config_c", 1, "config_c",
                           name="minif2f_v2s_config_c_rate", label="miniF2F-v2s config C (full joint)"),
    ],
)
