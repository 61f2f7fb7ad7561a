from __future__ import annotations

import hashlib

import dagster as dg
import pytest
import torch

from burnqed_assets.models.demo_model import (
    LEAN_SYMBOLS,
    DemoModelSpec,
    build_demo_model,
)
from burnqed_assets.models.loading import (
    ModelNotFoundError,
    load_causal_lm,
    load_tokenizer,
    require_model_dir,
)
from burnqed_assets.data.prompt import format_prompt
from burnqed_assets.resources import BurnqedConfig
from burnqed_assets.settings import DEMO_INPUTS, get_settings


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_demo_model_is_a_standard_hf_directory(demo_base_model_dir):
    require_model_dir(demo_base_model_dir)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (demo_base_model_dir / name).exists(), name
    model = load_causal_lm(demo_base_model_dir, device="cpu")
    assert model.config.model_type == "llama"
    tok = load_tokenizer(demo_base_model_dir)
    ids = tok(format_prompt("x : ℕ\n⊢ x = x"), return_tensors="pt")["input_ids"]
    logits = model(input_ids=ids).logits
    assert logits.shape == (1, ids.shape[1], len(tok))
    assert torch.isfinite(logits).all()


def test_tokenizer_has_pad_eos_and_appends_nothing(demo_base_model_dir):
    tok = load_tokenizer(demo_base_model_dir)
    assert tok.pad_token is not None and tok.eos_token is not None
    assert tok.pad_token_id != tok.eos_token_id  # pad must never be mistaken for a learned EOS
    text = "a b : ℝ\n⊢ a ≥ b"
    ids = tok(text)["input_ids"]
    assert not set(ids) & set(tok.all_special_ids), "encoding appended a special token (Gotcha 4)"
    assert tok.decode(ids) == text


@pytest.mark.parametrize("symbol", LEAN_SYMBOLS.split())
def test_tokenizer_covers_lean_symbols(demo_base_model_dir, symbol):
    tok = load_tokenizer(demo_base_model_dir)
    ids = tok(symbol, add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids
    assert tok.decode(ids) == symbol


def test_frequent_lean_symbols_are_single_tokens(demo_base_model_dir):
    tok = load_tokenizer(demo_base_model_dir)
    # Byte-level BPE merges a symbol with its leading space, as it appears in states.
    for symbol in ("⊢", " ℝ", " ≥", " ∧"):
        assert len(tok(symbol, add_special_tokens=False)["input_ids"]) == 1, symbol


def test_build_is_deterministic(tmp_path):
    spec = DemoModelSpec(warmup_steps=3)  # the warm-up must be reproducible too
    build_demo_model(tmp_path / "a", DEMO_INPUTS, spec)
    build_demo_model(tmp_path / "b", DEMO_INPUTS, spec)
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert _digest(tmp_path / "a" / name) == _digest(tmp_path / "b" / name), name


def test_rebuild_replaces_directory_atomically(tmp_path):
    dest, spec = tmp_path / "m", DemoModelSpec(warmup_steps=0)
    build_demo_model(dest, DEMO_INPUTS, spec)
    (dest / "stale.txt").write_text("old")
    build_demo_model(dest, DEMO_INPUTS, spec)
    assert not (dest / "stale.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temp dirs left behind


def test_full_profile_missing_model_names_path_and_how_to_obtain(tmp_path):
    settings = get_settings("full", tmp_path)
    with pytest.raises(ModelNotFoundError) as err:
        require_model_dir(settings.model.base_model_path, settings.model.how_to_obtain)
    msg = str(err.value)
    assert str(settings.model.base_model_path) in msg
    assert "DeepSeek-Prover-V2-7B" in msg


def test_base_model_asset_materializes(tmp_path, monkeypatch):
    """The asset's wiring and metadata. A short warm-up: the default spec's 400 steps take ~2 min on
    2 cores and are built by the whole-graph demo test (data/test_data_assets.py) and CI's demo run."""
    import functools

    from burnqed_assets.defs.sft import base_model
    from burnqed_assets.models import base as base_module

    monkeypatch.setattr(base_module, "DemoModelSpec", functools.partial(DemoModelSpec, warmup_steps=4))
    result = dg.materialize([base_model], resources={"burnqed": BurnqedConfig(data_root=str(tmp_path))})
    assert result.success
    meta = result.asset_materializations_for_node("base_model")[0].metadata
    assert meta["parameters"].value > 0
    assert meta["tokenizer_appends_special_tokens"].value is False
    # the keys the UI and earlier runs show (BaseModelInfo.metadata() plus the path and spec values)
    assert list(meta) == [
        "path", "model_id", "profile", "parameters", "vocab_size", "corpus_texts", "corpus_chars", "build_seconds",
        "warmup_steps", "warmup_final_loss", "architecture", "hidden_size", "num_hidden_layers",
        "tokenizer_vocab_size", "tokenizer_eos_token", "tokenizer_eos_token_id", "tokenizer_pad_token",
        "tokenizer_pad_token_id", "tokenizer_appends_special_tokens", "tokenizer_probe_tokens", "spec"]
    assert meta["spec"].value["hidden_size"] == meta["hidden_size"].value
    # the spec the asset built with is the one recorded (and the warm-up ran)
    assert meta["warmup_steps"].value == meta["spec"].value["warmup_steps"] == 4
    assert meta["warmup_final_loss"].value is not None
    assert (tmp_path / "models" / "base" / "demo-tiny-llama" / "model.safetensors").exists()


def test_base_model_asset_full_profile_fails_clearly(tmp_path):
    from burnqed_assets.defs.sft import base_model

    result = dg.materialize([base_model], resources={"burnqed": BurnqedConfig(profile="full", data_root=str(tmp_path))},
                            raise_on_error=False)
    assert not result.success
