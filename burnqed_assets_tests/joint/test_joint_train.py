"""The joint training loop on the tiny model: completes and exports, resumes after an
interruption to the same result, and an abort keeps the last checkpoint and exports nothing."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from burnqed_assets.ebm.head import load_head
from burnqed_assets.joint.monitoring import AbortThresholds
from burnqed_assets.joint.train import (
    RUN_SUMMARY,
    SMOKE_RECORD,
    JointTrainConfig,
    TrainingInterrupted,
    list_checkpoints,
    lr_lambda,
    train_joint,
)

CONFIG = JointTrainConfig(lora_r=4, lora_alpha=8, lr_lora=5e-3, lr_ebm=5e-3, total_steps=6, warmup_steps=2,
                          log_every=2, eval_every=3, save_every=3, sft_batch_size=3, contrastive_batch_size=2,
                          sft_max_length=256, encode_max_length=128, val_fraction=0.34, probe_max_groups=4,
                          head_hidden_dims=(16, 8), device="cpu", gradient_checkpointing=False)
LENIENT = AbortThresholds(centroid_l2_min=0.0, sft_loss_max=100.0, rank1_min=0.0, abort_after_step=1000,
                          temperature_stuck_steps=1000)


def _run(tmp_path, name, tiny_model_dir, joint_files, config=CONFIG, thresholds=LENIENT, **kw):
    sft, traj = joint_files
    root = tmp_path / name
    return train_joint(config, thresholds, sft, traj, tiny_model_dir, root / "lora", root / "merged",
                       root / "ebm" / "goal_conditioned_head.pt", log=lambda _m: None, **kw), root


def test_lr_schedule_warms_up_then_decays():
    f = lr_lambda(warmup_steps=4, total_steps=20)
    assert [round(f(s), 2) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(4) == pytest.approx(1.0) and f(20) == pytest.approx(0.1) and f(10) > f(15)


def test_run_completes_and_exports_merged_model_and_head(tmp_path, tiny_model_dir, joint_files):
    from transformers import AutoModelForCausalLM

    result, root = _run(tmp_path, "a", tiny_model_dir, joint_files)
    assert result.status == "completed" and result.steps_done == 6 and result.abort is None
    assert result.smoke.passed and result.smoke.lora_grad_norm > 0 and not result.smoke.from_earlier_run
    assert [r["step"] for r in result.probe_log] == [0, 3, 6]
    assert [r["step"] for r in result.train_log] == [1, 2, 4, 6]
    assert all(r["sft_loss"] > 0 and 0.1 <= r["temperature"] <= 10 for r in result.train_log)
    assert result.probe_is_heldout and result.data.probe_groups > 0
    merged = AutoModelForCausalLM.from_pretrained(str(root / "merged"), local_files_only=True)
    assert not any("lora" in n for n, _ in merged.named_parameters())
    head = load_head(str(root / "ebm" / "goal_conditioned_head.pt"))
    assert head.d_model == 32
    assert (root / "lora" / "adapter_model.safetensors").exists()
    assert (root / "lora" / "monitoring.png").stat().st_size > 1000
    summary = json.loads((root / "lora" / RUN_SUMMARY).read_text())
    assert summary["status"] == "completed" and summary["merged_dir"] == str(root / "merged")
    # joint_run.json keeps its flat records: the smoke step and the data counts as JSON objects
    assert summary["smoke"] == json.loads((root / "lora" / SMOKE_RECORD).read_text()) == result.smoke.to_json()
    assert summary["data"]["probe_groups"] == result.data.probe_groups and "sft_bad_lines" in summary["data"]
    assert list(summary["smoke"])[:3] == ["passed", "loss", "sft_loss"] and "from_earlier_run" not in summary["smoke"]
    # The merged model differs from the base: the adapter was trained and folded in.
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), local_files_only=True)
    diff = sum(float((a - b).abs().sum()) for a, b in zip(merged.parameters(), base.parameters()))
    assert diff > 0


def test_interrupted_run_resumes_from_its_checkpoint_to_the_same_result(tmp_path, tiny_model_dir, joint_files):
    straight, root_a = _run(tmp_path, "straight", tiny_model_dir, joint_files)
    with pytest.raises(TrainingInterrupted):
        _run(tmp_path, "resumed", tiny_model_dir, joint_files, stop_after_step=4)
    ckpts = list_checkpoints(tmp_path / "resumed" / "lora")
    assert [s for s, _ in ckpts] == [3]  # step 4 was lost with the "crash"
    assert not (tmp_path / "resumed" / "merged").exists()
    resumed, root_b = _run(tmp_path, "resumed", tiny_model_dir, joint_files)
    assert resumed.resumed_from_step == 3 and resumed.status == "completed" and resumed.steps_done == 6
    assert resumed.smoke.passed and resumed.smoke.from_earlier_run  # recorded at the fresh start
    assert [r["step"] for r in resumed.train_log] == [r["step"] for r in straight.train_log]
    for a, b in zip(straight.train_log, resumed.train_log):
        assert a["sft_loss"] == pytest.approx(b["sft_loss"], rel=1e-4)
    ha = torch.load(root_a / "ebm" / "goal_conditioned_head.pt", weights_only=True)["state_dict"]
    hb = torch.load(root_b / "ebm" / "goal_conditioned_head.pt", weights_only=True)["state_dict"]
    for k in ha:
        assert torch.allclose(ha[k], hb[k], atol=1e-5), k
    # Re-materialising a finished run trains nothing and re-exports.
    again, _ = _run(tmp_path, "resumed", tiny_model_dir, joint_files)
    assert again.resumed_from_step == 6 and again.steps_done == 6 and again.status == "completed"
    assert again.smoke.from_earlier_run and again.as_dict()["smoke"]["from_earlier_run"] is True


def test_abort_stops_with_reason_keeps_last_checkpoint_and_exports_nothing(tmp_path, tiny_model_dir, joint_files):
    strict = replace(LENIENT, sft_loss_max=0.0, abort_after_step=3)
    config = replace(CONFIG, log_every=1, save_every=2)
    result, root = _run(tmp_path, "abort", tiny_model_dir, joint_files, config=config, thresholds=strict)
    assert result.status == "aborted" and result.abort.condition == "sft_loss_high"
    assert result.abort.step == 4 and result.steps_done == 3
    assert "decrease λ to 0.03" in result.abort.remedy
    assert [s for s, _ in list_checkpoints(root / "lora")] == [2]
    assert not (root / "merged").exists() and not (root / "ebm").exists()
    summary = json.loads((root / "lora" / RUN_SUMMARY).read_text())
    assert summary["status"] == "aborted" and summary["abort"] == {
        "condition": "sft_loss_high", "step": 4, "message": result.abort.message, "remedy": result.abort.remedy}
    assert (root / "lora" / "monitoring.png").exists()


def test_centroid_collapse_at_the_first_probe_aborts_before_training(tmp_path, tiny_model_dir, joint_files):
    strict = replace(LENIENT, centroid_l2_min=1e9)
    result, _root = _run(tmp_path, "collapse", tiny_model_dir, joint_files, thresholds=strict)
    assert result.status == "aborted" and result.abort.condition == "centroid_l2_collapse"
    assert result.steps_done == 0 and "increase λ to 0.3" in result.abort.remedy


def test_checkpoints_of_other_inputs_or_shape_are_superseded_not_resumed(tmp_path, tiny_model_dir, joint_files):
    with pytest.raises(TrainingInterrupted):
        _run(tmp_path, "shape", tiny_model_dir, joint_files, stop_after_step=3)
    with pytest.raises(TrainingInterrupted):  # another LoRA shape: starts fresh
        _run(tmp_path, "shape", tiny_model_dir, joint_files, config=replace(CONFIG, lora_r=8, lora_alpha=16),
             stop_after_step=3)
    lora = tmp_path / "shape" / "lora"
    assert [s for s, _ in list_checkpoints(lora / "superseded")] == [3]
    # Same shape, same data: resumes. Then the SFT data changes: starts fresh again.
    resumed, _ = _run(tmp_path, "shape", tiny_model_dir, joint_files, config=replace(CONFIG, lora_r=8, lora_alpha=16),
                      stop_after_step=None)
    assert resumed.resumed_from_step == 3
    sft, _traj = joint_files
    sft.write_text(sft.read_text().splitlines()[0] + "\n" + sft.read_text())
    fresh, _ = _run(tmp_path, "shape", tiny_model_dir, joint_files, config=replace(CONFIG, lora_r=8, lora_alpha=16))
    assert fresh.resumed_from_step is None and fresh.smoke.passed and fresh.data.sft_records == 13


def test_joint_training_lowers_the_sft_loss(tmp_path, tiny_model_dir, joint_files):
    config = replace(CONFIG, total_steps=30, log_every=5, eval_every=30, save_every=30, lr_lora=2e-2,
                     warmup_steps=3, lora_dropout=0.0)
    result, _ = _run(tmp_path, "learn", tiny_model_dir, joint_files, config=config)
    first, last = result.train_log[0], result.train_log[-1]
    assert result.status == "completed"
    assert last["sft_loss"] < first["sft_loss"] - 0.2, (first, last)  # tied tiny embeddings learn slowly
    assert all(r["lr_lora"] > 0 and r["lr_ebm"] > 0 for r in result.train_log)


def test_head_shape_follows_the_decoupled_rule_without_an_iter0_head(tiny_model_dir):
    from burnqed_assets.ebm.train import default_hidden_dims
    from burnqed_assets.joint.train import build_prover

    prover = build_prover(tiny_model_dir, replace(CONFIG, head_hidden_dims=None), None)
    assert prover.ebm_head.hidden_dims == default_hidden_dims(32) and prover.ebm_head.d_model == 32
