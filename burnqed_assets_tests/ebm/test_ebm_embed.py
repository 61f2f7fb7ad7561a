"""State and root-goal embeddings (Task 2.1, Gotchas 4 and 9) with a fake and with the demo model."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from ebm_synthetic import synthetic_rows, text_vector

from burnqed_assets.data.schema import trajectory_table
from burnqed_assets.ebm.dataset import EmbeddingDataError, load_embedded_trajectories
from burnqed_assets.ebm.store import read_embeddings
from burnqed_assets.ebm.embed import (
    BadTrajectoryRowError,
    extract_embeddings,
    extract_embeddings_from_model,
)


class CountingEncoder:
    def __init__(self, dim: int = 8):
        self.dim, self.texts = dim, []

    def __call__(self, texts):
        self.texts.extend(texts)
        return np.stack([text_vector(t, self.dim) for t in texts])


def write_traj(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(trajectory_table(rows), path)
    return path


def test_every_row_gets_a_state_and_every_theorem_its_root_goal(tmp_path):
    rows = synthetic_rows(n_theorems=5)
    rows.append(dict(rows[3], theorem="goedel::synthetic_1", state_id=99))  # same text, other theorem
    traj = write_traj(tmp_path / "t.parquet", rows)
    enc = CountingEncoder()
    summary = extract_embeddings(traj, tmp_path / "emb", enc, batch_size=4, chunk_rows=7, dtype="float32")
    states, goals = read_embeddings(tmp_path / "emb", "state"), read_embeddings(tmp_path / "emb", "goal")
    assert states.matrix.dtype == np.float32 and states.matrix.shape == (len(rows), 8)
    assert len(states.index) == len(rows) == summary.state_rows
    assert len(goals.index) == 5 == summary.goals and summary.theorems_without_root == []
    by_key = {(t, s): states.matrix[row] for t, s, row in states.index[["theorem", "state_id", "row"]].itertuples(False)}
    for r in rows:
        assert np.array_equal(by_key[(r["theorem"], r["state_id"])], text_vector(r["state_pp"], 8))
    for t, row in goals.index[["theorem", "row"]].itertuples(False):
        root = next(r for r in rows if r["theorem"] == t and r["depth"] == 0)
        assert np.array_equal(goals.matrix[row], text_vector(root["state_pp"], 8))
    assert len(enc.texts) == summary.unique_texts_encoded <= len(rows)
    data = load_embedded_trajectories(traj, tmp_path / "emb")
    assert len(data.frame) == len(rows) and data.missing_state_embeddings == 0


def test_rerun_overwrites_without_duplicates(tmp_path):
    traj = write_traj(tmp_path / "t.parquet", synthetic_rows(n_theorems=2))
    for _ in range(2):
        extract_embeddings(traj, tmp_path / "emb", CountingEncoder())
    assert read_embeddings(tmp_path / "emb").matrix.shape == (2 * 21, 8)


def test_theorem_without_root_is_reported(tmp_path):
    rows = [r for r in synthetic_rows(n_theorems=3) if not (r["theorem"].endswith("_2") and r["depth"] == 0)]
    summary = extract_embeddings(write_traj(tmp_path / "t.parquet", rows), tmp_path / "emb", CountingEncoder())
    assert summary.theorems_without_root == ["goedel::synthetic_2"] and summary.goals == 2
    assert summary.as_metadata()["theorems_without_root"] == 1


def test_empty_state_names_file_and_row(tmp_path):
    rows = synthetic_rows(n_theorems=1)
    rows[4] = dict(rows[4], state_pp="  ")
    traj = write_traj(tmp_path / "t.parquet", rows)
    with pytest.raises(BadTrajectoryRowError, match=rf"{tmp_path / 't.parquet'}:row 4"):
        extract_embeddings(traj, tmp_path / "emb", CountingEncoder())
    assert not list((tmp_path / "emb").glob("*")) or not any(  # atomic: nothing half-written
        p.name.startswith("state_") for p in (tmp_path / "emb").iterdir())


def test_encode_max_length_from_token_geometry_or_fallback(tmp_path):
    path = tmp_path / "token_geometry.json"
    from burnqed_assets.data.token_geometry import recommended_max_length

    assert recommended_max_length(path, "encode", 512)[0] == 512
    path.write_text(json.dumps({"recommended_encode_max_length": 384, "recommended_sft_max_length": 1024}))
    value, source = recommended_max_length(path, "encode", 512)
    assert value == 384 and "token_geometry" in source


def test_demo_model_batched_embeddings_match_single_text(tmp_path):
    from burnqed_assets.models.demo_model import DemoModelSpec, build_demo_model
    from burnqed_assets.models.embedding import EmbeddingExtractor
    from burnqed_assets.models.loading import load_causal_lm, load_tokenizer
    from burnqed_assets.settings import DEMO_INPUTS

    model_dir = tmp_path / "model"
    build_demo_model(model_dir, DEMO_INPUTS, DemoModelSpec(warmup_steps=4))
    rows = synthetic_rows(n_theorems=2, depth=2)
    rows[1] = dict(rows[1], state_pp="x y z : ℝ\nh : x + y = 2 * z\n⊢ x ^ 2 + y ^ 2 ≥ 2 * z ^ 2")  # long
    traj = write_traj(tmp_path / "t.parquet", rows)
    summary = extract_embeddings_from_model(model_dir, traj, tmp_path / "emb", max_length=64, batch_size=4,
                                            storage_dtype="float32")
    assert summary.d_model > 0
    # Right padding + last content token (Gotcha 4): a text embedded in a padded batch equals itself alone.
    extractor = EmbeddingExtractor(load_causal_lm(model_dir, device="cpu").eval(), load_tokenizer(model_dir), 64)
    matrix = read_embeddings(tmp_path / "emb").matrix
    for i in (0, 1, 2):
        alone = extractor.encode([rows[i]["state_pp"]]).numpy()[0]
        assert np.allclose(matrix[i], alone, atol=1e-4)


def test_embeddings_of_other_trajectories_are_refused(tmp_path):
    rows = synthetic_rows(n_theorems=2)
    traj = write_traj(tmp_path / "t.parquet", rows)
    summary = extract_embeddings(traj, tmp_path / "emb", CountingEncoder())
    assert json.loads((tmp_path / "emb" / "embeddings_manifest.json").read_text())["trajectories_fingerprint"] \
        == summary.trajectories_fingerprint
    assert len(load_embedded_trajectories(traj, tmp_path / "emb").frame) == len(rows)
    rows[5] = dict(rows[5], state_pp="a different state ⊢ x")  # a new search: same ids, other states
    write_traj(traj, rows)
    with pytest.raises(EmbeddingDataError, match="re-materialize the embeddings"):
        load_embedded_trajectories(traj, tmp_path / "emb")
