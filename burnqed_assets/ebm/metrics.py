"""Embedding-space metrics (plan Task 2.2) and EBM metrics (Task 2.5), with the plan's names.

A metric the data cannot support (too few states in a bucket, a class smaller than the
probe's folds, no sibling group with both labels) is reported as None with the reason in
`not_available`, never as a crash and never as a made-up number.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from burnqed_assets.data.io import write_json
from burnqed_assets.ebm.dataset import (
    EmbeddedTrajectories,
    _stable_rank,
    load_embedded_trajectories,
    sample_contrastive,
    theorem_split,
)
from burnqed_assets.ebm.head import GoalConditionedEnergyHead, load_head
from burnqed_assets.ebm.metric_report import MetricReport
from burnqed_assets.ebm.store import RowSource, as_source

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


Vectors = np.ndarray | RowSource  # (n, d) in memory, a memmap, or rows of one through a RowSource


def _take(x: Vectors, keep: np.ndarray | None) -> np.ndarray:
    """float rows `keep` of x (all rows when None), read from disk only now."""
    if isinstance(x, RowSource):
        return x.gather(np.arange(len(x)) if keep is None else keep)
    return x if keep is None else x[keep]


def stratified_sample(y: np.ndarray, max_samples: int, min_per_class: int, seed: int) -> np.ndarray | None:
    """Positions of a seeded sample of about `max_samples` that keeps the class ratio (at least
    `min_per_class` of each class); None when y is no larger than max_samples (use everything)."""
    if len(y) <= max_samples:
        return None
    classes, counts = np.unique(y, return_counts=True)
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.choice(np.flatnonzero(y == c), size=max(min_per_class, int(max_samples * n / len(y))),
                                      replace=False) for c, n in zip(classes, counts)])


def linear_probe_accuracy(x: Vectors, y: np.ndarray, folds: int = 5, max_samples: int = 20_000,
                          seed: int = 0) -> tuple[float | None, str]:
    """Mean stratified-CV accuracy of a logistic-regression probe; (None, reason) when unsupported.
    Above `max_samples` states, on a seeded stratified sample of that size (only it is read)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        return None, "needs both positive and negative states"
    if counts.min() < folds:
        return None, f"smallest class has {int(counts.min())} states, fewer than the {folds} CV folds"
    keep = stratified_sample(y, max_samples, folds, seed)
    x, y = _take(x, keep), (y if keep is None else y[keep])
    # Standardising does not change linear separability; it lets lbfgs converge on raw hidden states.
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = cross_val_score(probe, x, y, cv=StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed))
    return float(np.mean(scores)), ""


def sibling_l2_distances(frame: pd.DataFrame, states: Vectors, chunk_rows: int | None = None) -> np.ndarray:
    """Pairwise L2 between children of the same parent (same theorem, same sibling_group), groups in
    key order. One streaming pass over the states (a memmap of any size is fine)."""
    return _stream_exact(frame, as_source(states), np.full(len(frame), -1, np.int64), 0, chunk_rows)[3]


def _sibling_groups(frame: pd.DataFrame) -> tuple[np.ndarray, int]:
    """Per row: its sibling group id (key order of (theorem, sibling_group)) when it is a child with at
    least one sibling, else -1; and the number of group ids."""
    sib = np.full(len(frame), -1, dtype=np.int64)
    children = np.flatnonzero(frame["parent_id"].to_numpy() >= 0)
    if len(children) == 0:
        return sib, 0
    group = frame.iloc[children].groupby(["theorem", "sibling_group"], sort=True).ngroup().to_numpy()
    sizes = np.bincount(group)
    multi = sizes[group] >= 2
    sib[children[multi]] = group[multi]
    return sib, len(sizes)


def _cuts(sib_stream: np.ndarray, n_groups: int, chunk_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Chunk cut positions along the stream, each at most chunk_rows after the previous and, where
    possible, where no sibling group is open; and the mask of groups that still span a cut."""
    n = len(sib_stream)
    members = np.flatnonzero(sib_stream >= 0)
    first, last = np.full(n_groups, n, np.int64), np.full(n_groups, -1, np.int64)
    np.minimum.at(first, sib_stream[members], members)
    np.maximum.at(last, sib_stream[members], members)
    used = last >= 0
    delta = np.zeros(n + 1, np.int64)
    np.add.at(delta, first[used] + 1, 1)
    np.add.at(delta, last[used] + 1, -1)
    allowed = np.flatnonzero(np.cumsum(delta)[:n] == 0)  # cut before position p splits no group
    cuts: list[int] = []
    start = 0
    while start + chunk_rows < n:
        i = int(np.searchsorted(allowed, start + chunk_rows, side="right")) - 1
        start = int(allowed[i]) if i >= 0 and allowed[i] > start else start + chunk_rows
        cuts.append(start)
    bounds = np.asarray(cuts, dtype=np.int64)
    chunk = np.searchsorted(bounds, np.arange(n), side="right")
    split = used & (chunk[np.minimum(first, n - 1)] != chunk[np.maximum(last, 0)])
    return bounds, split


def _stream_exact(frame: pd.DataFrame, source: RowSource, label_group: np.ndarray, n_label_groups: int,
                  chunk_rows: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One pass over every state in file order. Returns float64 vector sums per label group
    [G, d], counts [G], float64 sums of L2 norms by label (group % 2) [2], and the sibling L2
    distances (groups in key order, as `groupby().indices` would give them).

    Chunks are cut between sibling groups, so each group is measured inside one chunk; a group
    that cannot be (a chunk would grow too large) is read again on its own afterwards."""
    from scipy.spatial.distance import pdist

    sums = np.zeros((n_label_groups, source.d), dtype=np.float64)
    counts = np.bincount(label_group[label_group >= 0], minlength=n_label_groups)
    norm_sums = np.zeros(2, dtype=np.float64)
    sib, n_groups = _sibling_groups(frame)
    order = source.file_order()
    bounds, split = _cuts(sib[order], n_groups, chunk_rows or source.default_chunk_rows())
    distances: list[tuple[int, np.ndarray]] = []
    for part, block in source.blocks(order, bounds=bounds):
        lg = label_group[part]
        labelled = np.flatnonzero(lg >= 0)
        if len(labelled):
            by = labelled[np.argsort(lg[labelled], kind="stable")]
            gs = lg[by]
            starts = np.flatnonzero(np.r_[True, gs[1:] != gs[:-1]])
            sub = block[by].astype(np.float64)
            sums[gs[starts]] += np.add.reduceat(sub, starts, axis=0)
            norm_sums += np.bincount(gs % 2, weights=np.sqrt(np.einsum("ij,ij->i", sub, sub)), minlength=2)
        sg = sib[part]
        members = np.flatnonzero(sg >= 0)
        members = members[~split[sg[members]]]
        if len(members):
            members = members[np.lexsort((part[members], sg[members]))]  # by group, then row of the frame
            gs = sg[members]
            starts = np.flatnonzero(np.r_[True, gs[1:] != gs[:-1]])
            for a, b in zip(starts, np.r_[starts[1:], len(members)]):
                distances.append((int(gs[a]), pdist(block[members[a:b]])))
    for g in np.flatnonzero(split):
        rows = np.flatnonzero(sib == g)
        distances.append((int(g), pdist(source.gather(rows))))
    distances.sort(key=lambda item: item[0])
    sib_l2 = np.concatenate([d for _, d in distances]) if distances else np.zeros(0)
    return sums, counts, norm_sums, sib_l2


def variance_spectrum(x: Vectors, chunk_rows: int | None = None) -> np.ndarray:
    """Covariance eigenvalues, descending. Fewer rows than dims: via the Gram matrix; otherwise the
    d×d scatter matrix is accumulated in float64 chunks (no full float64 copy of the embeddings).
    A RowSource is read twice in chunks (mean, then scatter), never whole."""
    if not isinstance(x, RowSource):
        n, d = x.shape
        step = chunk_rows or 8192
        mean = x.mean(axis=0, dtype=np.float64)
        chunks = lambda: ((None, x[s:s + step]) for s in range(0, n, step))  # noqa: E731
    else:
        n, d = len(x), x.d
        step = chunk_rows or 8192  # large blocks: each one's d x d product is a fresh temporary
        mean = np.zeros(d, dtype=np.float64)
        for _, block in x.blocks(chunk_rows=step):
            mean += block.sum(axis=0, dtype=np.float64)
        mean /= max(n, 1)
        chunks = lambda: x.blocks(chunk_rows=step)  # noqa: E731
    if n < d:
        xc = _take(x, None).astype(np.float64) - mean
        small = xc @ xc.T
    else:
        small = np.zeros((d, d), dtype=np.float64)
        for _, block in chunks():
            xc = block.astype(np.float64) - mean
            small += xc.T @ xc
    eig = np.linalg.eigvalsh(small / (n - 1))[::-1]
    return np.clip(eig, 0.0, None)


def silhouette(x: Vectors, y: np.ndarray, min_states: int, sample_size: int, seed: int) -> tuple[float | None, str]:
    """Silhouette of the two labels; above `sample_size` on a seeded stratified sample (only it is read)."""
    from sklearn.metrics import silhouette_score

    if len(y) <= min_states:
        return None, f"{len(y)} labelled states, needs more than {min_states}"
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2 or counts.min() < 2:
        return None, "needs at least two positive and two negative states"
    keep = stratified_sample(y, sample_size, 2, seed)
    x, y = _take(x, keep), (y if keep is None else y[keep])
    return float(silhouette_score(x, y)), ""


def compute_embedding_metrics(frame: pd.DataFrame, states: Vectors, *, probe_folds: int = 5,
                              probe_max_samples: int = 20_000, collision_threshold: float = 1.0,
                              silhouette_min_states: int = 100, silhouette_sample_size: int = 2000,
                              spectrum_sample_size: int = 20_000, chunk_rows: int | None = None,
                              seed: int = 0) -> MetricReport:
    """The seven metrics of Task 2.2 over `frame` rows (row i ↔ states[i]), streaming over `states`.

    Exact: centroid L2 (and per depth), norm gap, sibling L2, dual labels (float64 sums over
    chunks). Sampled above a size, with the seed: the probe (probe_max_samples), the silhouette
    (silhouette_sample_size per depth bucket) and the variance spectrum (spectrum_sample_size rows);
    `report.details["sampling"]` says for each what was used.
    """
    frame = frame.reset_index(drop=True)
    source = as_source(states)
    report = MetricReport()
    pos_i, neg_i = _labelled(frame)
    report.counts = {"states": len(frame), "positive": len(pos_i), "negative": len(neg_i),
                     "unknown": int(len(frame) - len(pos_i) - len(neg_i)),
                     "theorems": int(frame["theorem"].nunique())}
    sampling: dict[str, dict[str, object]] = {}
    both = "needs both positive and negative states"
    depth = frame["depth"].to_numpy()
    labelled = np.concatenate([pos_i, neg_i])
    # 1, 3, 4. centroid L2 (overall and per depth), norm gap, sibling L2: one exact pass, float64 sums
    is_pos = np.r_[np.ones(len(pos_i), np.int64), np.zeros(len(neg_i), np.int64)]
    depths = np.unique(depth[labelled])
    label_group = np.full(len(frame), -1, dtype=np.int64)  # (depth index, label) of labelled rows
    label_group[labelled] = np.searchsorted(depths, depth[labelled]) * 2 + is_pos
    sums, counts, norm_sums, sib = _stream_exact(frame, source, label_group, 2 * len(depths), chunk_rows)
    pos_n, neg_n = int(counts[1::2].sum()), int(counts[0::2].sum())
    if pos_n and neg_n:
        report.set("centroid_l2", float(np.linalg.norm(sums[1::2].sum(0) / pos_n - sums[0::2].sum(0) / neg_n)))
        report.set("norm_gap", float(norm_sums[1] / pos_n - norm_sums[0] / neg_n))
    else:
        report.set("centroid_l2", None, both)
        report.set("norm_gap", None, both)
    by_depth: dict[int, float] = {}
    for k, d in enumerate(depths.tolist()):
        if counts[2 * k + 1] and counts[2 * k]:
            by_depth[int(d)] = float(np.linalg.norm(sums[2 * k + 1] / counts[2 * k + 1] - sums[2 * k] / counts[2 * k]))
    report.details["centroid_l2_by_depth"] = by_depth
    report.details["sibling_l2"] = sib
    no_sib = "no parent with two or more children"
    report.set("sibling_l2_mean", float(np.mean(sib)) if len(sib) else None, no_sib)
    report.set("sibling_l2_median", float(np.median(sib)) if len(sib) else None, no_sib)
    report.set("sibling_collision_rate", float(np.mean(sib < collision_threshold)) if len(sib) else None, no_sib)
    report.counts["sibling_pairs"] = len(sib)
    # 2. linear probe (seeded stratified sample above probe_max_samples)
    acc, reason = linear_probe_accuracy(source.take(labelled), is_pos, probe_folds, probe_max_samples, seed)
    report.set("linear_probe_acc", acc, reason)
    sampling["linear_probe_acc"] = _sample_note(len(labelled), probe_max_samples, seed)
    # 5. variance spectrum (seeded row sample above spectrum_sample_size)
    spectrum_rows = None
    if len(source) > spectrum_sample_size:
        spectrum_rows = np.sort(np.random.default_rng(seed).choice(len(source), spectrum_sample_size, replace=False))
    sampling["variance_spectrum"] = _sample_note(len(source), spectrum_sample_size, seed)
    eig = variance_spectrum(source if spectrum_rows is None else source.gather(spectrum_rows)) \
        if len(source) >= 2 else np.zeros(0)
    if eig.sum() > 0:
        total = eig.sum()
        report.details["eigenvalues"] = eig
        report.set("top1_variance_ratio", float(eig[0] / total))
        report.set("top10_variance_ratio", float(eig[:10].sum() / total))
        report.set("effective_dimension", float(total**2 / (eig**2).sum()))
    else:
        for name in ("top1_variance_ratio", "top10_variance_ratio", "effective_dimension"):
            report.set(name, None, "needs at least two states with non-zero variance")
    # 6. depth-stratified silhouette (positive vs negative; seeded stratified sample per bucket)
    labels = frame["label"].to_numpy()
    for (lo, hi), name in DEPTH_BUCKETS:
        sel = labelled[(depth[labelled] >= lo) & (depth[labelled] <= hi)]
        value, reason = silhouette(source.take(sel), (labels[sel] == "positive").astype(int),
                                   silhouette_min_states, silhouette_sample_size, seed)
        report.set(f"silhouette_{name}", value, reason)
        sampling[f"silhouette_{name}"] = _sample_note(len(sel), silhouette_sample_size, seed)
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
    report.details["sampling"] = sampling
    return report


def _sample_note(population: int, sample_size: int, seed: int) -> dict[str, object]:
    """What a sampled metric used: all `population` states, or a seeded sample of about `sample_size`
    (stratified by label for the probe and the silhouette, so per-class rounding may differ by a few)."""
    sampled = population > sample_size
    return {"sampled": sampled, "population": population, "sample_size": sample_size if sampled else population,
            "seed": seed if sampled else None}


def embedding_metrics_from_files(trajectories_path: str | Path, embeddings_dir: str | Path, out_json: str | Path,
                                 plots_dir: str | Path | None = None, **params: object) -> tuple[MetricReport, dict[str, Path]]:
    """Load one iteration's embeddings, compute Task 2.2, write the JSON and (optionally) Task 2.3 plots."""
    data = load_embedded_trajectories(trajectories_path, embeddings_dir)
    report = compute_embedding_metrics(data.frame, data.state_source, **params)  # type: ignore[arg-type]
    report.counts["missing_state_embeddings"] = data.missing_state_embeddings
    report.counts["theorems_without_goal"] = len(data.theorems_without_goal)
    plots: dict[str, Path] = {}
    if plots_dir is not None:
        from burnqed_assets.reports.embedding_plots import embedding_plots

        plots = embedding_plots(data.frame, data.state_source, report, Path(plots_dir),
                                collision_threshold=float(params.get("collision_threshold", 1.0)))
    write_json(out_json, report.to_json(centroid_l2_by_depth={str(k): v for k, v in
                                                              report.details["centroid_l2_by_depth"].items()},
                                        sampling=report.details["sampling"],
                                        plots={k: str(v) for k, v in plots.items()}))
    return report, plots


# ---------------------------------------------------------------- EBM metrics (Task 2.5)

def score_rows(head: GoalConditionedEnergyHead, data: EmbeddedTrajectories, rows: np.ndarray,
               device: str = "cpu", batch_size: int = 4096) -> np.ndarray:
    """E(state, goal of its theorem) for each row, in eval mode; rows are read batch by batch."""
    head = head.to(device).eval()
    out = []
    goal_index = data.frame["goal_index"].to_numpy()
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            r = rows[start:start + batch_size]
            z_s = torch.from_numpy(data.state_vectors(r)).to(device)
            z_g = torch.from_numpy(data.goal_vectors(goal_index[r])).to(device)
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
    report.details["sampling"] = {"sampled": False, "states_scored": len(rows),
                                  "note": "exact: every validation state is scored, batch by batch from disk"}
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


def sample_theorems(frame: pd.DataFrame, theorems: set[str], max_states: int, seed: int) -> set[str]:
    """Whole theorems in a seeded order until about `max_states` states (sibling groups stay whole);
    all of them when max_states is 0 or they hold no more states than that."""
    sizes = frame.loc[frame["theorem"].isin(theorems), "theorem"].value_counts()
    if not max_states or int(sizes.sum()) <= max_states:
        return set(theorems)
    chosen, total = set(), 0
    for name in sorted(sizes.index, key=lambda t: _stable_rank(t, seed)):
        if total >= max_states:
            break
        chosen.add(name)
        total += int(sizes[name])
    return chosen


def ebm_metrics_from_files(trajectories_path: str | Path, embeddings_dir: str | Path, head_path: str | Path,
                           out_json: str | Path, *, val_fraction: float, split_seed: int, k_negatives: int,
                           hard_ratio: float, margin: float = 1.0, seed: int = 0, device: str = "cpu",
                           max_val_states: int = 0,
                           head_loader: Callable[[str], GoalConditionedEnergyHead] | None = None) -> MetricReport:
    """Score the validation theorems (the same theorem-level split as training) and write the JSON.
    `max_val_states` > 0 scores a seeded sample of whole validation theorems of about that many
    states (for CPU runs at plan scale); the report's sampling entry says what was scored."""
    data = load_embedded_trajectories(trajectories_path, embeddings_dir)
    _, val = theorem_split(data.frame, val_fraction, split_seed)
    scored = sample_theorems(data.frame, val, max_val_states, seed)
    head = (head_loader or load_head)(str(head_path))
    rows = data.subset(scored)
    report = compute_ebm_metrics(head, data, rows, k_negatives=k_negatives, hard_ratio=hard_ratio,
                                 margin=margin, seed=seed, device=device)
    report.counts["val_theorems"] = len(val)
    if len(scored) < len(val):
        report.details["sampling"] = {
            "sampled": True, "states_scored": len(rows), "theorems_scored": len(scored), "val_theorems": len(val),
            "population_states": int(data.frame["theorem"].isin(val).sum()), "seed": seed,
            "note": f"seeded sample of whole validation theorems, about max_val_states={max_val_states} states"}
    write_json(out_json, report.to_json(sibling_discrimination_chance=report.details["sibling_discrimination_chance"],
                                        sampling=report.details["sampling"], margin=margin, head_path=str(head_path)))
    return report
