"""The LoRA SFT trainer's configuration (plan Task 1.1). Light: importing it loads no ML library.

A profile holds one `SftConfig` (settings.sft); the asset fills in what the run decides
(max_length from token geometry, seed, dtype, device) with `dataclasses.replace`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SftConfig:
    """Everything that shapes a run; every field but device and cpu_threads is part of the resume fingerprint."""

    lora_r: int = 32
    lora_alpha: int = 64
    lora_dropout: float = 0.05
    learning_rate: float = 3e-5
    warmup_ratio: float = 0.05
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 2
    grad_accumulation: int = 8
    eval_steps: int = 500
    save_steps: int = 500
    max_length: int = 2048  # the fallback when token_geometry.json recommends none (plan M.7)
    seed: int = 42
    dtype: str = "float32"
    device: str = "auto"
    logging_steps: int = 10
    save_total_limit: int = 2
    target_modules: str | tuple[str, ...] = "all-linear"
    cpu_threads: int = 0  # torch threads when training on CPU (0 = torch default); see loading.cpu_threads
    # Validation loss (at start, every eval_steps, at the end) on a fixed subset of this many
    # validation examples, drawn once with `seed` (None = the whole validation set): the plan's
    # 5% of 300K pairs is ~15K examples, too many to evaluate every 500 steps.
    eval_subset_size: int | None = 2000
    # "auto": FlashAttention 2 when flash_attn is installed and training runs on CUDA in bf16/fp16,
    # PyTorch SDPA otherwise; or name a transformers attn_implementation.
    attn_implementation: str = "auto"
