"""InfoNCE, the theorem-level split, contrastive sampling, and learning on a learnable synthetic set."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from ebm_synthetic import synthetic_rows, write_synthetic

from burnqed_assets.ebm.dataset import (
    load_embedded_trajectories,
    sample_contrastive,
    theorem_split,
)
from burnqed_assets.ebm.head import GoalConditionedEnergyHead, load_head
from burnqed_assets.ebm.losses import info_nce_loss
from burnqed_assets.ebm.metrics import score_rows
from burnqed_assets.ebm.train import (
    EbmTrainConfig,
    default_hidden_dims,
    sibling_rank1,
    train_decoupled_ebm,
    train_ebm_from_files,
)


def test_info_nce_is_cross_entropy_with_positive_at_index_0():
    g = torch.Generator().manual_seed(0)
    pos, neg = torch.randn(6, generator=g), torch.randn(6, 4, generator=g)
    logits = torch.cat([-pos[:, None], -neg], dim=1)
    expected = F.cross_entropy(logits, torch.zeros(6, dtype=torch.long))
    manual = (-torch.log_softmax(logits, dim=1)[:, 0]).mean()
    assert torch.allclose(info_nce_loss(pos, neg), expected)
    assert torch.allclose(info_nce_loss(pos[:, None], neg), manual)
    # No temperature inside the loss (Gotcha 1): scaling energies changes the loss.
    assert not torch.allclose(info_nce_loss(2 * pos, 2 * neg), expected)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("ebm")
    traj, emb = write_synthetic(root, synthetic_rows(n_theorems=24, proved_every=4))
    return traj, emb, load_embedded_trajectories(traj, emb)


def test_theorem_split_is_deterministic_stratified_and_leak_free(synthetic):
    _, _, data = synthetic
    train, val = theorem_split(data.frame, 0.25, seed=42)
    assert train.isdisjoint(val) and train | val == set(data.frame["theorem"])
    assert (train, val) == theorem_split(data.frame, 0.25, seed=42)
    proved = data.frame.groupby("theorem")["proved"].any()
    assert sum(proved[t] for t in val) == 2  # ceil(0.25 × 6 proved)
    assert sum(not proved[t] for t in val) == 5  # ceil(0.25 × 18 unproved)
    assert theorem_split(data.frame, 0.25, seed=7)[1] != val


def test_contrastive_negatives_hard_siblings_then_random(synthetic):
    _, _, data = synthetic
    rows = np.arange(len(data.frame))
    batch = sample_contrastive(data, rows, k_negatives=3, hard_ratio=0.6, rng=np.random.default_rng(0))
    f = data.frame
    assert (f.loc[batch.positive, "label"] == "positive").all()
    assert (f["label"].to_numpy()[batch.negatives] == "negative").all()
    for p, negs, n_hard in zip(batch.positive, batch.negatives, batch.hard_count):
        if f.at[p, "depth"] == 0:
            assert n_hard == 0
            continue
        assert n_hard == 2  # round(3 × 0.6); every path node has two negative siblings
        for n in negs[:n_hard]:
            assert (f.at[n, "theorem"], f.at[n, "sibling_group"]) == (f.at[p, "theorem"], f.at[p, "sibling_group"])
    assert (batch.goal == f.loc[batch.positive, "goal_index"].to_numpy()).all()


def test_ebm_learns_rank1_well_above_chance(synthetic):
    _, _, data = synthetic
    train, val = theorem_split(data.frame, 0.25, seed=42)
    torch.manual_seed(0)
    untrained = GoalConditionedEnergyHead(16, default_hidden_dims(16)).eval()
    before = sibling_rank1(untrained, data, data.subset(val))
    config = EbmTrainConfig(epochs=40, learning_rate=3e-3, k_negatives=3, batch_size=16)
    result = train_decoupled_ebm(data, train, val, config, progress=lambda _: None)
    chance = 1 / 3  # one positive among three labelled children of a parent
    assert result.history[-1]["val_rank1"] >= 0.8 > chance + 0.3
    assert result.history[-1]["val_loss"] < result.history[0]["val_loss"] - 0.1
    assert all(0.1 <= h["temperature"] <= 10 for h in result.history)
    assert result.history[-1]["val_rank1"] >= before
    assert result.hard_negative_share > 0.5


def test_train_from_files_saves_a_loadable_head(synthetic, tmp_path):
    traj, emb, data = synthetic
    config = EbmTrainConfig(epochs=2, learning_rate=1e-3, k_negatives=3, batch_size=16, val_fraction=0.25)
    head_path = tmp_path / "ckpt" / "goal_conditioned_head.pt"
    result = train_ebm_from_files(traj, emb, head_path, config, progress=lambda _: None)
    loaded = load_head(str(head_path))
    rows = np.arange(20)
    assert np.allclose(score_rows(loaded, data, rows), score_rows(result.head, data, rows), atol=1e-6)
    assert result.summary()["epochs"] == 2 and len(result.history) == 2
    # ebm_training.json's summary: the training numbers, then what the files run adds, in this order
    summary = result.summary()
    assert list(summary)[-5:] == ["temperature_at_bound_epochs", "head_path", "missing_state_embeddings",
                                  "theorems_without_goal", "config"]
    assert summary["head_path"] == result.files.head_path == str(head_path)
    assert summary["config"] == config.training_summary() and summary["config"]["k_negatives"] == 3


def test_training_without_positives_fails_clearly(tmp_path):
    traj, emb = write_synthetic(tmp_path, [r for r in synthetic_rows(n_theorems=4, proved_every=2) if not r["proved"]])
    data = load_embedded_trajectories(traj, emb)
    with pytest.raises(ValueError, match="no training positives"):
        train_decoupled_ebm(data, set(data.frame["theorem"]), set(), EbmTrainConfig(epochs=1))
    result = train_decoupled_ebm(data, set(data.frame["theorem"]), set(), EbmTrainConfig(epochs=1),
                                 progress=lambda _: None, allow_untrained=True)
    assert not result.trained and "0 positive" in result.untrained_reason and result.history == []
    assert result.summary()["trained"] is False
    assert list(result.summary())[-1] == "seconds"  # nothing measured at the clamp, no files: no such keys


def test_training_repeats_exactly_and_each_epoch_draws_from_its_own_generator(synthetic):
    """Same data and seed, same head; an epoch's negatives and order are keyed by (seed, epoch),
    so the first epochs of a 2-epoch and a 3-epoch run are the same epochs."""
    import numpy as np

    _, _, data = synthetic
    train, val = theorem_split(data.frame, 0.25, seed=42)
    runs = [train_decoupled_ebm(data, train, val, EbmTrainConfig(epochs=e, learning_rate=3e-3, k_negatives=3,
                                                                   batch_size=16), progress=lambda _: None)
            for e in (2, 2, 3)]
    assert runs[0].history == runs[1].history
    assert all(np.array_equal(a.detach().numpy(), b.detach().numpy())
               for a, b in zip(runs[0].head.state_dict().values(), runs[1].head.state_dict().values()))
    assert runs[2].history[:2] == runs[0].history
