"""The `base_model` step: build the demo model, or validate the full profile's local checkpoint."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from burnqed_assets.models.demo_model import BuildReport, DemoModelSpec, build_demo_model
from burnqed_assets.models.loading import require_model_dir
from burnqed_assets.settings import DEMO_INPUTS, Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenizerSummary:
    """What downstream steps rely on: pad/eos present, nothing appended when encoding (Gotcha 4)."""

    vocab_size: int
    eos_token: str | None
    eos_token_id: int | None
    pad_token: str | None
    pad_token_id: int | None
    appends_special_tokens: bool
    probe_tokens: int


@dataclass(frozen=True)
class BaseModelInfo:
    """The base model the graph trains on: where it is, its shape and tokenizer, and (demo) how it was built."""

    path: str
    model_id: str
    profile: str
    architecture: str
    hidden_size: int | None
    num_hidden_layers: int | None
    tokenizer: TokenizerSummary
    build: BuildReport | None = None  # the demo's tiny model, built by this step; None in full

    def metadata(self) -> dict[str, Any]:
        """Flat plain values in the asset's metadata order; the build's corpus file list and spec
        are left out (the asset shows the spec as JSON)."""
        meta: dict[str, Any] = {"path": self.path, "model_id": self.model_id, "profile": self.profile}
        if self.build is not None:
            meta.update({k: v for k, v in asdict(self.build).items() if k not in ("path", "spec", "corpus_files")})
        meta.update({"architecture": self.architecture, "hidden_size": self.hidden_size,
                     "num_hidden_layers": self.num_hidden_layers})
        meta.update({f"tokenizer_{k}": v for k, v in asdict(self.tokenizer).items()})
        return meta


def tokenizer_summary(tokenizer) -> TokenizerSummary:
    probe = "a b : ℝ\n⊢ a ≥ b ∧ b ≤ a"
    ids = tokenizer(probe)["input_ids"]
    return TokenizerSummary(
        vocab_size=len(tokenizer),
        eos_token=tokenizer.eos_token, eos_token_id=tokenizer.eos_token_id,
        pad_token=tokenizer.pad_token, pad_token_id=tokenizer.pad_token_id,
        appends_special_tokens=bool(ids) and (ids[-1] in tokenizer.all_special_ids
                                              or ids[0] in tokenizer.all_special_ids),
        probe_tokens=len(ids),
    )


def prepare_base_model(settings: Settings, spec: DemoModelSpec | None = None) -> BaseModelInfo:
    """Demo: build the tiny Llama into `settings.model.base_model_path`. Full: check that
    DeepSeek-Prover-V2-7B is there (clear error with how to obtain it) and that its config and
    tokenizer load offline."""
    from transformers import AutoConfig, AutoTokenizer

    path = Path(settings.model.base_model_path)
    build = build_demo_model(path, DEMO_INPUTS, spec or DemoModelSpec()) if settings.is_demo else None
    require_model_dir(path, settings.model.how_to_obtain)
    config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    if tokenizer.eos_token is None:
        raise ValueError(f"tokenizer at {path} has no eos_token; generation could not stop")
    return BaseModelInfo(path=str(path), model_id=settings.model.base_model_id, profile=settings.profile,
                         architecture=(config.architectures or ["?"])[0],
                         hidden_size=getattr(config, "hidden_size", None),
                         num_hidden_layers=getattr(config, "num_hidden_layers", None),
                         tokenizer=tokenizer_summary(tokenizer), build=build)
