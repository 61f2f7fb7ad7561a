"""Generate the hand-written deep demo traces from templates (no Lean run).

Usage: python data/demo/traced/make_handwritten_traces.py

Writes, next to this script:
- handwritten_deep_traces.jsonl   traced pairs of small competition-style theorems whose proofs
                                  have 4-6 tactic steps (depth >= 3); training data.
- handwritten_statements.jsonl    {name, header, formal_statement} so search can open them.
- handwritten_dead_ends.jsonl     plausible wrong turns at some of those states (a new state with
                                  no recorded continuation, or a Lean error); NOT training data
                                  (no `_traces` suffix), used by the replay Lean backend so that
                                  search produces negative siblings.

Some theorems also have a second valid proof that leaves the first at one step (as a real traced
corpus with several proofs per theorem does). SFT learns both tactics at that state, so search
samples both and the branch it does not finish on gives off-path sibling states (EBM negatives);
the dead ends alone never do, because a policy never learns their tactics.

Why: the real Goedel sample has almost no proofs with recorded intermediate states, so the
contrastive pool (depth >= 3) and the replay backend need a clearly labelled hand-written set.
Proofs are valid Lean 4 / Mathlib syntax; the states are written as Lean's pretty printer
shows them (hypotheses one per line, `⊢ goal`, goals separated by a blank line with their
`case` tags), but they were never replayed through Lean: every row carries `_handwritten`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
HEADER = "import Mathlib\nimport Aesop\n\nset_option maxHeartbeats 400000\n\nopen BigOperators Real Nat Topology Rat\n\n"
SOURCE = "goedel_workbook"
LINARITH_FAIL = "linarith failed to find a contradiction"
OMEGA_FAIL = "omega could not prove the goal"
REWRITE_FAIL = "tactic 'rewrite' failed, did not find instance of the pattern in the target expression"


Hyp = tuple[str, str]  # (names, type)


def render(hyps: list[Hyp], goal: str, case: str | None = None) -> str:
    lines = ([f"case {case}"] if case else []) + [f"{n} : {t}" for n, t in hyps] + [f"⊢ {goal}"]
    return "\n".join(lines)


def render_goals(goals: list[tuple[list[Hyp], str, str | None]]) -> str:
    return "\n\n".join(render(h, g, c) for h, g, c in goals)


@dataclass
class Theorem:
    binders: str  # the signature between the name and `:= by`, e.g. "(x : ℝ) (h₀ : ...) : goal"
    steps: list[tuple[str, str]]  # (state, tactic); the last tactic closes the proof
    dead_ends: list[tuple[int, str, str | None, str | None]] = field(default_factory=list)
    # (step index, tactic, new state or None, error or None)
    alternative: tuple[int, list[tuple[str, str]]] | None = None
    # a second proof: the first `index` steps shared, then these (state, tactic) steps to the end


def lin_solve(x: str, a: int, b: int, k: int) -> Theorem:
    """∀ x, a*x + b = c → x = k via intro, two `have`s and `exact`."""
    c = a * k + b
    s0 = render([], f"∀ ({x} : ℝ), {a} * {x} + {b} = {c} → {x} = {k}")
    hyps = [(x, "ℝ"), ("h₀", f"{a} * {x} + {b} = {c}")]
    s1 = render(hyps, f"{x} = {k}")
    h1 = ("h₁", f"{a} * {x} = {a * k}")
    s2 = render(hyps + [h1], f"{x} = {k}")
    h2 = ("h₂", f"{x} = {k}")
    s3 = render(hyps + [h1, h2], f"{x} = {k}")
    return Theorem(
        f": ∀ {x} : ℝ, {a} * {x} + {b} = {c} → {x} = {k}",
        [(s0, f"intro {x} h₀"), (s1, f"have h₁ : {a} * {x} = {a * k} := by linarith"),
         (s2, f"have h₂ : {x} = {k} := by linarith"), (s3, "exact h₂")],
        [(0, f"intro {x}", render([(x, "ℝ")], f"{a} * {x} + {b} = {c} → {x} = {k}"), None),
         (1, f"nlinarith [sq_nonneg {x}]", None, LINARITH_FAIL),
         (1, "rw [h₀]", None, REWRITE_FAIL)],
        # linarith derives x = k from h₀ directly, without the intermediate h₁
        alternative=(1, [(s1, f"have h₂ : {x} = {k} := by linarith"), (render(hyps + [h2], f"{x} = {k}"), "exact h₂")]),
    )


def nat_sum_diff(a_: str, b_: str, a: int, b: int) -> Theorem:
    """a + b = s, a - b = d, b ≤ a over ℕ; both values by omega, then constructor."""
    s, d = a + b, a - b
    hyps = [(f"{a_} {b_}", "ℕ"), ("h₀", f"{a_} + {b_} = {s}"), ("h₁", f"{a_} - {b_} = {d}"), ("h₂", f"{b_} ≤ {a_}")]
    goal = f"{a_} = {a} ∧ {b_} = {b}"
    h3, h4 = ("h₃", f"{a_} = {a}"), ("h₄", f"{b_} = {b}")
    s0 = render(hyps, goal)
    s1 = render(hyps + [h3], goal)
    s2 = render(hyps + [h3, h4], goal)
    full = hyps + [h3, h4]
    s3 = render_goals([(full, f"{a_} = {a}", "left"), (full, f"{b_} = {b}", "right")])
    s4 = render(full, f"{b_} = {b}", "right")
    return Theorem(
        f"({a_} {b_} : ℕ) (h₀ : {a_} + {b_} = {s}) (h₁ : {a_} - {b_} = {d}) (h₂ : {b_} ≤ {a_}) : {goal}",
        [(s0, f"have h₃ : {a_} = {a} := by omega"), (s1, f"have h₄ : {b_} = {b} := by omega"),
         (s2, "constructor"), (s3, "· exact h₃"), (s4, "· exact h₄")],
        [(0, "constructor", render_goals([(hyps, f"{a_} = {a}", "left"), (hyps, f"{b_} = {b}", "right")]), None),
         (0, "linarith", None, LINARITH_FAIL),
         (2, "exact h₃", None, "type mismatch\n  h₃\nhas type\n  " + f"{a_} = {a} : Prop\nbut is expected to have type\n  {goal} : Prop")],
    )


def am_gm_two(x: str, y: str, coef: int) -> Theorem:
    """coef*x*y ≤ (x + y)^2 (coef=4) or 2*x*y ≤ x^2 + y^2 (coef=2) via sub_nonneg and a square."""
    if coef == 4:
        rhs, diff_lhs = f"({x} + {y}) ^ 2", f"({x} + {y}) ^ 2 - 4 * {x} * {y}"
    else:
        rhs, diff_lhs = f"{x} ^ 2 + {y} ^ 2", f"{x} ^ 2 + {y} ^ 2 - 2 * {x} * {y}"
    goal = f"{coef} * {x} * {y} ≤ {rhs}"
    hyps = [(f"{x} {y}", "ℝ"), ("h₀", f"0 < {x}"), ("h₁", f"0 < {y}")]
    h2 = ("h₂", f"0 ≤ ({x} - {y}) ^ 2")
    h3 = ("h₃", f"{diff_lhs} = ({x} - {y}) ^ 2")
    s0 = render(hyps, goal)
    s1 = render(hyps + [h2], goal)
    s2 = render(hyps + [h2, h3], goal)
    s3 = render(hyps + [h2, h3], f"0 ≤ {diff_lhs}")
    s4 = render(hyps + [h2, h3], f"0 ≤ ({x} - {y}) ^ 2")
    return Theorem(
        f"({x} {y} : ℝ) (h₀ : 0 < {x}) (h₁ : 0 < {y}) : {goal}",
        [(s0, f"have h₂ : 0 ≤ ({x} - {y}) ^ 2 := sq_nonneg ({x} - {y})"),
         (s1, f"have h₃ : {diff_lhs} = ({x} - {y}) ^ 2 := by ring"),
         (s2, "rw [← sub_nonneg]"), (s3, "rw [h₃]"), (s4, "exact h₂")],
        [(0, "linarith", None, LINARITH_FAIL),
         (2, "ring_nf", render(hyps + [h2, h3], goal.replace(f"{coef} * {x} * {y}", f"{x} * {y} * {coef}")), None),
         (3, "norm_num", None, "simp made no progress")],
    )


def compose_affine(f: str, m: int, c: int, k: int) -> Theorem:
    """f x = m*x + c ⊢ f (f k) = v by an inner `have`, two rewrites and norm_num."""
    inner = m * k + c
    v = m * inner + c
    hyps = [(f, "ℝ → ℝ"), ("h₀", f"∀ (x : ℝ), {f} x = {m} * x + {c}")]
    h1 = ("h₁", f"{f} {k} = {inner}")
    s0 = render(hyps, f"{f} ({f} {k}) = {v}")
    s1 = render(hyps + [h1], f"{f} ({f} {k}) = {v}")
    s2 = render(hyps + [h1], f"{f} {inner} = {v}")
    s3 = render(hyps + [h1], f"{m} * {inner} + {c} = {v}")
    return Theorem(
        f"({f} : ℝ → ℝ) (h₀ : ∀ x, {f} x = {m} * x + {c}) : {f} ({f} {k}) = {v}",
        [(s0, f"have h₁ : {f} {k} = {inner} := by\n  rw [h₀]\n  norm_num"), (s1, "rw [h₁]"), (s2, "rw [h₀]"),
         (s3, "norm_num")],
        [(0, "norm_num", None, "simp made no progress"),
         (0, "rw [h₀]", render(hyps, f"{m} * {f} {k} + {c} = {v}"), None),
         (2, "linarith", None, LINARITH_FAIL)],
    )


def square_shift(x: str, k: int) -> Theorem:
    """∀ x, x^2 - 2k x + k^2 ≥ 0: intro, ring identity, rewrite, nlinarith."""
    poly = f"{x} ^ 2 - {2 * k} * {x} + {k * k}"
    s0 = render([], f"∀ ({x} : ℝ), {poly} ≥ 0")
    hyps = [(x, "ℝ")]
    h0 = ("h₀", f"{poly} = ({x} - {k}) ^ 2")
    s1 = render(hyps, f"{poly} ≥ 0")
    s2 = render(hyps + [h0], f"{poly} ≥ 0")
    s3 = render(hyps + [h0], f"({x} - {k}) ^ 2 ≥ 0")
    return Theorem(
        f": ∀ {x} : ℝ, {poly} ≥ 0",
        [(s0, f"intro {x}"), (s1, f"have h₀ : {poly} = ({x} - {k}) ^ 2 := by ring"), (s2, "rw [h₀]"),
         (s3, f"nlinarith [sq_nonneg ({x} - {k})]")],
        [(1, "linarith", None, LINARITH_FAIL),
         (1, "norm_num", render(hyps, f"0 ≤ {poly}"), None),
         (3, "norm_num", render(hyps + [h0], f"0 ≤ ({x} - {k}) ^ 2"), None)],
    )


def mod_sum(a_: str, b_: str, m: int, r1: int, r2: int) -> Theorem:
    """∀ a b : ℕ, a % m = r1 → b % m = r2 → (a + b) % m = (r1 + r2) % m via omega."""
    r = (r1 + r2) % m
    s0 = render([], f"∀ ({a_} {b_} : ℕ), {a_} % {m} = {r1} → {b_} % {m} = {r2} → ({a_} + {b_}) % {m} = {r}")
    hyps = [(f"{a_} {b_}", "ℕ"), ("h₀", f"{a_} % {m} = {r1}"), ("h₁", f"{b_} % {m} = {r2}")]
    q = f"{a_} / {m} + {b_} / {m}" + (" + 1" if r1 + r2 >= m else "")
    h2 = ("h₂", f"{a_} + {b_} = {m} * ({q}) + {r}")
    s1 = render(hyps, f"({a_} + {b_}) % {m} = {r}")
    s2 = render(hyps + [h2], f"({a_} + {b_}) % {m} = {r}")
    s3 = render(hyps + [h2], f"({m} * ({q}) + {r}) % {m} = {r}")
    return Theorem(
        f": ∀ {a_} {b_} : ℕ, {a_} % {m} = {r1} → {b_} % {m} = {r2} → ({a_} + {b_}) % {m} = {r}",
        [(s0, f"intro {a_} {b_} h₀ h₁"), (s1, f"have h₂ : {a_} + {b_} = {m} * ({q}) + {r} := by omega"),
         (s2, "rw [h₂]"), (s3, "omega")],
        [(0, f"intro {a_}", render([(a_, "ℕ")], f"∀ ({b_} : ℕ), {a_} % {m} = {r1} → {b_} % {m} = {r2} → "
                                                f"({a_} + {b_}) % {m} = {r}"), None),
         (1, "linarith", None, LINARITH_FAIL),
         (1, "rw [h₀]", None, REWRITE_FAIL)],
    )


def real_sum_diff(x: str, y: str, a: int, b: int) -> Theorem:
    """x + y = s, x - y = d over ℝ; each value by linarith, then constructor."""
    s, d = a + b, a - b
    hyps = [(f"{x} {y}", "ℝ"), ("h₀", f"{x} + {y} = {s}"), ("h₁", f"{x} - {y} = {d}")]
    goal = f"{x} = {a} ∧ {y} = {b}"
    h2, h3 = ("h₂", f"{x} = {a}"), ("h₃", f"{y} = {b}")
    full = hyps + [h2, h3]
    return Theorem(
        f"({x} {y} : ℝ) (h₀ : {x} + {y} = {s}) (h₁ : {x} - {y} = {d}) : {goal}",
        [(render(hyps, goal), f"have h₂ : {x} = {a} := by linarith"),
         (render(hyps + [h2], goal), f"have h₃ : {y} = {b} := by linarith"),
         (render(full, goal), "constructor"),
         (render_goals([(full, f"{x} = {a}", "left"), (full, f"{y} = {b}", "right")]), "· linarith"),
         (render(full, f"{y} = {b}", "right"), "· linarith")],
        [(0, "nlinarith [sq_nonneg (x - y)]".replace("x", x).replace("y", y), None, LINARITH_FAIL),
         (0, "constructor", render_goals([(hyps, f"{x} = {a}", "left"), (hyps, f"{y} = {b}", "right")]), None)],
    )


def vieta_squares(a_: str, b_: str, s: int, p: int) -> Theorem:
    """a + b = s, a*b = p ⊢ a^2 + b^2 = s^2 - 2p via a ring identity and rewrites."""
    v = s * s - 2 * p
    hyps = [(f"{a_} {b_}", "ℝ"), ("h₀", f"{a_} + {b_} = {s}"), ("h₁", f"{a_} * {b_} = {p}")]
    goal = f"{a_} ^ 2 + {b_} ^ 2 = {v}"
    ident = f"{a_} ^ 2 + {b_} ^ 2 = ({a_} + {b_}) ^ 2 - 2 * ({a_} * {b_})"
    h2 = ("h₂", ident)
    return Theorem(
        f"({a_} {b_} : ℝ) (h₀ : {a_} + {b_} = {s}) (h₁ : {a_} * {b_} = {p}) : {goal}",
        [(render(hyps, goal), f"have h₂ : {ident} := by ring"),
         (render(hyps + [h2], goal), "rw [h₂]"),
         (render(hyps + [h2], f"({a_} + {b_}) ^ 2 - 2 * ({a_} * {b_}) = {v}"), "rw [h₀, h₁]"),
         (render(hyps + [h2], f"{s} ^ 2 - 2 * {p} = {v}"), "norm_num")],
        [(0, "linarith", None, LINARITH_FAIL),
         (0, "rw [h₀]", None, REWRITE_FAIL),
         (1, "ring_nf", render(hyps + [h2], f"{a_} ^ 2 + {b_} ^ 2 = {v}"), None)],
        # the three rewrites in one `rw`, then the arithmetic
        alternative=(1, [(render(hyps + [h2], goal), f"rw [h₂, h₀, h₁]"),
                         (render(hyps + [h2], f"{s} ^ 2 - 2 * {p} = {v}"), "norm_num")]),
    )


def bounded_product(a_: str, b_: str, s: int) -> Theorem:
    """∀ a b, 0 < a → 0 < b → a + b = s → a*b ≤ (s/2)^2 (s even) by subst and nlinarith."""
    half = s // 2
    top = half * half
    s0 = render([], f"∀ ({a_} {b_} : ℝ), 0 < {a_} → 0 < {b_} → {a_} + {b_} = {s} → {a_} * {b_} ≤ {top}")
    hyps = [(f"{a_} {b_}", "ℝ"), ("ha", f"0 < {a_}"), ("hb", f"0 < {b_}"), ("hab", f"{a_} + {b_} = {s}")]
    h0 = ("h₀", f"{b_} = {s} - {a_}")
    after_subst = [(a_, "ℝ"), ("ha", f"0 < {a_}"), ("hb", f"0 < {s} - {a_}"), ("hab", f"{a_} + ({s} - {a_}) = {s}")]
    return Theorem(
        f": ∀ {a_} {b_} : ℝ, 0 < {a_} → 0 < {b_} → {a_} + {b_} = {s} → {a_} * {b_} ≤ {top}",
        [(s0, f"intro {a_} {b_} ha hb hab"),
         (render(hyps, f"{a_} * {b_} ≤ {top}"), f"have h₀ : {b_} = {s} - {a_} := by linarith"),
         (render(hyps + [h0], f"{a_} * {b_} ≤ {top}"), "subst h₀"),
         (render(after_subst, f"{a_} * ({s} - {a_}) ≤ {top}"), f"nlinarith [sq_nonneg ({a_} - {half})]")],
        [(1, "linarith", None, LINARITH_FAIL),
         (1, "positivity", None, "failed to prove positivity: the goal is not of the form 0 ≤ e, 0 < e or e ≠ 0"),
         (3, "linarith", None, LINARITH_FAIL)],
        # (a - b)^2 ≥ 0 with a + b = s closes it without substituting
        alternative=(1, [(render(hyps, f"{a_} * {b_} ≤ {top}"), f"nlinarith [sq_nonneg ({a_} - {b_}), hab]")]),
    )


def instances() -> list[Theorem]:
    out: list[Theorem] = []
    for x, a, b, k in [("x", 3, 2, 3), ("y", 5, 4, 2), ("t", 2, 7, 6), ("z", 7, 1, 4), ("u", 4, 9, 5)]:
        out.append(lin_solve(x, a, b, k))
    for a_, b_, a, b in [("a", "b", 7, 3), ("m", "n", 12, 5), ("p", "q", 9, 2), ("x", "y", 20, 11), ("c", "d", 15, 6)]:
        out.append(nat_sum_diff(a_, b_, a, b))
    for x, y, coef in [("a", "b", 4), ("x", "y", 4), ("p", "q", 2), ("m", "n", 2), ("u", "v", 4), ("s", "t", 2)]:
        out.append(am_gm_two(x, y, coef))
    for f, m, c, k in [("f", 2, 1, 3), ("g", 3, -2, 2), ("f", 5, 4, 1), ("h", 4, 3, 2), ("g", 2, 5, 4)]:
        out.append(compose_affine(f, m, c, k))
    for x, k in [("x", 1), ("y", 2), ("t", 3), ("a", 4), ("z", 5), ("b", 6)]:
        out.append(square_shift(x, k))
    for a_, b_, m, r1, r2 in [("a", "b", 6, 2, 3), ("m", "n", 5, 4, 3), ("x", "y", 7, 6, 5), ("p", "q", 9, 2, 4),
                              ("a", "b", 4, 3, 3)]:
        out.append(mod_sum(a_, b_, m, r1, r2))
    for x, y, a, b in [("x", "y", 5, 2), ("a", "b", 8, 3), ("u", "v", 6, -1), ("m", "n", 10, 4), ("s", "t", 3, 1)]:
        out.append(real_sum_diff(x, y, a, b))
    for a_, b_, s, p in [("a", "b", 5, 6), ("x", "y", 7, 10), ("r", "s", 4, 3), ("p", "q", 9, 14), ("m", "n", 6, 8)]:
        out.append(vieta_squares(a_, b_, s, p))
    for a_, b_, s in [("a", "b", 2), ("x", "y", 4), ("p", "q", 6), ("m", "n", 8), ("u", "v", 10)]:
        out.append(bounded_product(a_, b_, s))
    return out


def main() -> None:
    theorems = instances()
    traces, statements, dead = [], [], []
    for n, thm in enumerate(theorems, start=1):
        name = f"demo_handwritten_{n}"
        full = f"goedel::{name}"
        statements.append({"name": name, "theorem": full, "header": HEADER,
                           "formal_statement": f"theorem {name} {thm.binders} := by"})
        for depth, (state, tactic) in enumerate(thm.steps):
            after = thm.steps[depth + 1][0] if depth + 1 < len(thm.steps) else "no goals"
            traces.append({"theorem": full, "state": state, "tactic": tactic, "state_after": after,
                           "depth": depth, "source": SOURCE, "_handwritten": True})
        if thm.alternative is not None:
            start, alt_steps = thm.alternative
            assert alt_steps[0][0] == thm.steps[start][0], f"{name}: the alternative must leave from a proof state"
            for i, (state, tactic) in enumerate(alt_steps):
                after = alt_steps[i + 1][0] if i + 1 < len(alt_steps) else "no goals"
                traces.append({"theorem": full, "state": state, "tactic": tactic, "state_after": after,
                               "depth": start + i, "source": SOURCE, "_handwritten": True,
                               "_proof_variant": 2})
        for depth, tactic, new_state, error in thm.dead_ends:
            dead.append({"theorem": full, "state": thm.steps[depth][0], "tactic": tactic, "state_after": new_state,
                         "error": error, "depth": depth, "source": SOURCE, "_handwritten": True})
    for fname, rows in [("handwritten_deep_traces.jsonl", traces), ("handwritten_statements.jsonl", statements),
                        ("handwritten_dead_ends.jsonl", dead)]:
        with open(HERE / fname, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    dead_states = len({(r["theorem"], r["depth"]) for r in dead})
    print(f"{len(theorems)} theorems, {len(traces)} pairs, {len(dead)} dead ends at {dead_states} states")


if __name__ == "__main__":
    main()
