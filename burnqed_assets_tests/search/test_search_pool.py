"""Best-first search on the warm Lean pool with the REPL stand-in at the end of the pipe: one job
per theorem on a worker's warm REPL (header imported once per worker), the theorem's clock
starting once the env is ready, recycling only between theorems, a REPL dying mid-search ending
that theorem with stop_reason "error", and a verifier rejection keeping the remaining proof states."""

from __future__ import annotations

import pickle
from dataclasses import replace

from burnqed_assets.lean import make_lean_env
from burnqed_assets.lean.pool import make_pool
from burnqed_assets.search.engine import ProofVerifierFactory, SearchConfig, VerifyOutcome, assemble_proof
from burnqed_assets.search.pooled import (
    PolicyEndpoint,
    SearchJob,
    SGLangPolicySpec,
    TransformersPolicySpec,
    search_many,
)
from burnqed_assets.settings import get_settings
from search_fakes import oracle_policy, recorded_search_theorems

CFG = SearchConfig(max_nodes=40, timeout_s=60.0, num_candidates=8, temperature=1.0)
TIMING = {"elapsed_s", "policy_s", "lean_s", "scorer_s"}


def _demo(tmp_path, **lean):
    s = get_settings("demo", tmp_path)
    return replace(s, lean=replace(s.lean, **lean)) if lean else s


def _untimed(results):
    return [{k: v for k, v in r.summary().items() if k not in TIMING} for r in results]


def test_pool_search_imports_the_header_once_per_worker_and_gives_the_per_env_trees(tmp_path):
    settings = _demo(tmp_path, standin_import_latency_s=1.5)
    theorems = recorded_search_theorems(6)
    verifier = ProofVerifierFactory(tuple(settings.lean.allowed_axioms))
    with make_pool(settings, size=2) as pool:
        pooled = search_many(theorems, pool, oracle_policy(), CFG, concurrency=2, verifier_factory=verifier)
        stats = pool.stats()
    assert stats["theorems"] == 6 and stats["imports"] == 2 and stats["reuses"] == 4, stats
    assert stats["recycles"] == stats["crashes"] == 0
    # The 1.5 s "import Mathlib" is paid before each theorem's clock starts, never on it.
    assert all(r.elapsed_s < 1.5 for r in pooled), [r.elapsed_s for r in pooled]
    assert any(r.proved for r in pooled) and all(r.stop_reason != "error" for r in pooled)

    # A plain REPL env per search thread (what search used before the pool): the same trees.
    fast = _demo(tmp_path)
    plain = search_many(theorems, lambda: make_lean_env(fast), oracle_policy(), CFG, concurrency=2,
                        verifier_factory=verifier)
    assert _untimed(pooled) == _untimed(plain)


def test_a_repl_dying_mid_search_ends_that_theorem_with_an_error(tmp_path):
    # Request 1 imports the header, 2 opens the theorem, 3 is a tactic, 4 kills the REPL.
    settings = _demo(tmp_path)
    (theorem,) = recorded_search_theorems(1)
    with make_pool(settings, size=1, extra_standin_args=("--crash-on", "4")) as pool:
        (res,) = search_many([theorem], pool, oracle_policy(), CFG)
        stats = pool.stats()
    assert res.stop_reason == "error" and not res.proved, res.summary()
    assert "REPL died mid-search" in res.error and "proof states are gone" in res.error
    assert len(res.nodes) >= 1 and res.tactic_calls == 2  # the tree so far is kept, nothing after the crash
    assert stats["repl_crashes"] >= 1


def test_a_verifier_rejection_keeps_the_proof_states_of_the_remaining_search(tmp_path):
    """restart_every=1 would recycle the REPL after every command if anything recycled inside a
    theorem; the verifier's check_file (rejected here) must not: the search goes on on live states."""
    settings = _demo(tmp_path, restart_every=1)
    theorems = recorded_search_theorems(3)
    checked: list[str] = []

    def rejecting(env):
        def verify(header, statement, tactics):
            res = env.check_file(header + assemble_proof(statement, tactics))  # a real REPL command
            checked.append(res.error or "ran")
            return VerifyOutcome(False, "rejected by the test")
        return verify

    with make_pool(settings, size=1) as pool:
        results = search_many(theorems, pool, oracle_policy(), CFG, verifier_factory=rejecting)
        stats = pool.stats()
        env_counters = pool.workers[0].env.counters
    rejected = [r for r in results if r.verify_rejections]
    assert rejected and checked, "the oracle closes at least one recorded theorem"
    assert all(not r.proved and r.stop_reason in ("exhausted", "max_nodes") for r in results), \
        [r.summary() for r in results]
    assert env_counters["stale_states"] == 0  # no tactic was sent to a state of a recycled REPL
    # tactics after the first rejection still opened new states
    for r in rejected:
        closing_tactic_calls = r.tactic_calls
        assert len(r.nodes) > 1 and closing_tactic_calls > 1
    # recycled between the theorems only (restart_every=1), never inside one
    assert stats["recycles"] == len(theorems) - 1 and stats["imports"] == len(theorems)


def test_search_jobs_pickle_with_specs_for_remote_workers():
    job = SearchJob(SGLangPolicySpec("http://127.0.0.1:30000", seed=42), CFG,
                    verifier_factory=ProofVerifierFactory(("propext",)))
    again = pickle.loads(pickle.dumps(job))
    assert again == job
    endpoint = PolicyEndpoint(oracle_policy(), 2, "in-process", TransformersPolicySpec("/m", seed=1))
    assert endpoint.for_workers(in_process=True) is endpoint.policy
    assert endpoint.for_workers(in_process=False) == TransformersPolicySpec("/m", seed=1)


def test_a_worker_that_cannot_build_its_policy_stops_the_run(tmp_path):
    """A spec that fails in the worker (model missing, server unreachable) is an infrastructure
    failure: the run stops and no theorem is recorded as a failed proof."""
    import pytest

    from burnqed_assets.search.policy import SearchInfrastructureError
    from burnqed_assets.search.pooled import EnvPool, search_on_pool
    from search_fakes import FakeEnv

    broken = PolicyEndpoint(None, 1, "missing-model", TransformersPolicySpec(str(tmp_path / "no-model"), device="cpu"))
    seen = []
    with pytest.raises(SearchInfrastructureError, match="could not build its policy"):
        search_on_pool(recorded_search_theorems(2), _RemoteLike(EnvPool(FakeEnv({}, {}))), [broken], CFG,
                       on_result=seen.append)
    assert seen == []


class _RemoteLike:
    """An in-process pool that claims its workers live elsewhere, so jobs carry specs."""

    in_process = False

    def __init__(self, pool):
        self._pool = pool
        self.size = pool.size

    def run(self, job, item, index=0):
        return self._pool.run(pickle.loads(pickle.dumps(job)), item, index)  # as a remote worker would get it
