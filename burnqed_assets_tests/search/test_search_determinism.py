"""Same inputs, same search: sampling is seeded per (run seed, state, sample), never from shared
RNG state, so two runs with 2 search threads give identical trajectories and metrics, whatever
order the threads take the theorems in."""

from __future__ import annotations

import hashlib

import pyarrow.parquet as pq

from burnqed_assets.lean.env import CheckResult, ProofState, TacticResult
from burnqed_assets.search.engine import SearchConfig, Theorem
from burnqed_assets.search.policy import TransformersPolicy
from burnqed_assets.search.run import run_search

TIMING_COLUMNS = ("elapsed_s",)  # wall-clock time of node creation: the only column allowed to differ
TIMING_KEYS = ("elapsed_s", "policy_s", "lean_s", "scorer_s", "mean_elapsed_s")


class EchoEnv:
    """Every tactic opens a new state named after (state, tactic), so the trajectory records
    exactly what the policy sampled; a tactic containing "linarith" closes the goal."""

    name = "echo"

    def open_theorem(self, statement: str, header: str = "", name: str | None = None) -> ProofState:
        return ProofState(statement, (statement.split(":= by")[0].split(":", 1)[-1].strip(),))

    def run_tactic(self, state: ProofState, tactic: str) -> TacticResult:
        if "linarith" in tactic:
            return TacticResult("proved")
        digest = hashlib.md5(f"{state.pp}|{tactic}".encode()).hexdigest()[:8]
        return TacticResult("open", ProofState(digest, (f"x : ℝ\n⊢ goal_{digest}",)))

    def check_file(self, code: str) -> CheckResult:
        return CheckResult(ok=True)

    def stats(self) -> dict:
        return {}

    def close(self) -> None:
        pass


THEOREMS = [Theorem(f"t{i}", f"theorem t{i} (x : ℝ) (h : x + {i} = {2 * i}) : x = {i} := by") for i in range(3)]
CFG = SearchConfig(max_nodes=7, num_candidates=3, temperature=1.3, timeout_s=600.0)


def _run(tiny_model_dir, tmp_path, name, theorems, concurrency):
    policy = TransformersPolicy.from_pretrained(str(tiny_model_dir), device="cpu", max_new_tokens=8, seed=42)
    out = run_search(theorems, EchoEnv(), policy, CFG, tmp_path / f"{name}.parquet", concurrency=concurrency)
    table = pq.read_table(out.path).drop(list(TIMING_COLUMNS))
    rows = sorted(table.to_pylist(), key=lambda r: (r["theorem"], r["state_id"]))
    stats = {k: v for k, v in out.stats().as_dict().items() if k not in TIMING_KEYS}
    summaries = sorted(({k: v for k, v in r.items() if k not in TIMING_KEYS} for r in out.results),
                       key=lambda r: r["theorem"])
    return rows, stats, summaries


def test_two_runs_with_two_threads_give_identical_trajectories_and_metrics(tiny_model_dir, tmp_path):
    rows_a, stats_a, sum_a = _run(tiny_model_dir, tmp_path, "a", THEOREMS, concurrency=2)
    # reversed order: the threads reach the theorems (and the model) in another order
    rows_b, stats_b, sum_b = _run(tiny_model_dir, tmp_path, "b", THEOREMS[::-1], concurrency=2)
    rows_c, stats_c, sum_c = _run(tiny_model_dir, tmp_path, "c", THEOREMS, concurrency=1)
    assert len({r["tactic"] for r in rows_a}) > len(THEOREMS)  # the policy really sampled varied tactics
    assert rows_a == rows_b == rows_c
    assert sum_a == sum_b == sum_c
    assert stats_a == stats_b == stats_c


def test_a_different_run_seed_samples_differently(tiny_model_dir):
    state = "x : ℝ\nh : 2 * x = 4\n⊢ x = 2"
    a = TransformersPolicy.from_pretrained(str(tiny_model_dir), device="cpu", max_new_tokens=10, seed=1)
    b = TransformersPolicy.from_pretrained(str(tiny_model_dir), device="cpu", max_new_tokens=10, seed=2)
    import torch

    torch.manual_seed(123)  # the global RNG plays no part
    first = a.generate(state, 6, 1.3)
    torch.rand(1000)
    assert a.generate(state, 6, 1.3) == first
    assert [c.tactic for c in b.generate(state, 6, 1.3)] != [c.tactic for c in first]
