"""Streaming / sampled metrics and paged EBM training equal their in-memory counterparts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from ebm_synthetic import synthetic_rows, write_synthetic
from scipy.spatial.distance import pdist

from burnqed_assets.ebm import train as ebm_train
from burnqed_assets.ebm.dataset import EmbeddedTrajectories, load_embedded_trajectories, theorem_split
from burnqed_assets.ebm.head import GoalConditionedEnergyHead
from burnqed_assets.ebm.metrics import (
    compute_ebm_metrics,
    compute_embedding_metrics,
    linear_probe_accuracy,
    silhouette,
    variance_spectrum,
)
from burnqed_assets.ebm.store import RowSource
from burnqed_assets.ebm.train import EbmTrainConfig, default_hidden_dims, train_decoupled_ebm


@pytest.fixture(scope="module")
def stored_files(tmp_path_factory):
    """~1,300 states (d=16) on disk as float32: (trajectories path, embeddings dir)."""
    root = tmp_path_factory.mktemp("stream")
    return write_synthetic(root, synthetic_rows(n_theorems=64, depth=5, branch=4, proved_every=2), dim=16)


@pytest.fixture(scope="module")
def stored(stored_files):
    """The stored data loaded (memmap), and the same data in memory."""
    data = load_embedded_trajectories(*stored_files)
    in_memory = EmbeddedTrajectories(frame=data.frame, states=np.array(data.states), goals=np.array(data.goals),
                                     goal_theorems=data.goal_theorems)
    return data, in_memory


def reference_embedding_metrics(frame: pd.DataFrame, x: np.ndarray, seed: int = 0) -> dict[str, float]:
    """The Task 2.2 formulas on an in-memory float64 matrix (what the metrics were before streaming)."""
    labels, depth = frame["label"].to_numpy(), frame["depth"].to_numpy()
    pos, neg = x[labels == "positive"], x[labels == "negative"]
    out = {"centroid_l2": np.linalg.norm(pos.mean(0) - neg.mean(0)),
           "norm_gap": np.linalg.norm(pos, axis=1).mean() - np.linalg.norm(neg, axis=1).mean()}
    for d in (1, 3, 5):
        p, n = x[(labels == "positive") & (depth == d)], x[(labels == "negative") & (depth == d)]
        out[f"depth_{d}"] = np.linalg.norm(p.mean(0) - n.mean(0))
    children = frame[frame["parent_id"] >= 0]
    sib = np.concatenate([pdist(x[children.index.to_numpy()[idx]])
                          for idx in children.groupby(["theorem", "sibling_group"]).indices.values() if len(idx) >= 2])
    out.update(sibling_l2_mean=sib.mean(), sibling_l2_median=np.median(sib), sibling_collision_rate=(sib < 1.0).mean())
    eig = np.clip(np.linalg.eigvalsh(np.cov(x.T))[::-1], 0, None)
    out.update(top1_variance_ratio=eig[0] / eig.sum(), top10_variance_ratio=eig[:10].sum() / eig.sum(),
               effective_dimension=eig.sum() ** 2 / (eig**2).sum())
    return out


def test_streaming_embedding_metrics_equal_in_memory(stored):
    """Streamed from the memmap in chunks of 50 rows (many chunks, groups across chunk borders) =
    the in-memory formulas: to 1e-9 relative (float64 sums in another order); probe and
    silhouette bit-identical (same rows, same seed)."""
    data, in_memory = stored
    params = dict(probe_folds=3, silhouette_min_states=10, silhouette_sample_size=10_000, seed=3)
    report = compute_embedding_metrics(data.frame, data.state_source, chunk_rows=50, **params)
    x64 = np.asarray(in_memory.states, dtype=np.float64)
    ref = reference_embedding_metrics(data.frame, x64)
    for name in ("centroid_l2", "norm_gap", "sibling_l2_mean", "sibling_l2_median", "sibling_collision_rate",
                 "top1_variance_ratio", "top10_variance_ratio", "effective_dimension"):
        assert report.values[name] == pytest.approx(ref[name], rel=1e-9), name
    for d in (1, 3, 5):
        assert report.details["centroid_l2_by_depth"][d] == pytest.approx(ref[f"depth_{d}"], rel=1e-9)
    labels = data.frame["label"].to_numpy()
    lab = np.flatnonzero(np.isin(labels, ("positive", "negative")))
    lab = np.r_[lab[labels[lab] == "positive"], lab[labels[lab] == "negative"]]
    y = (labels[lab] == "positive").astype(int)
    assert report.values["linear_probe_acc"] == linear_probe_accuracy(in_memory.states[lab], y, 3, 20_000, 3)[0]
    deep = lab[data.frame["depth"].to_numpy()[lab] >= 4]
    assert report.values["silhouette_deep"] == silhouette(in_memory.states[deep], (labels[deep] == "positive").astype(int),
                                                          10, 10_000, 3)[0]
    assert not any(note["sampled"] for note in report.details["sampling"].values())
    in_mem_report = compute_embedding_metrics(data.frame, in_memory.states, **params)
    for name, value in in_mem_report.values.items():  # the same function on an ndarray
        assert report.values[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name


def test_sampled_metrics_are_seeded_and_say_so(stored):
    data, _ = stored
    params = dict(probe_folds=3, probe_max_samples=300, silhouette_min_states=10, silhouette_sample_size=100,
                  spectrum_sample_size=400, seed=5)
    a = compute_embedding_metrics(data.frame, data.state_source, **params)
    b = compute_embedding_metrics(data.frame, data.state_source, **params)
    assert a.values == b.values  # deterministic with a fixed seed
    sampling = a.details["sampling"]
    assert sampling["variance_spectrum"] == {"sampled": True, "population": len(data.frame), "sample_size": 400,
                                             "seed": 5}
    assert sampling["linear_probe_acc"]["sampled"] and sampling["linear_probe_acc"]["sample_size"] == 300
    # the spectrum of a 400-row sample equals variance_spectrum of exactly those rows
    rows = np.sort(np.random.default_rng(5).choice(len(data.frame), 400, replace=False))
    eig = variance_spectrum(np.asarray(data.states[rows], dtype=np.float32))
    assert a.values["top1_variance_ratio"] == pytest.approx(eig[0] / eig.sum(), rel=1e-12)
    c = compute_embedding_metrics(data.frame, data.state_source, **{**params, "seed": 6})
    assert c.values["top1_variance_ratio"] != a.values["top1_variance_ratio"]


def test_variance_spectrum_streamed_equals_in_memory():
    x = np.random.default_rng(2).standard_normal((500, 12)).astype(np.float32) * np.arange(1, 13, dtype=np.float32)
    streamed = variance_spectrum(RowSource(x, row_map=np.arange(499, -1, -1)), chunk_rows=33)
    assert streamed == pytest.approx(variance_spectrum(x), rel=1e-10)


def test_ebm_metrics_from_the_memmap_equal_in_memory(stored):
    data, in_memory = stored
    torch.manual_seed(0)
    head = GoalConditionedEnergyHead(16, default_hidden_dims(16)).eval()
    _, val = theorem_split(data.frame, 0.25, 42)
    rows = data.subset(val)
    a = compute_ebm_metrics(head, data, rows, k_negatives=3)
    b = compute_ebm_metrics(head, in_memory, rows, k_negatives=3)
    assert a.values == b.values and a.details["sampling"]["states_scored"] == len(rows)


def test_paged_training_equals_in_memory_training(stored, monkeypatch):
    """Memmap-paged (with prefetch) and in-memory training give bit-identical heads and histories,
    and no gather ever holds more than one batch (or one validation chunk)."""
    data, in_memory = stored
    train, val = theorem_split(data.frame, 0.25, 42)
    config = EbmTrainConfig(epochs=2, learning_rate=3e-3, k_negatives=3, batch_size=16, cpu_threads=1)
    sizes: list[int] = []
    gather = ebm_train.BatchPager._gather

    def recording(self, batch, sel):
        sizes.append(len(sel) * (1 + batch.negatives.shape[1]))
        return gather(self, batch, sel)

    monkeypatch.setattr(ebm_train.BatchPager, "_gather", recording)
    paged = train_decoupled_ebm(data, train, val, config, progress=lambda _: None)
    monkeypatch.setattr(ebm_train.BatchPager, "_gather", gather)
    memory = train_decoupled_ebm(in_memory, train, val, config, progress=lambda _: None)
    assert paged.history == memory.history
    for (name, p), (_, m) in zip(paged.head.state_dict().items(), memory.head.state_dict().items()):
        assert torch.equal(p, m), name
    assert max(sizes) <= max(16, ebm_train.VAL_CHUNK_POSITIVES) * 4 and max(sizes) < len(data.frame)
    assert sum(sizes) > len(data.frame)  # and every batch was paged in


def test_paged_training_matches_the_whole_set_on_device_formula(stored):
    """One step by hand with the whole set as one tensor (the pre-paging path) = the paged step."""
    data, in_memory = stored
    from burnqed_assets.ebm.dataset import sample_contrastive
    from burnqed_assets.ebm.losses import info_nce_loss

    batch = sample_contrastive(data, np.arange(len(data.frame)), 3, 0.6, np.random.default_rng(0))
    sel = np.arange(8)
    torch.manual_seed(0)
    head = GoalConditionedEnergyHead(16, default_hidden_dims(16)).eval()
    states, goals = torch.as_tensor(in_memory.states), torch.as_tensor(in_memory.goals)
    rows = torch.cat([torch.as_tensor(batch.positive[sel]), torch.as_tensor(batch.negatives[sel]).reshape(-1)])
    g = goals[torch.as_tensor(batch.goal[sel])]
    energy = head.energy(states[rows], torch.cat([g, g.repeat_interleave(3, dim=0)]))
    whole = info_nce_loss(energy[:8], energy[8:].reshape(8, 3))
    pager = ebm_train.BatchPager(data, torch.device("cpu"))
    (_, paged_batch), = list(pager.batches(batch, [sel]))
    pager.close()
    assert torch.equal(info_nce_loss(*ebm_train._energies(head, paged_batch)), whole)


@pytest.mark.parametrize("chunk_rows", [2, 3, 7, 10_000])
def test_sibling_pass_with_shuffled_rows_and_groups_across_chunks(stored, chunk_rows):
    """Rows stored in a random order (groups scattered over the file) and chunks smaller than a
    group: groups that span a cut are read again on their own; the distances equal pdist per group."""
    data, in_memory = stored
    perm = np.random.default_rng(0).permutation(len(data.frame))
    shuffled = np.empty_like(in_memory.states)
    shuffled[perm] = in_memory.states  # entry i lives at row perm[i]
    from burnqed_assets.ebm.metrics import sibling_l2_distances

    got = sibling_l2_distances(data.frame, RowSource(shuffled, row_map=perm), chunk_rows=chunk_rows)
    children = data.frame[data.frame["parent_id"] >= 0]
    ref = np.concatenate([pdist(in_memory.states[children.index.to_numpy()[idx]])
                          for idx in children.groupby(["theorem", "sibling_group"]).indices.values() if len(idx) >= 2])
    assert np.array_equal(got, ref)


def test_ebm_metrics_on_a_seeded_theorem_sample_say_so(stored, stored_files, tmp_path):
    """max_val_states: whole validation theorems in a seeded order, the same ones on every run, and
    the sampling entry says how many of how many; 0 scores everything."""
    from burnqed_assets.ebm.head import save_head
    from burnqed_assets.ebm.metrics import ebm_metrics_from_files, sample_theorems

    data, _ = stored
    _, val = theorem_split(data.frame, 0.5, 42)
    picked = sample_theorems(data.frame, val, 60, seed=1)
    assert picked < val and picked == sample_theorems(data.frame, val, 60, seed=1)
    assert 60 <= int(data.frame["theorem"].isin(picked).sum()) < 60 + 21  # whole theorems of 21 states
    assert sample_theorems(data.frame, val, 0, seed=1) == val
    torch.manual_seed(0)
    head_path = tmp_path / "head.pt"
    save_head(GoalConditionedEnergyHead(16, default_hidden_dims(16)), str(head_path))
    traj, emb = stored_files
    common = dict(val_fraction=0.5, split_seed=42, k_negatives=3, hard_ratio=0.6, seed=1)
    sampled = ebm_metrics_from_files(traj, emb, head_path, tmp_path / "s.json", max_val_states=60, **common)
    note = sampled.details["sampling"]
    assert note["sampled"] and note["theorems_scored"] == len(picked) and note["val_theorems"] == len(val)
    assert sampled.counts["states"] == note["states_scored"] == int(data.frame["theorem"].isin(picked).sum())
    full = ebm_metrics_from_files(traj, emb, head_path, tmp_path / "f.json", **common)
    assert not full.details["sampling"]["sampled"] and full.counts["states"] > sampled.counts["states"]


def test_validation_loss_in_chunks_equals_one_batch(stored):
    from burnqed_assets.ebm.dataset import sample_contrastive

    data, _ = stored
    batch = sample_contrastive(data, np.arange(len(data.frame)), 3, 0.6, np.random.default_rng(0))
    torch.manual_seed(0)
    head = GoalConditionedEnergyHead(16, default_hidden_dims(16)).eval()
    pager = ebm_train.BatchPager(data, torch.device("cpu"))
    with torch.no_grad():
        whole = ebm_train._val_loss(head, pager, batch, chunk=10**6)
        chunked = ebm_train._val_loss(head, pager, batch, chunk=7)
    pager.close()
    assert len(batch) > 7 and chunked == pytest.approx(whole, rel=1e-6)
