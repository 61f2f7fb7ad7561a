"""joint_iter1 through Dagster on a temp data root: trains, exports, checks pass; an abort is a
FAILED blocking ERROR check that stops downstream assets in the same run."""

from __future__ import annotations

import dagster as dg

from burnqed_assets.defs.joint import (
    ABORT_CHECK,
    SMOKE_CHECK,
    abort_check_result,
    joint_iter1,
)
from burnqed_assets.ebm.head import load_head
from burnqed_assets.joint import monitoring
from burnqed_assets.resources import BurnqedConfig
from burnqed_assets.settings import get_settings


def _checks(result):
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_joint_iter1_materializes_exports_and_passes_its_checks(data_root):
    s = get_settings("demo", data_root)
    result = dg.materialize([joint_iter1], resources={"burnqed": BurnqedConfig(data_root=str(data_root))})
    assert result.success
    checks = _checks(result)
    assert checks[ABORT_CHECK].passed and checks[SMOKE_CHECK].passed
    meta = result.asset_materializations_for_node("joint_iter1")[0].metadata
    assert meta["status"].value == "completed" and meta["steps_done"].value == s.joint.total_steps
    assert "data:image/png;base64," in meta["monitoring_plot"].value
    assert meta["head_hidden_dims"].value == [24, 12]
    assert load_head(str(s.paths.ebm_checkpoint(1))).hidden_dims == (24, 12)
    assert (s.paths.merged_model(1) / "config.json").exists()
    assert len(meta["probe_log"].value) >= 2 and meta["final_temperature"].value > 0


def test_abort_is_a_failed_blocking_error_check_that_stops_downstream(data_root, monkeypatch):
    strict = monitoring.AbortThresholds(centroid_l2_min=0.0, sft_loss_max=0.0, rank1_min=0.0, abort_after_step=5,
                                        temperature_stuck_steps=1000)
    monkeypatch.setattr(monitoring.AbortThresholds, "from_settings", classmethod(lambda cls, s: strict))
    ran = []

    @dg.asset(deps=[joint_iter1])
    def downstream_of_joint() -> None:
        ran.append(True)

    result = dg.materialize([joint_iter1, downstream_of_joint],
                            resources={"burnqed": BurnqedConfig(data_root=str(data_root))}, raise_on_error=False)
    check = _checks(result)[ABORT_CHECK]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert "sft_loss_high" in check.description and "decrease λ to 0.03" in check.description
    assert not ran  # blocked in the same run
    meta = result.asset_materializations_for_node("joint_iter1")[0].metadata
    assert meta["status"].value == "aborted" and "monitoring_plot" in meta  # curves still recorded
    s = get_settings("demo", data_root)
    assert not s.paths.merged_model(1).exists()


def test_abort_check_result_names_condition_and_remedy():
    abort = monitoring.AbortReason("temperature_stuck", 700, "T at 10 since step 150")
    thresholds = monitoring.AbortThresholds(temperature_stuck_steps=500)
    r = abort_check_result(abort, 699, thresholds)
    assert not r.passed and r.severity == dg.AssetCheckSeverity.ERROR
    assert "step 700" in r.description and "debug the energy scale" in r.description
    assert r.metadata["remedy"].value == monitoring.REMEDIES["temperature_stuck"]
    assert r.metadata["thresholds"].value["temperature_stuck_steps"] == 500
    ok = abort_check_result(None, 40, thresholds)
    assert ok.passed and "40 steps" in ok.description and ok.metadata["steps_done"].value == 40
