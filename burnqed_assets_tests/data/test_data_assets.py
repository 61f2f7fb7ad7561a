"""Dagster: the demo data graph materializes with every gate passing; the bad input set stops it."""

from __future__ import annotations

import json
import shutil

import dagster as dg

from burnqed_assets.defs import exploration, migration, sft, sft_data
from burnqed_assets.resources import BurnqedConfig
from burnqed_assets.settings import DEMO_INPUTS, get_settings

DATA_ASSETS = [exploration.clean_pool, exploration.token_geometry, exploration.exploration_report,
               sft_data.lean_github_pairs, sft_data.benchmark_decontamination, sft_data.sft_dataset,
               sft_data.contrastive_pool, sft_data.release_bundle]
CHECKS = list(exploration.defs.asset_checks or []) + list(sft_data.defs.asset_checks or [])


def _checks(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_demo_graph_materializes_with_gates_passing(tmp_path, monkeypatch):
    # The data assets read the base model's tokenizer only, which its warm-up does not change:
    # 4 warm-up steps instead of 400 (~2 min on 2 cores; the whole-graph runs build the default).
    import functools

    from burnqed_assets.models import base as base_module

    monkeypatch.setattr(base_module, "DemoModelSpec", functools.partial(base_module.DemoModelSpec, warmup_steps=4))
    result = dg.materialize([*migration.defs.assets, sft.base_model, *DATA_ASSETS, *CHECKS],
                            selection=[migration.goedel_source_proofs.key, migration.goedel_427_proofs.key,
                                       migration.goedel_traced_pairs.key, sft.base_model.key]
                            + [a.key for a in DATA_ASSETS],
                            resources={"burnqed": BurnqedConfig(profile="demo", data_root=str(tmp_path))},
                            raise_on_error=False, tags=migration.all_trace_chunks_tags())
    assert result.success
    checks = _checks(result)
    blocking = ["clean_pool_contamination", "clean_pool_survival", "traced_lines_readable", "sft_no_theorem_leak",
                "sft_prompt_format", "sft_size_and_sources", "sft_no_benchmark_theorems",
                "decontamination_covers_benchmarks", "sft_no_benchmark_statement", "contrastive_pool_decontaminated"]
    for name in blocking:
        assert checks[name].passed, (name, checks[name].description)
    assert checks["contrastive_pool_size"].passed
    settings = get_settings("demo", tmp_path)
    stats = json.loads((settings.paths.sft / "stats.json").read_text(encoding="utf-8"))
    assert stats["total_pairs"] >= settings.thresholds.min_sft_pairs
    assert set(stats["sources"]) == {"goedel_workbook", "lean_github"}
    geo = json.loads(settings.paths.token_geometry.read_text(encoding="utf-8"))
    assert geo["recommended_sft_max_length"] in settings.data.sft_max_length_candidates
    report = json.loads(settings.paths.exploration_report.read_text(encoding="utf-8"))
    assert report["contrastive_eligible"] >= 40 and 0 < report["top5_tactic_share"] <= 1
    assert sorted(p.name for p in settings.paths.exploration_plots.glob("*.png")) == [
        "depth_distribution.png", "proof_length_hist.png", "token_lengths.png", "top_tactics.png"]
    pool = json.loads((settings.paths.sft / "contrastive_pool.json").read_text(encoding="utf-8"))
    assert pool and all(e["max_depth"] >= 3 and e["formal_statement"] for e in pool)
    release = settings.paths.release
    assert {"proofs.parquet", "pairs.parquet", "CHANGELOG.md", "dropped_theorems.json", "manifest.json"} <= {
        p.name for p in release.iterdir()}
    meta = result.asset_materializations_for_node("clean_pool")[0].metadata
    assert meta["clean_fraction"].value == 1.0 and meta["bad_lines"].value == 0


def test_bad_traced_pairs_fail_the_gates_and_stop_downstream(tmp_path):
    """M.6 re-checks the tracer's output independently: feed it the bad set as if a tracer had
    written it (the real tracer already rejects banned theorems), and the gates must stop the graph."""
    settings = get_settings("demo", tmp_path)
    settings.paths.goedel_traced_pairs.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DEMO_INPUTS / "bad" / "bad_traces.jsonl", settings.paths.goedel_traced_pairs)
    result = dg.materialize([*DATA_ASSETS, *CHECKS],
                            selection=[a.key for a in DATA_ASSETS] + [sft_data.lean_github_pairs.key],
                            resources={"burnqed": BurnqedConfig(profile="demo", data_root=str(tmp_path))},
                            raise_on_error=False)
    checks = _checks(result)
    traced = str(settings.paths.goedel_traced_pairs)
    gate = checks["clean_pool_contamination"]
    assert not gate.passed and gate.severity == dg.AssetCheckSeverity.ERROR
    assert f"{traced}:9:" in gate.description and "sorry" in gate.description
    readable = checks["traced_lines_readable"]
    assert not readable.passed and f"{traced}:17: malformed JSON" in readable.description
    assert not checks["clean_pool_survival"].passed
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "clean_pool" in materialized and "lean_github_pairs" in materialized
    # everything downstream of the failed blocking gates was skipped
    assert not materialized & {"token_geometry", "exploration_report", "sft_dataset", "contrastive_pool",
                               "benchmark_decontamination",
                               "release_bundle"}
    assert not (tmp_path / "sft" / "train.jsonl").exists()


def test_a_benchmark_goal_planted_in_the_traces_is_dropped_before_sft(tmp_path):
    """A miniF2F-test root goal arrives in the Goedel traces as a Lean Workbook theorem: the
    decontamination asset lists it, sft_dataset drops it, and the re-read gate passes."""
    settings = get_settings("demo", tmp_path)
    dest = settings.paths.goedel_traced_pairs
    dest.parent.mkdir(parents=True, exist_ok=True)
    rows = [line for p in sorted((DEMO_INPUTS / "traced").glob("*_traces.jsonl"))
            for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    bench = next(json.loads(line) for line in (DEMO_INPUTS / "benchmarks" / "minif2f_v1.jsonl").open(encoding="utf-8")
                 if json.loads(line)["name"] == "mathd_algebra_171")
    planted = {"theorem": "goedel::lean_workbook_99999", "state": bench["goal"], "tactic": "norm_num [h₀]",
               "state_after": "no goals", "depth": 0, "source": "goedel_workbook"}
    dest.write_text("\n".join(rows + [json.dumps(planted, ensure_ascii=False)]) + "\n", encoding="utf-8")
    result = dg.materialize([*DATA_ASSETS, *CHECKS],
                            selection=[exploration.clean_pool.key, sft_data.lean_github_pairs.key,
                                       sft_data.benchmark_decontamination.key, sft_data.sft_dataset.key],
                            resources={"burnqed": BurnqedConfig(profile="demo", data_root=str(tmp_path))},
                            raise_on_error=False)
    assert result.success
    meta = result.asset_materializations_for_node("benchmark_decontamination")[0].metadata
    assert meta["dropped_theorems"].value == 1 and meta["dropped_examples"].value == ["goedel::lean_workbook_99999"]
    checks = _checks(result)
    assert checks["decontamination_covers_benchmarks"].passed and checks["sft_no_benchmark_statement"].passed
    stats = json.loads((settings.paths.sft / "stats.json").read_text(encoding="utf-8"))
    assert stats["dropped"]["contaminated_theorem_names"] == ["goedel::lean_workbook_99999"]
    rows = [json.loads(line) for split in ("train", "val")
            for line in (settings.paths.sft / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]
    assert rows and not [r for r in rows if r["theorem"] == planted["theorem"] or bench["goal"] in r["prompt"]]
