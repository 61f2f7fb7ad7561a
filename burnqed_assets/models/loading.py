"""Model and tokenizer loading by path, hub offline (no download at run time)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")


class ModelNotFoundError(FileNotFoundError):
    pass


@contextlib.contextmanager
def cpu_threads(n: int) -> Iterator[None]:
    """Run torch CPU ops on `n` threads inside the block (0 = leave torch's default).

    Measured on the shared 2-core demo machine under load: a tiny-model training step took 0.46 s
    on 1 thread and 10 s on 2 (threads spin-waiting on busy cores), so the demo trains on one.
    """
    if n <= 0:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def pick_device(preference: str = "auto") -> torch.device:
    if preference != "auto":
        return torch.device(preference)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _require(path: str | Path, how_to_obtain: str = "") -> Path:
    path = Path(path)
    if not (path / "config.json").exists() and not (path / "tokenizer.json").exists() \
            and not (path / "tokenizer_config.json").exists():
        hint = f"\n  obtain it: {how_to_obtain}" if how_to_obtain else ""
        raise ModelNotFoundError(f"no Hugging Face model directory at {path}{hint}")
    return path


def require_model_dir(path: str | Path, how_to_obtain: str = "") -> Path:
    """A complete HF model directory (config, weights, tokenizer) or an error naming what is missing."""
    path = Path(path)
    missing = []
    if not (path / "config.json").exists():
        missing.append("config.json")
    if not any(any(path.glob(p)) for p in WEIGHT_PATTERNS):
        missing.append("weights (*.safetensors or *.bin)")
    if not any((path / f).exists() for f in TOKENIZER_FILES):
        missing.append("tokenizer (tokenizer.json / tokenizer.model)")
    if missing:
        hint = f"\n  obtain it: {how_to_obtain}" if how_to_obtain else ""
        state = "does not exist" if not path.exists() else f"lacks {', '.join(missing)}"
        raise ModelNotFoundError(f"model directory {path} {state}{hint}")
    return path


def load_tokenizer(path: str | Path, how_to_obtain: str = ""):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(_require(path, how_to_obtain)), local_files_only=True)


def load_causal_lm(path: str | Path, device: str = "auto", dtype: str = "float32", how_to_obtain: str = "",
                   quantization_config=None, attn_implementation: str | None = None):
    """A causal LM on `device`. With a `quantization_config` (bitsandbytes) the weights are
    quantised while loading, straight onto the GPU (a quantised model cannot be moved after)."""
    from transformers import AutoModelForCausalLM

    torch_dtype = getattr(torch, dtype)
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    if quantization_config is not None:
        dev = pick_device(device)
        return AutoModelForCausalLM.from_pretrained(str(_require(path, how_to_obtain)), dtype=torch_dtype,
                                                    local_files_only=True, quantization_config=quantization_config,
                                                    device_map={"": dev.index or 0}, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(str(_require(path, how_to_obtain)), dtype=torch_dtype,
                                                 local_files_only=True, **kwargs)
    return model.to(pick_device(device))


def attention_implementation(device: torch.device | str, dtype: str = "bfloat16", requested: str = "auto") -> str:
    """The attention kernel for training: `requested` unless "auto". Auto: FlashAttention 2 when the
    `flash_attn` package is installed, the model runs on CUDA and in bf16/fp16 (FA2 has no fp32
    kernel); PyTorch SDPA otherwise (also on CPU). Both handle padding-free batches (the packed
    sequences are separated through position_ids)."""
    import importlib.util

    if requested != "auto":
        return requested
    on_cuda = torch.device(device).type == "cuda"
    if on_cuda and dtype in ("bfloat16", "float16") and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


class PeakMemory:
    """Peak memory of a block: CUDA max allocated on a GPU, else the process's peak RSS (which on
    CPU also counts whatever the process held before the block; the kind says which)."""

    def __init__(self, device: torch.device | str):
        self.device = torch.device(device)
        self.kind = "cuda_max_allocated" if self.device.type == "cuda" else "process_peak_rss"

    def start(self) -> None:
        if self.kind == "cuda_max_allocated":
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak_gb(self) -> float:
        if self.kind == "cuda_max_allocated":
            return torch.cuda.max_memory_allocated(self.device) / 1e9
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # Linux: KiB
