"""Monitoring inside the joint run (plan Task 3.4 / 4.1): curves, separation probe, ABORT rules.

Every `log_every` steps: SFT loss, EBM loss, λ·EBM, learned temperature (Gotcha 3).
Every `eval_every` steps: separation probe (centroid_l2 between positive and negative state
embeddings, EBM rank-1 of the positive among its group). The plan's abort conditions, each
with the remedy the plan names:

    centroid_l2 < abort at any eval            → increase λ to 0.3, restart from checkpoint
    SFT loss > abort after abort_after_step    → decrease λ to 0.03, restart
    EBM rank-1 < abort after abort_after_step  → check data pipeline
    temperature at floor/ceiling for N+ steps  → debug energy scale
    any NaN                                    → check gradient clipping, temperature clamp
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from burnqed_assets.ebm.config import TEMPERATURE_CEILING, TEMPERATURE_FLOOR

REMEDIES = {
    "centroid_l2_collapse": "increase λ to 0.3 and restart from the last checkpoint",
    "sft_loss_high": "decrease λ to 0.03 and restart",
    "ebm_rank1_low": "check the data pipeline (trajectory labels, sibling groups, goal states)",
    "temperature_stuck": "debug the energy scale (head init, spectral norm, lr_ebm)",
    "non_finite": "check gradient clipping and the temperature clamp",
}


HEALTHY_TEMPERATURE = (0.5, 3.0)  # Gotcha 3: healthy range; the bounds 0.1 / 10 are the abort lines


@dataclass(frozen=True)
class AbortThresholds:
    centroid_l2_min: float = 3.0
    sft_loss_max: float = 0.5
    rank1_min: float = 0.25
    abort_after_step: int = 2000
    temperature_floor: float = TEMPERATURE_FLOOR  # the head's clamp bounds (ebm/config.py)
    temperature_ceiling: float = TEMPERATURE_CEILING
    temperature_stuck_steps: int = 500

    @classmethod
    def from_settings(cls, settings: Any) -> AbortThresholds:
        t, j = settings.thresholds, settings.joint
        return cls(centroid_l2_min=t.joint_centroid_l2_abort, sft_loss_max=t.joint_sft_loss_abort,
                   rank1_min=t.joint_rank1_abort, abort_after_step=j.abort_after_step,
                   temperature_floor=t.temperature_floor, temperature_ceiling=t.temperature_ceiling,
                   temperature_stuck_steps=j.temperature_stuck_steps)


@dataclass(frozen=True)
class AbortReason:
    condition: str  # a key of REMEDIES
    step: int
    message: str

    @property
    def remedy(self) -> str:
        return REMEDIES[self.condition]

    def __str__(self) -> str:
        return f"ABORT at step {self.step}: {self.message} → remedy: {self.remedy}"

    def as_dict(self) -> dict[str, Any]:
        return {"condition": self.condition, "step": self.step, "message": self.message, "remedy": self.remedy}


def _finite(*values: float | None) -> bool:
    return all(v is None or math.isfinite(v) for v in values)


@dataclass
class JointMonitor:
    """Feed it every step's scalars and every probe; it answers with an AbortReason or None."""

    thresholds: AbortThresholds
    log_every: int = 50
    train_log: list[dict[str, float]] = field(default_factory=list)
    probe_log: list[dict[str, float]] = field(default_factory=list)
    _window: list[dict[str, float]] = field(default_factory=list)
    _temperature_stuck_since: int | None = None

    def _at_bound(self, temperature: float) -> bool:
        t = self.thresholds
        return temperature <= t.temperature_floor * (1 + 1e-3) or temperature >= t.temperature_ceiling * (1 - 1e-3)

    def observe_step(self, step: int, sft_loss: float, ebm_loss: float, lambda_ebm: float, temperature: float,
                     grad_norm: float | None = None, **extra: float) -> AbortReason | None:
        """One optimizer step's scalars (step = steps completed, from 1)."""
        if not _finite(sft_loss, ebm_loss, temperature, grad_norm):
            self._log(step, sft_loss, ebm_loss, lambda_ebm, temperature, grad_norm, extra, force=True)
            return AbortReason("non_finite", step, f"non-finite value: sft_loss={sft_loss}, ebm_loss={ebm_loss}, "
                               f"temperature={temperature}, grad_norm={grad_norm}")
        t = self.thresholds
        if self._at_bound(temperature):
            if self._temperature_stuck_since is None:
                self._temperature_stuck_since = step
        else:
            self._temperature_stuck_since = None
        row = self._log(step, sft_loss, ebm_loss, lambda_ebm, temperature, grad_norm, extra)
        since = self._temperature_stuck_since
        if since is not None and step - since >= t.temperature_stuck_steps:
            bound = "floor" if temperature <= t.temperature_floor * (1 + 1e-3) else "ceiling"
            return AbortReason("temperature_stuck", step, f"learned temperature {temperature:.4g} has sat at the "
                               f"{bound} since step {since} ({step - since} steps >= {t.temperature_stuck_steps})")
        # SFT loss is judged on the logging window's mean: single steps are too noisy.
        if row is not None and step > t.abort_after_step and row["sft_loss"] > t.sft_loss_max:
            return AbortReason("sft_loss_high", step, f"SFT loss {row['sft_loss']:.4g} (mean of the last "
                               f"{int(row['window'])} steps) > {t.sft_loss_max} after step {t.abort_after_step}")
        return None

    def _log(self, step: int, sft_loss: float, ebm_loss: float, lambda_ebm: float, temperature: float,
             grad_norm: float | None, extra: dict[str, float], force: bool = False) -> dict[str, float] | None:
        self._window.append({"sft_loss": sft_loss, "ebm_loss": ebm_loss, "temperature": temperature,
                             "grad_norm": grad_norm if grad_norm is not None else float("nan"), **extra})
        if not force and step % self.log_every != 0 and step != 1:
            return None
        keys = self._window[0].keys()
        mean = {k: sum(w[k] for w in self._window) / len(self._window) for k in keys}
        row = {"step": step, **mean, "lambda_ebm": lambda_ebm, "lambda_ebm_loss": lambda_ebm * mean["ebm_loss"],
               "temperature": temperature, "window": len(self._window)}
        self.train_log.append(row)
        self._window = []
        return row

    def observe_probe(self, step: int, centroid_l2: float, rank1: float) -> AbortReason | None:
        t = self.thresholds
        self.probe_log.append({"step": step, "centroid_l2": centroid_l2, "rank1": rank1})
        if not _finite(centroid_l2, rank1):
            return AbortReason("non_finite", step, f"probe gave centroid_l2={centroid_l2}, rank1={rank1}")
        if centroid_l2 < t.centroid_l2_min:
            return AbortReason("centroid_l2_collapse", step,
                               f"centroid_l2 {centroid_l2:.4g} < {t.centroid_l2_min} (embedding separation collapsed)")
        if step > t.abort_after_step and rank1 < t.rank1_min:
            return AbortReason("ebm_rank1_low", step,
                               f"EBM rank-1 {rank1:.4g} < {t.rank1_min} after step {t.abort_after_step}")
        return None

    # resume
    def state_dict(self) -> dict[str, Any]:
        return {"train_log": self.train_log, "probe_log": self.probe_log, "window": self._window,
                "temperature_stuck_since": self._temperature_stuck_since, "thresholds": asdict(self.thresholds)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.train_log = list(state.get("train_log", []))
        self.probe_log = list(state.get("probe_log", []))
        self._window = list(state.get("window", []))
        self._temperature_stuck_since = state.get("temperature_stuck_since")


@dataclass(frozen=True)
class ProbeResult:
    """The separation probe on the fixed probe groups (NaN values when there were none)."""

    centroid_l2: float  # L2 between the mean positive and the mean negative state embedding
    rank1: float  # share of groups whose positive has the lowest energy
    groups: int


@torch.no_grad()
def separation_probe(prover: Any, groups: Sequence[Any], batch_size: int = 8) -> ProbeResult:
    """centroid_l2 (positive vs negative state embeddings) and rank-1 of the positive per group.

    Runs in eval mode (no dropout) and restores the previous mode.
    """
    was_training = prover.training
    prover.eval()
    try:
        pos_sum, neg_sum, n_pos, n_neg, correct = None, None, 0, 0, 0
        for i in range(0, len(groups), batch_size):
            chunk = groups[i:i + batch_size]
            k = len(chunk[0].negatives)
            z_pos = prover.embed([g.positive for g in chunk], grad=False).float()
            z_neg = prover.embed([n for g in chunk for n in g.negatives], grad=False).float()
            z_goal = prover.embed([g.goal for g in chunk], grad=False).float()
            e_pos = prover.ebm_head.energy(z_pos, z_goal)
            goal_rep = z_goal.repeat_interleave(k, dim=0)
            e_neg = prover.ebm_head.energy(z_neg, goal_rep).view(len(chunk), k)
            correct += int((e_pos < e_neg.min(dim=1).values).sum())
            pos_sum = z_pos.sum(0) if pos_sum is None else pos_sum + z_pos.sum(0)
            neg_sum = z_neg.sum(0) if neg_sum is None else neg_sum + z_neg.sum(0)
            n_pos += z_pos.size(0)
            n_neg += z_neg.size(0)
        if not n_pos:
            return ProbeResult(centroid_l2=float("nan"), rank1=float("nan"), groups=0)
        centroid = float(torch.linalg.vector_norm(pos_sum / n_pos - neg_sum / n_neg))
        return ProbeResult(centroid_l2=centroid, rank1=correct / n_pos, groups=n_pos)
    finally:
        prover.train(was_training)


def plot_monitoring(train_log: Sequence[dict[str, float]], probe_log: Sequence[dict[str, float]],
                    dest: str | Path, title: str = "joint training") -> Path:
    """One PNG with the five curves the plan's monitoring table tracks."""
    from burnqed_assets.reports.plots import plt, save_figure

    fig, axes = plt.subplots(1, 4, figsize=(14, 3))
    steps = [r["step"] for r in train_log]
    axes[0].plot(steps, [r["sft_loss"] for r in train_log], label="SFT loss")
    axes[0].set_title("SFT loss")
    axes[1].plot(steps, [r["ebm_loss"] for r in train_log], label="EBM loss")
    axes[1].plot(steps, [r["lambda_ebm_loss"] for r in train_log], label="λ·EBM")
    axes[1].legend(fontsize=7)
    axes[1].set_title("EBM (InfoNCE)")
    axes[2].plot(steps, [r["temperature"] for r in train_log])
    axes[2].axhspan(*HEALTHY_TEMPERATURE, color="green", alpha=0.1)
    axes[2].set_yscale("log")
    axes[2].set_title("learned temperature")
    psteps = [r["step"] for r in probe_log]
    axes[3].plot(psteps, [r["centroid_l2"] for r in probe_log], marker="o", label="centroid_l2")
    ax2 = axes[3].twinx()
    ax2.plot(psteps, [r["rank1"] for r in probe_log], marker="s", color="tab:red", label="rank-1")
    ax2.set_ylim(0, 1)
    axes[3].set_title("separation probe (red: rank-1)")
    for ax in axes:
        ax.set_xlabel("step")
    fig.suptitle(title, fontsize=9, y=1.04)
    fig.tight_layout()
    return save_figure(fig, dest)
