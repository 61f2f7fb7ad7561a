"""Search-engine overhead: expansions per second with a constant-time fake policy and env.

The fake policy returns `num_candidates` fixed tactics; the fake env answers every tactic at
once (a fraction are errors, the rest new states), so the time measured is the engine's own
bookkeeping: priority queue, dedup, node records, budget checks. With `--latency-ms` both
fakes sleep (policy per call, env per tactic) to show how concurrency across theorems
overlaps waiting on the model and Lean.

    python benchmarks/search_engine.py                  # overhead, concurrency 1..8
    python benchmarks/search_engine.py --latency-ms 2   # scaling with a slow policy
Target (issue 6): >= 5,000 expansions/s at concurrency 1 with zero latency.
"""

from __future__ import annotations

import argparse
import json
import time

from burnqed_assets.lean.env import ProofState, TacticResult
from burnqed_assets.search.engine import SearchConfig, Theorem, VerifyOutcome
from burnqed_assets.search.pooled import search_many
from burnqed_assets.search.policy import BasePolicy, Candidate


class ConstantEnv:
    name = "constant"

    def __init__(self, error_every: int = 4, latency_s: float = 0.0):
        self.error_every = error_every
        self.latency_s = latency_s
        self.counter = 0

    def open_theorem(self, statement: str, header: str = "") -> ProofState:
        return ProofState(statement, (f"⊢ {statement}",))

    def run_tactic(self, state: ProofState, tactic: str) -> TacticResult:
        if self.latency_s:
            time.sleep(self.latency_s)
        self.counter += 1
        if self.counter % self.error_every == 0:
            return TacticResult("error", error="fake error")
        return TacticResult("open", ProofState(self.counter, (f"⊢ g{self.counter}",)))

    def check_file(self, code: str):  # never reached: nothing is proved
        raise AssertionError

    def stats(self) -> dict[str, int | float]:
        return {"calls": self.counter}

    def close(self) -> None:
        pass


class ConstantPolicy(BasePolicy):
    def __init__(self, n: int, latency_s: float = 0.0):
        self.candidates = [Candidate(f"tac{i}", -0.1 * (i + 1)) for i in range(n)]
        self.latency_s = latency_s

    def generate(self, state: str, n: int, temperature: float) -> list[Candidate]:
        if self.latency_s:
            time.sleep(self.latency_s)
        return self.candidates[:n]


def measure(theorems: int, concurrency: int, cfg: SearchConfig, latency_s: float) -> dict[str, float]:
    policy = ConstantPolicy(cfg.num_candidates, latency_s)
    ths = [Theorem(f"t{i}", f"t{i}") for i in range(theorems)]
    t0 = time.perf_counter()
    results = search_many(ths, lambda: ConstantEnv(latency_s=latency_s / 20), policy, cfg, concurrency=concurrency,
                          verifier_factory=lambda env: (lambda h, s, t: VerifyOutcome(False)))
    wall = time.perf_counter() - t0
    expansions = sum(r.expansions for r in results)
    nodes = sum(len(r.nodes) for r in results)
    return {"concurrency": concurrency, "theorems": theorems, "expansions": expansions, "nodes": nodes,
            "wall_s": round(wall, 3), "expansions_per_s": round(expansions / wall, 1),
            "tactic_calls_per_s": round(sum(r.tactic_calls for r in results) / wall, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--theorems", type=int, default=40)
    ap.add_argument("--max-nodes", type=int, default=800)
    ap.add_argument("--num-candidates", type=int, default=16)
    ap.add_argument("--latency-ms", type=float, default=0.0, help="policy latency per call (env: 1/20 of it)")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8])
    args = ap.parse_args()
    cfg = SearchConfig(max_nodes=args.max_nodes, timeout_s=1e9, num_candidates=args.num_candidates)
    rows = [measure(args.theorems, c, cfg, args.latency_ms / 1000) for c in args.concurrency]
    base = rows[0]["expansions_per_s"]
    print(f"max_nodes={args.max_nodes} num_candidates={args.num_candidates} latency_ms={args.latency_ms}")
    print(f"{'conc':>5} {'expansions':>10} {'wall_s':>8} {'exp/s':>10} {'tactics/s':>10} {'speedup':>8}")
    for r in rows:
        print(f"{r['concurrency']:>5} {r['expansions']:>10} {r['wall_s']:>8} {r['expansions_per_s']:>10} "
              f"{r['tactic_calls_per_s']:>10} {r['expansions_per_s'] / base:>8.2f}")
    summary = {"concurrency_1_expansions_per_s": rows[0]["expansions_per_s"],
               "best_speedup": max(r["expansions_per_s"] for r in rows) / base}
    if not args.latency_ms:  # the target is about engine overhead alone
        summary.update({"target_expansions_per_s": 5000, "meets_target": rows[0]["expansions_per_s"] >= 5000})
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
