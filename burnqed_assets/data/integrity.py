"""Task M.6 / 0.4: integrity sweep of the traced pairs -> the clean pool.

Rules (plan M.6, Gotcha 12):
- contamination: a banned word (sorry/admit/cheat/sorryAx) in a tactic, or sorry/sorryAx in a
  state. The whole theorem is dropped; the gate requires zero contaminated pairs in the input.
- suspicious axioms (`sorryAx`, `Decidable.decide`, `native_decide`, `ofReduceBool`): flagged
  and counted for review, not dropped (the plan: "not necessarily abort").
- malformed pairs: empty state, state without `⊢`, state starting with "no goals", empty
  tactic. The pair is dropped and counted per reason.
- exact duplicate pairs (same theorem, depth, state, tactic): later copies dropped, counted.
- unreadable lines (bad JSON, missing fields): reported as file:line, counted as traced-but-lost
  (they lower the survival fraction) and fail the readability gate: a tracer that writes a
  broken line has lost a record we cannot account for.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from burnqed_assets.data import duck
from burnqed_assets.data.io import LineReport
from burnqed_assets.data.schema import (
    BANNED_STATE_WORDS,
    BANNED_TACTIC_WORDS,
    GOEDEL_SOURCE,
    TURNSTILE,
)

TRACED_COLUMNS = {"theorem": "VARCHAR", "state": "VARCHAR", "tactic": "VARCHAR", "state_after": "VARCHAR",
                  "depth": "BIGINT", "source": "VARCHAR"}
TRACED_REQUIRED = ("theorem", "state", "tactic")
SUSPICIOUS_AXIOMS = ("sorryAx", "Decidable.decide", "native_decide", "ofReduceBool")
MALFORMED_REASONS = ("empty_state", "no_goals_state", "no_turnstile", "empty_tactic")
EXAMPLES = 10


@dataclass
class CleanPoolResult:
    traced_pairs: int  # readable rows + unreadable lines
    traced_theorems: int
    bad_lines: int
    bad_line_examples: list[str]
    contaminated_pairs: int
    contaminated_theorems: int
    contamination_examples: list[str]
    suspicious_axiom_mentions: dict[str, int]
    malformed: dict[str, int]
    malformed_examples: list[str]
    duplicate_pairs: int
    duplicate_examples: list[str]
    clean_pairs: int
    clean_theorems: int
    dropped_theorems: list[dict[str, str]] = field(default_factory=list)

    @property
    def clean_fraction(self) -> float:
        return self.clean_pairs / self.traced_pairs if self.traced_pairs else 0.0

    @property
    def malformed_pairs(self) -> int:
        return sum(self.malformed.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "traced_pairs": self.traced_pairs,
            "traced_theorems": self.traced_theorems,
            "bad_lines": self.bad_lines,
            "bad_line_examples": self.bad_line_examples,
            "contaminated_pairs": self.contaminated_pairs,
            "contaminated_theorems": self.contaminated_theorems,
            "contamination_examples": self.contamination_examples,
            "suspicious_axiom_mentions": self.suspicious_axiom_mentions,
            "malformed_states": self.malformed_pairs,
            "malformed_by_reason": self.malformed,
            "malformed_examples": self.malformed_examples,
            "duplicate_pairs": self.duplicate_pairs,
            "duplicate_examples": self.duplicate_examples,
            "clean_pairs": self.clean_pairs,
            "clean_theorems": self.clean_theorems,
            "clean_fraction": round(self.clean_fraction, 6),
            "dropped_theorems": self.dropped_theorems,
        }


def build_clean_pool(traced_path: str | os.PathLike[str], dest: str | os.PathLike[str],
                     con=None) -> CleanPoolResult:
    """Sweep `traced_path` and write the clean pairs to `dest` (JSONL, input order).

    One read of the file computes every per-pair flag (contamination, malformed reason, the
    pair's 64-bit hash); duplicates and contaminated theorems come from hash aggregates and
    only the few affected rows are updated, so the clean pool streams out of the one table in
    file order, with no window, sort or join over the pairs.
    """
    con = con or duck.connect(input_bytes=duck.file_bytes(traced_path))
    traced_path = Path(traced_path)
    report = LineReport()
    contaminated = f"{duck.any_contains('tactic', BANNED_TACTIC_WORDS)} OR {duck.any_contains('state', BANNED_STATE_WORDS)}"
    # = starts_with(ltrim(state), 'no goals'); ltrim only runs on the rare state that starts with a space
    no_goals = "(starts_with(state, 'no goals') OR (starts_with(state, ' ') AND starts_with(ltrim(state), 'no goals')))"
    malformed = f"""CASE WHEN {duck.blank('state')} THEN 'empty_state'
               WHEN {no_goals} THEN 'no_goals_state'
               WHEN NOT contains(state, {duck.sql_str(TURNSTILE)}) THEN 'no_turnstile'
               WHEN {duck.blank('tactic')} THEN 'empty_tactic'
               ELSE NULL END"""
    duck.load_jsonl(
        con, traced_path, "traced", TRACED_COLUMNS, TRACED_REQUIRED, report,
        transform=f"""SELECT *, {contaminated} AS contaminated, {malformed} AS malformed,
            -- a 64-bit hash of the pair keys the duplicate check (string keys cost ~3x more)
            hash(theorem, coalesce(depth, 0), state, tactic) AS _h, false AS duplicate, false AS dropped
            FROM {{rows}}""")
    # later copies of a pair: rows whose hash group has an earlier line
    con.execute(
        """UPDATE traced SET duplicate = true FROM (
            SELECT _h, min(_line) AS first FROM traced GROUP BY _h HAVING count(*) > 1) d
        WHERE traced._h = d._h AND traced._line > d.first""")
    con.execute(
        """CREATE OR REPLACE TEMP TABLE bad_theorems AS
        SELECT theorem, min(_line) AS first_line FROM traced WHERE contaminated GROUP BY theorem""")
    con.execute(
        """UPDATE traced SET dropped = true
        WHERE contaminated OR malformed IS NOT NULL OR duplicate OR theorem IN (SELECT theorem FROM bad_theorems)""")

    def loc(line: int) -> str:
        return f"{traced_path}:{line}"

    contamination_examples = [
        f"{loc(n)}: {th}: tactic {tac[:60]!r}, state {st[:60]!r}" for n, th, tac, st in con.execute(
            f"SELECT _line, theorem, tactic, state FROM traced WHERE contaminated ORDER BY _line LIMIT {EXAMPLES}").fetchall()
    ]
    malformed_counts = dict.fromkeys(MALFORMED_REASONS, 0)
    for reason, n in con.execute("SELECT malformed, count(*) FROM traced WHERE malformed IS NOT NULL GROUP BY 1").fetchall():
        malformed_counts[reason] = int(n)
    malformed_examples = [f"{loc(n)}: {th}: {why}" for n, th, why in con.execute(
        f"SELECT _line, theorem, malformed FROM traced WHERE malformed IS NOT NULL ORDER BY _line LIMIT {EXAMPLES}").fetchall()]
    duplicate_examples = [f"{loc(n)}: {th}: duplicate of an earlier pair" for n, th in con.execute(
        f"SELECT _line, theorem FROM traced WHERE duplicate ORDER BY _line LIMIT {EXAMPLES}").fetchall()]
    suspicious = ", ".join("count(*) FILTER (WHERE contains(tactic, ?) OR contains(state, ?))" for _ in SUSPICIOUS_AXIOMS)
    stats = con.execute(
        f"""SELECT count(*) FILTER (WHERE contaminated), count(DISTINCT theorem), count(*) FILTER (WHERE duplicate),
                   count(DISTINCT theorem) FILTER (WHERE NOT dropped), {suspicious} FROM traced""",
        [w for ax in SUSPICIOUS_AXIOMS for w in (ax, ax)]).fetchall()[0]
    suspicious_counts = {ax: int(n) for ax, n in zip(SUSPICIOUS_AXIOMS, stats[4:]) if n}

    clean = "traced WHERE NOT dropped"
    clean_pairs = duck.export_jsonl_with_sidecar(
        con, clean, ["theorem", "state", "tactic", "state_after", "coalesce(depth, 0) AS depth",
                     f"coalesce(source, {duck.sql_str(GOEDEL_SOURCE)}) AS source"], None, dest)
    dropped = [{"theorem": th, "reason": "contaminated (sorry/admit/cheat/sorryAx)", "first_line": loc(n)}
               for th, n in con.execute("SELECT theorem, first_line FROM bad_theorems ORDER BY first_line").fetchall()]
    # theorems that lost every pair to malformed/duplicate rules are dropped too (only theorems
    # with such a pair can qualify, so the per-theorem aggregate runs over those alone)
    for th, n in con.execute(
            """SELECT theorem, min(_line) FROM traced
               WHERE theorem IN (SELECT theorem FROM traced WHERE malformed IS NOT NULL OR duplicate)
                 AND theorem NOT IN (SELECT theorem FROM bad_theorems)
               GROUP BY theorem HAVING bool_and(malformed IS NOT NULL OR duplicate) ORDER BY 2""").fetchall():
        dropped.append({"theorem": th, "reason": "no well-formed pair left", "first_line": loc(n)})
    return CleanPoolResult(
        traced_pairs=report.rows + report.bad_count,
        traced_theorems=int(stats[1]),
        bad_lines=report.bad_count,
        bad_line_examples=[str(b) for b in report.bad[:EXAMPLES]],
        contaminated_pairs=int(stats[0]),
        contaminated_theorems=int(duck.scalar(con, "SELECT count(*) FROM bad_theorems")),
        contamination_examples=contamination_examples,
        suspicious_axiom_mentions=suspicious_counts,
        malformed=malformed_counts,
        malformed_examples=malformed_examples,
        duplicate_pairs=int(stats[2]),
        duplicate_examples=duplicate_examples,
        clean_pairs=clean_pairs,
        clean_theorems=int(stats[3]),
        dropped_theorems=dropped,
    )
