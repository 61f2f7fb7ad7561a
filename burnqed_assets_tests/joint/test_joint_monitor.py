"""Each of the plan's abort conditions, triggered on purpose by injected metric streams."""

from __future__ import annotations

import math

import pytest

from burnqed_assets.joint.monitoring import REMEDIES, AbortThresholds, JointMonitor
from burnqed_assets.settings import get_settings

T = AbortThresholds(centroid_l2_min=3.0, sft_loss_max=0.5, rank1_min=0.25, abort_after_step=100,
                    temperature_floor=0.1, temperature_ceiling=10.0, temperature_stuck_steps=50)


def healthy(monitor: JointMonitor, steps: range, sft: float = 0.3, temp: float = 1.0):
    for s in steps:
        reason = monitor.observe_step(s, sft_loss=sft, ebm_loss=1.2, lambda_ebm=0.1, temperature=temp, grad_norm=0.5)
        if reason is not None:
            return reason
    return None


def test_healthy_run_never_aborts_and_logs_every_n_steps():
    m = JointMonitor(T, log_every=10)
    assert healthy(m, range(1, 301)) is None
    for s in range(0, 301, 100):
        assert m.observe_probe(s, centroid_l2=5.0, rank1=0.5) is None
    assert [r["step"] for r in m.train_log][:3] == [1, 10, 20]
    row = m.train_log[-1]
    assert row["lambda_ebm_loss"] == pytest.approx(0.1 * 1.2)
    assert row["window"] == 10 and row["temperature"] == 1.0


def test_centroid_collapse_aborts_at_any_eval_with_remedy():
    m = JointMonitor(T, log_every=10)
    reason = m.observe_probe(0, centroid_l2=2.9, rank1=0.9)
    assert reason is not None and reason.condition == "centroid_l2_collapse" and reason.step == 0
    assert "increase λ to 0.3" in str(reason) and reason.remedy == REMEDIES["centroid_l2_collapse"]


def test_sft_loss_aborts_only_after_the_grace_period():
    m = JointMonitor(T, log_every=10)
    assert healthy(m, range(1, 101), sft=0.9) is None  # high but before abort_after_step
    reason = healthy(m, range(101, 200), sft=0.9)
    assert reason is not None and reason.condition == "sft_loss_high"
    assert reason.step == 110  # judged at the first log window after step 100
    assert "decrease λ to 0.03" in str(reason)


def test_sft_loss_spike_inside_a_window_does_not_abort_when_the_mean_is_fine():
    m = JointMonitor(T, log_every=10)
    healthy(m, range(1, 105))
    assert m.observe_step(105, 0.9, 1.0, 0.1, 1.0, 0.5) is None
    assert healthy(m, range(106, 121), sft=0.3) is None


def test_rank1_aborts_only_after_the_grace_period():
    m = JointMonitor(T, log_every=10)
    assert m.observe_probe(100, centroid_l2=5.0, rank1=0.1) is None
    reason = m.observe_probe(150, centroid_l2=5.0, rank1=0.1)
    assert reason is not None and reason.condition == "ebm_rank1_low" and "check the data pipeline" in str(reason)


@pytest.mark.parametrize("bound", [0.1, 10.0])
def test_temperature_stuck_at_a_bound_aborts_after_n_steps(bound):
    m = JointMonitor(T, log_every=10)
    assert healthy(m, range(1, 11)) is None
    assert healthy(m, range(11, 60), temp=bound) is None  # 49 steps at the bound
    reason = healthy(m, range(60, 70), temp=bound)
    assert reason is not None and reason.condition == "temperature_stuck" and reason.step == 61
    assert ("floor" if bound < 1 else "ceiling") in reason.message and "debug the energy scale" in str(reason)


def test_temperature_leaving_the_bound_resets_the_counter():
    m = JointMonitor(T, log_every=10)
    assert healthy(m, range(1, 41), temp=0.1) is None
    assert healthy(m, range(41, 42), temp=0.8) is None
    assert healthy(m, range(42, 90), temp=0.1) is None


@pytest.mark.parametrize("field", ["sft_loss", "ebm_loss", "temperature", "grad_norm"])
def test_any_nan_aborts_immediately(field):
    m = JointMonitor(T, log_every=10)
    values = {"sft_loss": 0.3, "ebm_loss": 1.0, "lambda_ebm": 0.1, "temperature": 1.0, "grad_norm": 0.4}
    values[field] = math.nan if field != "grad_norm" else math.inf
    reason = m.observe_step(3, **values)
    assert reason is not None and reason.condition == "non_finite" and reason.step == 3
    assert "gradient clipping" in str(reason) and m.train_log[-1]["step"] == 3


def test_nan_probe_aborts():
    reason = JointMonitor(T).observe_probe(500, centroid_l2=math.nan, rank1=0.5)
    assert reason is not None and reason.condition == "non_finite"


def test_monitor_state_survives_a_resume():
    m = JointMonitor(T, log_every=10)
    healthy(m, range(1, 36), temp=10.0)
    m2 = JointMonitor(T, log_every=10)
    m2.load_state_dict(m.state_dict())
    assert m2.train_log == m.train_log
    reason = healthy(m2, range(36, 60), temp=10.0)  # the stuck counter started at step 1
    assert reason is not None and reason.step == 51


def test_thresholds_come_from_the_profile():
    full = AbortThresholds.from_settings(get_settings("full"))
    assert (full.centroid_l2_min, full.sft_loss_max, full.rank1_min, full.abort_after_step,
            full.temperature_stuck_steps) == (3.0, 0.5, 0.25, 2000, 500)
    demo = AbortThresholds.from_settings(get_settings("demo"))
    assert demo.abort_after_step < full.abort_after_step
