"""JointDataset: groups, hard/easy negatives, determinism, bad input reported by location."""

from __future__ import annotations

import json
import random

import pyarrow.parquet as pq
import pytest
from joint_fixtures import N_THEOREMS, make_trajectory_rows, state_text

from burnqed_assets.data.io import BadInputError, LineReport
from burnqed_assets.data.schema import trajectory_table
from burnqed_assets.joint.dataset import (
    JointDataset,
    TrajectoryReport,
    build_candidates,
    load_sft_records,
    read_trajectory_states,
    sample_group,
    split_candidates,
    trajectory_holdout,
)


def _candidates(joint_files):
    _, traj = joint_files
    report = TrajectoryReport()
    states = read_trajectory_states(traj, report)
    cands, pool = build_candidates(states, report)
    return cands, pool, report


def test_candidates_are_nonroot_positives_with_negative_siblings(joint_files):
    cands, pool, report = _candidates(joint_files)
    assert len(cands) == 2 * N_THEOREMS  # nodes 1 and 4 of each theorem
    assert report.positives == 2 * N_THEOREMS and report.negatives == 4 * N_THEOREMS
    for c in cands:
        t = int(c.theorem.rsplit("_", 1)[1])
        assert c.goal == state_text(t, 0)
        assert c.positive.depth > 0
        expected = {2, 3} if c.positive.state_id == 1 else {5, 6}
        assert {s.state_id for s in c.siblings} == expected
        assert all(s.label == "negative" and s.parent_id == c.positive.parent_id for s in c.siblings)
    assert len(pool) == 4 * N_THEOREMS


def test_group_has_k_negatives_with_hard_ratio(joint_files):
    cands, pool, _ = _candidates(joint_files)
    rng = random.Random(0)
    for c in cands:
        g = sample_group(c, pool, k_negatives=3, hard_ratio=0.6, rng=rng)
        siblings = {s.state_pp for s in c.siblings}
        assert len(g.hard_negatives) == 2 and set(g.hard_negatives) <= siblings  # round(3 * 0.6) = 2
        assert len(g.easy_negatives) == 1
        assert g.easy_negatives[0] not in siblings and g.easy_negatives[0] != g.positive
        assert g.negatives[:2] == g.hard_negatives  # hard first: the gradient negative is a sibling


def test_missing_siblings_are_filled_with_easy_negatives(joint_files):
    cands, pool, _ = _candidates(joint_files)
    c = cands[0]
    lonely = type(c)(c.theorem, c.goal, c.positive, c.siblings[:1])
    g = sample_group(lonely, pool, k_negatives=3, hard_ratio=0.6, rng=random.Random(1))
    assert len(g.hard_negatives) == 1 and len(g.easy_negatives) == 2


def test_batches_are_a_function_of_seed_and_step(joint_files):
    sft_path, _ = joint_files
    cands, pool, _ = _candidates(joint_files)
    sft = load_sft_records(sft_path)
    a = JointDataset(sft, cands, pool, sft_batch_size=5, contrastive_batch_size=3, seed=7)
    b = JointDataset(sft, cands, pool, sft_batch_size=5, contrastive_batch_size=3, seed=7)
    assert a.batch(4).sft == b.batch(4).sft and a.batch(4).groups == b.batch(4).groups
    assert a.batch(4).groups != a.batch(5).groups
    # One epoch of the SFT stream visits every record once (12 records, batch 5: steps 0..1 + 2 of step 2).
    seen = [r["completion"] + r["prompt"] for s in range(3) for r in a.batch(s).sft][:12]
    assert len(set(seen)) == 12


def test_probe_holds_out_the_ebm_validation_theorems(joint_files):
    from burnqed_assets.ebm.dataset import theorem_split

    _, traj = joint_files
    cands, _, _ = _candidates(joint_files)
    holdout = trajectory_holdout(traj, val_fraction=0.34, seed=3)
    frame = pq.read_table(traj).to_pandas()
    assert holdout == theorem_split(frame, 0.34, 3)[1] and 0 < len(holdout) < N_THEOREMS
    train, probe, heldout = split_candidates(cands, holdout)
    assert heldout and {c.theorem for c in probe} == holdout
    assert not {c.theorem for c in train} & holdout
    # Nothing left to train on without the holdout: both sides use everything, flagged.
    train, probe, heldout = split_candidates(cands, {c.theorem for c in cands})
    assert not heldout and len(train) == len(probe) == len(cands)


def test_bad_trajectory_rows_are_reported_with_location(tmp_path):
    rows = make_trajectory_rows(2)
    rows[3]["label"] = "maybe"
    rows[5]["state_pp"] = ""
    path = tmp_path / "t.parquet"
    pq.write_table(trajectory_table(rows), path)
    report = TrajectoryReport()
    states = read_trajectory_states(path, report)
    assert len(states) == len(rows) - 2
    assert report.bad[0] == f"{path}:row 3: label 'maybe' not in ('positive', 'negative', 'unknown')"
    assert report.bad[1].startswith(f"{path}:row 5: empty state_pp")


def test_trajectory_file_without_label_column_fails_clearly(tmp_path):
    table = trajectory_table(make_trajectory_rows(1)).drop(["label"])
    path = tmp_path / "t.parquet"
    pq.write_table(table, path)
    with pytest.raises(ValueError, match="lacks column"):
        read_trajectory_states(path)


def test_bad_sft_lines_are_counted_and_located(tmp_path):
    path = tmp_path / "train.jsonl"
    good = {"prompt": "p", "completion": "simp", "theorem": "goedel::a", "source": "goedel_workbook"}
    path.write_text(json.dumps(good) + "\n{oops\n" + json.dumps({**good, "completion": ""}) + "\n")
    report = LineReport()
    assert len(load_sft_records(path, report)) == 1
    assert [b.line for b in report.bad] == [2, 3]
    with pytest.raises(BadInputError, match=r"train.jsonl:2"):
        load_sft_records(path)


def test_empty_streams_are_refused(joint_files):
    cands, pool, _ = _candidates(joint_files)
    with pytest.raises(ValueError, match="no SFT records"):
        JointDataset([], cands, pool)
    with pytest.raises(ValueError, match="no contrastive positives"):
        JointDataset([{"prompt": "p", "completion": "c"}], [], pool)
