"""A few real SFT steps: interruption + resume, loss bookkeeping, merge, load and generate."""

from __future__ import annotations

import json
import math

import pytest
from sft_fixtures import write_sft_split
from transformers import AutoModelForCausalLM, TrainerCallback

from burnqed_assets.models.generation import generate_tactics
from burnqed_assets.models.loading import load_tokenizer
from burnqed_assets.models.merge import merge_lora
from burnqed_assets.models.sft import HISTORY_FILE, SftRunConfig, train_lora

pytestmark = pytest.mark.slow


class Interrupt(RuntimeError):
    pass


class InterruptAt(TrainerCallback):
    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise Interrupt(f"simulated crash at step {self.step}")


def test_train_interrupt_resume_merge_generate(demo_base_model_dir, tmp_path):
    train, val = write_sft_split(tmp_path / "sft", n_train=24, n_val=6)
    out = tmp_path / "lora"
    config = SftRunConfig(lora_r=8, lora_alpha=16, learning_rate=5e-3, max_steps=4, batch_size=4,
                          grad_accumulation=1, eval_steps=2, save_steps=2, logging_steps=1, max_length=1024,
                          cpu_threads=1)
    with pytest.raises(Interrupt):
        train_lora(demo_base_model_dir, train, val, out, config, extra_callbacks=[InterruptAt(3)])
    assert (out / "checkpoint-2").is_dir() and not (out / "adapter").exists()

    result = train_lora(demo_base_model_dir, train, val, out, config)
    assert result.resumed_from is not None and result.resumed_from.endswith("checkpoint-2")
    assert result.global_step == 4
    assert result.train_examples == 24 and result.val_examples == 6
    assert not result.non_finite_loss
    steps_logged = [h["step"] for h in result.history if "loss" in h]
    assert 3 in steps_logged and 4 in steps_logged
    assert all(math.isfinite(h["loss"]) and "grad_norm" in h and "learning_rate" in h
               for h in result.history if "loss" in h)
    assert result.final_val_loss is not None and math.isfinite(result.final_val_loss)
    assert (out / "adapter" / "adapter_config.json").exists()
    assert json.loads((out / HISTORY_FILE).read_text())
    assert result.loss_curve and (out / "loss_curve.png").stat().st_size > 0

    # A finished run re-materialized with the same data and settings does not train again.
    again = train_lora(demo_base_model_dir, train, val, out, config)
    assert again.reused and again.global_step == 4 and again.final_val_loss == result.final_val_loss

    merged = tmp_path / "merged"
    info = merge_lora(demo_base_model_dir, out / "adapter", merged)
    assert info.parameters > 0 and info.path == str(merged)
    assert info.weights_bytes == sum(f.stat().st_size for f in merged.glob("*.safetensors")) > 0
    model = AutoModelForCausalLM.from_pretrained(str(merged), local_files_only=True).eval()
    assert not any("lora" in name for name, _ in model.named_parameters())
    tok = load_tokenizer(merged)
    state = json.loads(val.read_text().splitlines()[0])["prompt"]
    from burnqed_assets.data.prompt import PROMPT_PREFIX, PROMPT_SUFFIX

    state = state[len(PROMPT_PREFIX):-len(PROMPT_SUFFIX)]
    tactics = generate_tactics(model, tok, state, n=3, temperature=1.0, max_new_tokens=16)
    assert tactics and all(isinstance(t, str) and t for t, _ in tactics)


def test_changed_data_does_not_resume_stale_checkpoints(demo_base_model_dir, tmp_path):
    train, val = write_sft_split(tmp_path / "sft", n_train=8, n_val=2)
    out = tmp_path / "lora"
    config = SftRunConfig(lora_r=4, lora_alpha=8, max_steps=2, batch_size=4, grad_accumulation=1,
                          eval_steps=2, save_steps=2, max_length=1024, cpu_threads=1)
    first = train_lora(demo_base_model_dir, train, val, out, config)
    assert first.resumed_from is None and (out / "checkpoint-2").is_dir()
    write_sft_split(tmp_path / "sft", n_train=12, n_val=2)  # new data
    second = train_lora(demo_base_model_dir, train, val, out, config)
    assert second.resumed_from is None and second.train_examples == 12
