"""benchmarks/gpu_7b_shape.py runs end to end on CPU at a tiny scale (same code as on the GPU),
and its shipped config is the 6.9 B-parameter DeepSeek-Prover-V2-7B architecture."""

from __future__ import annotations

import importlib.util
import json

import pytest

from burnqed_assets.settings import REPO_ROOT

SCRIPT = REPO_ROOT / "benchmarks" / "gpu_7b_shape.py"


def _load():
    spec = importlib.util.spec_from_file_location("gpu_7b_shape", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_config_is_the_7b_architecture():
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(str(REPO_ROOT / "benchmarks" / "deepseek_prover_v2_7b"))
    assert config.architectures == ["LlamaForCausalLM"]
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads, config.intermediate_size,
            config.vocab_size) == (4096, 30, 32, 11008, 102400)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(6.91e9, rel=0.001)


@pytest.mark.slow
def test_script_measures_both_steps_on_a_tiny_model(tmp_path):
    module = _load()
    out = tmp_path / "shape.json"
    # one process per phase, as on a GPU (the child processes run the same script)
    report = module.main(["--scale", "tiny", "--device", "cpu", "--warmup", "0", "--steps", "1",
                          "--max-length", "128", "--encode-max-length", "32", "--out", str(out),
                          "--isolation", "process"])
    assert json.loads(out.read_text()) == report
    assert report["card"] == "cpu" and report["attn_implementation"] == "sdpa"
    sft, joint, nf4 = report["phases"]
    # exact token counts: one token per byte, every SFT example exactly --max-length tokens
    assert sft["phase"] == "sft" and sft["lora_r"] == 32 and sft["examples_per_step"] == 16
    assert sft["tokens_per_step"] == 16 * 128 and sft["tokens_per_s"] > 0
    assert joint["phase"] == "joint" and joint["lora_r"] == 64 and joint["k_negatives"] == 3
    assert joint["tokens_per_step"] == 4 * 128 + 4 * (1 + 3 + 1) * 32  # SFT records + (pos, 3 neg, goal) per group
    assert joint["tokens_per_s"] > 0 and joint["final_loss"] > 0
    assert joint["peak_gib"] is None and joint["within_plan_limit"] is None  # no GPU: no VRAM figure
    assert nf4["phase"] == "nf4_encoder" and "skipped" in nf4
