"""Joint SFT + EBM training configuration (plan Tasks 3.1–4.2). Light: imports no ML library.

A profile holds one `JointConfig` (settings.joint). Facts owned by other sections (the EBM's
weight decay and validation split, the data seed, the model's device and dtype, the max lengths
from token geometry) are filled in for a run by `for_run`, so each is written once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class JointConfig:
    lora_r: int = 64
    lora_alpha: int = 128
    lora_dropout: float = 0.05
    lr_lora: float = 2e-5
    lr_ebm: float = 3e-5
    ebm_weight_decay: float = 0.01
    lambda_ebm: float = 0.1
    total_steps: int = 6000
    warmup_steps: int = 300
    k_negatives: int = 3
    hard_ratio: float = 0.6
    log_every: int = 50
    eval_every: int = 500
    save_every: int = 1000
    sft_batch_size: int = 4  # SFT records per step (stream 1)
    contrastive_batch_size: int = 4  # contrastive groups per step (stream 2), each 1 + K states + goal
    sft_max_length: int = 2048
    encode_max_length: int = 512
    grad_clip: float = 1.0
    val_fraction: float = 0.1  # the EBM phase's theorem-level validation split (held out here too)
    split_seed: int = 42
    probe_max_groups: int = 256
    keep_checkpoints: int = 2
    # Fallback head shape when no iter-0 head exists to copy (None = the head's default, the plan's).
    head_hidden_dims: tuple[int, ...] | None = None
    seed: int = 42
    device: str = "auto"
    dtype: str = "float32"
    cpu_threads: int = 0  # torch intra-op threads while training on CPU (0 = leave torch's default)
    gradient_checkpointing: bool = True  # full: 7B activations at 2048 tokens (plan: < 36 GB)
    # "auto": FlashAttention 2 when flash_attn is installed and the run is CUDA bf16/fp16, else SDPA
    attn_implementation: str = "auto"
    # monitoring (plan Task 4.1): abort lines are checked after this step; a temperature at a
    # clamp bound for this many steps is "stuck"
    abort_after_step: int = 2000
    temperature_stuck_steps: int = 500

    def for_run(self, settings: Any, sft_max_length: int | None = None,
                encode_max_length: int | None = None) -> JointConfig:
        """This profile's config with the facts other sections own (settings is a `Settings`)."""
        return replace(self, ebm_weight_decay=settings.ebm.weight_decay, val_fraction=settings.ebm.val_fraction,
                       split_seed=settings.ebm.split_seed, seed=settings.data.seed,
                       sft_max_length=sft_max_length or settings.sft.max_length,
                       encode_max_length=encode_max_length or settings.ebm.encode_max_length,
                       device=settings.model.device, dtype=settings.model.dtype)
