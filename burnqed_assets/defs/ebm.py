"""Phase 2, Tasks 2.4–2.7: decoupled EBM, its metrics, EBM-guided miniF2F, the baseline report.

Factories, so the joint-training phase builds configs B/C from the same code under new keys:

    build_ebm_training_asset(name, *, embeddings_iteration, embeddings_asset, head_path_fn,
                             eval_dir_fn, trajectories_path_fn=trajectories_path, group_name=GROUP)
        trains GoalConditionedEnergyHead on frozen embeddings of iter_{embeddings_iteration},
        saves it at head_path_fn(settings), writes eval_dir_fn(settings)/ebm_training.json
    build_ebm_metrics_asset(name, *, ebm_asset, embeddings_iteration, embeddings_asset, head_path_fn,
                            out_path_fn, trajectories_path_fn=trajectories_path, group_name=GROUP)
        rank-1 (overall, d0-1, d2-3, d4+), energy gap, sibling discrimination, active ratio on the
        validation theorems (the same deterministic theorem split for every config) → out_path_fn(settings)
    build_ebm_search_asset(name, *, model_asset, ebm_asset, model_path_fn, head_path_fn, out_dir_fn,
                           benchmark_asset="minif2f_v2s_427", benchmark_path_fn=minif2f_v2s_path, group_name=GROUP)
        EBM-guided search of the benchmark through an encode server started on 127.0.0.1
    build_ebm_metric_checks(asset_name, out_path_fn) / build_search_check(asset_name, out_path_fn)

A head from joint training (config C) needs no training asset: call build_ebm_metrics_asset
with its own ebm_asset and head_path_fn (e.g. `lambda s: s.paths.ebm_checkpoint(1)`).
"""
# No `from __future__ import annotations` in defs/: Dagster inspects the context annotation.

from pathlib import Path
from typing import Any

import dagster as dg

from burnqed_assets.data.io import read_json, write_json
from burnqed_assets.defs.checks import metric_check
from burnqed_assets.defs.embeddings import (
    PathFn,
    embedding_metrics_path,
    embeddings_dir,
    evals_dir,
    metric_metadata,
    trajectories_path,
)
from burnqed_assets.resources import BurnqedConfig
from burnqed_assets.settings import GPU_TAG, Settings

GROUP = "phase_2_ebm"


def minif2f_v2s_path(settings: Settings) -> Path:
    """The ported miniF2F-v2s test statements (Lean phase, Task M.4)."""
    return settings.paths.benchmarks / "minif2f_v2s_test_427.jsonl"


def _device(settings: Settings) -> str:
    from burnqed_assets.models.loading import pick_device

    return str(pick_device(settings.model.device))


def build_ebm_training_asset(name: str, *, embeddings_iteration: int, embeddings_asset: str, head_path_fn: PathFn,
                             eval_dir_fn: PathFn, trajectories_path_fn: PathFn = trajectories_path,
                             group_name: str = GROUP) -> dg.AssetsDefinition:
    """Decoupled GoalConditionedEnergyHead on frozen embeddings (Task 2.4)."""

    @dg.asset(name=name, group_name=group_name, deps=[embeddings_asset], op_tags=GPU_TAG,
              description=f"GoalConditionedEnergyHead trained on frozen iter_{embeddings_iteration} embeddings: "
                          "InfoNCE without temperature, K negatives with hard_ratio siblings, AdamW, theorem-level "
                          "split, temperature logged per epoch (plan Task 2.4).")
    def _train(context: dg.AssetExecutionContext, burnqed: BurnqedConfig) -> dg.MaterializeResult:
        from burnqed_assets.ebm.train import EbmTrainConfig, train_ebm_from_files
        from burnqed_assets.reports.embedding_plots import training_curves
        from burnqed_assets.reports.plots import png_markdown

        settings = burnqed.settings()
        config = EbmTrainConfig.from_ebm_settings(settings.ebm, device=_device(settings))
        head_path = head_path_fn(settings)
        result = train_ebm_from_files(trajectories_path_fn(settings), embeddings_dir(settings, embeddings_iteration),
                                      head_path, config, progress=context.log.info)
        out_dir = eval_dir_fn(settings)
        write_json(out_dir / "ebm_training.json", {"summary": result.summary(), "history": result.history,
                                                   "val_theorems": sorted(result.val_theorems),
                                                   "profile": settings.profile})
        plot = training_curves(result.history, out_dir / "plots" / "ebm_training.png")
        meta: dict[str, Any] = {k: v for k, v in result.summary().items() if k != "config"}
        meta.update({"config": result.summary().get("config"), "profile": settings.profile,
                     "temperature_per_epoch": [round(h["temperature"], 4) for h in result.history],
                     "plot_training": dg.MetadataValue.md(png_markdown(plot, "EBM loss and temperature"))})
        return dg.MaterializeResult(metadata=meta)

    return _train


def build_ebm_metrics_asset(name: str, *, ebm_asset: str, embeddings_iteration: int, embeddings_asset: str,
                            head_path_fn: PathFn, out_path_fn: PathFn, trajectories_path_fn: PathFn = trajectories_path,
                            group_name: str = GROUP) -> dg.AssetsDefinition:
    """The Task 2.5 metrics of a head on one iteration's embeddings, validation theorems only."""

    @dg.asset(name=name, group_name=group_name, deps=[ebm_asset, embeddings_asset],
              description="EBM metrics on validation theorems (plan Task 2.5): rank-1 overall and d0-1/d2-3/d4+, "
                          "energy gap with stds, sibling discrimination, active ratio at the margin.")
    def _metrics(context: dg.AssetExecutionContext, burnqed: BurnqedConfig) -> dg.MaterializeResult:
        from burnqed_assets.ebm.metrics import ebm_metrics_from_files

        settings = burnqed.settings()
        e = settings.ebm
        out = out_path_fn(settings)
        report = ebm_metrics_from_files(
            trajectories_path_fn(settings), embeddings_dir(settings, embeddings_iteration), head_path_fn(settings), out,
            val_fraction=e.val_fraction, split_seed=e.split_seed, k_negatives=e.k_negatives, hard_ratio=e.hard_ratio,
            margin=e.active_margin, seed=e.split_seed, device=_device(settings))
        for metric, reason in report.not_available.items():
            context.log.warning(f"{metric} not available: {reason}")
        meta = metric_metadata(report.values, report.not_available)
        meta.update({f"count_{k}": v for k, v in report.counts.items()})
        meta.update({"sibling_discrimination_chance": report.details.get("sibling_discrimination_chance"),
                     "not_available": report.not_available, "path": str(out), "profile": settings.profile})
        return dg.MaterializeResult(metadata=meta)

    return _metrics


def _json_value(path: Path, key: str) -> float | None:
    if not path.exists():
        return None
    value = read_json(path).get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def build_ebm_metric_checks(asset_name: str, out_path_fn: PathFn) -> list[dg.AssetChecksDefinition]:
    """EBM rank-1 (d4+) and sibling_discrimination against the iter_0 targets / red lines."""

    @dg.asset_check(asset=asset_name, name="rank1_d4_target",
                    description="EBM rank-1 at depth ≥ 4 ≥ target (WARN); below the red line ERROR in full")
    def _rank1(burnqed: BurnqedConfig) -> dg.AssetCheckResult:
        s = burnqed.settings()
        return metric_check(s, _json_value(out_path_fn(s), "rank1_d4+"), s.thresholds.rank1_d4_target,
                            s.thresholds.rank1_d4_red_line, "rank1_d4+")

    @dg.asset_check(asset=asset_name, name="sibling_discrimination_target",
                    description="sibling_discrimination ≥ target (WARN); below the red line ERROR in full")
    def _sibling(burnqed: BurnqedConfig) -> dg.AssetCheckResult:
        s = burnqed.settings()
        return metric_check(s, _json_value(out_path_fn(s), "sibling_discrimination"),
                            s.thresholds.sibling_discrimination_target, s.thresholds.sibling_discrimination_red_line,
                            "sibling_discrimination")

    return [_rank1, _sibling]


ebm_iter0 = build_ebm_training_asset("ebm_iter0", embeddings_iteration=0, embeddings_asset="embeddings",
                                     head_path_fn=lambda s: s.paths.ebm_checkpoint(0),
                                     eval_dir_fn=lambda s: evals_dir(s, 0))


def ebm_metrics_path(settings: Settings) -> Path:
    return evals_dir(settings, 0) / "ebm_metrics.json"


ebm_metrics_iter0 = build_ebm_metrics_asset("ebm_metrics_iter0", ebm_asset="ebm_iter0", embeddings_iteration=0,
                                            embeddings_asset="embeddings",
                                            head_path_fn=lambda s: s.paths.ebm_checkpoint(0),
                                            out_path_fn=ebm_metrics_path)

defs = dg.Definitions(assets=[ebm_iter0, ebm_metrics_iter0],
                      asset_checks=build_ebm_metric_checks("ebm_metrics_iter0", ebm_metrics_path))
