"""Trajectories joined with their frozen embeddings, the theorem-level split, contrastive sampling.

Used by decoupled EBM training (plan Task 2.4), the EBM metrics (Task 2.5) and, for configs
A/B/C, by the joint-training comparison: everything takes explicit paths, nothing reads settings.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from burnqed_assets.ebm.store import RowSource, read_embeddings
from burnqed_assets.paths import EMBEDDINGS_MANIFEST_FILE as MANIFEST_FILE
from burnqed_assets.paths import STATE_EMBEDDINGS_INDEX_FILE
TRAJECTORY_COLUMNS = ["theorem", "state_id", "parent_id", "state_pp", "depth", "label", "sibling_group", "proved"]


class EmbeddingDataError(ValueError):
    """Embeddings and trajectories do not fit together; the message names the file."""


def update_fingerprint(digest: Any, theorems: list, state_ids: list, texts: list) -> None:
    """Fold (theorem, state_id, state_pp) rows into `digest`: embeddings keyed by (theorem, state_id)
    are only valid for the trajectories they were computed from."""
    for theorem, state_id, text in zip(theorems, state_ids, texts):
        digest.update(f"{theorem}\x1f{state_id}\x1f{text}\x1e".encode())


def trajectories_fingerprint(traj: pd.DataFrame) -> str:
    digest = hashlib.sha256()
    update_fingerprint(digest, traj["theorem"].tolist(), traj["state_id"].tolist(), traj["state_pp"].tolist())
    return digest.hexdigest()


@dataclass
class EmbeddedTrajectories:
    """One row per trajectory state that has an embedding; frame row i's z_state is
    `states[state_rows[i]]` (`states[i]` when `state_rows` is None).

    `states` and `goals` may be read-only memmaps of any size: read them through `state_vectors` /
    `goal_vectors` / `state_source` (float32 copies of just the rows asked for), never whole.
    """

    frame: pd.DataFrame  # TRAJECTORY_COLUMNS + goal_index (-1 when the theorem has no goal)
    states: np.ndarray  # [N, d] float16/float32, usually a memmap of the store
    goals: np.ndarray  # [T, d]
    goal_theorems: list[str]
    missing_state_embeddings: int = 0  # trajectory rows without a state embedding (reported)
    theorems_without_goal: list[str] = field(default_factory=list)
    state_rows: np.ndarray | None = None  # frame row -> row of `states` (None: identity)

    def __post_init__(self) -> None:
        self.state_source = RowSource(self.states, self.state_rows)
        self.goal_source = RowSource(self.goals)

    @property
    def d_model(self) -> int:
        return int(self.states.shape[1])

    def state_vectors(self, rows: np.ndarray) -> np.ndarray:
        """float32 z_state of the given frame rows."""
        return self.state_source.gather(rows)

    def goal_vectors(self, goal_index: np.ndarray) -> np.ndarray:
        """float32 z_goal of the given goal indices."""
        return self.goal_source.gather(goal_index)

    def subset(self, theorems: set[str]) -> np.ndarray:
        """Row indices of the given theorems."""
        return np.flatnonzero(self.frame["theorem"].isin(theorems).to_numpy())


def load_embedded_trajectories(trajectories_path: str | Path, embeddings_dir: str | Path) -> EmbeddedTrajectories:
    """Join trajectory rows (theorem, state_id) with state embeddings and each theorem's goal.

    The embedding matrices stay on disk (memmaps, `ebm.store`); only the index is joined. Rows
    without a state embedding, and theorems without a goal embedding, are counted and listed
    (they can't be scored); rows of theorems without a goal are dropped with that count.
    """
    trajectories_path, embeddings_dir = Path(trajectories_path), Path(embeddings_dir)
    if not trajectories_path.exists():
        raise FileNotFoundError(f"missing input {trajectories_path}")
    state_store = read_embeddings(embeddings_dir, "state")
    goal_store = read_embeddings(embeddings_dir, "goal")
    traj = pq.read_table(trajectories_path, columns=TRAJECTORY_COLUMNS).to_pandas()
    manifest_path = embeddings_dir / MANIFEST_FILE
    if manifest_path.exists():
        expected = json.loads(manifest_path.read_text(encoding="utf-8")).get("trajectories_fingerprint")
        if expected and expected != trajectories_fingerprint(traj):
            raise EmbeddingDataError(f"{embeddings_dir} was computed from other trajectories than {trajectories_path} "
                                     f"(fingerprint in {manifest_path} differs): re-materialize the embeddings")
    state_matrix, goal_matrix = state_store.matrix, goal_store.matrix
    if len(goal_matrix) and len(state_matrix) and goal_matrix.shape[1] != state_matrix.shape[1]:
        raise EmbeddingDataError(f"{embeddings_dir}: state dim {state_matrix.shape[1]} != goal dim {goal_matrix.shape[1]}")

    index = state_store.index
    if len(index) == len(traj) and (index["row"].to_numpy() == np.arange(len(index))).all() \
            and (index["state_id"].to_numpy() == traj["state_id"].to_numpy()).all() \
            and (index["theorem"].to_numpy() == traj["theorem"].to_numpy()).all():
        joined = traj  # written in trajectory order (the usual case): no join needed
        joined["emb_row"] = index["row"].to_numpy()
        missing = 0
    else:
        keys = index.rename(columns={"row": "emb_row"})
        dup = keys.duplicated(["theorem", "state_id"])
        if dup.any():
            first = keys[dup].iloc[0]
            raise EmbeddingDataError(f"{embeddings_dir / STATE_EMBEDDINGS_INDEX_FILE}: {int(dup.sum())} duplicated "
                                     f"(theorem, state_id) keys, e.g. ({first.theorem}, {first.state_id})")
        joined = traj.merge(keys, on=["theorem", "state_id"], how="left")
        missing = int(joined["emb_row"].isna().sum())
        joined = joined[joined["emb_row"].notna()].copy()

    goal_theorems = goal_store.index.sort_values("row")["theorem"].tolist()
    goal_index = {t: i for i, t in enumerate(goal_theorems)}
    joined["goal_index"] = joined["theorem"].map(goal_index).fillna(-1).astype(np.int64)
    without_goal = sorted(set(joined.loc[joined["goal_index"] < 0, "theorem"]))
    joined = joined[joined["goal_index"] >= 0].reset_index(drop=True)

    emb_rows = joined["emb_row"].astype(np.int64).to_numpy()
    identity = len(emb_rows) == len(state_matrix) and bool((emb_rows == np.arange(len(emb_rows))).all())
    frame = joined.drop(columns=["emb_row"])
    frame["depth"] = frame["depth"].astype(np.int64)
    frame["sibling_group"] = frame["sibling_group"].fillna(frame["parent_id"]).astype(np.int64)
    return EmbeddedTrajectories(frame=frame, states=state_matrix, goals=goal_matrix,
                                goal_theorems=goal_theorems, missing_state_embeddings=missing,
                                theorems_without_goal=without_goal, state_rows=None if identity else emb_rows)


def _stable_rank(theorem: str, seed: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{theorem}".encode()).digest()[:8], "big")


def theorem_split(frame: pd.DataFrame, val_fraction: float, seed: int) -> tuple[set[str], set[str]]:
    """Theorem-level train/val split, stratified by whether the theorem was proved.

    Deterministic (hash of seed and name), so configs A/B/C evaluate the same validation
    theorems. Each stratum with at least two theorems gives ceil(fraction × n) to validation.
    """
    proved = frame.groupby("theorem")["proved"].any()
    train, val = set(), set()
    for flag in (True, False):
        names = sorted(proved.index[proved == flag], key=lambda t: _stable_rank(t, seed))
        n_val = math.ceil(val_fraction * len(names)) if len(names) >= 2 else 0
        val.update(names[:n_val])
        train.update(names[n_val:])
    return train, val


@dataclass
class ContrastiveBatch:
    """Row indices: positive [P], negatives [P, K], goal of the positive's theorem [P]."""

    positive: np.ndarray
    negatives: np.ndarray
    goal: np.ndarray
    hard_count: np.ndarray  # how many of the K negatives are siblings of the positive

    def __len__(self) -> int:
        return len(self.positive)


def sample_contrastive(data: EmbeddedTrajectories, rows: np.ndarray, k_negatives: int, hard_ratio: float,
                       rng: np.random.Generator) -> ContrastiveBatch:
    """For each positive row in `rows`: round(K·hard_ratio) hard negatives (negative siblings:
    same theorem and parent) when there are that many, the rest random negatives from `rows`."""
    frame = data.frame.iloc[rows]
    labels = frame["label"].to_numpy()
    neg_rows = rows[labels == "negative"]
    pos_rows = rows[labels == "positive"]
    if len(pos_rows) == 0 or len(neg_rows) == 0:
        return ContrastiveBatch(np.zeros(0, np.int64), np.zeros((0, k_negatives), np.int64),
                                np.zeros(0, np.int64), np.zeros(0, np.int64))
    n_hard_wanted = round(k_negatives * hard_ratio)
    siblings: dict[tuple[str, int], list[int]] = {}
    neg_frame = data.frame.iloc[neg_rows]
    for row, theorem, group in zip(neg_rows, neg_frame["theorem"], neg_frame["sibling_group"]):
        siblings.setdefault((theorem, int(group)), []).append(int(row))
    pos_frame = data.frame.iloc[pos_rows]
    negatives = np.empty((len(pos_rows), k_negatives), dtype=np.int64)
    hard_count = np.zeros(len(pos_rows), dtype=np.int64)
    for i, (theorem, group, depth) in enumerate(zip(pos_frame["theorem"], pos_frame["sibling_group"],
                                                    pos_frame["depth"])):
        hard = siblings.get((theorem, int(group)), []) if depth > 0 else []
        n_hard = min(n_hard_wanted, len(hard))
        chosen = list(rng.choice(hard, size=n_hard, replace=False)) if n_hard else []
        chosen.extend(rng.choice(neg_rows, size=k_negatives - n_hard, replace=True).tolist())
        negatives[i] = chosen
        hard_count[i] = n_hard
    return ContrastiveBatch(positive=pos_rows.astype(np.int64), negatives=negatives,
                            goal=pos_frame["goal_index"].to_numpy(np.int64), hard_count=hard_count)
