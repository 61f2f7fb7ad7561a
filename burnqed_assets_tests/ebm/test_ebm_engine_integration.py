"""Trajectories as the real search engine writes them (engine.trajectory_rows) flow through
embeddings → metrics → EBM training → EBM metrics (shape and label contract with the search phase)."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
from ebm_synthetic import text_vector

from burnqed_assets.data.schema import trajectory_table
from burnqed_assets.ebm.embed import extract_embeddings
from burnqed_assets.ebm.metrics import (
    ebm_metrics_from_files,
    embedding_metrics_from_files,
)
from burnqed_assets.ebm.train import EbmTrainConfig, train_ebm_from_files
from burnqed_assets.lean.env import CheckResult, ProofState, TacticResult
from burnqed_assets.search.engine import (
    SearchConfig,
    Theorem,
    search_theorem,
    trajectory_rows,
)
from burnqed_assets.search.policy import BasePolicy, Candidate


class ChainEnv:
    """Theorem k: `step` advances `s0 → s1 → … → s{depth}` then proves; `wander` opens a dead end."""

    name = "chain"

    def __init__(self, depth: int):
        self.depth = depth

    def open_theorem(self, statement: str, header: str = "") -> ProofState:
        return ProofState(handle=(statement, 0), goals=(f"⊢ {statement} s0",))

    def run_tactic(self, state: ProofState, tactic: str) -> TacticResult:
        statement, i = state.handle
        if i < 0:  # dead end
            return TacticResult("error", error="stuck")
        if tactic == "step":
            if i + 1 >= self.depth:
                return TacticResult("proved")
            return TacticResult("open", ProofState((statement, i + 1), (f"⊢ {statement} s{i + 1}",)))
        if tactic.startswith("wander"):
            return TacticResult("open", ProofState((statement, -1 - i), (f"h : {tactic} ⊢ {statement} dead{i}",)))
        return TacticResult("error", error="unknown")

    def check_file(self, code: str) -> CheckResult:
        return CheckResult(ok=True)

    def stats(self) -> dict[str, int | float]:
        return {}

    def close(self) -> None:
        pass


class WanderFirstPolicy(BasePolicy):
    """Prefers dead ends, so expanded negatives exist next to every proof-path state."""

    def generate(self, state: str, n: int, temperature: float) -> list[Candidate]:
        return [Candidate("wander_a", -0.1), Candidate("wander_b", -0.2), Candidate("step", -0.5)][:n]


def test_engine_trajectories_through_the_ebm_pipeline(tmp_path):
    env, policy = ChainEnv(depth=4), WanderFirstPolicy()
    cfg = SearchConfig(max_nodes=60, timeout_s=30, num_candidates=3)
    rows = []
    for k in range(10):
        result = search_theorem(Theorem(f"goedel::chain_{k}", f"theorem chain_{k} : True := by"), env, policy, cfg)
        assert result.proved, result.error
        rows.extend(trajectory_rows(result))
    traj = tmp_path / "search_iter0.parquet"
    pq.write_table(trajectory_table(rows), traj)
    labels = {r["label"] for r in rows}
    assert {"positive", "negative"} <= labels

    emb = tmp_path / "emb"
    summary = extract_embeddings(traj, emb, lambda texts: np.stack([text_vector(t, 12) for t in texts]))
    assert summary.goals == 10 and summary.theorems_without_root == []
    report, _ = embedding_metrics_from_files(traj, emb, tmp_path / "m.json", probe_folds=2, silhouette_min_states=4)
    assert report.values["centroid_l2"] is not None and report.counts["sibling_pairs"] > 0
    config = EbmTrainConfig(epochs=3, learning_rate=1e-3, k_negatives=3, batch_size=8, val_fraction=0.3)
    result = train_ebm_from_files(traj, emb, tmp_path / "head.pt", config, progress=lambda _: None)
    assert result.train_positives > 0 and result.hard_negative_share > 0
    metrics = ebm_metrics_from_files(traj, emb, tmp_path / "head.pt", tmp_path / "e.json", val_fraction=0.3,
                                     split_seed=config.split_seed, k_negatives=3, hard_ratio=0.6)
    assert metrics.counts["val_theorems"] == 3 and metrics.counts["rank1_groups"] > 0
    assert metrics.values["rank1_accuracy"] is not None and metrics.values["sibling_discrimination"] is not None
