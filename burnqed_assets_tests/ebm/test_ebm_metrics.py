"""Each Task 2.2 / 2.5 metric against a tiny case computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from burnqed_assets.ebm.dataset import EmbeddedTrajectories
from burnqed_assets.ebm.metrics import (
    centroid_l2,
    compute_ebm_metrics,
    compute_embedding_metrics,
    linear_probe_accuracy,
    norm_gap,
    rank1_accuracy,
    sibling_discrimination,
    sibling_l2_distances,
    silhouette,
    variance_spectrum,
)


def frame(rows: list[tuple]) -> pd.DataFrame:
    """rows: (theorem, state_id, parent_id, depth, label, state_pp)."""
    df = pd.DataFrame(rows, columns=["theorem", "state_id", "parent_id", "depth", "label", "state_pp"])
    df["sibling_group"] = df["parent_id"]
    df["proved"] = True
    return df


def test_centroid_l2_and_norm_gap_by_hand():
    pos = np.array([[0.0, 0.0], [2.0, 0.0]])  # centroid (1, 0), norms 0 and 2
    neg = np.array([[0.0, 3.0], [0.0, 5.0]])  # centroid (0, 4), norms 3 and 5
    assert centroid_l2(pos, neg) == pytest.approx(math.sqrt(17))
    assert norm_gap(pos, neg) == pytest.approx(1.0 - 4.0)
    assert centroid_l2(pos, neg[:0]) is None


def test_sibling_l2_groups_by_theorem_and_parent():
    df = frame([("t", 0, -1, 0, "positive", "r"),
                ("t", 1, 0, 1, "positive", "a"), ("t", 2, 0, 1, "negative", "b"),  # distance 5
                ("u", 0, -1, 0, "positive", "r2"),
                ("u", 1, 0, 1, "negative", "c"), ("u", 2, 0, 1, "negative", "d")])  # distance 0.5
    states = np.array([[9, 9], [0, 0], [3, 4], [7, 7], [0, 0], [0, 0.5]], dtype=float)
    d = np.sort(sibling_l2_distances(df, states))
    assert d.tolist() == pytest.approx([0.5, 5.0])  # roots are never siblings; theorems never mix


def test_variance_spectrum_by_hand():
    line = np.array([[-1.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [1.0, 0.0]])
    eig = variance_spectrum(line)
    assert eig[0] == pytest.approx(4 / 3) and eig[1] == pytest.approx(0.0)
    cross = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])  # cov = diag(2/3, 2/3)
    assert variance_spectrum(cross).tolist() == pytest.approx([2 / 3, 2 / 3])
    assert variance_spectrum(cross, chunk_rows=1).tolist() == pytest.approx([2 / 3, 2 / 3])  # chunked sums
    wide = np.random.default_rng(0).standard_normal((5, 40))  # fewer rows than dims: Gram path
    full = np.linalg.eigvalsh(np.cov(wide.T))[::-1][:5]
    assert variance_spectrum(wide)[:4] == pytest.approx(full[:4], rel=1e-6)


def test_linear_probe_separable_and_not_available():
    x = np.array([[float(i), 0.0] for i in range(10)] + [[float(i) + 100, 0.0] for i in range(10)])
    y = np.array([0] * 10 + [1] * 10)
    acc, reason = linear_probe_accuracy(x, y, folds=5)
    assert acc == pytest.approx(1.0) and reason == ""
    acc, reason = linear_probe_accuracy(x[:13], y[:13], folds=5)  # 3 positives < 5 folds
    assert acc is None and "fewer than the 5 CV folds" in reason


def test_silhouette_by_hand():
    x = np.array([[0.0], [1.0], [10.0], [11.0]])
    y = np.array([1, 1, 0, 0])
    expected = (9.5 / 10.5 + 8.5 / 9.5) / 2
    value, _ = silhouette(x, y, min_states=0, sample_size=100, seed=0)
    assert value == pytest.approx(expected)
    value, reason = silhouette(x, y, min_states=100, sample_size=100, seed=0)
    assert value is None and "needs more than 100" in reason


def test_embedding_metrics_report_and_dual_labels():
    df = frame([("t", 0, -1, 0, "positive", "root t"),
                ("t", 1, 0, 1, "positive", "same"), ("t", 2, 0, 1, "negative", "b"),
                ("u", 0, -1, 0, "negative", "root u"),
                ("u", 1, 0, 1, "negative", "same"), ("u", 2, 0, 1, "unknown", "c")])
    states = np.array([[0, 0], [2, 0], [0, 3], [0, 5], [0, 1], [5, 5]], dtype=float)
    report = compute_embedding_metrics(df, states, probe_folds=5, silhouette_min_states=100)
    # "same" is positive in t and negative in u; labelled texts: root t, same, b, root u → 1 of 4
    assert report.values["dual_label_states"] == 1
    assert report.values["dual_label_rate"] == pytest.approx(0.25)
    pos, neg = states[[0, 1]], states[[2, 3, 4]]
    assert report.values["centroid_l2"] == pytest.approx(np.linalg.norm(pos.mean(0) - neg.mean(0)))
    assert report.values["linear_probe_acc"] is None and "linear_probe_acc" in report.not_available
    assert report.values["silhouette_deep"] is None and report.not_available["silhouette_deep"]
    assert report.counts == {"states": 6, "positive": 2, "negative": 3, "unknown": 1, "theorems": 2,
                             "sibling_pairs": 2}
    assert report.details["centroid_l2_by_depth"][1] == pytest.approx(np.linalg.norm([2, 0] - np.array([0, 2])))


def test_rank1_and_sibling_discrimination_by_hand():
    df = frame([("t", 0, -1, 0, "positive", "r"),
                ("t", 1, 0, 1, "positive", "a"), ("t", 2, 0, 1, "negative", "b"), ("t", 3, 0, 1, "unknown", "c"),
                ("t", 4, 1, 2, "positive", "d"), ("t", 5, 1, 2, "negative", "e"),
                ("t", 6, 4, 3, "negative", "f"), ("t", 7, 4, 3, "negative", "g")])  # no positive: skipped
    energy = np.array([0.0, 1.0, 2.0, 0.5, 3.0, 1.0, 0.0, 0.0])
    value, groups = rank1_accuracy(df, energy)
    # parent 0: labelled a(1.0) < b(2.0) → correct; parent 1: d(3.0) > e(1.0) → wrong
    assert (value, groups) == (0.5, 2)
    value, groups, chance = sibling_discrimination(df, energy)
    # parent 0 with the unknown sibling c(0.5) beating a(1.0) → wrong; parent 1 wrong
    assert (value, groups) == (0.0, 2)
    assert chance == pytest.approx((1 / 3 + 1 / 2) / 2)


class FirstCoordinateEnergy(torch.nn.Module):
    """E(s, g) = s[0]: a head whose energies we know."""

    def energy(self, z_state: torch.Tensor, z_goal: torch.Tensor) -> torch.Tensor:
        return z_state[:, 0]


def test_ebm_metrics_gap_buckets_and_active_ratio():
    df = frame([("t", 0, -1, 0, "positive", "r"),
                ("t", 1, 0, 1, "positive", "a"), ("t", 2, 0, 1, "negative", "b"),
                ("t", 3, 1, 2, "positive", "c"), ("t", 4, 1, 2, "negative", "d")])
    df["goal_index"] = 0
    energies = np.array([0.0, 1.0, 1.5, 0.0, 3.0], dtype=np.float32)
    states = np.stack([energies, np.zeros(5, np.float32)], axis=1)
    data = EmbeddedTrajectories(frame=df, states=states, goals=np.zeros((1, 2), np.float32), goal_theorems=["t"])
    report = compute_ebm_metrics(FirstCoordinateEnergy(), data, np.arange(5), k_negatives=2, hard_ratio=0.5,
                                 margin=1.0)
    assert report.values["rank1_accuracy"] == 1.0
    assert report.values["rank1_d0_1"] == 1.0 and report.values["rank1_d2_3"] == 1.0
    assert report.values["rank1_d4+"] is None and "depth 4" in report.not_available["rank1_d4+"]
    assert report.values["energy_gap"] == pytest.approx((1.5 + 3.0) / 2 - (0.0 + 1.0 + 0.0) / 3)
    assert report.values["energy_std_neg"] == pytest.approx(0.75)
    assert report.counts["active_pairs"] == 3 * 2
    # K=1, all hard: a→b gap 0.5 (active), c→d gap 3 (not); the root has no siblings, so its one
    # negative is random among b (gap 1.5) and d (gap 3): never active → exactly 1/3.
    hard = compute_ebm_metrics(FirstCoordinateEnergy(), data, np.arange(5), k_negatives=1, hard_ratio=1.0,
                               margin=1.0)
    assert hard.values["active_ratio"] == pytest.approx(1 / 3)
    strict = compute_ebm_metrics(FirstCoordinateEnergy(), data, np.arange(5), k_negatives=2, hard_ratio=0.5,
                                 margin=10.0)
    assert strict.values["active_ratio"] == 1.0  # every gap is below a margin of 10
    none = compute_ebm_metrics(FirstCoordinateEnergy(), data, np.arange(5), k_negatives=2, hard_ratio=0.5,
                               margin=0.0)
    assert none.values["active_ratio"] == 0.0  # every negative is above its positive
