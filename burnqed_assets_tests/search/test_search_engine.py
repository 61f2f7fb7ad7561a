"""Best-first engine on a fake Lean env and a table policy (no model, no Lean)."""

from __future__ import annotations

import threading
import time

import pyarrow as pa

from burnqed_assets.data.schema import TRAJECTORY_SCHEMA
from burnqed_assets.search.engine import (
    SearchConfig,
    Theorem,
    VerifyOutcome,
    assemble_proof,
    search_theorem,
    trajectory_rows,
)
from burnqed_assets.search.pooled import search_many
from search_fakes import PROVED, FakeEnv, TablePolicy

CFG = SearchConfig(max_nodes=100, timeout_s=10, num_candidates=8, temperature=1.0)


def chain_env():
    """root -a-> s1 -b-> s2 -c-> s3 -d-> proved (depth 4); root -x-> dead (no tactics); s1 -y-> s1' dup."""
    roots = {"thm": "⊢ root"}
    tr = {
        "⊢ root": {"a": "⊢ s1", "x": "⊢ dead", "z": "⊢ s1"},
        "⊢ s1": {"b": "⊢ s2", "y": "⊢ root"},
        "⊢ s2": {"c": "⊢ s3"},
        "⊢ s3": {"d": PROVED},
    }
    return FakeEnv(roots, tr)


def chain_policy(dead_lp=-0.1):
    return TablePolicy({
        "⊢ root": [("x", dead_lp), ("a", -1.0), ("z", -2.0), ("nonsense", -0.5)],
        "⊢ s1": [("b", -0.5), ("y", -0.2)],
        "⊢ s2": [("c", -0.5)],
        "⊢ s3": [("d", -0.5), ("d", -0.9)],
        "⊢ dead": [("nothing", -0.1)],
    })


def test_finds_proof_labels_tree_and_verifies_assembled_proof():
    env = chain_env()
    res = search_theorem(Theorem("t", "thm", "import X"), env, chain_policy(), CFG)
    assert res.proved and res.stop_reason == "proved"
    assert res.proof == ["a", "b", "c", "d"]
    # the verifier saw header + statement + indented tactics
    assert env.checked and env.checked[-1].startswith("import X\n\nthm := by\n  a\n  b\n  c\n  d")
    rows = trajectory_rows(res)
    pa.Table.from_pylist(rows, schema=TRAJECTORY_SCHEMA)  # schema-conformant
    by_state = {r["state_pp"]: r for r in rows}
    for pp in ("⊢ root", "⊢ s1", "⊢ s2", "⊢ s3", "no goals"):
        assert by_state[pp]["label"] == "positive", pp
    assert by_state["⊢ dead"]["label"] == "negative"  # expanded first (best log-prob), dead end
    assert by_state["⊢ dead"]["expanded"]
    assert by_state["no goals"]["depth"] == 4
    # duplicates: z → s1 again and y → root again are not new states
    assert res.duplicate_states == 2
    assert len({r["state_pp"] for r in rows}) == len(rows)
    # parent / sibling structure and cumulative log-prob
    s2 = by_state["⊢ s2"]
    assert s2["parent_id"] == by_state["⊢ s1"]["state_id"] == s2["sibling_group"]
    assert abs(s2["cumulative_logprob"] - (-1.0 - 0.5)) < 1e-9
    assert by_state["⊢ root"]["parent_id"] == -1
    assert all(r["proved"] for r in rows)


def test_unproved_tree_is_unknown_and_exhausts():
    env = chain_env()
    env.transitions["⊢ s3"] = {}
    res = search_theorem(Theorem("t", "thm"), env, chain_policy(), CFG)
    assert not res.proved and res.stop_reason == "exhausted"
    assert {r["label"] for r in trajectory_rows(res)} == {"unknown"}


def test_verifier_rejection_keeps_searching():
    env = chain_env()
    env.transitions["⊢ s3"] = {"bad": PROVED, "d": PROVED}
    policy = chain_policy()
    policy.table["⊢ s3"] = [("bad", -0.1), ("d", -0.5)]
    res = search_theorem(Theorem("t", "thm"), env, policy, CFG)
    assert res.proved and res.proof[-1] == "d" and res.verify_rejections == 1


def test_custom_verifier_is_the_only_judge():
    res = search_theorem(Theorem("t", "thm"), chain_env(), chain_policy(), CFG,
                         verifier=lambda h, s, tactics: VerifyOutcome(False, "nope"))
    assert not res.proved and res.verify_rejections >= 1


def test_max_nodes_budget_counts_tactic_applications():
    env = chain_env()
    res = search_theorem(Theorem("t", "thm"), env, chain_policy(), SearchConfig(max_nodes=3, num_candidates=8))
    assert not res.proved and res.stop_reason == "max_nodes"
    assert res.tactic_calls == 2 and env.calls == 2


def test_timeout_stops_search():
    class SlowPolicy(TablePolicy):
        def generate(self, state, n, temperature):
            time.sleep(0.05)
            return super().generate(state, n, temperature)

    table = chain_policy().table
    res = search_theorem(Theorem("t", "thm"), chain_env(), SlowPolicy(table),
                         SearchConfig(max_nodes=1000, timeout_s=0.08, num_candidates=8))
    assert res.stop_reason == "timeout" and not res.proved


def test_lean_crash_is_an_error_result_not_an_exception():
    env = FakeEnv({}, {}, raise_on={"boom"})
    res = search_theorem(Theorem("t", "boom"), env, chain_policy(), CFG)
    assert res.stop_reason == "error" and "crashed" in res.error and not res.proved


def test_length_normalised_and_ebm_priorities_change_the_order():
    # two branches: 'l' (long, good per step) and 's' (short log-prob sum better at first)
    roots = {"thm": "⊢ r"}
    tr = {"⊢ r": {"p": "⊢ p1", "q": "⊢ q1"}, "⊢ p1": {"p2": "⊢ p2"}, "⊢ q1": {"q2": "⊢ q2"}}
    pol = TablePolicy({"⊢ r": [("p", -1.0), ("q", -1.5)], "⊢ p1": [("p2", -3.0)], "⊢ q1": [("q2", -0.1)]})

    def order(cfg, scorer=None):
        res = search_theorem(Theorem("t", "thm"), FakeEnv(roots, tr), pol, cfg, scorer=scorer)
        return [n.state_pp for n in res.nodes]

    base = SearchConfig(max_nodes=100, num_candidates=4)
    assert order(base) == ["⊢ r", "⊢ p1", "⊢ q1", "⊢ p2", "⊢ q2"]

    class Scorer:
        def score(self, states, goal):
            assert goal == "⊢ r"
            return [10.0 if "p" in s else 0.0 for s in states]

    ebm = SearchConfig(max_nodes=100, num_candidates=4, ebm_lambda=1.0)
    guided = order(ebm, Scorer())
    assert guided.index("⊢ q2") < guided.index("⊢ p2")  # energy pushes the p-branch back


def test_assemble_proof_indents_multiline_tactics():
    code = assemble_proof("theorem x : True := by", ["constructor", "· simp\n  ring"])
    assert code == "theorem x : True := by\n  constructor\n  · simp\n    ring\n"


def test_search_many_concurrent_with_shared_env_and_factory():
    names = [f"thm{i}" for i in range(12)]
    roots = {n: f"⊢ root{i}" for i, n in enumerate(names)}
    tr = {f"⊢ root{i}": {"win": PROVED} if i % 2 == 0 else {} for i in range(12)}
    pol = TablePolicy({}, default=[("win", -0.1)])
    theorems = [Theorem(n, n) for n in names]

    shared = FakeEnv(roots, tr)
    res = search_many(theorems, shared, pol, CFG, concurrency=4)
    assert [r.theorem for r in res] == names
    assert [r.proved for r in res] == [i % 2 == 0 for i in range(12)]
    assert not shared.closed  # the caller owns a shared env

    made: list[FakeEnv] = []
    threads: set[str] = set()

    def factory():
        env = FakeEnv(roots, tr)
        made.append(env)
        threads.add(threading.current_thread().name)
        return env

    res2 = search_many(theorems, factory, pol, CFG, concurrency=3)
    assert sum(r.proved for r in res2) == 6
    assert 1 <= len(made) <= 3 and all(e.closed for e in made)


def test_a_tactic_that_raises_is_an_error_and_repeated_crashes_end_the_theorem():
    env = chain_env()
    real = env.run_tactic

    def flaky(state, tactic):
        if tactic == "x":
            raise TimeoutError("Lean did not answer within 10 s")
        return real(state, tactic)

    env.run_tactic = flaky
    res = search_theorem(Theorem("t", "thm"), env, chain_policy(), CFG)
    assert res.proved and res.tactic_crashes == 1

    def dead(state, tactic):
        raise ConnectionResetError("REPL died")

    env.run_tactic = dead
    res = search_theorem(Theorem("t", "thm"), env, chain_policy(), CFG)
    assert res.stop_reason == "error" and "3 tactic calls in a row" in res.error and res.tactic_crashes == 3


def test_unexpanded_siblings_of_the_proof_path_are_negative():
    """A sibling created but never expanded (the proof was found first) is still off the path
    of a proved tree: a hard negative for the EBM, not `unknown`."""
    roots = {"thm": "⊢ root"}
    tr = {"⊢ root": {"a": "⊢ s1", "w": "⊢ side"}, "⊢ s1": {"b": PROVED}, "⊢ side": {"q": "⊢ side2"}}
    policy = TablePolicy({"⊢ root": [("a", -0.1), ("w", -3.0)], "⊢ s1": [("b", -0.1)],
                          "⊢ side": [("q", -0.1)]})
    res = search_theorem(Theorem("t", "thm", ""), FakeEnv(roots, tr), policy, CFG)
    assert res.proved
    by_state = {r["state_pp"]: r for r in trajectory_rows(res)}
    assert not by_state["⊢ side"]["expanded"]
    assert by_state["⊢ side"]["label"] == "negative"
    assert by_state["⊢ side"]["sibling_group"] == by_state["⊢ s1"]["sibling_group"]
    assert by_state["⊢ s1"]["label"] == "positive"
