"""The A/B/C comparison report and the Task 4.5 decision (plan Tasks 4.3–4.5).

    A: iter_0 LoRA + GoalCond EBM on frozen iter_0 embeddings   (Phase 2 baseline)
    B: iter_1 LoRA + GoalCond EBM on frozen iter_1 embeddings   (does joint LoRA help embeddings?)
    C: iter_1 LoRA + iter_1's jointly trained GoalCond EBM      (full joint system)

A→B isolates the joint LoRA's effect on the embedding space, B→C the live-gradient head, A→C
the whole system. Every number comes from the metrics JSON handed in; a missing one is "n/a"
and the decision says which numbers it lacked instead of guessing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

OLD_ITER4_LLM_RATE = 0.35  # plan: old iter_4 miniF2F, LLM-only (~35%)
OLD_BEST_RATE = 0.417  # plan: old 41.7% (iter_4 + context-free burn-rs EBM)
APPROX_POINTS = 0.02  # "≈": within 2 points, or one problem when the benchmark is smaller than 50
CLEARLY_BETTER_POINTS = 0.05  # ">>": at least 5 points higher
COLLAPSE_FRACTION = 0.5  # centroid_l2 below half of iter_0's (or below the red line) = collapsed

COLUMNS = (("centroid_l2", "centroid_l2"), ("linear_probe_acc", "probe_acc"), ("rank1_d4+", "rank1_d4+"),
           ("sibling_discrimination", "sibling"), ("minif2f_rate", "miniF2F"))
EXTRA_COLUMNS = (("rank1_accuracy", "rank1 (all)"), ("energy_gap", "energy_gap"), ("active_ratio", "active_ratio"))
CONFIG_LABELS = {"A": "A: iter_0 decoupled", "B": "B: iter_1 LoRA, decoupled", "C": "C: iter_1 full joint"}


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


@dataclass
class ConfigResult:
    name: str
    values: dict[str, float | None]
    proved: int | None = None
    attempted: int | None = None
    not_available: dict[str, str] = field(default_factory=dict)


def config_result(name: str, embedding: Mapping[str, Any] | None, ebm: Mapping[str, Any] | None,
                  search: Mapping[str, Any] | None) -> ConfigResult:
    """One row from the embedding-metrics JSON, the EBM-metrics JSON and the search summary."""
    embedding, ebm, search = embedding or {}, ebm or {}, search or {}
    values: dict[str, float | None] = {}
    for key, _ in (*COLUMNS, *EXTRA_COLUMNS):
        source = embedding if key in ("centroid_l2", "linear_probe_acc") else ebm
        values[key] = _num(source.get(key)) if key != "minif2f_rate" else _num(search.get("rate"))
    reasons = {**(embedding.get("not_available") or {}), **(ebm.get("not_available") or {})}
    return ConfigResult(name, values, proved=search.get("proved"), attempted=search.get("attempted"),
                        not_available={k: str(v) for k, v in reasons.items()})


def differences(rows: Mapping[str, ConfigResult]) -> dict[str, dict[str, float | None]]:
    """A→B, B→C, A→C per column (later minus earlier; None when either side is missing)."""
    out: dict[str, dict[str, float | None]] = {}
    for a, b in (("A", "B"), ("B", "C"), ("A", "C")):
        diff = {}
        for key, _ in (*COLUMNS, *EXTRA_COLUMNS):
            x, y = rows[a].values.get(key), rows[b].values.get(key)
            diff[key] = None if x is None or y is None else y - x
        out[f"{a}→{b}"] = diff
    return out


def approx_tolerance(attempted: int | None) -> float:
    return max(APPROX_POINTS, 1.0 / attempted) if attempted else APPROX_POINTS


@dataclass
class Decision:
    branch: str
    title: str
    action: str
    rule_order: list[str]
    conditions: dict[str, bool | None]
    numbers: dict[str, float | None]
    missing: list[str] = field(default_factory=list)


BRANCHES = {
    "joint_aborted": ("Joint training aborted", ("Apply the abort condition's remedy and re-run joint_iter1 "
                                                 "(it resumes from the last checkpoint).")),
    "insufficient_data": ("Not enough numbers to apply the rule", "Materialize the missing assets listed below."),
    "joint_failed": ("centroid_l2 collapsed in iter_1 → joint training failed",
                     "Try alternating steps (even=SFT, odd=EBM) or increase λ significantly."),
    "joint_works": ("miniF2F(iter_1) > miniF2F(iter_0) and centroid_l2 held → joint training works",
                    ("Plan iter_2: generate new trajectories with the iter_1 model, retrain "
                     "(expert iteration + joint training).")),
    "data_bottleneck": ("miniF2F(iter_0) >> old 41.7% but iter_1 ≈ iter_0 → data was the bottleneck",
                        ("Consider whether the joint-training overhead is justified, or just do more expert "
                         "iteration with competition data.")),
    "data_not_problem": ("miniF2F(iter_0) ≈ old 41.7% → data distribution wasn't the problem",
                         "Investigate search strategy, model capacity, or inference budget."),
    "no_branch": ("None of the plan's four branches holds",
                  "Read the conditions below: the numbers fall between the plan's cases; decide by hand."),
}
RULE_ORDER = ["joint_failed", "joint_works", "data_bottleneck", "data_not_problem"]


def decide(rows: Mapping[str, ConfigResult], iter0_llm_rate: float | None, joint_run: Mapping[str, Any] | None,
           centroid_red_line: float, iter1_llm_rate: float | None = None) -> Decision:
    """The Task 4.5 rule: branches checked in RULE_ORDER (collapse first), the first that holds wins.
    miniF2F of an iteration = its best configuration, LLM-only included."""
    a, b, c = rows["A"], rows["B"], rows["C"]
    m0_candidates = [v for v in (a.values["minif2f_rate"], iter0_llm_rate) if v is not None]
    m1_candidates = [v for v in (b.values["minif2f_rate"], c.values["minif2f_rate"], iter1_llm_rate) if v is not None]
    m0 = max(m0_candidates) if m0_candidates else None
    m1 = max(m1_candidates) if m1_candidates else None
    c0, c1 = a.values["centroid_l2"], b.values["centroid_l2"]
    tol = approx_tolerance(a.attempted)
    numbers = {"minif2f_iter0_best": m0, "minif2f_iter1_best": m1, "centroid_l2_iter0": c0,
               "centroid_l2_iter1": c1, "approx_tolerance": tol, "old_best_rate": OLD_BEST_RATE,
               "centroid_red_line": centroid_red_line}
    if joint_run and joint_run.get("status") == "aborted":
        abort = joint_run.get("abort") or {}
        title, _ = BRANCHES["joint_aborted"]
        return Decision("joint_aborted", f"{title}: {abort.get('condition')} at step {abort.get('step')}",
                        f"{abort.get('remedy')}. Then re-run joint_iter1 (it resumes from the last checkpoint).",
                        RULE_ORDER, {}, numbers)
    missing = [name for name, v in (("miniF2F iter_0 (config A or LLM-only)", m0),
                                    ("miniF2F iter_1 (config B, C or LLM-only)", m1),
                                    ("centroid_l2 iter_0 (config A)", c0), ("centroid_l2 iter_1 (config B/C)", c1))
               if v is None]
    if missing:
        title, action = BRANCHES["insufficient_data"]
        return Decision("insufficient_data", title, action, RULE_ORDER, {}, numbers, missing)
    collapsed = c1 < centroid_red_line or c1 < COLLAPSE_FRACTION * c0
    held = c1 >= c0
    conditions = {
        "centroid_l2 collapsed (iter_1 < red line or < half of iter_0)": collapsed,
        "centroid_l2 held (iter_1 ≥ iter_0)": held,
        "miniF2F iter_1 > iter_0 (beyond ≈)": m1 > m0 + tol,
        "miniF2F iter_0 >> old 41.7% (≥ +5 points)": m0 >= OLD_BEST_RATE + CLEARLY_BETTER_POINTS,
        "miniF2F iter_1 ≈ iter_0": abs(m1 - m0) <= tol,
        "miniF2F iter_0 ≈ old 41.7%": abs(m0 - OLD_BEST_RATE) <= tol,
    }
    holds = {
        "joint_failed": collapsed,
        "joint_works": m1 > m0 + tol and held,
        "data_bottleneck": m0 >= OLD_BEST_RATE + CLEARLY_BETTER_POINTS and abs(m1 - m0) <= tol,
        "data_not_problem": abs(m0 - OLD_BEST_RATE) <= tol,
    }
    branch = next((name for name in RULE_ORDER if holds[name]), "no_branch")
    title, action = BRANCHES[branch]
    return Decision(branch, title, action, RULE_ORDER, conditions, numbers)


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _f(v: float | None, signed: bool = False) -> str:
    if v is None:
        return "n/a"
    return f"{v:+.4g}" if signed else f"{v:.4g}"


def _compare(x: float | None, y: float | None, tol: float) -> str:
    if x is None or y is None:
        return "cannot tell (n/a)"
    if x > y + tol:
        return "higher"
    if x < y - tol:
        return "lower"
    return "about the same"


def answer_questions(rows: Mapping[str, ConfigResult], iter0_llm_rate: float | None,
                     decision: Decision, iter1_llm_rate: float | None = None) -> list[tuple[str, str]]:
    """The four questions of Task 4.4, answered from the numbers."""
    a, b, c = rows["A"], rows["B"], rows["C"]
    tol = decision.numbers["approx_tolerance"] or APPROX_POINTS
    q1_cmp = _compare(iter0_llm_rate, OLD_ITER4_LLM_RATE, tol)
    q1 = (f"iter_0 LLM-only miniF2F = {_pct(iter0_llm_rate)} vs old iter_4 LLM-only ~35%: {q1_cmp}. "
          + ("Significantly better with less data: the distribution-shift thesis is supported."
             if iter0_llm_rate is not None and iter0_llm_rate >= OLD_ITER4_LLM_RATE + CLEARLY_BETTER_POINTS
             else "Not significantly better: competition data alone did not move the LLM-only number."
             if iter0_llm_rate is not None else ""))
    c0, c1 = a.values["centroid_l2"], b.values["centroid_l2"]
    if c0 is None or c1 is None:
        q2 = f"centroid_l2 iter_1 = {_f(c1)} vs iter_0 = {_f(c0)}: cannot tell."
    else:
        state = ("held (iter_1 ≥ iter_0): joint training prevented the collapse — the primary success criterion"
                 if c1 >= c0 else "collapsed" if decision.conditions.get(
                     "centroid_l2 collapsed (iter_1 < red line or < half of iter_0)") else
                 "eroded (below iter_0, not collapsed)")
        q2 = f"centroid_l2 iter_1 = {_f(c1)} vs iter_0 = {_f(c0)} (Δ {_f(c1 - c0, True)}): {state}."
    r = {k: rows[k].values.get("rank1_d4+") for k in "ABC"}
    ra = {k: rows[k].values.get("rank1_accuracy") for k in "ABC"}
    q3 = (f"EBM rank-1 d4+: C (joint head) {_f(r['C'])}, B (frozen iter_1) {_f(r['B'])}, A (frozen iter_0) "
          f"{_f(r['A'])}; overall rank-1: C {_f(ra['C'])}, B {_f(ra['B'])}, A {_f(ra['A'])}. "
          f"Live gradients vs frozen (C vs B, d4+): {_compare(r['C'], r['B'], 0.0)}; "
          f"joint embeddings vs iter_0 under the same recipe (B vs A): {_compare(r['B'], r['A'], 0.0)}. "
          "All three heads are goal-conditioned (Gotcha 7); if none beats A, the dual-label problem may be "
          "milder on competition data.")
    best1 = max((("B", b.values["minif2f_rate"]), ("C", c.values["minif2f_rate"]),
                 ("iter_1 LLM-only", iter1_llm_rate)), key=lambda kv: -1 if kv[1] is None else kv[1])
    best0 = max((("A (LLM+EBM)", a.values["minif2f_rate"]), ("iter_0 LLM-only", iter0_llm_rate)),
                key=lambda kv: -1 if kv[1] is None else kv[1])
    q4 = (f"iter_1 best = {best1[0]} {_pct(best1[1])} vs iter_0 best = {best0[0]} {_pct(best0[1])} "
          f"vs old 41.7%: iter_1 is {_compare(best1[1], best0[1], tol)} than iter_0 and "
          f"{_compare(best1[1], OLD_BEST_RATE, tol)} than the old number (≈ means within {100 * tol:.1f} points).")
    return [("1. Did competition data help?", q1), ("2. Did joint training protect embeddings?", q2),
            ("3. Did goal conditioning help the EBM?", q3), ("4. End-to-end: did miniF2F improve?", q4)]


@dataclass(frozen=True)
class JointRunStatus:
    """What the comparison shows of the joint run (from its joint_run.json; None when unknown)."""

    status: str | None = None
    steps_done: int | None = None
    total_steps: int | None = None
    abort: dict[str, Any] | None = None  # the run's abort record: condition, step, message, remedy

    @classmethod
    def from_json(cls, joint_run: Mapping[str, Any] | None) -> JointRunStatus:
        run = joint_run or {}
        return cls(run.get("status"), run.get("steps_done"), run.get("total_steps"), run.get("abort"))


@dataclass(frozen=True)
class Comparison:
    """The A/B/C comparison: the report renders it, comparison.json is `to_json()` (fields in order)."""

    profile: str
    rows: dict[str, ConfigResult]
    differences: dict[str, dict[str, float | None]]
    iter0_llm_only_rate: float | None
    iter1_llm_only_rate: float | None
    decision: Decision
    questions: list[tuple[str, str]]
    joint_run: JointRunStatus

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def build_comparison(*, profile: str, rows: Mapping[str, ConfigResult], iter0_llm_rate: float | None,
                     joint_run: Mapping[str, Any] | None, centroid_red_line: float,
                     iter1_llm_rate: float | None = None) -> Comparison:
    decision = decide(rows, iter0_llm_rate, joint_run, centroid_red_line, iter1_llm_rate)
    return Comparison(profile=profile, rows=dict(rows), differences=differences(rows),
                      iter0_llm_only_rate=iter0_llm_rate, iter1_llm_only_rate=iter1_llm_rate, decision=decision,
                      questions=answer_questions(rows, iter0_llm_rate, decision, iter1_llm_rate),
                      joint_run=JointRunStatus.from_json(joint_run))


def render_comparison_report(comparison: Comparison, generated_at: str | None = None) -> str:
    when = f" {generated_at}" if generated_at else ""  # no wall-clock time: same inputs, same bytes
    profile = comparison.profile
    rows = comparison.rows
    lines = ["# Iter 1 comparison report: configs A / B / C", "",
             f"Profile: **{profile}** · generated{when} from the metrics JSON of the Phase 2 and Phase 4 assets.", ""]
    if profile == "demo":
        lines += [("> **Demo profile:** tiny model, toy data and a replay Lean backend. These numbers exercise "
                   "the pipeline end to end; they are **not research results** and support no conclusion about "
                   "the plan's thesis."), ""]
    run = comparison.joint_run
    lines += ["## Joint run (iter_1)", "",
              f"- status: {run.status}, steps {run.steps_done}/{run.total_steps}"]
    if run.abort:
        ab = run.abort
        lines.append(f"- ABORT at step {ab.get('step')}: {ab.get('message')} → remedy: {ab.get('remedy')}")
    lines += ["", "## Three-config table", "",
              "| Config | " + " | ".join(label for _, label in COLUMNS) + " |",
              "|---|" + "---|" * len(COLUMNS)]
    for name in "ABC":
        r = rows[name]
        cells = []
        for key, _ in COLUMNS:
            v = r.values.get(key)
            if key == "minif2f_rate":
                cells.append(f"{_pct(v)} ({r.proved}/{r.attempted})" if v is not None else "n/a")
            else:
                cells.append(_f(v) if v is not None else
                             (f"n/a ({r.not_available[key]})" if key in r.not_available else "n/a"))
        lines.append(f"| {CONFIG_LABELS[name]} | " + " | ".join(cells) + " |")
    lines += ["", (f"LLM-only miniF2F (no EBM): iter_0 {_pct(comparison.iter0_llm_only_rate)}, "
              f"iter_1 {_pct(comparison.iter1_llm_only_rate)}.")]
    lines += ["", "More EBM numbers (validation theorems, same split for every config):", "",
              "| Config | " + " | ".join(label for _, label in EXTRA_COLUMNS) + " |",
              "|---|" + "---|" * len(EXTRA_COLUMNS)]
    for name in "ABC":
        lines.append(f"| {name} | " + " | ".join(_f(rows[name].values.get(k)) for k, _ in EXTRA_COLUMNS) + " |")
    lines += ["", "## Differences", "",
              "- A→B = effect of joint LoRA training on embedding quality",
              "- B→C = effect of live EBM gradients on EBM head quality",
              "- A→C = total system improvement (what you'd report)", "",
              "| Δ | " + " | ".join(label for _, label in COLUMNS) + " |", "|---|" + "---|" * len(COLUMNS)]
    for pair, diff in comparison.differences.items():
        cells = [(f"{100 * diff[k]:+.1f} pts" if diff[k] is not None else "n/a") if k == "minif2f_rate"
                 else _f(diff[k], signed=True) for k, _ in COLUMNS]
        lines.append(f"| {pair} | " + " | ".join(cells) + " |")
    lines += ["", "## Task 4.4 questions", ""]
    for q, answer in comparison.questions:
        lines += [f"**{q}** {answer}", ""]
    d = comparison.decision
    lines += ["## Task 4.5 decision", "",
              f"**Chosen branch: `{d.branch}` — {d.title}.**", "", f"Next step: {d.action}", "",
              "Rule: the plan's branches are checked in the order "
              + " → ".join(f"`{b}`" for b in d.rule_order)
              + " (a collapse overrides everything); the first that holds is chosen. "
              f"\"≈\" means within {100 * (d.numbers.get('approx_tolerance') or APPROX_POINTS):.1f} points "
              f"(2 points, or one problem on a small benchmark); \">>\" means at least "
              f"{100 * CLEARLY_BETTER_POINTS:.0f} points; iter_0 best = max(config A, LLM-only), iter_1 best = "
              "max(B, C, iter_1 LLM-only).", ""]
    if d.missing:
        lines += ["Missing numbers:", *[f"- {m}" for m in d.missing], ""]
    if d.conditions:
        lines += ["| condition | holds |", "|---|---|",
                  *[f"| {k} | {'yes' if v else 'no'} |" for k, v in d.conditions.items()], ""]
    nums = d.numbers
    lines += ["Numbers used: " + ", ".join(f"{k} = {_f(v)}" for k, v in nums.items()), ""]
    return "\n".join(lines)
