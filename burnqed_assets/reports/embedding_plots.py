"""Embedding-space plots of plan Task 2.3 (PCA projections, sibling L2, spectrum, depth separation)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from burnqed_assets.ebm.metric_report import MetricReport
from burnqed_assets.ebm.store import RowSource, as_source
from burnqed_assets.reports.plots import plt, save_figure

LABEL_COLOURS = {"positive": "tab:green", "negative": "tab:red", "unknown": "tab:gray"}
MAX_POINTS = 5000  # projection plots subsample; enough to see structure, small PNGs


def pca_2d(x: np.ndarray) -> np.ndarray:
    """First two principal components (deterministic, cheap; t-SNE is optional and slow)."""
    xc = x.astype(np.float64) - x.mean(axis=0)
    if len(xc) < 2:
        return np.zeros((len(xc), 2))
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    comps = vt[:2]
    proj = xc @ comps.T
    return proj if proj.shape[1] == 2 else np.pad(proj, ((0, 0), (0, 2 - proj.shape[1])))


def embedding_plots(frame: pd.DataFrame, states: np.ndarray | RowSource, report: MetricReport, out_dir: Path,
                    collision_threshold: float = 1.0, seed: int = 0) -> dict[str, Path]:
    """Write the five Task 2.3 PNGs under out_dir; returns {name: path}. Projections use at most
    MAX_POINTS seeded rows, and only those rows are read (states may be a memmap of any size)."""
    out_dir = Path(out_dir)
    frame = frame.reset_index(drop=True)
    paths: dict[str, Path] = {}
    idx = np.arange(len(frame))
    if len(idx) > MAX_POINTS:
        idx = np.sort(np.random.default_rng(seed).choice(idx, MAX_POINTS, replace=False))
    proj = pca_2d(as_source(states).gather(idx)) if len(idx) else np.zeros((0, 2))
    labels = frame["label"].to_numpy()[idx]
    depth = frame["depth"].to_numpy()[idx]

    fig, ax = plt.subplots(figsize=(5, 4))
    for label, colour in LABEL_COLOURS.items():
        m = labels == label
        if m.any():
            ax.scatter(proj[m, 0], proj[m, 1], s=6, alpha=0.6, c=colour, label=f"{label} ({int(m.sum())})")
    ax.set(title="State embeddings (PCA) by label", xlabel="PC1", ylabel="PC2")
    ax.legend(fontsize=7)
    paths["pca_by_label"] = save_figure(fig, out_dir / "pca_by_label.png")

    fig, ax = plt.subplots(figsize=(5, 4))
    sc = ax.scatter(proj[:, 0], proj[:, 1], s=6, alpha=0.7, c=depth, cmap="viridis")
    fig.colorbar(sc, ax=ax, label="depth")
    ax.set(title="State embeddings (PCA) by depth", xlabel="PC1", ylabel="PC2")
    paths["pca_by_depth"] = save_figure(fig, out_dir / "pca_by_depth.png")

    sib = np.asarray(report.details.get("sibling_l2", np.zeros(0)))
    fig, ax = plt.subplots(figsize=(5, 3.5))
    if len(sib):
        ax.hist(sib, bins=40, color="tab:blue", alpha=0.8)
    else:
        ax.text(0.5, 0.5, "no sibling pairs", ha="center", transform=ax.transAxes)
    ax.axvline(collision_threshold, color="tab:red", linestyle="--", label=f"collision < {collision_threshold}")
    ax.set(title="Sibling L2 distances", xlabel="L2", ylabel="pairs")
    ax.legend(fontsize=7)
    paths["sibling_l2_hist"] = save_figure(fig, out_dir / "sibling_l2_hist.png")

    eig = np.asarray(report.details.get("eigenvalues", np.zeros(0)))
    fig, ax = plt.subplots(figsize=(5, 3.5))
    positive = eig[eig > 0]
    if len(positive):
        ax.semilogy(np.arange(1, len(positive) + 1), positive, marker=".", markersize=3)
    ax.set(title="Covariance eigenvalue spectrum", xlabel="component", ylabel="eigenvalue (log)")
    paths["eigen_spectrum"] = save_figure(fig, out_dir / "eigen_spectrum.png")

    by_depth = report.details.get("centroid_l2_by_depth", {}) or {}
    fig, ax = plt.subplots(figsize=(5, 3.5))
    if by_depth:
        ds = sorted(by_depth)
        ax.plot(ds, [by_depth[d] for d in ds], marker="o")
    else:
        ax.text(0.5, 0.5, "no depth with both labels", ha="center", transform=ax.transAxes)
    ax.set(title="Separation by depth", xlabel="depth", ylabel="centroid L2 (pos vs neg)")
    paths["depth_vs_centroid_l2"] = save_figure(fig, out_dir / "depth_vs_centroid_l2.png")
    return paths


def training_curves(history: list[dict[str, float]], dest: Path) -> Path:
    """Train/val InfoNCE loss and the learned temperature per epoch (Gotcha 3: watch the temperature)."""
    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3.2))
    ax1.plot(epochs, [h["loss"] for h in history], label="train")
    if any("val_loss" in h for h in history):
        ax1.plot([h["epoch"] for h in history if "val_loss" in h], [h["val_loss"] for h in history if "val_loss" in h],
                 label="val")
    ax1.set(title="InfoNCE loss", xlabel="epoch")
    ax1.legend(fontsize=7)
    ax2.plot(epochs, [h["temperature"] for h in history], color="tab:orange")
    ax2.axhspan(0.5, 3.0, color="tab:green", alpha=0.1, label="healthy [0.5, 3]")
    ax2.set(title="Learned temperature", xlabel="epoch")
    ax2.legend(fontsize=7)
    return save_figure(fig, dest)
