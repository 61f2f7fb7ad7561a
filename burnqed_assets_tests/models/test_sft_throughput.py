"""SFT throughput settings: attention kernel choice, a fixed seeded validation subset, and
tokens/s + peak memory in the result (the asset's metadata is the result's fields)."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from sft_fixtures import write_sft_split

from burnqed_assets.data.io import LineReport
from burnqed_assets.models.loading import PeakMemory, attention_implementation, load_tokenizer
from burnqed_assets.models.sft import SftRunConfig, eval_subset, example_length, load_sft_records, train_lora


def test_attention_kernel_choice(monkeypatch):
    assert attention_implementation("cpu", "float32") == "sdpa"
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "flash_attn" else real(name, *a))
    assert attention_implementation("cuda", "bfloat16") == "flash_attention_2"
    assert attention_implementation("cuda", "float32") == "sdpa"  # FA2 has no fp32 kernel
    assert attention_implementation("cpu", "bfloat16") == "sdpa"
    assert attention_implementation("cuda", "bfloat16", requested="eager") == "eager"
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "flash_attn" else real(name, *a))
    assert attention_implementation("cuda", "bfloat16") == "sdpa"  # not installed


def test_eval_subset_is_fixed_seeded_and_sized():
    rows = [{"i": i} for i in range(100)]
    a = eval_subset(rows, 10, seed=42)
    assert len(a) == 10 and a == eval_subset(rows, 10, seed=42)
    assert [r["i"] for r in a] == sorted(r["i"] for r in a)  # file order
    assert a != eval_subset(rows, 10, seed=7)
    assert eval_subset(rows, None, 42) == rows and eval_subset(rows, 500, 42) == rows


@pytest.mark.slow
def test_training_reports_tokens_per_second_peak_memory_and_the_eval_subset(demo_base_model_dir, tmp_path):
    train, val = write_sft_split(tmp_path / "sft", n_train=12, n_val=9)
    config = SftRunConfig(lora_r=4, lora_alpha=8, max_steps=3, batch_size=4, grad_accumulation=1, eval_steps=3,
                          save_steps=3, max_length=1024, cpu_threads=1, eval_subset_size=4, seed=3)
    result = train_lora(demo_base_model_dir, train, val, tmp_path / "lora", config)
    assert result.attn_implementation == "sdpa" and result.val_examples == 9
    assert result.eval_examples == 4 and result.eval_subset_seed == 3
    # tokens: 3 steps x 4 examples, each prompt + completion + EOS (padding-free: no pad tokens)
    tok = load_tokenizer(demo_base_model_dir)
    rows = load_sft_records(train, LineReport())
    lengths = sorted(example_length(tok, r["prompt"], r["completion"]) for r in rows)
    assert sum(lengths[:12]) >= result.train_tokens >= 12 * lengths[0] > 0
    assert result.train_step_seconds > 0
    assert result.tokens_per_s == pytest.approx(result.train_tokens / result.train_step_seconds, rel=0.01)
    assert result.peak_memory_kind == "process_peak_rss" and result.peak_memory_gb > 0.1
    meta = result.metadata()
    assert {"tokens_per_s", "peak_memory_gb", "eval_examples", "attn_implementation"} <= set(meta)


def test_peak_memory_on_cpu_is_process_rss():
    mem = PeakMemory(torch.device("cpu"))
    mem.start()
    block = torch.ones(64 * 1024 * 1024 // 4)  # 64 MB
    assert mem.peak_gb() >= 0.06 and mem.kind == "process_peak_rss"
    del block
