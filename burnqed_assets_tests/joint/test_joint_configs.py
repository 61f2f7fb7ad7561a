"""Configs B and C through the Phase 2 factories on the joint run's outputs, then the report."""

from __future__ import annotations

import dagster as dg

from burnqed_assets.defs import joint as joint_defs
from burnqed_assets.defs.reports import comparison_report
from burnqed_assets.resources import BurnqedConfig
from burnqed_assets.settings import get_settings


def test_configs_b_and_c_are_measured_by_the_phase2_code(data_root):
    s = get_settings("demo", data_root)
    resources = {"burnqed": BurnqedConfig(data_root=str(data_root))}
    assets = [joint_defs.joint_iter1, joint_defs.embeddings_iter1, joint_defs.embedding_metrics_iter1,
              joint_defs.ebm_iter1_decoupled, joint_defs.ebm_metrics_config_b, joint_defs.ebm_metrics_config_c]
    checks = [c for c in joint_defs.defs.asset_checks
              if {k.asset_key.to_user_string() for k in c.check_keys} <= {a.key.to_user_string() for a in assets}]
    result = dg.materialize([*assets, *checks], resources=resources, raise_on_error=False)
    failed = [e for e in result.all_events if e.is_step_failure]
    assert result.success, failed[:1]
    assert (s.paths.embeddings / "iter_1" / "state_embeddings.npy").exists()
    assert (s.paths.evals / "iter_1" / "config_B_frozen_ebm" / "goal_conditioned_head.pt").exists()
    b, c = s.paths.ebm_config("B").metrics, s.paths.ebm_config("C").metrics
    assert c == s.paths.evals / "iter_1" / "config_C_joint" / "ebm_metrics.json"
    assert b.exists() and c.exists()
    from burnqed_assets.data.io import read_json

    rb, rc = read_json(b), read_json(c)
    # Both heads scored on the same validation theorems of the same embeddings.
    assert rb["counts"].get("val_theorems") == rc["counts"].get("val_theorems")
    evals = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert "centroid_l2_held" in evals

    report = dg.materialize([comparison_report], resources=resources)
    meta = report.asset_materializations_for_node("comparison_report")[0].metadata
    # No iter_0 numbers and no miniF2F runs here: the rule says which numbers it lacks.
    assert meta["decision_branch"].value == "insufficient_data"
    assert meta["B_centroid_l2"].value == meta["C_centroid_l2"].value
