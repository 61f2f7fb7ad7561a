"""Decoupled training of GoalConditionedEnergyHead on frozen embeddings (plan Task 2.4).

InfoNCE without a temperature (Gotcha 1: the head's learned temperature scales energies),
K negatives per positive with hard_ratio of them siblings of the positive, AdamW, a
theorem-level train/val split; the temperature is logged every epoch (Gotcha 3).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from burnqed_assets.ebm.config import TEMPERATURE_CEILING, TEMPERATURE_FLOOR, EbmConfig
from burnqed_assets.ebm.dataset import (
    ContrastiveBatch,
    EmbeddedTrajectories,
    load_embedded_trajectories,
    sample_contrastive,
    theorem_split,
)
from burnqed_assets.ebm.head import GoalConditionedEnergyHead, save_head
from burnqed_assets.ebm.losses import info_nce_loss
from burnqed_assets.models.loading import cpu_threads

log = logging.getLogger(__name__)

VAL_CHUNK_POSITIVES = 512  # validation loss in chunks of this many positives (x (1+K) rows each)


EbmTrainConfig = EbmConfig  # the EBM's one config class (ebm/config.py), by its older name


def default_hidden_dims(d_model: int) -> tuple[int, ...]:
    """The plan's 12288 → 2048 → 1024 → 512 → 1 at d=4096, scaled to d (at least 16 wide)."""
    return tuple(max(16, d_model // f) for f in (2, 4, 8))


@dataclass(frozen=True)
class EbmTrainFiles:
    """What `train_ebm_from_files` adds: where the head went, what the loaded data lacked, the config."""

    head_path: str
    missing_state_embeddings: int
    theorems_without_goal: int
    config: EbmTrainConfig


@dataclass
class EbmTrainResult:
    head: GoalConditionedEnergyHead
    history: list[dict[str, float]]  # one entry per epoch: loss, val_loss, temperature, val_rank1
    train_theorems: set[str]
    val_theorems: set[str]
    train_positives: int = 0
    val_positives: int = 0
    hard_negative_share: float = 0.0
    seconds: float = 0.0
    temperature_at_bound_epochs: int | None = None  # epochs ending at the clamp (Gotcha 3); None: not trained
    files: EbmTrainFiles | None = None
    untrained_reason: str = ""  # set when allow_untrained let a run without contrastive pairs through

    @property
    def trained(self) -> bool:
        return not self.untrained_reason

    def summary(self) -> dict[str, object]:
        """The JSON summary (ebm_training.json's "summary", the asset's metadata); a key whose
        value this run does not have is left out, not written as null."""
        last = self.history[-1] if self.history else {}
        summary: dict[str, object] = {
            "trained": self.trained, "untrained_reason": self.untrained_reason,
            "d_model": self.head.d_model, "hidden_dims": list(self.head.hidden_dims),
            "train_theorems": len(self.train_theorems), "val_theorems": len(self.val_theorems),
            "train_positives": self.train_positives, "val_positives": self.val_positives,
            "hard_negative_share": round(self.hard_negative_share, 4),
            "epochs": len(self.history), "final_loss": last.get("loss"), "final_val_loss": last.get("val_loss"),
            "final_temperature": last.get("temperature"), "final_val_rank1": last.get("val_rank1"),
            "seconds": round(self.seconds, 2),
        }
        if self.temperature_at_bound_epochs is not None:
            summary["temperature_at_bound_epochs"] = self.temperature_at_bound_epochs
        if self.files is not None:
            summary.update({"head_path": self.files.head_path,
                            "missing_state_embeddings": self.files.missing_state_embeddings,
                            "theorems_without_goal": self.files.theorems_without_goal,
                            "config": self.files.config.training_summary()})
        return summary


@dataclass
class PagedBatch:
    """The vectors of one contrastive batch, on the training device: states [B(1+K), d], goals [B, d]."""

    states: torch.Tensor
    goals: torch.Tensor
    k: int


class BatchPager:
    """Pages contrastive batches from host memory (a memmap of any size) to the device.

    Each batch gathers only its own rows (positives, then negatives row-major; the positive's goal),
    as float32; the next batch is gathered in a background thread while the current one trains,
    and on CUDA through pinned memory. The full set is never on the device.
    """

    def __init__(self, data: EmbeddedTrajectories, device: torch.device, prefetch: bool = True):
        self.data, self.device = data, device
        self.pin = device.type == "cuda"
        self._pool = ThreadPoolExecutor(max_workers=1) if prefetch else None

    def _gather(self, batch: ContrastiveBatch, sel: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, int]:
        k = batch.negatives.shape[1]
        rows = np.concatenate([batch.positive[sel], batch.negatives[sel].reshape(-1)])
        states = torch.from_numpy(self.data.state_vectors(rows))
        goals = torch.from_numpy(self.data.goal_vectors(batch.goal[sel]))
        if self.pin:
            states, goals = states.pin_memory(), goals.pin_memory()
        return states, goals, k

    def _to_device(self, host: tuple[torch.Tensor, torch.Tensor, int]) -> PagedBatch:
        states, goals, k = host
        return PagedBatch(states.to(self.device, non_blocking=self.pin),
                          goals.to(self.device, non_blocking=self.pin), k)

    def batches(self, batch: ContrastiveBatch, selections: list[np.ndarray]) -> Iterator[tuple[np.ndarray, PagedBatch]]:
        """(selection, its vectors on the device) for each selection, in order."""
        if self._pool is None:
            for sel in selections:
                yield sel, self._to_device(self._gather(batch, sel))
            return
        pending = self._pool.submit(self._gather, batch, selections[0]) if selections else None
        for i, sel in enumerate(selections):
            host = pending.result()
            pending = self._pool.submit(self._gather, batch, selections[i + 1]) if i + 1 < len(selections) else None
            yield sel, self._to_device(host)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def _energies(head: GoalConditionedEnergyHead, paged: PagedBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Positive energies [B] and negative energies [B, K] of a paged batch, goal of the positive."""
    b, k = len(paged.goals), paged.k
    goal_rows = torch.cat([paged.goals, paged.goals.repeat_interleave(k, dim=0)])
    energy = head.energy(paged.states, goal_rows)
    return energy[:b], energy[b:].reshape(b, k)


def _val_loss(head: GoalConditionedEnergyHead, pager: BatchPager, val_batch: ContrastiveBatch,
              chunk: int = VAL_CHUNK_POSITIVES) -> float:
    """InfoNCE over all validation positives, computed chunk by chunk (the mean over all of them)."""
    selections = [np.arange(s, min(s + chunk, len(val_batch))) for s in range(0, len(val_batch), chunk)]
    pos, neg = [], []
    for _, paged in pager.batches(val_batch, selections):
        p, n = _energies(head, paged)
        pos.append(p)
        neg.append(n)
    return float(info_nce_loss(torch.cat(pos), torch.cat(neg)))


def sibling_rank1(head: GoalConditionedEnergyHead, data: EmbeddedTrajectories, rows: np.ndarray,
                  device: str = "cpu") -> float | None:
    """Share of sibling groups (both labels present) whose lowest-energy child is positive."""
    from burnqed_assets.ebm.metrics import rank1_accuracy, score_rows

    if len(rows) == 0:
        return None
    energy = score_rows(head, data, rows, device=device)
    value, _ = rank1_accuracy(data.frame.iloc[rows], energy)
    return value


def train_decoupled_ebm(data: EmbeddedTrajectories, train_theorems: set[str], val_theorems: set[str],
                        config: EbmTrainConfig, progress: Callable[[str], None] | None = None,
                        allow_untrained: bool = False) -> EbmTrainResult:
    """Train a fresh head on frozen embeddings; returns the head (eval mode) and per-epoch history.

    Without a single (positive, negative) pair on the training theorems this raises, unless
    `allow_untrained` (the demo, whose tiny policy may prove nothing): then the freshly initialised
    head comes back with `untrained_reason` set, so downstream steps run and say so.
    """
    with cpu_threads(config.cpu_threads if config.device == "cpu" else 0):
        return _train(data, train_theorems, val_theorems, config, progress or log.info, allow_untrained)


def _train(data: EmbeddedTrajectories, train_theorems: set[str], val_theorems: set[str], config: EbmTrainConfig,
           say: Callable[[str], None], allow_untrained: bool) -> EbmTrainResult:
    torch.manual_seed(config.train_seed)
    device = torch.device(config.device)
    head = GoalConditionedEnergyHead(d_model=data.d_model,
                                     hidden_dims=config.hidden_dims or default_hidden_dims(data.d_model)).to(device)
    optimizer = torch.optim.AdamW(head.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    train_rows, val_rows = data.subset(train_theorems), data.subset(val_theorems)
    # Validation negatives fixed once, so val loss is comparable across epochs.
    val_batch = sample_contrastive(data, val_rows, config.k_negatives, config.hard_ratio, np.random.default_rng(12345))
    started = time.monotonic()
    labels = data.frame["label"].to_numpy()[train_rows]
    if not ((labels == "positive").any() and (labels == "negative").any()):
        reason = (f"no training positives with negatives: the training theorems need both labels "
                  f"({len(train_rows)} rows over {len(train_theorems)} theorems: "
                  f"{int((labels == 'positive').sum())} positive, {int((labels == 'negative').sum())} negative)")
        if not allow_untrained:
            raise ValueError(reason)
        say(f"WARNING: {reason}; the head stays untrained")
        return EbmTrainResult(head=head.eval().cpu(), history=[], train_theorems=train_theorems,
                              val_theorems=val_theorems, untrained_reason=reason)
    pager = BatchPager(data, device)
    try:
        history, train_positives, hard_total, hard_slots, at_bound = _epochs(
            head, optimizer, data, pager, train_rows, val_rows, val_batch, config, say)
    finally:
        pager.close()
    head.eval()
    return EbmTrainResult(head=head.cpu(), history=history, train_theorems=train_theorems, val_theorems=val_theorems,
                          train_positives=train_positives, val_positives=len(val_batch),
                          hard_negative_share=hard_total / hard_slots if hard_slots else 0.0,
                          seconds=time.monotonic() - started, temperature_at_bound_epochs=at_bound)


def _epochs(head: GoalConditionedEnergyHead, optimizer: torch.optim.Optimizer, data: EmbeddedTrajectories,
            pager: BatchPager, train_rows: np.ndarray, val_rows: np.ndarray, val_batch: ContrastiveBatch,
            config: EbmTrainConfig,
            say: Callable[[str], None]) -> tuple[list[dict[str, float]], int, int, int, int]:
    history: list[dict[str, float]] = []
    hard_total = hard_slots = at_bound = train_positives = 0
    for epoch in range(1, config.epochs + 1):
        # negatives and order of an epoch come from a generator keyed by (seed, epoch), not from
        # one stream shared across epochs: the same epoch draws the same batches in any run
        rng = np.random.default_rng([int(config.train_seed), epoch])
        batch = sample_contrastive(data, train_rows, config.k_negatives, config.hard_ratio, rng)
        train_positives = len(batch)
        hard_total += int(batch.hard_count.sum())
        hard_slots += batch.negatives.size
        head.train()
        order = rng.permutation(len(batch))
        selections = [order[start:start + config.batch_size] for start in range(0, len(order), config.batch_size)]
        losses = []
        for _, paged in pager.batches(batch, selections):
            pos_e, neg_e = _energies(head, paged)
            loss = info_nce_loss(pos_e, neg_e)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite EBM loss at epoch {epoch}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        head.eval()
        entry = {"epoch": epoch, "loss": float(np.mean(losses)), "temperature": float(head.temperature.detach())}
        with torch.no_grad():
            if len(val_batch):
                entry["val_loss"] = _val_loss(head, pager, val_batch)
            rank1 = sibling_rank1(head, data, val_rows, device=config.device)
            if rank1 is not None:
                entry["val_rank1"] = rank1
        history.append(entry)
        if not TEMPERATURE_FLOOR * 1.001 < entry["temperature"] < TEMPERATURE_CEILING * 0.999:
            at_bound += 1  # Gotcha 3: pinned at the clamp means the energy scale is broken
            say(f"WARNING: temperature {entry['temperature']:.3f} is at its clamp "
                f"[{TEMPERATURE_FLOOR:g}, {TEMPERATURE_CEILING:g}] (epoch {epoch})")
        say(f"epoch {epoch}/{config.epochs} loss={entry['loss']:.4f} val_loss={entry.get('val_loss', math.nan):.4f} "
            f"T={entry['temperature']:.3f} val_rank1={entry.get('val_rank1', math.nan):.3f}")
    return history, train_positives, hard_total, hard_slots, at_bound


def train_ebm_from_files(trajectories_path: str | Path, embeddings_dir: str | Path, head_path: str | Path,
                         config: EbmTrainConfig, progress: Callable[[str], None] | None = None,
                         allow_untrained: bool = False) -> EbmTrainResult:
    """Load trajectories + embeddings of one iteration, split by theorem, train, save the head."""
    data = load_embedded_trajectories(trajectories_path, embeddings_dir)
    train, val = theorem_split(data.frame, config.val_fraction, config.split_seed)
    result = train_decoupled_ebm(data, train, val, config, progress, allow_untrained)
    save_head(result.head, str(head_path))
    result.files = EbmTrainFiles(head_path=str(head_path), missing_state_embeddings=data.missing_state_embeddings,
                                 theorems_without_goal=len(data.theorems_without_goal), config=config)
    return result
