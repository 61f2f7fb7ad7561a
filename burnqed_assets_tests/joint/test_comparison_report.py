"""The A/B/C comparison: differences, each Task 4.5 branch chosen from the numbers, the report
and the comparison_report asset on metrics JSON written to a temp data root."""

from __future__ import annotations

from dataclasses import replace

import dagster as dg
import pytest

from burnqed_assets.data.io import write_json
from burnqed_assets.reports.comparison import (
    build_comparison,
    config_result,
    decide,
    differences,
    render_comparison_report,
)


def rows(c0=5.0, c1=5.5, rate_a=0.40, rate_b=0.44, rate_c=0.46, attempted=244, rank=(0.30, 0.35, 0.42)):
    def search(rate):
        return None if rate is None else {"rate": rate, "proved": round(rate * attempted), "attempted": attempted}

    emb0 = {"centroid_l2": c0, "linear_probe_acc": 0.8}
    emb1 = {"centroid_l2": c1, "linear_probe_acc": 0.82}
    return {"A": config_result("A", emb0, {"rank1_d4+": rank[0], "sibling_discrimination": 0.12}, search(rate_a)),
            "B": config_result("B", emb1, {"rank1_d4+": rank[1], "sibling_discrimination": 0.13}, search(rate_b)),
            "C": config_result("C", emb1, {"rank1_d4+": rank[2], "sibling_discrimination": 0.16}, search(rate_c))}


def test_differences_are_later_minus_earlier():
    d = differences(rows())
    assert d["A→B"]["centroid_l2"] == pytest.approx(0.5) and d["B→C"]["centroid_l2"] == pytest.approx(0.0)
    assert d["A→C"]["minif2f_rate"] == pytest.approx(0.06) and d["B→C"]["rank1_d4+"] == pytest.approx(0.07)
    assert differences(rows(rate_b=None))["A→B"]["minif2f_rate"] is None


@pytest.mark.parametrize("kw, llm0, branch", [
    ({}, 0.36, "joint_works"),  # iter_1 46% > iter_0 40% and centroid held
    ({"c1": 4.9, "rate_a": 0.30}, 0.36, "no_branch"),  # better miniF2F, centroid eroded, iter_0 not ≈ 41.7%
    ({"rate_a": 0.50, "rate_b": 0.50, "rate_c": 0.51}, 0.45, "data_bottleneck"),
    ({"rate_a": 0.42, "rate_b": 0.40, "rate_c": 0.41}, 0.35, "data_not_problem"),
    ({"c1": 2.0}, 0.36, "joint_failed"),  # collapse overrides the miniF2F gain
])
def test_each_decision_branch_follows_from_the_numbers(kw, llm0, branch):
    d = decide(rows(**kw), llm0, {"status": "completed"}, centroid_red_line=3.0)
    assert d.branch == branch, d.conditions


def test_red_line_collapse_and_missing_numbers():
    assert decide(rows(c0=3.5, c1=2.9), 0.3, None, centroid_red_line=3.0).branch == "joint_failed"
    d = decide(rows(rate_b=None, rate_c=None), 0.3, None, centroid_red_line=3.0)
    assert d.branch == "insufficient_data" and d.missing == ["miniF2F iter_1 (config B, C or LLM-only)"]
    # The iter_1 LLM-only number alone is enough for the iter_1 side.
    assert decide(rows(rate_b=None, rate_c=None), 0.3, None, 3.0, iter1_llm_rate=0.5).branch == "joint_works"


def test_aborted_joint_run_gives_its_remedy():
    run = {"status": "aborted", "abort": {"condition": "centroid_l2_collapse", "step": 500,
                                          "remedy": "increase λ to 0.3 and restart from the last checkpoint"}}
    d = decide(rows(), 0.3, run, centroid_red_line=3.0)
    assert d.branch == "joint_aborted" and "increase λ to 0.3" in d.action


def test_report_has_table_differences_questions_and_decision():
    comp = build_comparison(profile="demo", rows=rows(), iter0_llm_rate=0.36, joint_run={"status": "completed",
                            "steps_done": 40, "total_steps": 40}, centroid_red_line=3.0)
    md = render_comparison_report(comp, generated_at="now")
    assert "not research results" in md and "Profile: **demo**" in md
    for label in ("A: iter_0 decoupled", "B: iter_1 LoRA, decoupled", "C: iter_1 full joint"):
        assert label in md
    assert "| A→B |" in md and "| B→C |" in md and "| A→C |" in md and "+6.0 pts" in md
    for q in ("1. Did competition data help?", "2. Did joint training protect embeddings?",
              "3. Did goal conditioning help the EBM?", "4. End-to-end: did miniF2F improve?"):
        assert q in md
    assert "Chosen branch: `joint_works`" in md and "Plan iter_2" in md
    assert "held (iter_1 ≥ iter_0)" in md
    assert "not research results" not in render_comparison_report(replace(comp, profile="full"))
    # comparison.json: the same keys in the same order as the report's inputs
    record = comp.to_json()
    assert list(record) == ["profile", "rows", "differences", "iter0_llm_only_rate", "iter1_llm_only_rate",
                            "decision", "questions", "joint_run"]
    assert record["joint_run"] == {"status": "completed", "steps_done": 40, "total_steps": 40, "abort": None}
    assert record["decision"]["branch"] == comp.decision.branch == "joint_works"
    assert record["rows"]["A"]["values"]["centroid_l2"] == comp.rows["A"].values["centroid_l2"] == 5.0


def test_comparison_report_asset_reads_the_metrics_json(tmp_path):
    from burnqed_assets.defs.reports import comparison_report
    from burnqed_assets.resources import BurnqedConfig
    from burnqed_assets.settings import get_settings

    s = get_settings("demo", tmp_path)
    p = s.paths
    write_json(p.embedding_metrics(0), {"centroid_l2": 1.0, "linear_probe_acc": 0.6})
    write_json(p.embedding_metrics(1), {"centroid_l2": 0.4, "linear_probe_acc": 0.55})
    write_json(p.ebm_config("A").metrics, {"rank1_d4+": 0.3, "sibling_discrimination": 0.1})
    write_json(p.ebm_config("B").metrics, {"rank1_d4+": 0.31})
    write_json(p.ebm_config("C").metrics, {"rank1_d4+": 0.33, "not_available": {"sibling_discrimination": "no groups"}})
    for it, tag, rate in ((0, "llm", 0.1), (0, "ebm", 0.1), (1, "config_b", 0.2), (1, "config_c", 0.25),
                          (1, "llm", 0.15)):
        write_json(p.search_summary(it, tag), {"rate": rate, "proved": int(rate * 20), "attempted": 20})
    write_json(p.joint_run_summary, {"status": "completed", "steps_done": 40, "total_steps": 40, "abort": None})
    result = dg.materialize([comparison_report], resources={"burnqed": BurnqedConfig(data_root=str(tmp_path))})
    meta = result.asset_materializations_for_node("comparison_report")[0].metadata
    assert meta["decision_branch"].value == "joint_failed"  # 0.4 < half of 1.0
    md = (s.paths.evals / "iter_1" / "analysis" / "comparison_report.md").read_text()
    assert "Chosen branch: `joint_failed`" in md and "n/a (no groups)" in md
    assert "LLM-only miniF2F (no EBM): iter_0 10.0%, iter_1 15.0%." in md
    assert (s.paths.evals / "iter_1" / "analysis" / "comparison.json").exists()
    assert meta["C_minif2f_rate"].value == pytest.approx(0.25)
