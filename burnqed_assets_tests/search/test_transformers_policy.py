"""In-process transformers policy on the tiny demo model (untrained: checks the plumbing)."""

from __future__ import annotations

import math

from burnqed_assets.search.engine import SearchConfig, Theorem, search_theorem
from burnqed_assets.search.policy import TransformersPolicy
from search_fakes import FakeEnv

STATE = "x : ℝ\nh₀ : x + 1 = 2\n⊢ x = 1"


def test_samples_distinct_tactics_with_logprobs(tiny_model_dir):
    policy = TransformersPolicy.from_pretrained(str(tiny_model_dir), device="cpu", max_new_tokens=12, seed=0)
    cands = policy.generate(STATE, 4, 1.3)
    assert 1 <= len(cands) <= 4
    assert len({c.tactic for c in cands}) == len(cands)
    assert all(c.tactic.strip() and math.isfinite(c.logprob) and c.logprob < 0 for c in cands)
    greedy = policy.generate(STATE, 4, 0.0)
    assert len(greedy) == 1 and greedy[0].tactic == policy.generate(STATE, 4, 0.0)[0].tactic


def test_search_with_a_real_model_records_its_logprobs(tiny_model_dir):
    policy = TransformersPolicy.from_pretrained(str(tiny_model_dir), device="cpu", max_new_tokens=8, seed=0)

    class AnyTacticEnv(FakeEnv):
        def run_tactic(self, state, tactic):  # every tactic opens a fresh state
            self.calls += 1
            from burnqed_assets.lean.env import ProofState, TacticResult

            return TacticResult("open", ProofState(self.calls, (f"⊢ goal {self.calls}",)))

    env = AnyTacticEnv({"thm": STATE}, {})
    res = search_theorem(Theorem("t", "thm"), env, policy, SearchConfig(max_nodes=9, num_candidates=4))
    assert res.stop_reason == "max_nodes" and len(res.nodes) > 1
    assert all(n.llm_logprob < 0 for n in res.nodes[1:])
    assert res.policy_s > 0
