"""Joint SFT + EBM training loop (plan Tasks 3.4, 3.5, 4.1, 4.2).

Starts from the BASE model with a fresh LoRA (r=64 in full), trains SFT + λ·InfoNCE with
separate learning rates for the adapter and the head, warmup then cosine decay, gradient
clipping, monitoring and the plan's abort conditions. Checkpoints every `save_every` steps
(atomic directory swap) and resumes from the newest one. On success it exports the merged
model (merge_and_unload) and the head (`save_head`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, astuple, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from burnqed_assets.data.io import LineReport, file_sha256, write_json
from burnqed_assets.ebm.head import save_head
from burnqed_assets.joint.dataset import (
    JointBatch,
    JointDataset,
    TrajectoryReport,
    build_candidates,
    load_sft_records,
    read_trajectory_states,
    split_candidates,
    trajectory_holdout,
)
from burnqed_assets.joint.model import JointProver, LossValues
from burnqed_assets.joint.monitoring import (
    AbortReason,
    AbortThresholds,
    JointMonitor,
    plot_monitoring,
    separation_probe,
)

from burnqed_assets.joint.config import JointConfig  # noqa: E402
from burnqed_assets.paths import JOINT_CHECKPOINT_PREFIX as CHECKPOINT_PREFIX  # noqa: E402
from burnqed_assets.paths import JOINT_RUN_SUMMARY_FILE as RUN_SUMMARY  # noqa: E402
from burnqed_assets.paths import JOINT_SMOKE_FILE as SMOKE_RECORD  # noqa: E402


class TrainingInterrupted(RuntimeError):
    """Raised by `stop_after_step` to simulate a crash/preemption (tests, operations drills)."""


JointTrainConfig = JointConfig  # joint training's one config class (joint/config.py), by its older name


@dataclass(frozen=True)
class SmokeResult:
    """Task 3.5: one forward+backward; finite losses and nonzero finite grads in LoRA and head."""

    passed: bool
    losses: LossValues
    lora_grad_norm: float
    head_grad_norm: float
    peak_vram_gib: float | None
    device: str
    from_earlier_run: bool = False  # a resumed run: the record its fresh start wrote (smoke_step.json)

    def to_json(self) -> dict[str, Any]:
        """The smoke_step.json record (flat: the losses beside the gradient norms)."""
        record = {"passed": self.passed, **asdict(self.losses), "lora_grad_norm": self.lora_grad_norm,
                  "head_grad_norm": self.head_grad_norm, "peak_vram_gib": self.peak_vram_gib, "device": self.device}
        if self.from_earlier_run:
            record["from_earlier_run"] = True
        return record

    @classmethod
    def from_json(cls, record: Mapping[str, Any], from_earlier_run: bool = False) -> SmokeResult:
        losses = LossValues(**{f.name: record[f.name] for f in fields(LossValues)})
        return cls(passed=record["passed"], losses=losses, lora_grad_norm=record["lora_grad_norm"],
                   head_grad_norm=record["head_grad_norm"], peak_vram_gib=record["peak_vram_gib"],
                   device=record["device"], from_earlier_run=from_earlier_run)


@dataclass(frozen=True)
class JointDataSummary:
    """What the joint run trains and probes on (joint_run.json's "data", the asset's metadata)."""

    sft_records: int
    sft_lines: LineReport  # the SFT file's bad lines, each with its file:line
    trajectories: TrajectoryReport
    contrastive_candidates: int
    train_candidates: int
    probe_groups: int
    heldout_theorems: int
    heldout_theorems_trained_on: bool  # no held-out theorem had a positive: the probe runs on training data

    def as_metadata(self) -> dict[str, Any]:
        return {"sft_records": self.sft_records, **{f"sft_{k}": v for k, v in self.sft_lines.as_metadata().items()},
                **self.trajectories.as_metadata(), "contrastive_candidates": self.contrastive_candidates,
                "train_candidates": self.train_candidates, "probe_groups": self.probe_groups,
                "heldout_theorems": self.heldout_theorems,
                "heldout_theorems_trained_on": self.heldout_theorems_trained_on}


@dataclass
class JointRunResult:
    status: str  # "completed" | "aborted"
    steps_done: int
    total_steps: int
    abort: AbortReason | None
    resumed_from_step: int | None
    train_log: list[dict[str, float]]
    probe_log: list[dict[str, float]]
    smoke: SmokeResult | None
    data: JointDataSummary
    seconds: float
    seconds_per_step: float | None
    checkpoint_dir: str
    merged_dir: str | None = None
    head_path: str | None = None
    plot_path: str | None = None
    probe_is_heldout: bool = False
    lora_targets: list[str] = field(default_factory=list)
    head_hidden_dims: list[int] = field(default_factory=list)
    # throughput of the training loop (probes and checkpoints excluded): tokens forwarded through
    # the backbone (SFT records + every state and goal the EBM stream embeds, padding excluded)
    attn_implementation: str | None = None
    train_tokens: int | None = None
    train_step_seconds: float | None = None
    tokens_per_s: float | None = None
    peak_memory_gb: float | None = None
    peak_memory_kind: str | None = None

    @property
    def aborted(self) -> bool:
        return self.status == "aborted"

    def as_dict(self) -> dict[str, Any]:
        """joint_run.json: every field in order, the abort, smoke and data as their JSON records."""
        record = {f.name: getattr(self, f.name) for f in fields(self)}
        record.update(abort=self.abort.as_dict() if self.abort else None,
                      smoke=self.smoke.to_json() if self.smoke else None, data=self.data.as_metadata())
        return record


def lr_lambda(warmup_steps: int, total_steps: int, floor: float = 0.1) -> Callable[[int], float]:
    """Linear warmup to 1, then cosine decay to `floor` at total_steps."""
    def f(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return (step + 1) / warmup_steps
        span = max(1, total_steps - warmup_steps)
        progress = min(1.0, (step - warmup_steps) / span)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    return f


def grad_norm(params: list[torch.nn.Parameter]) -> float:
    norms = [p.grad.detach().float().norm() for p in params if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack(norms))) if norms else 0.0


def smoke_step(prover: JointProver, batch: JointBatch, lambda_ebm: float) -> SmokeResult:
    """Task 3.5: one forward+backward; finite losses and nonzero finite grads in LoRA and head."""
    device = prover.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    prover.train()
    prover.zero_grad(set_to_none=True)
    losses = prover.joint_loss(batch.sft, batch.groups, lambda_ebm)
    losses.total.backward()
    lora_norm = grad_norm(prover.lora_parameters())
    head_norm = grad_norm(list(prover.ebm_head.parameters()))
    values = losses.scalars()
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    prover.zero_grad(set_to_none=True)
    finite = all(math.isfinite(v) for v in (*astuple(values), lora_norm, head_norm))
    passed = finite and lora_norm > 0 and head_norm > 0
    return SmokeResult(passed=passed, losses=values, lora_grad_norm=lora_norm, head_grad_norm=head_norm,
                       peak_vram_gib=peak, device=str(device))


# --- checkpoints ---------------------------------------------------------------------------

def _replace_dir(tmp: Path, dest: Path) -> None:
    """Swap a finished temp directory into place (rename is atomic on one filesystem)."""
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        os.replace(dest, old)
    os.replace(tmp, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def list_checkpoints(checkpoint_dir: Path) -> list[tuple[int, Path]]:
    found = []
    if checkpoint_dir.is_dir():
        for p in checkpoint_dir.iterdir():
            if p.is_dir() and p.name.startswith(CHECKPOINT_PREFIX) and (p / "meta.json").exists():
                try:
                    found.append((int(p.name[len(CHECKPOINT_PREFIX):]), p))
                except ValueError:
                    continue
    return sorted(found)




@dataclass(frozen=True)
class InputsFingerprint:
    """What a checkpoint was trained on: data by content, the base model by config and file sizes
    (hashing 14 GB of weights on every start would cost minutes)."""

    sft_sha256: str
    trajectories_sha256: str
    base_config_sha256: str | None
    base_weight_files: list[list[Any]]  # [name, size] pairs: lists, as they read back from meta.json


@dataclass(frozen=True)
class RunFingerprint:
    """Everything a resumed run must share with its checkpoint (λ and lrs may change: the remedies)."""

    lora_r: int
    lora_alpha: int
    lora_targets: list[str]
    d_model: int
    head_hidden_dims: list[int]
    k_negatives: int
    seed: int
    inputs: InputsFingerprint

    def to_json(self) -> dict[str, Any]:
        """The flat record each checkpoint's meta.json holds (beside its step)."""
        record = asdict(self)
        return {**{k: v for k, v in record.items() if k != "inputs"}, **record["inputs"]}


def inputs_fingerprint(sft_path: Path, trajectories_path: Path, base_model_path: Path) -> InputsFingerprint:
    base = Path(base_model_path)
    weights = sorted((p.name, p.stat().st_size) for p in base.glob("*.safetensors")) if base.is_dir() else []
    config = base / "config.json"
    return InputsFingerprint(sft_sha256=file_sha256(Path(sft_path)),
                             trajectories_sha256=file_sha256(Path(trajectories_path)),
                             base_config_sha256=file_sha256(config) if config.exists() else None,
                             base_weight_files=[list(w) for w in weights])


def run_fingerprint(config: JointTrainConfig, prover: JointProver, inputs: InputsFingerprint) -> RunFingerprint:
    return RunFingerprint(lora_r=config.lora_r, lora_alpha=config.lora_alpha, lora_targets=prover.lora_targets,
                          d_model=prover.ebm_head.d_model, head_hidden_dims=list(prover.ebm_head.hidden_dims),
                          k_negatives=config.k_negatives, seed=config.seed, inputs=inputs)


def checkpoint_mismatch(path: Path, fingerprint: RunFingerprint) -> dict[str, tuple[Any, Any]]:
    """The fingerprint fields a checkpoint disagrees on: {field: (checkpoint's value, this run's)}."""
    meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    return {k: (meta.get(k), v) for k, v in fingerprint.to_json().items() if meta.get(k) != v}


def supersede_checkpoints(checkpoint_dir: Path) -> Path:
    """Move checkpoints of another run (other data, model or shape) aside; keeps one generation."""
    dest = checkpoint_dir / "superseded"
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for _, path in list_checkpoints(checkpoint_dir):
        os.replace(path, dest / path.name)
    for name in (SMOKE_RECORD, RUN_SUMMARY):
        if (checkpoint_dir / name).exists():
            os.replace(checkpoint_dir / name, dest / name)
    return dest


def save_checkpoint(checkpoint_dir: Path, step: int, prover: JointProver, optimizer: torch.optim.Optimizer,
                    scheduler: Any, monitor: JointMonitor, fingerprint: RunFingerprint, keep: int = 2) -> Path:
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-checkpoint-", dir=checkpoint_dir))
    try:
        torch.save(prover.lora_state_dict(), tmp / "adapter.pt")
        save_head(prover.ebm_head, str(tmp / "head.pt"))
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "torch_rng": torch.get_rng_state()}, tmp / "trainer.pt")
        (tmp / "monitor.json").write_text(json.dumps(monitor.state_dict()), encoding="utf-8")
        (tmp / "meta.json").write_text(json.dumps({"step": step, **fingerprint.to_json()}), encoding="utf-8")
        dest = checkpoint_dir / f"{CHECKPOINT_PREFIX}{step:06d}"
        _replace_dir(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    for _, old in list_checkpoints(checkpoint_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return dest


def load_checkpoint(path: Path, prover: JointProver, optimizer: torch.optim.Optimizer, scheduler: Any,
                    monitor: JointMonitor, fingerprint: RunFingerprint) -> int:
    meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    mismatched = checkpoint_mismatch(path, fingerprint)
    if mismatched:
        raise ValueError(f"checkpoint {path} does not match this run (checkpoint vs run: {mismatched}); "
                         f"move the checkpoint directory away to start fresh")
    device = prover.device
    prover.load_lora_state_dict(torch.load(path / "adapter.pt", map_location=device, weights_only=True))
    head_payload = torch.load(path / "head.pt", map_location=device, weights_only=True)
    prover.ebm_head.load_state_dict(head_payload["state_dict"])
    trainer = torch.load(path / "trainer.pt", map_location="cpu", weights_only=True)
    optimizer.load_state_dict(trainer["optimizer"])
    scheduler.load_state_dict(trainer["scheduler"])
    torch.set_rng_state(trainer["torch_rng"])
    monitor.load_state_dict(json.loads((path / "monitor.json").read_text(encoding="utf-8")))
    return int(meta["step"])


def export_merged(prover: JointProver, merged_dir: Path) -> Path:
    """merge_and_unload → a standard HF directory (with tokenizer), swapped in atomically."""
    merged_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{merged_dir.name}.tmp-", dir=merged_dir.parent))
    try:
        model = prover.merged_backbone()
        model.save_pretrained(str(tmp))
        prover.tokenizer.save_pretrained(str(tmp))
        _replace_dir(tmp, merged_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return merged_dir


# --- the run ---------------------------------------------------------------------------------

def load_joint_data(sft_path: Path, trajectories_path: Path, config: JointTrainConfig
                    ) -> tuple[JointDataset, list, bool, JointDataSummary]:
    """The dataset, the fixed probe groups, whether the probe is held out, and data counts."""
    line_report = LineReport()
    sft = load_sft_records(sft_path, report=line_report)
    traj_report = TrajectoryReport()
    states = read_trajectory_states(trajectories_path, traj_report)
    candidates, negatives = build_candidates(states, traj_report)
    holdout = trajectory_holdout(trajectories_path, config.val_fraction, config.split_seed)
    train_c, probe_c, heldout = split_candidates(candidates, holdout)
    dataset = JointDataset(sft, train_c, negatives, config.k_negatives, config.hard_ratio,
                           config.sft_batch_size, config.contrastive_batch_size, config.seed)
    probe = dataset.fixed_groups(probe_c, config.probe_max_groups)
    data = JointDataSummary(sft_records=len(sft), sft_lines=line_report, trajectories=traj_report,
                            contrastive_candidates=len(candidates), train_candidates=len(train_c),
                            probe_groups=len(probe), heldout_theorems=len(holdout),
                            heldout_theorems_trained_on=not heldout)
    return dataset, probe, heldout, data


def enable_gradient_checkpointing(model: torch.nn.Module) -> None:
    """Non-reentrant checkpointing; inputs require grad so a frozen embedding layer still lets
    gradient reach the LoRA weights behind it (the PEFT recipe)."""
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    model.config.use_cache = False


class TokenCounter:
    """Counts the real (attended) tokens of every forward through a module: a forward pre-hook,
    so SFT batches and the EBM stream's embeddings are counted the same way."""

    def __init__(self, module: torch.nn.Module):
        self.tokens = 0
        self._handle = module.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        mask = kwargs.get("attention_mask")
        ids = kwargs.get("input_ids", args[0] if args else None)
        if mask is not None:
            self.tokens += int(mask.sum())
        elif ids is not None:
            self.tokens += int(ids.numel())

    def close(self) -> None:
        self._handle.remove()


def build_prover(base_model_path: Path, config: JointTrainConfig, head_hidden_dims: tuple[int, ...] | None,
                 how_to_obtain: str = "") -> JointProver:
    from burnqed_assets.models.loading import attention_implementation, load_causal_lm, load_tokenizer, pick_device

    tokenizer = load_tokenizer(base_model_path, how_to_obtain)
    attn = attention_implementation(pick_device(config.device), config.dtype, config.attn_implementation)
    model = load_causal_lm(base_model_path, device=config.device, dtype=config.dtype, how_to_obtain=how_to_obtain,
                           attn_implementation=attn)
    if config.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    if head_hidden_dims is None:  # the decoupled heads' rule (d/2, d/4, d/8), so A, B and C share a shape
        from burnqed_assets.ebm.train import default_hidden_dims

        head_hidden_dims = default_hidden_dims(int(model.config.hidden_size))
    prover = JointProver(model, tokenizer, config.lora_r, config.lora_alpha, config.lora_dropout,
                         head_hidden_dims, config.sft_max_length, config.encode_max_length)
    return prover.to(next(model.parameters()).device)


def iter0_head_dims(iter0_head_path: Path | None) -> tuple[int, ...] | None:
    """Hidden dims of the iter-0 head when it exists, so both iterations share one shape (Gotcha 7)."""
    if iter0_head_path is None or not Path(iter0_head_path).exists():
        return None
    payload = torch.load(iter0_head_path, map_location="cpu", weights_only=True)
    return tuple(int(h) for h in payload["hidden_dims"])


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Temporarily set torch's intra-op threads (restored after: the demo runs assets in-process)."""
    before = torch.get_num_threads()
    if n > 0:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_joint(config: JointTrainConfig, thresholds: AbortThresholds, sft_path: Path, trajectories_path: Path,
                base_model_path: Path, checkpoint_dir: Path, merged_dir: Path, head_path: Path,
                iter0_head_path: Path | None = None, stop_after_step: int | None = None,
                log: Callable[[str], None] = print, how_to_obtain: str = "",
                prover_factory: Callable[[], JointProver] | None = None) -> JointRunResult:
    """Train (or resume) the joint run; export on success; write joint_run.json and the curves PNG.

    On CPU the run uses `config.cpu_threads` torch threads: on this small shared machine one thread
    was 10-25x faster than two for the demo model (spin-waiting threads under load).
    """
    from burnqed_assets.models.loading import pick_device

    on_cpu = pick_device(config.device).type == "cpu"
    with torch_threads(config.cpu_threads if on_cpu else 0):
        return _train_joint(config, thresholds, sft_path, trajectories_path, base_model_path, checkpoint_dir,
                            merged_dir, head_path, iter0_head_path, stop_after_step, log, how_to_obtain,
                            prover_factory)


def _train_joint(config: JointTrainConfig, thresholds: AbortThresholds, sft_path: Path, trajectories_path: Path,
                base_model_path: Path, checkpoint_dir: Path, merged_dir: Path, head_path: Path,
                iter0_head_path: Path | None = None, stop_after_step: int | None = None,
                log: Callable[[str], None] = print, how_to_obtain: str = "",
                prover_factory: Callable[[], JointProver] | None = None) -> JointRunResult:
    t0 = time.monotonic()
    checkpoint_dir = Path(checkpoint_dir)
    torch.manual_seed(config.seed)
    dataset, probe_groups, heldout, data = load_joint_data(Path(sft_path), Path(trajectories_path), config)
    log(f"joint data: {data.sft_records} SFT records, {data.train_candidates} contrastive positives, "
        f"{data.probe_groups} probe groups (held out: {heldout})")
    if prover_factory is not None:
        prover = prover_factory()
    else:
        dims = iter0_head_dims(iter0_head_path) or config.head_hidden_dims
        prover = build_prover(Path(base_model_path), config, dims, how_to_obtain)
    optimizer = torch.optim.AdamW(prover.param_groups(config.lr_lora, config.lr_ebm, config.ebm_weight_decay))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(config.warmup_steps, config.total_steps))
    monitor = JointMonitor(thresholds, log_every=config.log_every)
    fingerprint = run_fingerprint(config, prover, inputs_fingerprint(sft_path, trajectories_path, base_model_path))
    params = [p for g in optimizer.param_groups for p in g["params"]]

    start_step, resumed_from, smoke = 0, None, None
    checkpoints = list_checkpoints(checkpoint_dir)
    if checkpoints and checkpoint_mismatch(checkpoints[-1][1], fingerprint):
        changed = sorted(checkpoint_mismatch(checkpoints[-1][1], fingerprint))
        moved = supersede_checkpoints(checkpoint_dir)
        log(f"checkpoints were made with other inputs or shape ({changed}); moved to {moved}, starting fresh")
        checkpoints = []
    if checkpoints:
        start_step = load_checkpoint(checkpoints[-1][1], prover, optimizer, scheduler, monitor, fingerprint)
        resumed_from = start_step
        log(f"resumed from {checkpoints[-1][1]} (step {start_step})")
        if (checkpoint_dir / SMOKE_RECORD).exists():  # the smoke step ran at the fresh start
            smoke = SmokeResult.from_json(json.loads((checkpoint_dir / SMOKE_RECORD).read_text(encoding="utf-8")),
                                          from_earlier_run=True)
    abort: AbortReason | None = None
    if start_step == 0:
        smoke = smoke_step(prover, dataset.batch(0), config.lambda_ebm)
        log(f"smoke step: {smoke.to_json()}")
        write_json(checkpoint_dir / SMOKE_RECORD, smoke.to_json())
        if not smoke.passed:
            abort = AbortReason("non_finite", 0,
                                f"smoke step failed (losses/gradients not finite or zero): {smoke.to_json()}")
        else:
            probe = separation_probe(prover, probe_groups)
            abort = monitor.observe_probe(0, probe.centroid_l2, probe.rank1)

    from burnqed_assets.models.loading import PeakMemory

    prover.train()
    step = start_step
    steps_run = 0
    loop_t0 = time.monotonic()
    memory = PeakMemory(prover.device)
    memory.start()
    counter = TokenCounter(prover.backbone)
    step_seconds, step_tokens = 0.0, 0
    while abort is None and step < config.total_steps:
        step += 1
        batch = dataset.batch(step - 1)
        t_step, tokens_before = time.perf_counter(), counter.tokens
        losses = prover.joint_loss(batch.sft, batch.groups, config.lambda_ebm)
        losses.total.backward()
        gnorm = float(torch.nn.utils.clip_grad_norm_(params, config.grad_clip))
        s = losses.scalars()
        abort = monitor.observe_step(step, s.sft_loss, s.ebm_loss, config.lambda_ebm, s.temperature,
                                     gnorm, lr_lora=optimizer.param_groups[0]["lr"],
                                     lr_ebm=optimizer.param_groups[1]["lr"])
        if abort is not None:  # never step on a bad update: the last checkpoint stays the good state
            optimizer.zero_grad(set_to_none=True)
            break
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if prover.device.type == "cuda":
            torch.cuda.synchronize(prover.device)  # the step's kernels, not just their launch
        step_seconds += time.perf_counter() - t_step
        step_tokens += counter.tokens - tokens_before
        steps_run += 1
        if step % config.log_every == 0:
            row = monitor.train_log[-1]
            log(f"step {step}/{config.total_steps} sft={row['sft_loss']:.4f} ebm={row['ebm_loss']:.4f} "
                f"λ·ebm={row['lambda_ebm_loss']:.4f} T={row['temperature']:.3f} grad={gnorm:.3f}")
        if step % config.eval_every == 0 or step == config.total_steps:
            probe = separation_probe(prover, probe_groups)
            log(f"probe step {step}: centroid_l2={probe.centroid_l2:.4f} rank1={probe.rank1:.3f}")
            abort = monitor.observe_probe(step, probe.centroid_l2, probe.rank1)
            if abort is not None:
                break
        if step % config.save_every == 0 or step == config.total_steps:
            path = save_checkpoint(checkpoint_dir, step, prover, optimizer, scheduler, monitor, fingerprint,
                                   config.keep_checkpoints)
            log(f"checkpoint {path}")
        if stop_after_step is not None and step >= stop_after_step:
            raise TrainingInterrupted(f"stopped after step {step} (stop_after_step={stop_after_step})")
    loop_s = time.monotonic() - loop_t0
    counter.close()

    result = JointRunResult(
        status="aborted" if abort else "completed", steps_done=start_step + steps_run,
        total_steps=config.total_steps, abort=abort, resumed_from_step=resumed_from,
        train_log=monitor.train_log, probe_log=monitor.probe_log, smoke=smoke, data=data,
        seconds=0.0, seconds_per_step=(loop_s / steps_run) if steps_run else None,
        checkpoint_dir=str(checkpoint_dir), probe_is_heldout=heldout, lora_targets=prover.lora_targets,
        head_hidden_dims=list(prover.ebm_head.hidden_dims),
        attn_implementation=getattr(getattr(prover.backbone, "config", None), "_attn_implementation", None),
        train_tokens=step_tokens, train_step_seconds=round(step_seconds, 3),
        tokens_per_s=round(step_tokens / step_seconds, 1) if step_seconds else None,
        peak_memory_gb=round(memory.peak_gb(), 3), peak_memory_kind=memory.kind)
    if abort is not None:
        log(str(abort))
    else:
        prover.eval()
        save_head(prover.ebm_head, str(head_path))
        # The final adapter sits at the top of the checkpoint dir (HF adapter format).
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-adapter-", dir=checkpoint_dir))
        prover.backbone.save_pretrained(str(tmp))
        for f in tmp.iterdir():
            os.replace(f, checkpoint_dir / f.name)
        shutil.rmtree(tmp, ignore_errors=True)
        export_merged(prover, Path(merged_dir))
        result.merged_dir, result.head_path = str(merged_dir), str(head_path)
    if monitor.train_log or monitor.probe_log:
        result.plot_path = str(plot_monitoring(monitor.train_log, monitor.probe_log,
                                               checkpoint_dir / "monitoring.png",
                                               title=f"joint iter_1 ({result.status})"))
    result.seconds = time.monotonic() - t0
    write_json(checkpoint_dir / RUN_SUMMARY, result.as_dict())
    return result
