"""Embedding-space metrics (plan Task 2.2) and EBM metrics (Task 2.5), with the plan's names.

A metric the data cannot support (too few states in a bucket, a class smaller than the
probe's folds, no sibling group with both labels) is reported as None with the reason in
`not_available`, never as a crash and never as a made-up number.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from burnqed_assets.data.io import write_json
from burnqed_assets.ebm.dataset import (
    EmbeddedTrajectories,
    load_embedded_trajectories,
    sample_contrastive,
    theorem_split,
)
from burnqed_assets.ebm.head import GoalConditionedEnergyHead, load_head

DEPTH_BUCKETS = (((0, 1), "shallow"), ((2, 3), "mid"), ((4, 10**9), "deep"))
RANK1_BUCKETS = (((0, 1), "rank1_d0_1"), ((2, 3), "rank1_d2_3"), ((4, 10**9), "rank1_d4+"))

EMBEDDING_METRIC_NAMES = (
    "centroid_l2", "linear_probe_acc", "norm_gap", "sibling_l2_mean", "sibling_l2_median",
    "sibling_collision_rate", "top1_variance_ratio", "top10_variance_ratio", "effective_dimension",
    "silhouette_shallow", "silhouette_mid", "silhouette_deep", "dual_label_states", "dual_label_rate",
)
EBM_METRIC_NAMES = (
    "rank1_accuracy", "rank1_d0_1", "rank1_d2_3", "rank1_d4+", "energy_gap", "energy_std_pos",
    "energy_std_neg", "sibling_discrimination", "active_ratio",
)


@dataclass
class MetricReport:
    """Values under the plan's names (None when not available, with the reason)."""

    values: dict[str, float | int | None] = field(default_factory=dict)
    not_available: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    details: dict[str, object] = field(default_factory=dict)  # arrays for plots, not serialised

    def set(self, name: str, value: float | None, reason: str = "") -> None:
        if value is None or (isinstance(value, float) and not np.isfinite(value)):
            self.values[name] = None
            self.not_available[name] = reason or "not computable"
        else:
            self.values[name] = float(value) if isinstance(value, (float, np.floating)) else int(value)

    def to_json(self, **extra: object) -> dict[str, object]:
        return {**self.values, "not_available": dict(self.not_available), "counts": dict(self.counts), **extra}


# ---------------------------------------------------------------- embedding metrics (Task 2.2)

def _labelled(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    labels = frame["label"].to_numpy()
    return np.flatnonzero(labels == "positive"), np.flatnonzero(labels == "negative")


def centroid_l2(pos: np.ndarray, neg: np.ndarray) -> float | None:
    if len(pos) == 0 or len(neg) == 0:
        return None
    return float(np.linalg.norm(pos.mean(axis=0) - neg.mean(axis=0)))


def norm_gap(pos: np.ndarray, neg: np.ndarray) -> float | None:
    if len(pos) == 0 or len(neg) == 0:
        return None
    return float(np.linalg.norm(pos, axis=1).mean() - np.linalg.norm(neg, axis=1).mean())


def linear_probe_accuracy(x: np.ndarray, y: np.ndarray, folds: int = 5, max_samples: int = 20_000,
                          seed: int = 0) -> tuple[float | None, str]:
    """Mean stratified-CV accuracy of a logistic-regression probe; (None, reason) when unsupported."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        return None, "needs both positive and negative states"
    if counts.min() < folds:
        return None, f"smallest class has {int(counts.min())} states, fewer than the {folds} CV folds"
    if len(y) > max_samples:  # stratified subsample keeps the class ratio
        rng = np.random.default_rng(seed)
        keep = np.concatenate([rng.choice(np.flatnonzero(y == c), size=max(folds, int(max_samples * n / len(y))),
                                          replace=False) for c, n in zip(classes, counts)])
        x, y = x[keep], y[keep]
    # Standardising does not change linear separability; it lets lbfgs converge on raw hidden states.
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = cross_val_score(probe, x, y, cv=StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed))
    return float(np.mean(scores)), ""


def sibling_l2_distances(frame: pd.DataFrame, states: np.ndarray) -> np.ndarray:
    """Pairwise L2 between children of the same parent (same theorem, same sibling_group)."""
    from scipy.spatial.distance import pdist

    children = frame[frame["parent_id"] >= 0]
    out: list[np.ndarray] = []
    for idx in children.groupby(["theorem", "sibling_group"]).indices.values():
        if len(idx) >= 2:
            out.append(pdist(states[children.index.to_numpy()[idx]]))
    return np.concatenate(out) if out else np.zeros(0)


def variance_spectrum(x: np.ndarray, chunk_rows: int = 8192) -> np.ndarray:
    """Covariance eigenvalues, descending. Fewer rows than dims: via the Gram matrix; otherwise the
    d×d scatter matrix is accumulated in float64 chunks (no full float64 copy of the embeddings)."""
    n, d = x.shape
    mean = x.mean(axis=0, dtype=np.float64)
    if n < d:
        xc = x.astype(np.float64) - mean
        small = xc @ xc.T
    else:
        small = np.zeros((d, d), dtype=np.float64)
        for start in range(0, n, chunk_rows):
            xc = x[start:start + chunk_rows].astype(np.float64) - mean
            small += xc.T @ xc
    eig = np.linalg.eigvalsh(small / (n - 1))[::-1]
    return np.clip(eig, 0.0, None)


def silhouette(x: np.ndarray, y: np.ndarray, min_states: int, sample_size: int, seed: int) -> tuple[float | None, str]:
    from sklearn.metrics import silhouette_score

    if len(y) <= min_states:
        return None, f"{len(y)} labelled states, needs more than {min_states}"
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2 or counts.min() < 2:
        return None, "needs at least two positive and two negative states"
    if len(y) > sample_size:  # stratified sample, so both labels stay present
        rng = np.random.default_rng(seed)
        keep = np.concatenate([rng.choice(np.flatnonzero(y == c), size=max(2, int(sample_size * n / len(y))),
                                          replace=False) for c, n in zip(classes, counts)])
        x, y = x[keep], y[keep]
    return float(silhouette_score(x, y)), ""


def compute_embedding_metrics(frame: pd.DataFrame, states: np.ndarray, *, probe_folds: int = 5,
                              probe_max_samples: int = 20_000, collision_threshold: float = 1.0,
                              silhouette_min_states: int = 100, silhouette_sample_size: int = 2000,
                              seed: int = 0) -> MetricReport:
    """The seven metrics of Task 2.2 over `frame` rows (row i ↔ states[i])."""
    frame = frame.reset_index(drop=True)
    report = MetricReport()
    pos_i, neg_i = _labelled(frame)
    report.counts = {"states": len(frame), "positive": len(pos_i), "negative": len(neg_i),
                     "unknown": int(len(frame) - len(pos_i) - len(neg_i)),
                     "theorems": int(frame["theorem"].nunique())}
    both = "needs both positive and negative states"
    pos, neg = states[pos_i], states[neg_i]
    # 1. centroid L2, and per depth for the depth-vs-separation plot
    report.set("centroid_l2", centroid_l2(pos, neg), both)
    by_depth: dict[int, float] = {}
    depth = frame["depth"].to_numpy()
    for d in sorted(set(depth.tolist())):
        value = centroid_l2(states[pos_i[depth[pos_i] == d]], states[neg_i[depth[neg_i] == d]])
        if value is not None:
            by_depth[int(d)] = value
    report.details["centroid_l2_by_depth"] = by_depth
    # 2. linear probe
    labelled = np.concatenate([pos_i, neg_i])
    y = np.array([1] * len(pos_i) + [0] * len(neg_i))
    acc, reason = linear_probe_accuracy(states[labelled], y, probe_folds, probe_max_samples, seed)
    report.set("linear_probe_acc", acc, reason)
    # 3. norm gap
    report.set("norm_gap", norm_gap(pos, neg), both)
    # 4. sibling L2
    sib = sibling_l2_distances(frame, states)
    report.details["sibling_l2"] = sib
    no_sib = "no parent with two or more children"
    report.set("sibling_l2_mean", float(np.mean(sib)) if len(sib) else None, no_sib)
    report.set("sibling_l2_median", float(np.median(sib)) if len(sib) else None, no_sib)
    report.set("sibling_collision_rate", float(np.mean(sib < collision_threshold)) if len(sib) else None, no_sib)
    report.counts["sibling_pairs"] = len(sib)
    # 5. variance spectrum
    if len(states) >= 2 and (eig := variance_spectrum(states)).sum() > 0:
        total = eig.sum()
        report.details["eigenvalues"] = eig
        report.set("top1_variance_ratio", float(eig[0] / total))
        report.set("top10_variance_ratio", float(eig[:10].sum() / total))
        report.set("effective_dimension", float(total**2 / (eig**2).sum()))
    else:
        for name in ("top1_variance_ratio", "top10_variance_ratio", "effective_dimension"):
            report.set(name, None, "needs at least two states with non-zero variance")
    # 6. depth-stratified silhouette (positive vs negative)
    for (lo, hi), name in DEPTH_BUCKETS:
        sel = labelled[(depth[labelled] >= lo) & (depth[labelled] <= hi)]
        value, reason = silhouette(states[sel], (frame["label"].to_numpy()[sel] == "positive").astype(int),
                                   silhouette_min_states, silhouette_sample_size, seed)
        report.set(f"silhouette_{name}", value, reason)
    # 7. dual-label states (the same text labelled positive somewhere and negative elsewhere)
    lab = frame.iloc[labelled]
    if len(lab):
        per_state = lab.groupby("state_pp")["label"].nunique()
        dual = int((per_state > 1).sum())
        report.set("dual_label_states", dual)
        report.set("dual_label_rate", dual / len(per_state))
    else:
        report.set("dual_label_states", None, both)
        report.set("dual_label_rate", None, both)
    return report


def embedding_metrics_from_files(trajectories_path: str | Path, embeddings_dir: str | Path, out_json: str | Path,
                                 plots_dir: str | Path | None = None, **params: object) -> tuple[MetricReport, dict[str, Path]]:
    """Load one iteration's embeddings, compute Task 2.2, write the JSON and (optionally) Task 2.3 plots."""
    data = load_embedded_trajectories(trajectories_path, embeddings_dir)
    report = compute_embedding_metrics(data.frame, data.states, **params)  # type: ignore[arg-type]
    report.counts["missing_state_embeddings"] = data.missing_state_embeddings
    report.counts["theorems_without_goal"] = len(data.theorems_without_goal)
    plots: dict[str, Path] = {}
    if plots_dir is not None:
        from burnqed_assets.reports.embedding_plots import embedding_plots

        plots = embedding_plots(data.frame, data.states, report, Path(plots_dir),
                                collision_threshold=float(params.get("collision_threshold", 1.0)))
    write_json(out_json, report.to_json(centroid_l2_by_depth={str(k): v for k, v in
                                                              report.details["centroid_l2_by_depth"].items()},
                                        plots={k: str(v) for k, v in plots.items()}))
    return report, plots


# ---------------------------------------------------------------- EBM metrics (Task 2.5)

def score_rows(head: GoalConditionedEnergyHead, data: EmbeddedTrajectories, rows: np.ndarray,
               device: str = "cpu", batch_size: int = 4096) -> np.ndarray:
    """E(state, goal of its theorem) for each row, in eval mode."""
    head = head.to(device).eval()
    out = []
    goal_index = data.frame["goal_index"].to_numpy()
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            r = rows[start:start + batch_size]
            z_s = torch.from_numpy(np.ascontiguousarray(data.states[r])).to(device)
            z_g = torch.from_numpy(np.ascontiguousarray(data.goals[goal_index[r]])).to(device)
            out.append(head.energy(z_s, z_g).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def rank1_accuracy(frame: pd.DataFrame, energy: np.ndarray) -> tuple[float | None, int]:
    """Among labelled children of one parent (both labels present): is the lowest energy positive?"""
    frame = frame.reset_index(drop=True)
    labels = frame["label"].to_numpy()
    keep = np.flatnonzero(np.isin(labels, ("positive", "negative")) & (frame["parent_id"].to_numpy() >= 0))
    sub = frame.iloc[keep]
    correct = total = 0
    for idx in sub.groupby(["theorem", "sibling_group"]).indices.values():
        rows = keep[idx]
        group_labels = labels[rows]
        if len(rows) < 2 or len(set(group_labels)) < 2:
            continue
        total += 1
        correct += int(group_labels[np.argmin(energy[rows])] == "positive")
    return (correct / total if total else None), total


def sibling_discrimination(frame: pd.DataFrame, energy: np.ndarray) -> tuple[float | None, int, float | None]:
    """Stricter than rank-1: among ALL children of a parent that has a proof-path child
    (unexpanded/unknown siblings included), does a positive child get the strictly lowest
    energy? Returns (value, groups, chance level = mean share of positives per group)."""
    frame = frame.reset_index(drop=True)
    labels = frame["label"].to_numpy()
    children = np.flatnonzero(frame["parent_id"].to_numpy() >= 0)
    sub = frame.iloc[children]
    correct = total = 0
    chance = []
    for idx in sub.groupby(["theorem", "sibling_group"]).indices.values():
        rows = children[idx]
        is_pos = labels[rows] == "positive"
        if len(rows) < 2 or not is_pos.any():
            continue
        total += 1
        e = energy[rows]
        best_pos, best_other = e[is_pos].min(), (e[~is_pos].min() if (~is_pos).any() else np.inf)
        correct += int(best_pos < best_other)
        chance.append(is_pos.mean())
    return (correct / total if total else None), total, (float(np.mean(chance)) if chance else None)


def compute_ebm_metrics(head: GoalConditionedEnergyHead, data: EmbeddedTrajectories, rows: np.ndarray, *,
                        k_negatives: int = 7, hard_ratio: float = 0.6, margin: float = 1.0, seed: int = 0,
                        device: str = "cpu") -> MetricReport:
    """The five EBM metrics of Task 2.5 on `rows` (the validation theorems' states)."""
    report = MetricReport()
    frame = data.frame.iloc[rows].reset_index(drop=True)
    energy = score_rows(head, data, rows, device=device)
    labels = frame["label"].to_numpy()
    report.counts = {"states": len(frame), "theorems": int(frame["theorem"].nunique()),
                     "positive": int((labels == "positive").sum()), "negative": int((labels == "negative").sum())}
    no_group = "no sibling group with both a positive and a negative child"
    value, groups = rank1_accuracy(frame, energy)
    report.set("rank1_accuracy", value, no_group)
    report.counts["rank1_groups"] = groups
    depth = frame["depth"].to_numpy()
    for (lo, hi), name in RANK1_BUCKETS:
        sel = np.flatnonzero((depth >= lo) & (depth <= hi))
        value, groups = rank1_accuracy(frame.iloc[sel], energy[sel])
        report.set(name, value, f"{no_group} at depth {lo}-{hi if hi < 10**9 else '∞'}")
        report.counts[f"{name}_groups"] = groups
    pos_e, neg_e = energy[labels == "positive"], energy[labels == "negative"]
    if len(pos_e) and len(neg_e):
        report.set("energy_gap", float(neg_e.mean() - pos_e.mean()))
        report.set("energy_std_pos", float(pos_e.std()))
        report.set("energy_std_neg", float(neg_e.std()))
    else:
        for name in ("energy_gap", "energy_std_pos", "energy_std_neg"):
            report.set(name, None, "needs positive and negative validation states")
    value, groups, chance = sibling_discrimination(frame, energy)
    report.set("sibling_discrimination", value, "no parent with a proof-path child and a sibling")
    report.counts["sibling_groups"] = groups
    report.details["sibling_discrimination_chance"] = chance
    batch = sample_contrastive(data, rows, k_negatives, hard_ratio, np.random.default_rng(seed))
    if len(batch):
        position = {int(r): i for i, r in enumerate(rows)}
        e_pos = energy[[position[int(r)] for r in batch.positive]][:, None]
        e_neg = energy[np.vectorize(lambda r: position[int(r)])(batch.negatives)]
        report.set("active_ratio", float(np.mean((e_neg - e_pos) < margin)))
        report.counts["active_pairs"] = int(batch.negatives.size)
    else:
        report.set("active_ratio", None, "no contrastive pairs on the validation theorems")
    return report


def ebm_metrics_from_files(trajectories_path: str | Path, embeddings_dir: str | Path, head_path: str | Path,
                           out_json: str | Path, *, val_fraction: float, split_seed: int, k_negatives: int,
                           hard_ratio: float, margin: float = 1.0, seed: int = 0, device: str = "cpu",
                           head_loader: Callable[[str], GoalConditionedEnergyHead] | None = None) -> MetricReport:
    """Score the validation theorems (the same theorem-level split as training) and write the JSON."""
    data = load_embedded_trajectories(trajectories_path, embeddings_dir)
    _, val = theorem_split(data.frame, val_fraction, split_seed)
    head = (head_loader or load_head)(str(head_path))
    report = compute_ebm_metrics(head, data, data.subset(val), k_negatives=k_negatives, hard_ratio=hard_ratio,
                                 margin=margin, seed=seed, device=device)
    report.counts["val_theorems"] = len(val)
    write_json(out_json, report.to_json(sibling_discrimination_chance=report.details["sibling_discrimination_chance"],
                                        margin=margin, head_path=str(head_path)))
    return report
