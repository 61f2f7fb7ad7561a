"""Task M.9: quality filter and format conversion for LEAN-GitHub rows.

Input: the internlm/Lean-Github parquet directory (full) or a JSONL file of the same columns
(demo). Rules, applied in this order (the plan's order, except that the trivial-tactic
subsample runs last so it never rescues a row another rule drops):
  1. state longer than `max_state_chars` -> drop ("long_state")
  2. "no goals" in the state -> drop ("no_goals_state"); no `⊢` -> drop ("no_turnstile")
  3. sorry/admit/cheat in the tactic -> drop ("banned_tactic")
  4. trivial tactic (rfl, simp, trivial, exact?, decide) -> keep at `trivial_keep_rate`
The subsample is deterministic: a row is kept when md5(seed|full_name|state|tactic) falls
under the rate, so the same input and seed always give the same rows, in any row order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from burnqed_assets.data import duck
from burnqed_assets.data.io import LineReport
from burnqed_assets.data.pairs import PairsWriter, add_rows
from burnqed_assets.data.schema import LEAN_GITHUB_SOURCE, SOURCE_PREFIX, TURNSTILE

TRIVIAL_TACTICS = ("rfl", "simp", "trivial", "exact?", "decide")
BANNED = ("sorry", "admit", "cheat")
COLUMNS = {"full_name": "VARCHAR", "state_before": "VARCHAR", "tactic": "VARCHAR", "state_after": "VARCHAR",
           "file_path": "VARCHAR"}
REQUIRED = ("full_name", "state_before", "tactic")
HASH_SCALE = 1_000_000


@dataclass
class LeanGithubResult:
    rows_read: int
    bad_lines: int
    bad_line_examples: list[str]
    dropped: dict[str, int]
    trivial_rows: int
    trivial_kept: int
    kept_pairs: int
    kept_theorems: int
    input_files: int

    @property
    def keep_rate(self) -> float:
        return self.kept_pairs / self.rows_read if self.rows_read else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "keep_rate": self.keep_rate}


def _load(con, src: Path, report: LineReport) -> int:
    """Rows into table `rows`: parquet files of a directory, or a JSONL file line-checked."""
    if src.is_dir():
        files = sorted(src.rglob("*.parquet"))
        if not files:
            raise FileNotFoundError(f"no *.parquet files under {src}")
        file_list = "[" + ", ".join(duck.sql_str(str(f)) for f in files) + "]"
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE rows AS
            SELECT filename AS _file, file_row_number + 1 AS _line, full_name, state_before, tactic,
                   state_after, file_path
            FROM read_parquet({file_list}, filename=true, file_row_number=true, union_by_name=true)"""
        )
        # typed columns cannot be malformed JSON, but they can be NULL: report those rows
        for f, n in con.execute(
                "SELECT _file, _line FROM rows WHERE full_name IS NULL OR state_before IS NULL OR tactic IS NULL "
                "ORDER BY _file, _line").fetchall():
            report.add(Path(f), int(n), "NULL full_name/state_before/tactic")
        con.execute("DELETE FROM rows WHERE full_name IS NULL OR state_before IS NULL OR tactic IS NULL")
        n = int(duck.scalar(con, "SELECT count(*) FROM rows"))
        report.rows += n
        return len(files)
    duck.load_jsonl(con, src, "rows", COLUMNS, REQUIRED, report)
    return 1


def filter_lean_github(src: str | os.PathLike[str], dest: str | os.PathLike[str], seed: int = 42,
                       trivial_keep_rate: float = 0.1, max_state_chars: int = 4096, con=None) -> LeanGithubResult:
    """Filter LEAN-GitHub rows into traced pairs `{theorem: github::..., state, tactic, state_after, depth, source}`."""
    con = con or duck.connect()
    report = LineReport()
    n_files = _load(con, Path(src), report)
    banned = " OR ".join(f"contains(tactic, {duck.sql_str(w)})" for w in BANNED)
    trivial = ", ".join(duck.sql_str(t) for t in TRIVIAL_TACTICS)
    threshold = round(trivial_keep_rate * HASH_SCALE)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE judged AS
        SELECT *, CASE
            WHEN length(state_before) > {int(max_state_chars)} THEN 'long_state'
            WHEN contains(state_before, 'no goals') THEN 'no_goals_state'
            WHEN NOT contains(state_before, {duck.sql_str(TURNSTILE)}) THEN 'no_turnstile'
            WHEN {banned} THEN 'banned_tactic'
            WHEN trim(tactic) IN ({trivial})
                 AND md5_number({duck.sql_str(str(seed))} || '|' || full_name || '|' || state_before || '|' || tactic)
                     % {HASH_SCALE} >= {threshold} THEN 'trivial_subsampled'
            ELSE NULL END AS drop_reason,
          trim(tactic) IN ({trivial}) AS trivial
        FROM rows"""
    )
    dropped = dict(con.execute(
        "SELECT drop_reason, count(*) FROM judged WHERE drop_reason IS NOT NULL GROUP BY 1 ORDER BY 1").fetchall())
    prefix = duck.sql_str(SOURCE_PREFIX[LEAN_GITHUB_SOURCE])
    writer = PairsWriter()
    cur = con.execute(
        f"""SELECT CASE WHEN starts_with(full_name, {prefix}) THEN full_name ELSE {prefix} || full_name END,
               state_before, tactic, state_after, CAST(NULL AS BIGINT), {duck.sql_str(LEAN_GITHUB_SOURCE)}
        FROM judged WHERE drop_reason IS NULL ORDER BY _file, _line""")
    add_rows(writer.add, cur)
    kept_pairs = writer.write(dest)
    trivial_rows, trivial_kept, kept_theorems = con.execute(
        "SELECT count(*) FILTER (WHERE trivial), count(*) FILTER (WHERE trivial AND drop_reason IS NULL), "
        "count(DISTINCT full_name) FILTER (WHERE drop_reason IS NULL) FROM judged").fetchall()[0]
    return LeanGithubResult(
        rows_read=report.rows, bad_lines=report.bad_count, bad_line_examples=[str(b) for b in report.bad[:10]],
        dropped={k: int(v) for k, v in dropped.items()}, trivial_rows=int(trivial_rows),
        trivial_kept=int(trivial_kept), kept_pairs=kept_pairs, kept_theorems=int(kept_theorems), input_files=n_files,
    )
