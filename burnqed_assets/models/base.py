"""The `base_model` step: build the demo model, or validate the full profile's local checkpoint."""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from burnqed_assets.models.demo_model import DemoModelSpec, build_demo_model
from burnqed_assets.models.loading import require_model_dir
from burnqed_assets.settings import DEMO_INPUTS, Settings

log = logging.getLogger(__name__)


def tokenizer_summary(tokenizer) -> dict[str, Any]:
    """What downstream steps rely on: pad/eos present, nothing appended when encoding (Gotcha 4)."""
    probe = "a b : ℝ\n⊢ a ≥ b ∧ b ≤ a"
    ids = tokenizer(probe)["input_ids"]
    return {
        "vocab_size": len(tokenizer),
        "eos_token": tokenizer.eos_token, "eos_token_id": tokenizer.eos_token_id,
        "pad_token": tokenizer.pad_token, "pad_token_id": tokenizer.pad_token_id,
        "appends_special_tokens": bool(ids) and (ids[-1] in tokenizer.all_special_ids
                                                 or ids[0] in tokenizer.all_special_ids),
        "probe_tokens": len(ids),
    }


def prepare_base_model(settings: Settings, spec: DemoModelSpec | None = None) -> dict[str, Any]:
    """Demo: build the tiny Llama into `settings.model.base_model_path`. Full: check that
    DeepSeek-Prover-V2-7B is there (clear error with how to obtain it) and that its config and
    tokenizer load offline. Returns metadata."""
    from transformers import AutoConfig, AutoTokenizer

    path = Path(settings.model.base_model_path)
    info: dict[str, Any] = {"path": str(path), "model_id": settings.model.base_model_id,
                            "profile": settings.profile}
    if settings.is_demo:
        report = build_demo_model(path, DEMO_INPUTS, spec or DemoModelSpec())
        info.update({k: v for k, v in asdict(report).items() if k not in ("path", "spec")})
        info["spec"] = report.spec
    require_model_dir(path, settings.model.how_to_obtain)
    config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    if tokenizer.eos_token is None:
        raise ValueError(f"tokenizer at {path} has no eos_token; generation could not stop")
    info.update({"architecture": (config.architectures or ["?"])[0],
                 "hidden_size": getattr(config, "hidden_size", None),
                 "num_hidden_layers": getattr(config, "num_hidden_layers", None)})
    info["tokenizer"] = tokenizer_summary(tokenizer)
    return info
