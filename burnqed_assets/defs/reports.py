"""Phase 4.4–4.5: comparison_report (A/B/C table, differences, the four questions, the decision)."""
# No `from __future__ import annotations` in defs/: Dagster inspects the context annotation.

from pathlib import Path
from typing import Any

import dagster as dg

from burnqed_assets.data.io import atomic_open, read_json, write_json
from burnqed_assets.defs.joint import GROUP_COMPARE
from burnqed_assets.resources import BurnqedConfig


def _json(path: Path) -> dict[str, Any] | None:
    return read_json(path) if path.exists() else None


@dg.asset(
    group_name=GROUP_COMPARE,
    deps=["joint_iter1", "embedding_metrics", "ebm_metrics_iter0", "minif2f_v2s_iter0", "minif2f_v2s_iter0_ebm",
          "embedding_metrics_iter1", "ebm_metrics_config_b", "ebm_metrics_config_c", "minif2f_v2s_config_b",
          "minif2f_v2s_config_c", "minif2f_v2s_iter1"],
    description="data/evals/iter_1/analysis/comparison_report.md (plan Tasks 4.4–4.5): the 3-row A/B/C table, "
                "A→B / B→C / A→C differences, the four questions answered from the numbers, and the Task 4.5 "
                "decision rule applied with the chosen branch stated; plus comparison.json. Names the profile.")
def comparison_report(context: dg.AssetExecutionContext, burnqed: BurnqedConfig) -> dg.MaterializeResult:
    from burnqed_assets.reports.comparison import (
        build_comparison,
        config_result,
        render_comparison_report,
    )

    s = burnqed.settings()
    p = s.paths
    emb0, emb1 = _json(p.embedding_metrics(0)), _json(p.embedding_metrics(1))
    rows = {
        "A": config_result("A", emb0, _json(p.ebm_config("A").metrics), _json(p.search_summary(0, "ebm"))),
        "B": config_result("B", emb1, _json(p.ebm_config("B").metrics), _json(p.search_summary(1, "config_b"))),
        "C": config_result("C", emb1, _json(p.ebm_config("C").metrics), _json(p.search_summary(1, "config_c"))),
    }
    llm0 = _json(p.search_summary(0, "llm")) or {}
    llm1 = _json(p.search_summary(1, "llm")) or {}
    iter0_llm_rate = llm0.get("rate") if isinstance(llm0.get("rate"), (int, float)) else None
    iter1_llm_rate = llm1.get("rate") if isinstance(llm1.get("rate"), (int, float)) else None
    comparison = build_comparison(profile=s.profile, rows=rows, iter0_llm_rate=iter0_llm_rate,
                                  iter1_llm_rate=iter1_llm_rate,
                                  joint_run=_json(p.joint_run_summary),
                                  centroid_red_line=s.thresholds.centroid_l2_red_line)
    markdown = render_comparison_report(comparison)
    with atomic_open(p.comparison_report) as fh:
        fh.write(markdown)
    write_json(p.comparison_json, comparison.to_json())
    decision = comparison.decision
    context.log.info(f"Task 4.5 decision: {decision.branch} — {decision.title}")
    meta: dict[str, Any] = {
        "path": dg.MetadataValue.path(str(p.comparison_report)), "profile": s.profile,
        "decision_branch": decision.branch, "decision": decision.title, "next_step": decision.action,
        "missing": decision.missing, "report": dg.MetadataValue.md(markdown),
    }
    for name, row in rows.items():
        for key, value in row.values.items():
            if value is not None:
                meta[f"{name}_{key}"] = dg.MetadataValue.float(value)
    return dg.MaterializeResult(metadata=meta)


defs = dg.Definitions(assets=[comparison_report])
