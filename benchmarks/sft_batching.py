"""Benchmark: SFT batching efficiency, real tokens ÷ processed tokens, on the demo SFT data.

    python benchmarks/sft_batching.py                 # data/sft/train.jsonl (or the shipped demo traces)
    python benchmarks/sft_batching.py --time-steps 8  # also time forward+backward per layout

Compares, on the same examples in the same shuffled order and batch size:
- padding-free (what `lora_iter0` uses): TRL's collator concatenates a batch into one row with
  `position_ids` restarting per example; nothing is padded.
- naive padding: each batch padded to its longest example (TRL's default collator).
- fixed padding: every example padded to `max_length` (the plan's scripts with --max-length).
The batches come from the real SFTTrainer dataloader (same tokenization, EOS and labels as
training). With --time-steps, each layout's forward+backward time on the demo model is measured.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _rows(path: Path | None) -> list[dict]:
    from burnqed_assets.data.prompt import format_prompt
    from burnqed_assets.settings import DEMO_INPUTS

    if path and path.exists():
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = []
    for f in sorted((DEMO_INPUTS / "traced").glob("*_traces.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rec = json.loads(line)
                if rec.get("state") and rec.get("tactic"):
                    rows.append({"prompt": format_prompt(rec["state"]), "completion": rec["tactic"]})
    return rows


def main() -> None:
    import torch
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from burnqed_assets.models.demo_model import DemoModelSpec, build_demo_model
    from burnqed_assets.models.loading import (
        cpu_threads,
        load_causal_lm,
        load_tokenizer,
    )
    from burnqed_assets.data.token_geometry import recommended_max_length
    from burnqed_assets.models.sft import SftRunConfig, build_trainer
    from burnqed_assets.settings import DEMO_INPUTS, get_settings

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=None, help="SFT train.jsonl (default: data/sft/train.jsonl)")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--time-steps", type=int, default=0)
    args = ap.parse_args()

    settings = get_settings()
    data = args.data or settings.paths.sft_train
    rows = _rows(data)
    source = str(data) if data.exists() else "data/demo/traced/*_traces.jsonl"
    model_dir = settings.model.base_model_path
    tmp = None
    if not (model_dir / "config.json").exists():
        tmp = tempfile.TemporaryDirectory()
        model_dir = Path(tmp.name) / "base"
        build_demo_model(model_dir, DEMO_INPUTS, DemoModelSpec(warmup_steps=0))
    max_length, ml_source = recommended_max_length(settings.paths.token_geometry, "sft", settings.sft.max_length)
    batch_size = args.batch_size or settings.sft.batch_size

    tok = load_tokenizer(model_dir)
    model = load_causal_lm(model_dir, device="cpu")
    config = SftRunConfig(max_steps=1, batch_size=batch_size, grad_accumulation=1, max_length=max_length)
    with tempfile.TemporaryDirectory() as out:
        trainer = build_trainer(model, tok, rows, [], Path(out), config)
        dataset = trainer.train_dataset
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0)).tolist()
        examples = [dataset[i] for i in order]
        batches = [examples[i:i + batch_size] for i in range(0, len(examples), batch_size)]
        padded = DataCollatorForLanguageModeling(pad_token_id=tok.pad_token_id, padding_free=False)
        free = trainer.data_collator
        assert getattr(free, "padding_free", False), "lora_iter0's collator is expected to be padding-free"

        real = sum(len(e["input_ids"]) for e in examples)
        processed = {"padding_free": 0, "naive_padding": 0, "fixed_max_length": 0}
        for b in batches:
            processed["padding_free"] += free(b)["input_ids"].numel()
            processed["naive_padding"] += padded(b)["input_ids"].numel()
            processed["fixed_max_length"] += len(b) * max_length
        report = {
            "data": source, "examples": len(examples), "batch_size": batch_size, "max_length": max_length,
            "max_length_source": ml_source, "real_tokens": real,
            "efficiency": {k: round(real / v, 4) for k, v in processed.items()},
            "processed_tokens": processed,
        }

        if args.time_steps:
            timings = {}
            with cpu_threads(1):
                for name, collate in (("padding_free", free), ("naive_padding", padded)):
                    start = time.perf_counter()
                    for b in batches[: args.time_steps]:
                        batch = collate(b)
                        inputs = {k: v for k, v in batch.items() if k in ("input_ids", "labels", "position_ids",
                                                                          "attention_mask")}
                        trainer.model(**inputs).loss.backward()
                    timings[name] = round(time.perf_counter() - start, 3)
            report["seconds_fwd_bwd"] = timings
    if tmp:
        tmp.cleanup()

    print(json.dumps(report, indent=2))
    eff = report["efficiency"]
    print(f"\nreal/processed tokens: padding-free {eff['padding_free']:.3f}  naive padding {eff['naive_padding']:.3f}"
          f"  fixed max_length {eff['fixed_max_length']:.3f}  (target >= 0.9)")


if __name__ == "__main__":
    main()
