"""Task 1.2: fold the LoRA adapter into the base weights; save a standard HF model directory."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from burnqed_assets.models.demo_model import replace_dir
from burnqed_assets.models.loading import (
    load_causal_lm,
    load_tokenizer,
    require_model_dir,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MergeResult:
    path: str  # the merged HF model directory
    parameters: int
    seconds: float
    weights_bytes: int  # size of its *.safetensors files


def merge_lora(base_model_dir: str | Path, adapter_dir: str | Path, dest: str | Path,
               dtype: str = "float32") -> MergeResult:
    """merge_and_unload into `dest` (safetensors + tokenizer + generation config), atomically.

    The result loads with plain `AutoModelForCausalLM.from_pretrained(dest)` (and SGLang in full):
    no PEFT needed downstream.
    """
    from peft import PeftModel

    start = time.perf_counter()
    base_model_dir, adapter_dir, dest = Path(base_model_dir), Path(adapter_dir), Path(dest)
    require_model_dir(base_model_dir, "materialize the `base_model` asset first")
    if not (adapter_dir / "adapter_config.json").exists():
        raise FileNotFoundError(f"no LoRA adapter at {adapter_dir} (materialize `lora_iter0` first)")
    base = load_causal_lm(base_model_dir, device="cpu", dtype=dtype)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    tokenizer = load_tokenizer(base_model_dir)
    if merged.generation_config.eos_token_id is None:
        merged.generation_config.eos_token_id = tokenizer.eos_token_id
    if merged.generation_config.pad_token_id is None:
        merged.generation_config.pad_token_id = tokenizer.pad_token_id

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    tmp.chmod(0o755)
    try:
        merged.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        provenance = {"base_model": str(base_model_dir), "adapter": str(adapter_dir), "dtype": dtype}
        (tmp / "burnqed_merge.json").write_text(json.dumps(provenance, indent=2), encoding="utf-8")
        replace_dir(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    result = MergeResult(path=str(dest), parameters=sum(p.numel() for p in merged.parameters()),
                         seconds=round(time.perf_counter() - start, 2),
                         weights_bytes=sum(f.stat().st_size for f in dest.glob("*.safetensors")))
    log.info("merged %s + %s -> %s", base_model_dir, adapter_dir, dest)
    return result
