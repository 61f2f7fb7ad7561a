"""Synthetic search trajectories and embeddings for the EBM tests (no model, no Lean).

Each theorem is a tree: a root (depth 0), a proof path of `depth` steps, and at every path
node `branch` children: one on the path (positive when the theorem is proved), the others
negative (one of them `unknown` when `with_unknown`). Embeddings are learnable: a state on a
proof path lies near its theorem's goal vector, an off-path state does not.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from burnqed_assets.data.schema import trajectory_table
from burnqed_assets.ebm.store import write_embeddings


def synthetic_rows(n_theorems: int = 12, depth: int = 5, branch: int = 4, proved_every: int = 1,
                   with_unknown: bool = True) -> list[dict]:
    rows: list[dict] = []
    for t in range(n_theorems):
        theorem = f"goedel::synthetic_{t}"
        proved = t % proved_every == 0
        on_path = "positive" if proved else "negative"
        rows.append({"theorem": theorem, "state_id": 0, "parent_id": -1, "state_pp": f"⊢ goal {t}", "tactic": "", "depth": 0,
                         "llm_logprob": 0.0, "cumulative_logprob": 0.0, "energy": None, "label": on_path, "sibling_group": -1,
                         "proved": proved, "expanded": True, "elapsed_s": 0.0})
        parent, next_id = 0, 1
        for d in range(1, depth + 1):
            children = []
            for b in range(branch):
                label = on_path if b == 0 else ("unknown" if with_unknown and b == branch - 1 else "negative")
                rows.append({"theorem": theorem, "state_id": next_id, "parent_id": parent,
                                 "state_pp": f"h{t}_{d}_{b} ⊢ goal {t} step {d}", "tactic": f"tac{b}", "depth": d,
                                 "llm_logprob": -1.0, "cumulative_logprob": -float(d), "energy": None, "label": label,
                                 "sibling_group": parent, "proved": proved, "expanded": label != "unknown", "elapsed_s": 0.1 * d})
                children.append(next_id)
                next_id += 1
            parent = children[0]
    return rows


def text_vector(text: str, dim: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)


def learnable_embeddings(rows: list[dict], dim: int = 16, noise: float = 0.3) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Positive states = goal + noise; other states = unrelated random vectors."""
    goals = {r["theorem"]: text_vector(r["theorem"], dim) for r in rows}
    states = np.empty((len(rows), dim), dtype=np.float32)
    for i, r in enumerate(rows):
        z = text_vector(r["state_pp"], dim)
        states[i] = goals[r["theorem"]] + noise * z if r["label"] == "positive" or r["depth"] == 0 else z
    root = {r["theorem"]: states[i] for i, r in enumerate(rows) if r["depth"] == 0}
    return states, root


def write_synthetic(root: Path, rows: list[dict] | None = None, dim: int = 16,
                    dtype: str = "float32") -> tuple[Path, Path]:
    """Write trajectories.parquet and an embeddings dir under `root`; returns (traj_path, emb_dir)."""
    rows = rows if rows is not None else synthetic_rows()
    traj = Path(root) / "trajectories" / "search_iter0.parquet"
    traj.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(trajectory_table(rows), traj)
    states, goals = learnable_embeddings(rows, dim)
    emb_dir = Path(root) / "embeddings" / "iter_0"
    write_embeddings(emb_dir, "state", [r["theorem"] for r in rows], states, [r["state_id"] for r in rows], dtype)
    names = sorted(goals)
    write_embeddings(emb_dir, "goal", names, np.stack([goals[n] for n in names]), dtype=dtype)
    return traj, emb_dir
