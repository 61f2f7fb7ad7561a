"""Joint training reports its throughput (tokens/s over the training steps) and peak memory,
and loads the backbone with the chosen attention kernel (SDPA on CPU)."""

from __future__ import annotations

import pytest

from burnqed_assets.joint.monitoring import AbortThresholds
from burnqed_assets.joint.train import JointTrainConfig, build_prover, load_joint_data, train_joint

CONFIG = JointTrainConfig(lora_r=4, lora_alpha=8, lr_lora=5e-3, lr_ebm=5e-3, total_steps=3, warmup_steps=1,
                          log_every=1, eval_every=3, save_every=3, sft_batch_size=3, contrastive_batch_size=2,
                          sft_max_length=256, encode_max_length=128, val_fraction=0.34, probe_max_groups=4,
                          head_hidden_dims=(16, 8), device="cpu", gradient_checkpointing=False)
LENIENT = AbortThresholds(centroid_l2_min=0.0, sft_loss_max=100.0, rank1_min=0.0, abort_after_step=1000,
                          temperature_stuck_steps=1000)


def test_joint_result_has_tokens_per_second_and_peak_memory(tmp_path, tiny_model_dir, joint_files):
    sft, traj = joint_files
    result = train_joint(CONFIG, LENIENT, sft, traj, tiny_model_dir, tmp_path / "lora", tmp_path / "merged",
                         tmp_path / "head.pt", log=lambda _m: None)
    assert result.status == "completed" and result.attn_implementation == "sdpa"
    # bounds from the batches themselves: every SFT token, plus at most encode_max_length per embedded text
    dataset, _, _, _ = load_joint_data(sft, traj, CONFIG)
    prover = build_prover(tiny_model_dir, CONFIG, (16, 8))
    sft_tokens = texts = 0
    for step in range(CONFIG.total_steps):
        batch = dataset.batch(step)
        sft_tokens += int(prover.sft_inputs(batch.sft)["attention_mask"].sum())
        texts += sum(2 + len(g.hard_negatives) + len(g.easy_negatives) for g in batch.groups)
    assert sft_tokens < result.train_tokens <= sft_tokens + texts * CONFIG.encode_max_length
    assert result.tokens_per_s == pytest.approx(result.train_tokens / result.train_step_seconds, rel=0.01)
    assert result.peak_memory_kind == "process_peak_rss" and result.peak_memory_gb > 0.1
    assert result.as_dict()["tokens_per_s"] == result.tokens_per_s  # joint_run.json and the asset metadata
