"""Fakes for search tests: a transition-table LeanEnv and a table-driven policy."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence

from burnqed_assets.lean.env import CheckResult, Message, ProofState, TacticResult
from burnqed_assets.search.policy import BasePolicy, Candidate

PROVED = "<proved>"


class FakeEnv:
    """`transitions[state][tactic]` = next state pp, or PROVED. Unknown tactic → error.
    A statement opens the state `roots[statement]`. `check_file` accepts files without 'bad'."""

    name = "fake"

    def __init__(self, roots: dict[str, str], transitions: dict[str, dict[str, str]],
                 raise_on: set[str] | None = None, reject_words: Sequence[str] = ("bad",)):
        self.roots = roots
        self.transitions = transitions
        self.raise_on = raise_on or set()
        self.reject_words = tuple(reject_words)
        self.calls = 0
        self.checked: list[str] = []
        self.closed = False

    def open_theorem(self, statement: str, header: str = "") -> ProofState:
        if statement in self.raise_on:
            raise RuntimeError(f"Lean crashed on {statement}")
        if statement not in self.roots:
            raise ValueError(f"cannot elaborate {statement!r}")
        pp = self.roots[statement]
        return ProofState(handle=pp, goals=tuple(pp.split("\n\n")))

    def run_tactic(self, state: ProofState, tactic: str) -> TacticResult:
        self.calls += 1
        nxt = self.transitions.get(state.handle, {}).get(tactic)
        if nxt is None:
            return TacticResult("error", error=f"unknown tactic {tactic!r}")
        if nxt == PROVED:
            return TacticResult("proved")
        return TacticResult("open", ProofState(handle=nxt, goals=tuple(nxt.split("\n\n"))))

    def check_file(self, code: str) -> CheckResult:
        self.checked.append(code)
        if any(w in code for w in self.reject_words):
            return CheckResult(ok=False, messages=[Message("error", "rejected by fake Lean")])
        return CheckResult(ok=True)

    def stats(self) -> dict[str, int | float]:
        return {"calls": self.calls}

    def close(self) -> None:
        self.closed = True


class TablePolicy(BasePolicy):
    """`table[state]` = list of (tactic, logprob); states not in the table get `default`."""

    def __init__(self, table: dict[str, list[tuple[str, float]]], default: Sequence[tuple[str, float]] = ()):
        self.table = table
        self.default = list(default)
        self.calls = 0

    def generate(self, state: str, n: int, temperature: float) -> list[Candidate]:
        self.calls += 1
        return [Candidate(t, lp) for t, lp in self.table.get(state, self.default)][:n]


# --------------------------------------------------------------------------- recorded demo search

# The header of the recorded miniF2F searches (the REPL stand-in answers their transitions).
RECORDED_HEADER = ("import Mathlib\nimport Aesop\n\nset_option maxHeartbeats 400000\n\n"
                   "open BigOperators Real Nat Topology Rat\n\n")


def recorded_theorems() -> tuple[list[dict], dict[str, list[dict]]]:
    """The recorded miniF2F search steps (evaluation material the stand-in answers), by theorem."""
    from burnqed_assets.lean.factory import MINIF2F_SEARCH_TRACES

    rows = [json.loads(line) for line in MINIF2F_SEARCH_TRACES.read_text(encoding="utf-8").splitlines()
            if line.strip()]
    by_name: dict[str, list] = defaultdict(list)
    for r in rows:
        by_name[r["_context"]["full_name"]].append(r)
    return rows, by_name


def recorded_search_theorems(n: int) -> list:
    """`n` recorded theorems with the most recorded steps, as search `Theorem`s."""
    from burnqed_assets.search.engine import Theorem

    _, by_name = recorded_theorems()
    names = sorted(by_name, key=lambda k: (-len(by_name[k]), k))[:n]
    return [Theorem(k, by_name[k][0]["_context"]["statement"] + " := by", RECORDED_HEADER, "test") for k in names]


def oracle_policy() -> TablePolicy:
    """The recorded tactics of each recorded state (plus wrong ones the stand-in rejects)."""
    rows, _ = recorded_theorems()
    table: dict[str, list] = defaultdict(lambda: [("norm_num", -0.3), ("simp", -0.6)])
    for r in rows:
        table[r["state_before"]].append((r["tactic"], -1.0))
    return TablePolicy(dict(table), default=[("norm_num", -0.3), ("linarith", -0.4)])


def world(n: int = 6):
    """n theorems in a transition table: each root has a tempting dead end (`junk`) and a two-step
    path (`step`) that proves every theorem whose index is not a multiple of 3."""
    from burnqed_assets.search.engine import Theorem

    names = [f"thm{i}" for i in range(n)]
    roots = {n_: f"⊢ r{i}" for i, n_ in enumerate(names)}
    tr = {}
    for i in range(n):
        tr[f"⊢ r{i}"] = {"step": f"⊢ m{i}", "junk": f"⊢ j{i}"}
        tr[f"⊢ m{i}"] = {"step": f"⊢ n{i}"}
        tr[f"⊢ n{i}"] = {"step": PROVED} if i % 3 else {}
    policy = TablePolicy({}, default=[("junk", -0.1), ("step", -0.5)])
    return [Theorem(n_, n_) for n_ in names], roots, tr, policy
