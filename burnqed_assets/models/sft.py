"""Task 1.1: LoRA SFT with TRL's SFTTrainer, loss on the tactic (completion) tokens only.

Data: `data/sft/{train,val}.jsonl` records `{prompt, completion, theorem, source}`, where
`prompt = format_prompt(state)` ends with the closing code fence and `completion` is the tactic.
TRL 1.x replaces the plan's `DataCollatorForCompletionOnlyLM`: with a prompt-completion dataset
and `completion_only_loss=True`, it tokenizes prompt and prompt+completion, appends EOS to the
completion, and sets labels to -100 on every prompt token (Gotcha 13). Batches are padding-free
(all sequences of a batch concatenated, `position_ids` restarting per example): no pad token is
processed, so throughput does not depend on length spread (Gotcha 17; see benchmarks/sft_batching.py).
Padding-free does not truncate, so examples longer than `max_length` are set aside before training,
reported with `file:line`, and counted (token geometry picks `max_length` so that < 2% are).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from burnqed_assets.data.io import LineReport, file_sha256, iter_jsonl, read_json, write_json
from burnqed_assets.models.demo_model import replace_dir
from burnqed_assets.models.loading import (
    PeakMemory,
    attention_implementation,
    cpu_threads,
    load_causal_lm,
    load_tokenizer,
    pick_device,
    require_model_dir,
)
from burnqed_assets.models.config import SftConfig
from burnqed_assets.progress import ProgressMeter
from burnqed_assets.data.prompt import is_well_formed_prompt

log = logging.getLogger(__name__)

from burnqed_assets.paths import ADAPTER_DIRNAME  # noqa: E402 - the LoRA run directory's layout
from burnqed_assets.paths import RUN_FINGERPRINT_FILE as FINGERPRINT_FILE  # noqa: E402
from burnqed_assets.paths import SFT_HISTORY_FILE as HISTORY_FILE  # noqa: E402
from burnqed_assets.paths import SFT_LOSS_CURVE_FILE as LOSS_CURVE_FILE  # noqa: E402
from burnqed_assets.paths import SFT_RESULT_FILE as RESULT_FILE  # noqa: E402


SftRunConfig = SftConfig  # the trainer's one config class (models/config.py), by its older name


@dataclass
class SftResult:
    adapter_dir: str
    output_dir: str
    device: str
    max_length: int
    train_examples: int
    val_examples: int
    too_long_train: int
    too_long_val: int
    too_long_examples: list[str]
    global_step: int
    resumed_from: str | None
    initial_val_loss: float | None
    final_val_loss: float | None
    final_train_loss: float | None
    non_finite_loss: bool
    seconds: float
    trainable_parameters: int
    total_parameters: int
    history: list[dict[str, float]] = field(default_factory=list)
    loss_curve: str | None = None
    stopped_early: str | None = None
    reused: bool = False  # the same run had already finished: nothing was trained again
    # throughput: tokens through the optimizer steps / time in them (evaluation excluded)
    attn_implementation: str | None = None
    eval_examples: int | None = None  # the fixed validation subset every val loss is measured on
    eval_subset_seed: int | None = None
    train_tokens: int | None = None
    train_step_seconds: float | None = None
    tokens_per_s: float | None = None
    peak_memory_gb: float | None = None
    peak_memory_kind: str | None = None

    def metadata(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("history")
        return d


# ------------------------------------------------------------------ inputs

def _validate_sft_record(rec: dict[str, Any]) -> str | None:
    for key in ("prompt", "completion"):
        if not isinstance(rec.get(key), str):
            return f"missing or non-string {key!r}"
    if not is_well_formed_prompt(rec["prompt"]):
        return "prompt is not format_prompt(state) (prefix or closing fence missing)"
    if not rec["completion"].strip():
        return "empty completion"
    return None


def load_sft_records(path: str | Path, report: LineReport) -> list[dict[str, Any]]:
    """Records with their `file:line` kept in `_where` (bad lines go to `report`)."""
    rows = []
    for lineno, rec in iter_jsonl(path, report, _validate_sft_record):
        rows.append({"prompt": rec["prompt"], "completion": rec["completion"], "_where": f"{path}:{lineno}"})
    return rows


def example_length(tokenizer, prompt: str, completion: str) -> int:
    """Tokens the trainer will see: prompt + completion + EOS (as TRL tokenizes them)."""
    return len(tokenizer(prompt + completion)["input_ids"]) + 1


def eval_subset(rows: list[dict[str, Any]], size: int | None, seed: int) -> list[dict[str, Any]]:
    """A fixed validation subset: `size` rows drawn once with `seed`, in file order (all when
    `size` is None or not smaller than the set). Same data and seed, same subset."""
    import random

    if size is None or size >= len(rows):
        return list(rows)
    keep = sorted(random.Random(seed).sample(range(len(rows)), size))
    return [rows[i] for i in keep]


def split_by_length(tokenizer, rows: list[dict[str, Any]], max_length: int) -> tuple[list[dict], list[dict]]:
    keep, too_long = [], []
    for row in rows:
        (keep if example_length(tokenizer, row["prompt"], row["completion"]) <= max_length else too_long).append(row)
    return keep, too_long


# ------------------------------------------------------------------ resume bookkeeping



def run_fingerprint(base_model_dir: Path, train_path: Path, val_path: Path, config: SftRunConfig) -> str:
    """Identity of a run: data content, base model (config, weight files), run config.

    Checkpoints from a run with another fingerprint are never resumed (stale data or settings).
    """
    h = hashlib.sha256()
    h.update(file_sha256(train_path).encode())
    h.update(file_sha256(val_path).encode())
    h.update((base_model_dir / "config.json").read_bytes())
    for weights in sorted(base_model_dir.glob("*.safetensors")):
        # size + mtime, not content: hashing 14 GB of 7B weights per run is too slow; a rebuilt
        # base (new mtime) never resumes checkpoints trained on the old one
        st = weights.stat()
        h.update(f"{weights.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    cfg = asdict(config)
    cfg.pop("device")  # resuming on another device is fine
    cfg.pop("cpu_threads")
    h.update(json.dumps(cfg, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _finished_run(output_dir: Path, fingerprint: str) -> SftResult | None:
    """The stored result of a finished run with this fingerprint (re-materializing is a no-op)."""
    fp_file, result_file = output_dir / FINGERPRINT_FILE, output_dir / RESULT_FILE
    if not (fp_file.exists() and result_file.exists() and (output_dir / ADAPTER_DIRNAME).is_dir()):
        return None
    fp = read_json(fp_file)
    if fp.get("fingerprint") != fingerprint or not fp.get("completed"):
        return None
    stored = read_json(result_file)
    stored["reused"] = True
    return SftResult(**{k: v for k, v in stored.items() if k in SftResult.__dataclass_fields__})


def last_checkpoint(output_dir: Path) -> Path | None:
    from transformers.trainer_utils import get_last_checkpoint

    if not output_dir.is_dir():
        return None
    found = get_last_checkpoint(str(output_dir))
    return Path(found) if found else None


def prepare_output_dir(output_dir: Path, fingerprint: str) -> Path | None:
    """Keep checkpoints of the same run (resume); clear those of another run. Returns the resume point."""
    fp_file = output_dir / FINGERPRINT_FILE
    if output_dir.exists():
        same = fp_file.exists() and read_json(fp_file).get("fingerprint") == fingerprint
        if not same:
            for ckpt in output_dir.glob("checkpoint-*"):
                shutil.rmtree(ckpt, ignore_errors=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_json(fp_file, {"fingerprint": fingerprint})
    return last_checkpoint(output_dir)


# ------------------------------------------------------------------ training

def throughput_callback(device: torch.device):
    from transformers import TrainerCallback

    class ThroughputCallback(TrainerCallback):
        """Tokens and wall time of the optimizer steps only (evaluation and saving excluded), and peak memory."""

        def __init__(self) -> None:
            self.memory = PeakMemory(device)
            self.tokens_at_start = 0
            self.step_seconds = 0.0
            self.tokens = 0
            self.per_step: list[tuple[float, int]] = []  # (seconds, tokens) of each optimizer step
            self._t0: float | None = None
            self._tokens_before = 0

        def on_train_begin(self, args, state, control, **kwargs):
            self.memory.start()
            self.tokens_at_start = int(state.num_input_tokens_seen or 0)

        def on_step_begin(self, args, state, control, **kwargs):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            self._t0 = time.perf_counter()
            self._tokens_before = int(state.num_input_tokens_seen or 0)

        def on_step_end(self, args, state, control, **kwargs):
            if device.type == "cuda":
                torch.cuda.synchronize(device)  # the step's kernels, not just their launch
            seen = int(state.num_input_tokens_seen or 0)
            if self._t0 is not None:
                seconds = time.perf_counter() - self._t0
                self.step_seconds += seconds
                self.per_step.append((seconds, seen - self._tokens_before))
                self._t0 = None
            self.tokens = seen - self.tokens_at_start

    return ThroughputCallback()


def _progress_callback(total_steps_hint: int):
    from transformers import TrainerCallback

    class ProgressLogCallback(TrainerCallback):
        """Training progress as log lines (Dagster captures python logging), and a NaN guard."""

        non_finite = False
        meter: ProgressMeter | None = None

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            if self.meter is None:
                self.meter = ProgressMeter(log.info, state.max_steps or total_steps_hint, "sft", unit="step")
            shown = {k: v for k, v in logs.items() if k in ("loss", "eval_loss", "learning_rate", "grad_norm")}
            self.meter.update(state.global_step, force="eval_loss" in logs, **shown)
            for key in ("loss", "eval_loss"):
                if key in logs and not math.isfinite(float(logs[key])):
                    self.non_finite = True
                    control.should_training_stop = True
                    log.error("non-finite %s at step %d: stopping", key, state.global_step)
            return control

    return ProgressLogCallback()


def _history(log_history: list[dict[str, Any]]) -> list[dict[str, float]]:
    keep = ("step", "epoch", "loss", "eval_loss", "learning_rate", "grad_norm")
    return [{k: float(v) for k, v in entry.items() if k in keep and isinstance(v, (int, float))}
            for entry in log_history]


def plot_loss_curve(history: list[dict[str, float]], dest: Path) -> Path | None:
    from burnqed_assets.reports.plots import plt, save_figure

    train = [(h["step"], h["loss"]) for h in history if "loss" in h]
    val = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    if not train and not val:
        return None
    fig, ax = plt.subplots(figsize=(5, 3))
    if train:
        ax.plot(*zip(*train), label="train loss")
    if val:
        ax.plot(*zip(*val), marker="o", label="val loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (completion tokens)")
    ax.set_title("SFT iter_0")
    ax.legend()
    return save_figure(fig, dest)


def build_trainer(model, tokenizer, train_rows: list[dict], val_rows: list[dict], output_dir: Path,
                  config: SftRunConfig, callbacks: list | None = None):
    """An SFTTrainer with PEFT LoRA, completion-only loss and padding-free batches."""
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    on_cuda = pick_device(config.device).type == "cuda"
    args = SFTConfig(
        output_dir=str(output_dir),
        completion_only_loss=True,
        padding_free=True,
        max_length=None,  # padding-free does not truncate: too-long examples were set aside
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accumulation,
        learning_rate=config.learning_rate,
        warmup_steps=float(config.warmup_ratio),  # transformers 5: a float < 1 is a ratio of total steps
        lr_scheduler_type="cosine",
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        eval_strategy="steps" if val_rows else "no",
        eval_steps=config.eval_steps,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        logging_steps=config.logging_steps,
        logging_first_step=True,
        seed=config.seed,
        data_seed=config.seed,
        bf16=on_cuda and config.dtype == "bfloat16",
        fp16=False,
        use_cpu=not on_cuda,
        activation_checkpointing=on_cuda,  # trade compute for memory only where memory is scarce
        include_num_input_tokens_seen="all",  # padding-free: every input token is a real one
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        remove_unused_columns=True,
    )
    peft_config = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                             target_modules=config.target_modules if isinstance(config.target_modules, str)
                             else list(config.target_modules), task_type="CAUSAL_LM", bias="none")

    def as_dataset(rows: list[dict]) -> Dataset:
        return Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]} for r in rows])

    from transformers.trainer_callback import PrinterCallback

    trainer = SFTTrainer(model=model, args=args, train_dataset=as_dataset(train_rows),
                         eval_dataset=as_dataset(val_rows) if val_rows else None,
                         processing_class=tokenizer, peft_config=peft_config, callbacks=callbacks or [])
    trainer.remove_callback(PrinterCallback)  # progress goes through python logging instead of print()
    return trainer


def train_lora(base_model_dir: str | Path, train_path: str | Path, val_path: str | Path, output_dir: str | Path,
               config: SftRunConfig, resume: bool = True, extra_callbacks: list | None = None) -> SftResult:
    """Train (or resume from the last checkpoint of the same run) the iter-0 LoRA.

    The final adapter lands in `output_dir/adapter`; checkpoints in `output_dir/checkpoint-N`.
    """
    threads = config.cpu_threads if pick_device(config.device).type == "cpu" else 0
    with cpu_threads(threads):
        return _train_lora(base_model_dir, train_path, val_path, output_dir, config, resume, extra_callbacks)


def _train_lora(base_model_dir: str | Path, train_path: str | Path, val_path: str | Path, output_dir: str | Path,
                config: SftRunConfig, resume: bool, extra_callbacks: list | None) -> SftResult:
    start = time.perf_counter()
    base_model_dir, output_dir = Path(base_model_dir), Path(output_dir)
    train_path, val_path = Path(train_path), Path(val_path)
    require_model_dir(base_model_dir, "materialize the `base_model` asset first")
    torch.manual_seed(config.seed)

    tokenizer = load_tokenizer(base_model_dir)
    tokenizer.padding_side = "right"
    if tokenizer.eos_token is None:
        raise ValueError(f"tokenizer at {base_model_dir} has no eos_token: generation could not stop")
    report = LineReport()
    train_all = load_sft_records(train_path, report)
    val_all = load_sft_records(val_path, report) if val_path.exists() else []
    if report.bad:
        from burnqed_assets.data.io import BadInputError

        raise BadInputError(report.bad)
    if not train_all:
        raise ValueError(f"{train_path}: no SFT records")
    train_rows, train_long = split_by_length(tokenizer, train_all, config.max_length)
    val_rows, val_long = split_by_length(tokenizer, val_all, config.max_length)
    for row in (train_long + val_long)[:20]:
        log.warning("%s: longer than max_length=%d tokens, set aside", row["_where"], config.max_length)

    fingerprint = run_fingerprint(base_model_dir, train_path, val_path, config)
    finished = _finished_run(output_dir, fingerprint) if resume else None
    if finished is not None:
        log.info("SFT run %s already finished at step %d: reusing its adapter", fingerprint[:12],
                 finished.global_step)
        return finished
    if not resume:
        for ckpt in output_dir.glob("checkpoint-*"):
            shutil.rmtree(ckpt, ignore_errors=True)
    resume_from = prepare_output_dir(output_dir, fingerprint)
    if resume_from:
        log.info("resuming SFT from %s", resume_from)

    device = pick_device(config.device)
    attn = attention_implementation(device, config.dtype, config.attn_implementation)
    model = load_causal_lm(base_model_dir, device="cpu", dtype=config.dtype, attn_implementation=attn)
    val_eval = eval_subset(val_rows, config.eval_subset_size, config.seed)
    progress = _progress_callback(config.max_steps)
    throughput = throughput_callback(device)
    trainer = build_trainer(model, tokenizer, train_rows, val_eval, output_dir, config,
                            callbacks=[progress, throughput, *(extra_callbacks or [])])
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in trainer.model.parameters())
    log.info("SFT: %d train / %d val examples (val loss on a fixed subset of %d), max_length %d, "
             "%d trainable of %d params, device %s, attention %s", len(train_rows), len(val_rows), len(val_eval),
             config.max_length, trainable, total, trainer.args.device, attn)

    initial_val = None
    if val_eval and resume_from is None:
        initial_val = float(trainer.evaluate()["eval_loss"])
        log.info("SFT initial val loss %.4f", initial_val)
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)

    final_val = None
    if val_eval and not progress.non_finite:
        final_val = float(trainer.evaluate()["eval_loss"])
    history = _history(trainer.state.log_history)
    if initial_val is None:  # resumed: the pre-training eval of the first attempt is in the history
        initial_val = next((h["eval_loss"] for h in history if "eval_loss" in h), None)
    train_losses = [h["loss"] for h in history if "loss" in h]
    non_finite = progress.non_finite or any(not math.isfinite(v) for v in train_losses) or (
        final_val is not None and not math.isfinite(final_val))

    adapter_dir = output_dir / ADAPTER_DIRNAME
    tmp = Path(tempfile.mkdtemp(prefix=".adapter.", dir=output_dir))
    try:
        trainer.model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        replace_dir(tmp, adapter_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    write_json(output_dir / HISTORY_FILE, history)
    curve = plot_loss_curve(history, output_dir / LOSS_CURVE_FILE)

    result = SftResult(
        adapter_dir=str(adapter_dir), output_dir=str(output_dir), device=str(trainer.args.device),
        max_length=config.max_length, train_examples=len(train_rows), val_examples=len(val_rows),
        too_long_train=len(train_long), too_long_val=len(val_long),
        too_long_examples=[r["_where"] for r in (train_long + val_long)[:10]],
        global_step=int(trainer.state.global_step), resumed_from=str(resume_from) if resume_from else None,
        initial_val_loss=initial_val, final_val_loss=final_val,
        final_train_loss=train_losses[-1] if train_losses else None, non_finite_loss=bool(non_finite),
        seconds=round(time.perf_counter() - start, 1), trainable_parameters=trainable, total_parameters=total,
        history=history, loss_curve=str(curve) if curve else None,
        stopped_early="non-finite loss" if progress.non_finite else None,
        attn_implementation=attn, eval_examples=len(val_eval), eval_subset_seed=config.seed,
        train_tokens=throughput.tokens, train_step_seconds=round(throughput.step_seconds, 3),
        tokens_per_s=round(throughput.tokens / throughput.step_seconds, 1) if throughput.step_seconds else None,
        peak_memory_gb=round(throughput.memory.peak_gb(), 3), peak_memory_kind=throughput.memory.kind,
    )
    if not non_finite:
        write_json(output_dir / RESULT_FILE, asdict(result))
        write_json(output_dir / FINGERPRINT_FILE, {"fingerprint": fingerprint, "completed": True})
    log.info("SFT done: step %d, val loss %s -> %s, %.1fs, %s tokens/s, peak memory %.2f GB (%s)",
             result.global_step, initial_val, final_val, result.seconds, result.tokens_per_s,
             result.peak_memory_gb, result.peak_memory_kind)
    return result
