"""Phase 2, Tasks 2.1–2.3: state and goal embeddings, the seven embedding metrics, their plots.

Assets are built by factories so the joint-training phase reuses them for iter_1 (configs B/C)
under new keys, without copying code:

    build_embeddings_asset(name, *, iteration, model_asset, trajectories_asset="trajectories",
                           group_name=GROUP) -> AssetsDefinition
        embeds the iter_0 search trajectories with the merged model of `iteration` into
        paths.embeddings_dir(iteration)/{state,goal}_embeddings.parquet
    build_embedding_metrics_asset(name, *, iteration, embeddings_asset, group_name=GROUP) -> AssetsDefinition
        writes paths.embedding_metrics(iteration) and paths.embedding_plots(iteration)/*.png
    build_embedding_metric_checks(asset_name) -> list[AssetChecksDefinition]
        centroid_l2 and linear_probe_acc against settings.thresholds (iter_0 targets)

Every path comes from `settings.paths` (burnqed_assets/paths.py).
"""
# No `from __future__ import annotations` in defs/: Dagster inspects the context annotation.

from pathlib import Path

import dagster as dg

from burnqed_assets.data.io import read_json
from burnqed_assets.defs.checks import metric_check
from burnqed_assets.resources import BurnqedConfig
from burnqed_assets.settings import GPU_TAG

GROUP = "phase_2_embeddings"
TRAJECTORIES_ITERATION = 0  # every config is embedded and measured on the iter_0 search trajectories

PLOT_TITLES = {
    "pca_by_label": "PCA by label", "pca_by_depth": "PCA by depth", "sibling_l2_hist": "Sibling L2 histogram",
    "eigen_spectrum": "Eigenvalue spectrum (log)", "depth_vs_centroid_l2": "Depth vs centroid L2",
}


def metric_metadata(values: dict, not_available: dict) -> dict[str, object]:
    """Numbers as floats (None → the reason as text), so the UI plots them over runs."""
    meta: dict[str, object] = {}
    for name, value in values.items():
        meta[name] = dg.MetadataValue.float(float(value)) if value is not None else \
            dg.MetadataValue.text(f"not available: {not_available.get(name, '')}")
    return meta


def build_embeddings_asset(name: str, *, iteration: int, model_asset: str, trajectories_asset: str = "trajectories",
                           group_name: str = GROUP) -> dg.AssetsDefinition:
    """State embedding per trajectory row + root-goal embedding per theorem (Task 2.1, Gotcha 9)."""

    @dg.asset(name=name, group_name=group_name, deps=[model_asset, trajectories_asset, "token_geometry"],
              op_tags=GPU_TAG,
              description=f"State embeddings of every trajectory row and the root-goal (depth-0) embedding of every "
                          f"theorem, from the merged model of {model_asset} (plan Task 2.1) → "
                          f"data/embeddings/iter_{iteration}/.")
    def _embeddings(context: dg.AssetExecutionContext, burnqed: BurnqedConfig) -> dg.MaterializeResult:
        from burnqed_assets.data.token_geometry import recommended_max_length
        from burnqed_assets.ebm.embed import extract_embeddings_from_model

        settings = burnqed.settings()
        paths = settings.paths
        model_dir, trajectories = paths.merged_model(iteration), paths.search_trajectories(TRAJECTORIES_ITERATION)
        max_length, source = recommended_max_length(paths.token_geometry, "encode", settings.ebm.encode_max_length)
        context.log.info(f"encode max_length={max_length} from {source}")
        summary = extract_embeddings_from_model(
            model_dir, trajectories, paths.embeddings_dir(iteration),
            max_length=max_length, batch_size=settings.ebm.embed_batch_size, device=settings.model.device,
            dtype=settings.model.dtype, progress=context.log.info, cpu_threads=settings.ebm.cpu_threads,
            storage_dtype=settings.ebm.embedding_dtype)
        meta = summary.as_metadata()
        meta.update({"encode_max_length_source": source, "model_dir": str(model_dir),
                     "trajectories_path": str(trajectories), "iteration": iteration,
                     "profile": settings.profile})
        return dg.MaterializeResult(metadata=meta)

    return _embeddings


def build_embedding_metrics_asset(name: str, *, iteration: int, embeddings_asset: str,
                                  group_name: str = GROUP) -> dg.AssetsDefinition:
    """The seven Task 2.2 metrics and the Task 2.3 plots for one iteration's embeddings."""

    @dg.asset(name=name, group_name=group_name, deps=[embeddings_asset],
              description=f"Embedding-space metrics of iter_{iteration} (plan Task 2.2: centroid_l2, linear_probe_acc, "
                          "norm_gap, sibling L2, variance spectrum, depth-stratified silhouette, dual-label rate) "
                          "and the Task 2.3 plots.")
    def _embedding_metrics(context: dg.AssetExecutionContext, burnqed: BurnqedConfig) -> dg.MaterializeResult:
        from burnqed_assets.ebm.metrics import embedding_metrics_from_files
        from burnqed_assets.reports.plots import png_markdown

        settings = burnqed.settings()
        e, paths = settings.ebm, settings.paths
        out = paths.embedding_metrics(iteration)
        report, plots = embedding_metrics_from_files(
            paths.search_trajectories(TRAJECTORIES_ITERATION), paths.embeddings_dir(iteration), out,
            plots_dir=paths.embedding_plots(iteration), probe_folds=e.probe_folds,
            probe_max_samples=e.probe_max_samples, collision_threshold=e.collision_threshold,
            silhouette_min_states=e.silhouette_min_states, silhouette_sample_size=e.silhouette_sample_size,
            spectrum_sample_size=e.spectrum_sample_size, seed=e.split_seed)
        for metric, reason in report.not_available.items():
            context.log.warning(f"{metric} not available: {reason}")
        meta = metric_metadata(report.values, report.not_available)
        meta.update({f"count_{k}": v for k, v in report.counts.items()})
        meta.update({"not_available": report.not_available, "path": str(out), "iteration": iteration,
                     "profile": settings.profile,
                     # which metrics ran on a seeded sample, of what size (the others are exact)
                     "sampling": dg.MetadataValue.json(report.details["sampling"])})
        for key, path in plots.items():
            meta[f"plot_{key}"] = dg.MetadataValue.md(png_markdown(path, PLOT_TITLES.get(key, key)))
        return dg.MaterializeResult(metadata=meta)

    return _embedding_metrics


def _json_value(path: Path, key: str) -> float | None:
    if not path.exists():
        return None
    value = read_json(path).get(key)
    return float(value) if isinstance(value, (int, float)) else None


def build_embedding_metric_checks(asset_name: str, iteration: int = 0) -> list[dg.AssetChecksDefinition]:
    """centroid_l2 and linear_probe_acc against the iter_0 target / red line of the profile."""

    @dg.asset_check(asset=asset_name, name="centroid_l2_target",
                    description="centroid_l2 ≥ target (WARN); below the red line ERROR in full")
    def _centroid(burnqed: BurnqedConfig) -> dg.AssetCheckResult:
        s = burnqed.settings()
        value = _json_value(s.paths.embedding_metrics(iteration), "centroid_l2")
        return metric_check(s, value, s.thresholds.centroid_l2_target, s.thresholds.centroid_l2_red_line, "centroid_l2")

    @dg.asset_check(asset=asset_name, name="linear_probe_acc_target",
                    description="linear_probe_acc ≥ target (WARN); below the red line ERROR in full")
    def _probe(burnqed: BurnqedConfig) -> dg.AssetCheckResult:
        s = burnqed.settings()
        value = _json_value(s.paths.embedding_metrics(iteration), "linear_probe_acc")
        return metric_check(s, value, s.thresholds.linear_probe_target, s.thresholds.linear_probe_red_line,
                            "linear_probe_acc")

    return [_centroid, _probe]


embeddings = build_embeddings_asset("embeddings", iteration=0, model_asset="merged_iter0")
embedding_metrics = build_embedding_metrics_asset("embedding_metrics", iteration=0, embeddings_asset="embeddings")

defs = dg.Definitions(assets=[embeddings, embedding_metrics],
                      asset_checks=build_embedding_metric_checks("embedding_metrics"))
