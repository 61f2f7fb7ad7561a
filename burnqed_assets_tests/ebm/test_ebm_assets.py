"""Phase 2 assets through Dagster: embeddings → metrics → EBM → EBM metrics, EBM search wiring, report."""

from __future__ import annotations

import json
import socket

import dagster as dg
import numpy as np
import pytest
from ebm_synthetic import synthetic_rows, write_synthetic

from burnqed_assets.data.io import read_json, write_json
from burnqed_assets.defs import ebm as ebm_defs
from burnqed_assets.defs import embeddings as emb_defs
from burnqed_assets.ebm.head import GoalConditionedEnergyHead, load_head, save_head
from burnqed_assets.ebm.metrics import EBM_METRIC_NAMES, EMBEDDING_METRIC_NAMES
from burnqed_assets.ebm.train import default_hidden_dims
from burnqed_assets.reports.baseline import render_baseline_report
from burnqed_assets.resources import BurnqedConfig, SGLangServerResource
from burnqed_assets.settings import DEMO_INPUTS, get_settings


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    """A data root with synthetic iter_0 trajectories and the demo model as the merged iter_0 model."""
    from burnqed_assets.models.demo_model import DemoModelSpec, build_demo_model

    root = tmp_path_factory.mktemp("data")
    settings = get_settings("demo", root)
    write_synthetic(root, synthetic_rows(n_theorems=16, depth=5, branch=4, proved_every=2))
    build_demo_model(settings.paths.merged_model(0), DEMO_INPUTS, DemoModelSpec(warmup_steps=4))
    return root


def test_phase2_assets_materialize_with_checks(demo_root):
    settings = get_settings("demo", demo_root)
    result = dg.materialize(
        [emb_defs.embeddings, emb_defs.embedding_metrics, ebm_defs.ebm_iter0, ebm_defs.ebm_metrics_iter0,
         *emb_defs.build_embedding_metric_checks("embedding_metrics"),
         ebm_defs.build_ebm_training_check("ebm_iter0", "A"),
         *ebm_defs.build_ebm_metric_checks("ebm_metrics_iter0", "A")],
        resources={"burnqed": BurnqedConfig(data_root=str(demo_root))}, raise_on_error=False)
    assert result.success
    emb_meta = result.asset_materializations_for_node("embeddings")[0].metadata
    assert emb_meta["state_rows"].value == 16 * 21 and emb_meta["goal_embeddings"].value == 16
    assert emb_meta["d_model"].value == load_head_dim(settings)
    metrics = read_json(settings.paths.evals / "iter_0" / "embedding_metrics.json")
    assert set(EMBEDDING_METRIC_NAMES) <= set(metrics)
    for name in EMBEDDING_METRIC_NAMES:  # a number, or None with its reason
        assert metrics[name] is not None or name in metrics["not_available"]
    metric_meta = result.asset_materializations_for_node("embedding_metrics")[0].metadata
    plots = [k for k in metric_meta if k.startswith("plot_")]
    assert len(plots) == 5 and "data:image/png;base64," in metric_meta["plot_pca_by_label"].value
    assert len(list((settings.paths.evals / "iter_0" / "plots").glob("*.png"))) >= 5
    head = load_head(str(settings.paths.ebm_checkpoint(0)))
    assert head.d_model == emb_meta["d_model"].value
    train_meta = result.asset_materializations_for_node("ebm_iter0")[0].metadata
    assert len(train_meta["temperature_per_epoch"].value) == settings.ebm.epochs
    ebm_metrics = read_json(settings.paths.evals / "iter_0" / "ebm_metrics.json")
    assert set(EBM_METRIC_NAMES) <= set(ebm_metrics) and ebm_metrics["counts"]["val_theorems"] > 0
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(checks) == {"centroid_l2_target", "linear_probe_acc_target", "rank1_d4_target",
                           "sibling_discrimination_target", "ebm_trained"}
    assert checks["ebm_trained"].passed
    assert checks["centroid_l2_target"].metadata["value"].value == pytest.approx(metrics["centroid_l2"])


def load_head_dim(settings) -> int:
    return json.loads((settings.paths.merged_model(0) / "config.json").read_text())["hidden_size"]


def test_ebm_search_asset_serves_energies_on_loopback_and_stops(demo_root, monkeypatch):
    from burnqed_assets.search import pipeline

    settings = get_settings("demo", demo_root)
    d = load_head_dim(settings)
    head_path = settings.paths.ebm_config("B").head  # a config no other test here writes
    save_head(GoalConditionedEnergyHead(d, default_hidden_dims(d)), str(head_path))
    seen = {}

    def fake_evaluate(settings_, benchmark, scorer=None, iteration=0, tag="llm", **_):
        seen["energies"] = scorer.score(["x : ℕ\n⊢ x = x", "⊢ True"], "⊢ ∀ x : ℕ, x = x")
        seen["url"] = scorer.base_url
        from collections import Counter

        from burnqed_assets.search.run import BenchmarkEvaluation, trajectory_stats

        evaluation = BenchmarkEvaluation(proved=1, attempted=4, rate=0.25, errors=0, resumed=0, searched=4,
                                         ebm_guided=True, results_path="r.parquet", trajectories_path="t.parquet",
                                         proved_names=["p1"], stats=trajectory_stats([], Counter(), Counter()))
        info = pipeline.MiniF2FEvaluation(evaluation, benchmark, 4, "file order", 4, iteration, tag, "demo",
                                          "standin", "transformers",
                                          str(settings_.paths.search_summary(iteration, tag)))
        write_json(settings_.paths.search_summary(iteration, tag), info.summary())
        return info

    monkeypatch.setattr(pipeline, "evaluate_minif2f", fake_evaluate)
    asset = ebm_defs.build_ebm_search_asset("search_probe", config="B", model_asset="merged_iter0",
                                            ebm_asset="ebm_iter0", iteration=0, tag="ebm")
    check = ebm_defs.build_search_check("search_probe", 0, "ebm")
    result = dg.materialize([asset, check], resources={"burnqed": BurnqedConfig(data_root=str(demo_root)),
                                                       "sglang": SGLangServerResource()},
                            raise_on_error=False)
    assert result.success
    assert len(seen["energies"]) == 2 and all(np.isfinite(seen["energies"]))
    assert seen["url"].startswith("http://127.0.0.1:")
    port = int(seen["url"].rsplit(":", 1)[1])
    with socket.socket() as s:  # the server was stopped: its port no longer accepts connections
        assert s.connect_ex(("127.0.0.1", port)) != 0
    meta = result.asset_materializations_for_node("search_probe")[0].metadata
    assert meta["encode_pairs_scored"].value == 2 and meta["rate"].value == 0.25
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.metadata["value"].value == 0.25 and evaluation.passed  # demo target 0.05


def test_baseline_report_from_artefacts(tmp_path):
    settings = get_settings("demo", tmp_path)
    evals = settings.paths.evals / "iter_0"
    write_json(evals / "embedding_metrics.json", {"centroid_l2": 1.25, "linear_probe_acc": None,
                                                  "not_available": {"linear_probe_acc": "too few positives"}})
    write_json(evals / "ebm_metrics.json", {"rank1_accuracy": 0.5, "rank1_d4+": 0.375, "energy_gap": 0.2,
                                            "energy_std_pos": 0.1, "energy_std_neg": 0.3, "not_available": {}})
    write_json(evals / "minif2f_v2s_llm.json", {"proved": 2, "attempted": 10, "rate": 0.2})
    write_json(evals / "minif2f_v2s_ebm.json", {"proved": 3, "attempted": 10, "rate": 0.3})
    result = dg.materialize([ebm_defs.baseline_report], resources={"burnqed": BurnqedConfig(data_root=str(tmp_path))})
    assert result.success
    text = (evals / "baseline_report.md").read_text()
    assert "Profile: **demo**" in text and "not research results" in text
    assert "| centroid_l2 | 1.25 | 6.40 |" in text
    assert "| linear_probe_acc | n/a (too few positives) | 0.83 |" in text
    assert "| rank1_accuracy (d4+) | 0.375 | 0.35-0.39 |" in text
    assert "| LLM-only | 2/10 | 20.0% | ~35% |" in text and "| LLM + GoalCond EBM (decoupled) | 3/10 | 30.0% |" in text
    assert read_json(evals / "search_results.json")["llm_ebm"]["rate"] == 0.3


def test_full_profile_report_has_no_demo_disclaimer():
    text = render_baseline_report(profile="full", data={"SFT pairs": 150000}, embedding={}, ebm={}, search={})
    assert "Profile: **full**" in text and "not research results" not in text and "- SFT pairs: 150000" in text
    assert text.count("| n/a |") >= 2  # missing search rows are n/a, not invented


def test_factories_build_iter1_configs_without_clashing_with_iter0():
    """The joint-training phase reuses the factories for configs B/C under new keys."""
    emb1 = emb_defs.build_embeddings_asset("embeddings_iter1", iteration=1, model_asset="joint_iter1")
    met1 = emb_defs.build_embedding_metrics_asset("embedding_metrics_iter1", iteration=1,
                                                  embeddings_asset="embeddings_iter1")
    ebm_b = ebm_defs.build_ebm_training_asset(
        "ebm_iter1_decoupled", config="B", embeddings_iteration=1, embeddings_asset="embeddings_iter1")
    metrics_c = ebm_defs.build_ebm_metrics_asset(
        "ebm_metrics_config_c", config="C", ebm_asset="joint_iter1", embeddings_iteration=1,
        embeddings_asset="embeddings_iter1")
    search_c = ebm_defs.build_ebm_search_asset("minif2f_v2s_config_c", config="C", model_asset="joint_iter1",
                                               ebm_asset="joint_iter1", iteration=1, tag="ebm_joint")
    defs = dg.Definitions.merge(
        dg.Definitions(resources={"burnqed": BurnqedConfig(), "sglang": SGLangServerResource()}),
        emb_defs.defs, ebm_defs.defs,
        dg.Definitions(assets=[emb1, met1, ebm_b, metrics_c, search_c],
                       asset_checks=[*emb_defs.build_embedding_metric_checks("embedding_metrics_iter1", 1),
                                     *ebm_defs.build_ebm_metric_checks("ebm_metrics_config_c", "C"),
                                     ebm_defs.build_search_check("minif2f_v2s_config_c", 1, "ebm_joint")]))
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"embeddings", "embeddings_iter1", "ebm_iter0", "ebm_iter1_decoupled", "ebm_metrics_config_c"} <= keys
    assert graph.get(dg.AssetKey("ebm_metrics_config_c")).parent_keys == {dg.AssetKey("joint_iter1"),
                                                                          dg.AssetKey("embeddings_iter1")}
    assert dg.AssetKey("joint_iter1") in graph.get(dg.AssetKey("embeddings_iter1")).parent_keys
    s = get_settings("demo", "/tmp/x")
    assert s.paths.embedding_metrics(1).parts[-2:] == ("iter_1", "embedding_metrics.json")


def test_demo_without_proofs_degrades_to_an_untrained_head_and_says_so(tmp_path):
    """The demo policy may prove nothing: every state unknown. Metrics are n/a with reasons, the head
    stays untrained, the check fails (WARN in demo) and the report says it, instead of a crash."""
    rows = [dict(r, label="unknown", proved=False) for r in synthetic_rows(n_theorems=4, depth=2)]
    write_synthetic(tmp_path, rows)
    res = {"burnqed": BurnqedConfig(data_root=str(tmp_path))}
    result = dg.materialize([emb_defs.embedding_metrics, ebm_defs.ebm_iter0, ebm_defs.ebm_metrics_iter0,
                             ebm_defs.build_ebm_training_check("ebm_iter0", "A")],
                            resources=res, raise_on_error=False)
    assert result.success
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN and "not trained" in check.description
    settings = get_settings("demo", tmp_path)
    metrics = read_json(settings.paths.evals / "iter_0" / "ebm_metrics.json")
    assert metrics["rank1_accuracy"] is None and "rank1_accuracy" in metrics["not_available"]
    assert dg.materialize([ebm_defs.baseline_report], resources=res).success
    assert "The EBM head was not trained" in (settings.paths.evals / "iter_0" / "baseline_report.md").read_text()
