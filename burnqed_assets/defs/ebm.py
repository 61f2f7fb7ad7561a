"""Phase 2, Tasks 2.4–2.7: decoupled EBM, its metrics, EBM-guided miniF2F, the baseline report.

Factories, so the joint-training phase builds configs B/C from the same code under new keys:

    build_ebm_training_asset(name, *, config, embeddings_iteration, embeddings_asset, group_name=GROUP)
        trains GoalConditionedEnergyHead on frozen embeddings of iter_{embeddings_iteration},
        saves it at paths.ebm_config(config).head, writes paths.ebm_config(config).training_summary
    build_ebm_metrics_asset(name, *, config, ebm_asset, embeddings_iteration, embeddings_asset, group_name=GROUP)
        rank-1 (overall, d0-1, d2-3, d4+), energy gap, sibling discrimination, active ratio on the
        validation theorems (the same deterministic theorem split for every config)
        → paths.ebm_config(config).metrics
    build_ebm_search_asset(name, *, config, model_asset, ebm_asset, iteration, tag="ebm",
                           benchmark="minif2f_v2s", benchmark_asset="minif2f_v2s_427", group_name=GROUP)
        EBM-guided search through an encode server started on 127.0.0.1 (free port) inside the asset;
        policy and encoder = merged model of `iteration`; outputs paths.search_eval(benchmark, iteration, tag)
    build_ebm_training_check(asset_name, config)         the head was trained (red-line severity)
    build_ebm_metric_checks(asset_name, config)           rank1_d4+ and sibling_discrimination
    build_search_check(asset_name, iteration, tag, name=...)  prove rate vs minif2f_ebm thresholds

`config` is "A", "B" or "C" (paths.ebm_config). A head from joint training (config C) needs no
training asset: call build_ebm_metrics_asset with config "C" and the joint asset as ebm_asset.
"""
# No `from __future__ import annotations` in defs/: Dagster inspects the context annotation.

from dataclasses import replace
from pathlib import Path
from typing import Any

import dagster as dg

from burnqed_assets.data.io import atomic_open, read_json, write_json
from burnqed_assets.defs.checks import metric_check, red_line_severity
from burnqed_assets.defs.embeddings import TRAJECTORIES_ITERATION, metric_metadata
from burnqed_assets.defs.inputs import LEAN_ENV_INPUTS, raw_inputs
from burnqed_assets.resources import BurnqedConfig, SGLangServerResource
from burnqed_assets.settings import GPU_TAG, Settings

GROUP = "phase_2_ebm"


def _device(settings: Settings) -> str:
    from burnqed_assets.models.loading import pick_device

    return str(pick_device(settings.model.device))


def build_ebm_training_asset(name: str, *, config: str, embeddings_iteration: int, embeddings_asset: str,
                             group_name: str = GROUP) -> dg.AssetsDefinition:
    """Decoupled GoalConditionedEnergyHead on frozen embeddings (Task 2.4)."""

    @dg.asset(name=name, group_name=group_name, deps=[embeddings_asset], op_tags=GPU_TAG,
              description=f"GoalConditionedEnergyHead trained on frozen iter_{embeddings_iteration} embeddings: "
                          "InfoNCE without temperature, K negatives with hard_ratio siblings, AdamW, theorem-level "
                          "split, temperature logged per epoch (plan Task 2.4).")
    def _train(context: dg.AssetExecutionContext, burnqed: BurnqedConfig) -> dg.MaterializeResult:
        from burnqed_assets.ebm.train import train_ebm_from_files
        from burnqed_assets.reports.embedding_plots import training_curves
        from burnqed_assets.reports.plots import png_markdown

        settings = burnqed.settings()
        train_config = replace(settings.ebm, device=_device(settings))
        paths, out = settings.paths, settings.paths.ebm_config(config)
        # The demo's tiny policy may prove nothing: then the head stays untrained and says so
        # (check ebm_trained); in full a run without contrastive pairs is an error.
        result = train_ebm_from_files(paths.search_trajectories(TRAJECTORIES_ITERATION),
                                      paths.embeddings_dir(embeddings_iteration), out.head, train_config,
                                      progress=context.log.info, allow_untrained=settings.is_demo)
        summary = result.summary()
        write_json(out.training_summary, {"summary": summary, "history": result.history,
                                          "val_theorems": sorted(result.val_theorems), "profile": settings.profile})
        meta: dict[str, Any] = {**summary, "profile": settings.profile,
                                "temperature_per_epoch": [round(h["temperature"], 4) for h in result.history]}
        if result.history:
            plot = training_curves(result.history, out.training_plot)
            meta["plot_training"] = dg.MetadataValue.md(png_markdown(plot, "EBM loss and temperature"))
        return dg.MaterializeResult(metadata=meta)

    return _train


def build_ebm_metrics_asset(name: str, *, config: str, ebm_asset: str, embeddings_iteration: int,
                            embeddings_asset: str, group_name: str = GROUP) -> dg.AssetsDefinition:
    """The Task 2.5 metrics of a head on one iteration's embeddings, validation theorems only."""

    @dg.asset(name=name, group_name=group_name, deps=[ebm_asset, embeddings_asset],
              description="EBM metrics on validation theorems (plan Task 2.5): rank-1 overall and d0-1/d2-3/d4+, "
                          "energy gap with stds, sibling discrimination, active ratio at the margin.")
    def _metrics(context: dg.AssetExecutionContext, burnqed: BurnqedConfig) -> dg.MaterializeResult:
        from burnqed_assets.ebm.metrics import ebm_metrics_from_files

        settings = burnqed.settings()
        e, paths = settings.ebm, settings.paths
        config_paths = paths.ebm_config(config)
        out = config_paths.metrics
        report = ebm_metrics_from_files(
            paths.search_trajectories(TRAJECTORIES_ITERATION), paths.embeddings_dir(embeddings_iteration),
            config_paths.head, out,
            val_fraction=e.val_fraction, split_seed=e.split_seed, k_negatives=e.k_negatives, hard_ratio=e.hard_ratio,
            margin=e.active_margin, seed=e.split_seed, device=_device(settings),
            max_val_states=e.metrics_max_val_states)
        for metric, reason in report.not_available.items():
            context.log.warning(f"{metric} not available: {reason}")
        meta = metric_metadata(report.values, report.not_available)
        meta.update({f"count_{k}": v for k, v in report.counts.items()})
        meta.update({"sibling_discrimination_chance": report.details.get("sibling_discrimination_chance"),
                     "not_available": report.not_available, "path": str(out), "profile": settings.profile,
                     "sampling": dg.MetadataValue.json(report.details["sampling"])})
        return dg.MaterializeResult(metadata=meta)

    return _metrics


def _json_value(path: Path, key: str) -> float | None:
    if not path.exists():
        return None
    value = read_json(path).get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def build_ebm_training_check(asset_name: str, config: str) -> dg.AssetChecksDefinition:
    """The head was trained (the trajectories held positive and negative states); red-line severity."""

    @dg.asset_check(asset=asset_name, name="ebm_trained",
                    description="The EBM head was trained on at least one (positive, negative) pair "
                                "(ERROR in full, WARN in the demo where the tiny policy may prove nothing)")
    def _trained(burnqed: BurnqedConfig) -> dg.AssetCheckResult:
        s = burnqed.settings()
        path = s.paths.ebm_config(config).training_summary
        summary = read_json(path).get("summary", {}) if path.exists() else {}
        trained = bool(summary.get("trained"))
        return dg.AssetCheckResult(
            passed=trained, severity=red_line_severity(s),
            description="trained" if trained else f"not trained: {summary.get('untrained_reason') or 'no summary'}",
            metadata={"train_positives": summary.get("train_positives"), "epochs": summary.get("epochs"),
                      "final_val_rank1": summary.get("final_val_rank1")})

    return _trained


def build_ebm_metric_checks(asset_name: str, config: str) -> list[dg.AssetChecksDefinition]:
    """EBM rank-1 (d4+) and sibling_discrimination against the iter_0 targets / red lines."""

    @dg.asset_check(asset=asset_name, name="rank1_d4_target",
                    description="EBM rank-1 at depth ≥ 4 ≥ target (WARN); below the red line ERROR in full")
    def _rank1(burnqed: BurnqedConfig) -> dg.AssetCheckResult:
        s = burnqed.settings()
        return metric_check(s, _json_value(s.paths.ebm_config(config).metrics, "rank1_d4+"),
                            s.thresholds.rank1_d4_target,
                            s.thresholds.rank1_d4_red_line, "rank1_d4+")

    @dg.asset_check(asset=asset_name, name="sibling_discrimination_target",
                    description="sibling_discrimination ≥ target (WARN); below the red line ERROR in full")
    def _sibling(burnqed: BurnqedConfig) -> dg.AssetCheckResult:
        s = burnqed.settings()
        return metric_check(s, _json_value(s.paths.ebm_config(config).metrics, "sibling_discrimination"),
                            s.thresholds.sibling_discrimination_target, s.thresholds.sibling_discrimination_red_line,
                            "sibling_discrimination")

    return [_rank1, _sibling]


def build_ebm_search_asset(name: str, *, config: str, model_asset: str, ebm_asset: str, iteration: int,
                           tag: str = "ebm", benchmark: str = "minif2f_v2s", benchmark_asset: str = "minif2f_v2s_427",
                           group_name: str = GROUP) -> dg.AssetsDefinition:
    """EBM-guided best-first search (Task 2.6): the merged model of `iteration` as policy and encoder,
    the head of `config` (paths.ebm_config) as scorer, served by an encode server on 127.0.0.1 (a
    free port) for the duration of the asset. Outputs: paths.search_eval(benchmark, iteration, tag)
    (summary JSON evals/iter_N/<benchmark>_<tag>.json, results, trajectories)."""

    @dg.asset(name=name, group_name=group_name,
              deps=[model_asset, ebm_asset, benchmark_asset, *raw_inputs(*LEAN_ENV_INPUTS)], op_tags=GPU_TAG,
              description=f"{benchmark} with LLM + GoalConditioned EBM (plan Task 2.6): priority = cumulative "
                          "log-prob − λ·energy, energies from the encode server (127.0.0.1, started and stopped "
                          "inside this asset).")
    def _search(context: dg.AssetExecutionContext, burnqed: BurnqedConfig,
                sglang: SGLangServerResource) -> dg.MaterializeResult:
        from burnqed_assets.data.token_geometry import recommended_max_length
        from burnqed_assets.defs.search import search_run_metadata
        from burnqed_assets.ebm.encode_server import energy_service
        from burnqed_assets.search import pipeline

        settings = burnqed.settings()
        max_length, _ = recommended_max_length(settings.paths.token_geometry, "encode",
                                               settings.ebm.encode_max_length)
        model_dir, head_path = settings.paths.merged_model(iteration), settings.paths.ebm_config(config).head
        with energy_service(str(model_dir), str(head_path), host=settings.search.encode_server_host,
                            max_length=max_length, device=settings.model.device, dtype=settings.model.dtype,
                            batch_size=settings.ebm.embed_batch_size,
                            quantization=settings.ebm.encoder_quantization, say=context.log.info) as energy:
            with sglang.policy(settings, model_dir, say=context.log.info) as policy:
                info = pipeline.evaluate_minif2f(settings, benchmark, policy=policy, scorer=energy.scorer,
                                                 iteration=iteration, tag=tag)
        energy_model, server = energy.model, energy.server
        context.log.info(f"{benchmark} LLM+EBM: proved {info.proved}/{info.attempted} ({info.rate:.3f})")
        meta: dict[str, Any] = {"proved": info.proved, "attempted": info.attempted, "errors": info.errors,
                                "benchmark_size": info.benchmark_size,
                                "results_path": info.evaluation.results_path,
                                "trajectories_path": info.evaluation.trajectories_path,
                                "summary_path": info.summary_path}
        meta.update(search_run_metadata(info))
        meta.update({"ebm_lambda": settings.search.ebm_lambda,
                     "head_path": str(head_path), "model_dir": str(model_dir), "encode_max_length": max_length,
                     "encoder_quantization": energy_model.quantization,
                     "encode_requests": server.requests, "encode_pairs_scored": server.pairs_scored,
                     "profile": settings.profile})
        return dg.MaterializeResult(metadata=meta)

    return _search


def build_search_check(asset_name: str, iteration: int, tag: str, name: str = "minif2f_v2s_llm_ebm_rate",
                       label: str = "miniF2F-v2s LLM+EBM rate") -> dg.AssetChecksDefinition:
    """Prove rate of paths.search_summary(iteration, tag) against settings.thresholds.minif2f_ebm_*."""

    @dg.asset_check(asset=asset_name, name=name,
                    description=f"{label} ≥ target (WARN); below the red line ERROR in full")
    def _check(burnqed: BurnqedConfig) -> dg.AssetCheckResult:
        s = burnqed.settings()
        return metric_check(s, _json_value(s.paths.search_summary(iteration, tag), "rate"),
                            s.thresholds.minif2f_ebm_target,
                            s.thresholds.minif2f_ebm_red_line, label)

    return _check


ebm_iter0 = build_ebm_training_asset("ebm_iter0", config="A", embeddings_iteration=0, embeddings_asset="embeddings")
ebm_metrics_iter0 = build_ebm_metrics_asset("ebm_metrics_iter0", config="A", ebm_asset="ebm_iter0",
                                            embeddings_iteration=0, embeddings_asset="embeddings")
minif2f_v2s_iter0_ebm = build_ebm_search_asset("minif2f_v2s_iter0_ebm", config="A", model_asset="merged_iter0",
                                               ebm_asset="ebm_iter0", iteration=0)


def latest_metadata(instance: dg.DagsterInstance, key: str) -> dict[str, Any]:
    """Plain values of an asset's latest materialization metadata ({} when never materialized)."""
    event = instance.get_latest_materialization_event(dg.AssetKey(key))
    if event is None or event.asset_materialization is None:
        return {}
    return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}


def _read_json_or_empty(path: Path) -> dict[str, Any]:
    return read_json(path) if path.exists() else {}


def _data_section(instance: dg.DagsterInstance, settings: Settings) -> dict[str, Any]:
    """Data statistics from the upstream assets' metadata, else from their JSON files."""
    from burnqed_assets.reports.baseline import data_section

    paths = settings.paths
    sft = latest_metadata(instance, "sft_dataset") or _read_json_or_empty(paths.sft_stats)
    pool = latest_metadata(instance, "contrastive_pool")
    pool_2k = latest_metadata(instance, "contrastive_pool_2k")
    traj = latest_metadata(instance, "trajectories") or \
        _read_json_or_empty(paths.trajectory_stats)
    if not pool and (pool_file := paths.contrastive_pool).exists():
        pool = {"theorems": len(read_json(pool_file))}
    if not pool_2k and (pool_2k_file := paths.contrastive_pool_2k).exists():
        pool_2k = {"selected": len(read_json(pool_2k_file))}
    return data_section(sft, pool, pool_2k, traj)


@dg.asset(group_name=GROUP, deps=["embedding_metrics", "ebm_metrics_iter0", "minif2f_v2s_iter0",
                                  "minif2f_v2s_iter0_ebm"],
          description="data/evals/iter_0/baseline_report.md (plan Task 2.7): data, embedding-space, EBM and search "
                      "tables with the plan's old reference columns, from asset metadata and the JSON artefacts; "
                      "plus search_results.json. States the profile that produced it.")
def baseline_report(context: dg.AssetExecutionContext, burnqed: BurnqedConfig) -> dg.MaterializeResult:
    from burnqed_assets.reports.baseline import render_baseline_report

    settings = burnqed.settings()
    paths = settings.paths
    search = {"llm_only": _read_json_or_empty(paths.search_summary(0, "llm")) or
              latest_metadata(context.instance, "minif2f_v2s_iter0"),
              "llm_ebm": _read_json_or_empty(paths.search_summary(0, "ebm")) or
              latest_metadata(context.instance, "minif2f_v2s_iter0_ebm")}
    search_results = {name: {k: r.get(k) for k in ("proved", "attempted", "rate", "benchmark", "summary_path")}
                      for name, r in search.items()}
    write_json(paths.baseline_search_results, {**search_results, "profile": settings.profile})
    embedding = _read_json_or_empty(paths.embedding_metrics(0))
    ebm = _read_json_or_empty(paths.ebm_config("A").metrics)
    training = _read_json_or_empty(paths.ebm_config("A").training_summary).get("summary")
    markdown = render_baseline_report(profile=settings.profile, data=_data_section(context.instance, settings),
                                      embedding=embedding, ebm=ebm, search=search, ebm_training=training)
    dest = paths.baseline_report
    with atomic_open(dest) as fh:
        fh.write(markdown)
    return dg.MaterializeResult(metadata={
        "path": str(dest), "profile": settings.profile, "report": dg.MetadataValue.md(markdown),
        "search_results_path": str(paths.baseline_search_results),
        "missing_inputs": [name for name, v in (("embedding_metrics", embedding), ("ebm_metrics", ebm),
                                                ("llm_only", search["llm_only"]), ("llm_ebm", search["llm_ebm"]))
                           if not v]})


defs = dg.Definitions(
    assets=[ebm_iter0, ebm_metrics_iter0, minif2f_v2s_iter0_ebm, baseline_report],
    asset_checks=[build_ebm_training_check("ebm_iter0", "A"),
                  *build_ebm_metric_checks("ebm_metrics_iter0", "A"),
                  build_search_check("minif2f_v2s_iter0_ebm", 0, "ebm")],
)
