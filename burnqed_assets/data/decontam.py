"""Benchmark decontamination: no miniF2F problem may reach training, under any name.

Every training pair (Goedel clean pool, LEAN-GitHub pairs) and every theorem statement known
for them is compared with every benchmark problem (miniF2F v1, v2s, v2c; test and valid):
  1. `statement`: the theorem statement without its name (`normalise_statement`: comments
     dropped, whitespace kept only between two word characters) equals a benchmark's;
  2. `root_goal`: a proof state, whitespace removed, equals a benchmark root goal (v1's
     Lean-printed `goal`, and the goal rebuilt from the statement's binders as the demo traces
     and LeanDojo print it: one hypothesis per line, then `⊢ type`);
  3. `ngram`: a state shares a run of `ngram_tokens` consecutive tokens with a benchmark root
     goal, at least half of the run inside the goal's conclusion (`⊢ …`): long enough, and
     anchored on the conclusion, so that shared hypothesis boilerplate (`f : ℝ → ℝ`,
     `h₀ : ∀ x, f x = …`) does not match.
A theorem with any match is dropped whole; every match is listed with its evidence.
The joins run in DuckDB (the plan's 300K pairs): states are compared as hashes, n-grams
are generated and semi-joined in SQL.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from burnqed_assets.data import duck
from burnqed_assets.lean.verify import binders_and_type, normalise_statement, strip_comments_and_strings
from burnqed_assets.paths import SFT_TRAIN_FILE, SFT_VAL_FILE

DEFAULT_NGRAM_TOKENS = 20
# Lean tokens: identifier-ish runs (letters of any script, digits, subscripts, ' . _ ! ?) or one symbol.
TOKEN_RE2 = r"[\pL\pN_'.!?]+|[^\pL\pN_'.!?\s]"
_BINDER_OPEN = {"(": ")", "{": "}", "[": "]", "⦃": "⦄"}


@dataclass(frozen=True)
class BenchmarkProblem:
    source: str  # minif2f_v1 | minif2f_v2s | minif2f_v2c
    name: str
    split: str
    statement_key: str
    goals: tuple[str, ...]  # root goals as printed (v1 `goal`, rebuilt from the statement)


@dataclass
class DecontamResult:
    matches: list[dict[str, Any]] = field(default_factory=list)
    dropped_theorems: list[str] = field(default_factory=list)
    benchmarks: dict[str, dict[str, int]] = field(default_factory=dict)  # source -> split -> problems
    pairs_checked: int = 0
    statements_checked: int = 0
    ngram_tokens: int = DEFAULT_NGRAM_TOKENS

    @property
    def dropped_count(self) -> int:
        return len(self.dropped_theorems)

    @property
    def matches_by_rule(self) -> dict[str, int]:
        by_rule: dict[str, int] = {}
        for m in self.matches:
            by_rule[m["rule"]] = by_rule.get(m["rule"], 0) + 1
        return dict(sorted(by_rule.items()))

    @property
    def dropped_by_prefix(self) -> dict[str, int]:
        by_source: dict[str, int] = {}
        for t in self.dropped_theorems:
            src = t.split("::", 1)[0] if "::" in t else "?"
            by_source[src] = by_source.get(src, 0) + 1
        return dict(sorted(by_source.items()))

    def as_dict(self) -> dict[str, Any]:
        return {"matches": self.matches, "dropped_theorems": self.dropped_theorems,
                "dropped_count": self.dropped_count, "matches_by_rule": self.matches_by_rule,
                "dropped_by_prefix": self.dropped_by_prefix, "benchmarks": self.benchmarks,
                "pairs_checked": self.pairs_checked, "statements_checked": self.statements_checked,
                "ngram_tokens": self.ngram_tokens}


def statement_key(statement: str) -> str | None:
    """The normalised statement without `theorem <name>` (None when there is no theorem)."""
    norm = normalise_statement(statement)
    m = re.match(r"theorem ?[^\s(:{\[⦃]+", norm)
    return norm[m.end():] if m else None


def goal_key(state: str) -> str:
    """A proof state with all whitespace removed (the SQL side computes the same)."""
    return re.sub(r"\s+", "", state)


def _binder_groups(binders: str) -> list[str]:
    groups, depth, start, close = [], 0, None, ""
    for i, c in enumerate(binders):
        if depth == 0 and c in _BINDER_OPEN:
            start, close = i, _BINDER_OPEN[c]
        if c in "([{⦃":
            depth += 1
        elif c in ")]}⦄":
            depth -= 1
            if depth == 0 and start is not None and c == close:
                groups.append(binders[start:i + 1])
                start = None
    return groups


def _split_top_colon(text: str) -> tuple[str, str, str]:
    depth = 0
    for i, c in enumerate(text):
        if c in "([{⦃⟨":
            depth += 1
        elif c in ")]}⦄⟩":
            depth -= 1
        elif c == ":" and depth == 0 and text[i + 1:i + 2] != "=":
            return text[:i], ":", text[i + 1:]
    return text, "", ""


def root_goal_from_statement(statement: str) -> str | None:
    """`theorem n (a b : ℝ) (h : P) : Q` → "a b : ℝ\\nh : P\\n⊢ Q" (None if it cannot be split)."""
    split = binders_and_type(statement)
    if split is None:
        return None
    binders, type_ = split
    hyps = []
    for group in _binder_groups(binders):
        inner = group[1:-1].strip()
        names, colon, ty = _split_top_colon(inner)
        if not colon:
            if group.startswith("["):  # anonymous instance binder, printed as `inst✝ : C`
                hyps.append(f"inst✝ : {inner}")
            continue
        hyps.append(f"{names.strip() or 'inst✝'} : {ty.strip()}")
    return "\n".join(hyps + [f"⊢ {type_}"])


def load_benchmark_problems(paths: Mapping[str, str | os.PathLike[str]]) -> list[BenchmarkProblem]:
    """Every problem of the given miniF2F files ({source label: path}), all splits."""
    from burnqed_assets.lean.benchmarks import load_benchmark_file

    out = []
    for source, path in paths.items():
        if not Path(path).is_file():
            continue
        records, _ = load_benchmark_file(path, source)
        for r in records:
            key = statement_key(r["formal_statement"])
            goals = [g for g in (r.get("goal"), root_goal_from_statement(r["formal_statement"])) if g]
            out.append(BenchmarkProblem(source, r["name"], r["split"], key or "", tuple(dict.fromkeys(goals))))
    return out


def _load_bench_tables(con, problems: list[BenchmarkProblem]) -> None:
    con.execute("CREATE OR REPLACE TEMP TABLE bench_goals (bench VARCHAR, goal VARCHAR)")
    rows = [[f"{p.source}:{p.split}:{p.name}", g] for p in problems for g in p.goals]
    if rows:
        con.executemany("INSERT INTO bench_goals VALUES (?, ?)", rows)


def _states_sql(tables: Iterable[str]) -> str:
    return " UNION ALL ".join(f"SELECT theorem, source, state FROM {t}" for t in tables)


def find_matches(con, state_tables: Iterable[str], problems: list[BenchmarkProblem],
                 statements: Mapping[str, str] | None = None,
                 ngram_tokens: int = DEFAULT_NGRAM_TOKENS) -> list[dict[str, Any]]:
    """Every (training theorem, benchmark problem) match by statement, root goal or long n-gram.

    `state_tables` are DuckDB tables with columns theorem, source, state; `statements` maps a
    training theorem to its formal statement."""
    matches: list[dict[str, Any]] = []
    by_statement: dict[str, list[str]] = {}
    for p in problems:
        if p.statement_key:
            by_statement.setdefault(p.statement_key, []).append(f"{p.source}:{p.split}:{p.name}")
    for theorem, stmt in sorted((statements or {}).items()):
        key = statement_key(stmt) if stmt else None
        for bench in by_statement.get(key or "", []):
            matches.append({"theorem": theorem, "rule": "statement", "benchmark": bench,
                            "evidence": " ".join(strip_comments_and_strings(stmt).split())[:200]})
    _load_bench_tables(con, problems)
    con.execute(f"CREATE OR REPLACE TEMP TABLE dc_states AS SELECT DISTINCT theorem, source, state "
                f"FROM ({_states_sql(state_tables)}) WHERE state IS NOT NULL")
    for theorem, source, bench, state in con.execute(
            """SELECT DISTINCT s.theorem, s.source, b.bench, s.state FROM dc_states s
               JOIN bench_goals b ON regexp_replace(s.state, '\\s+', '', 'g') = regexp_replace(b.goal, '\\s+', '', 'g')
               ORDER BY 1, 3""").fetchall():
        matches.append({"theorem": theorem, "source": source, "rule": "root_goal", "benchmark": bench,
                        "evidence": state[:200]})
    n = int(ngram_tokens)
    tok = duck.sql_str(TOKEN_RE2)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE bench_ngrams AS
        SELECT DISTINCT bench, hash(list_slice(t, i, i + {n} - 1)) AS h
        FROM (SELECT bench, regexp_extract_all(goal, {tok}) AS t FROM bench_goals),
             LATERAL (SELECT unnest(range(1, len(t) - {n} + 2)) AS i)
        WHERE len(t) >= {n} AND i + {n} - 1 >= coalesce(list_position(t, '⊢'), 0) + {n // 2}""")
    for theorem, source, bench, state in con.execute(
            f"""WITH st AS (SELECT DISTINCT theorem, source, state, regexp_extract_all(state, {tok}) AS t
                            FROM dc_states),
                 grams AS (SELECT theorem, source, state, hash(list_slice(t, i, i + {n} - 1)) AS h
                           FROM st, LATERAL (SELECT unnest(range(1, len(t) - {n} + 2)) AS i) WHERE len(t) >= {n})
            SELECT theorem, source, bench, min(state) FROM grams JOIN bench_ngrams USING (h)
            GROUP BY 1, 2, 3 ORDER BY 1, 3""").fetchall():
        matches.append({"theorem": theorem, "source": source, "rule": "ngram", "benchmark": bench,
                        "evidence": state[:200]})
    return matches


def decontaminate(pair_files: Mapping[str, str | os.PathLike[str]], problems: list[BenchmarkProblem],
                  statements: Mapping[str, str] | None = None, ngram_tokens: int = DEFAULT_NGRAM_TOKENS,
                  con=None) -> DecontamResult:
    """Compare every pair of the given traced-pair files ({label: path}) and every statement with
    every benchmark problem; the result lists each match and the theorems to drop."""
    from burnqed_assets.data.sft import PAIR_COLUMNS, PAIR_REQUIRED

    con = con or duck.connect()
    tables, n_pairs = [], 0
    for i, (label, path) in enumerate(sorted(pair_files.items())):
        if not Path(path).is_file():
            continue
        table = f"dc_in_{i}"
        n_pairs += duck.load_jsonl(con, path, table, PAIR_COLUMNS, PAIR_REQUIRED)
        tables.append(table)
    if not tables:
        con.execute("CREATE OR REPLACE TEMP TABLE dc_empty (theorem VARCHAR, source VARCHAR, state VARCHAR)")
        tables = ["dc_empty"]
    matches = find_matches(con, tables, problems, statements, ngram_tokens)
    benchmarks: dict[str, dict[str, int]] = {}
    for p in problems:
        benchmarks.setdefault(p.source, {}).setdefault(p.split, 0)
        benchmarks[p.source][p.split] += 1
    return DecontamResult(matches=matches, dropped_theorems=sorted({m["theorem"] for m in matches}),
                          benchmarks=benchmarks, pairs_checked=n_pairs,
                          statements_checked=len(statements or {}), ngram_tokens=ngram_tokens)


def reachable_from_split(out_dir: str | os.PathLike[str], problems: list[BenchmarkProblem],
                         ngram_tokens: int = DEFAULT_NGRAM_TOKENS) -> list[dict[str, Any]]:
    """Independent re-read of the written SFT split: every benchmark root goal still reachable
    from a train or val prompt (by whitespace-free equality or a long shared n-gram)."""
    from burnqed_assets.data.prompt import PROMPT_PREFIX, PROMPT_SUFFIX

    con = duck.connect()
    cols = {"prompt": "VARCHAR", "completion": "VARCHAR", "theorem": "VARCHAR", "source": "VARCHAR"}
    tables = []
    for split, name in (("train", SFT_TRAIN_FILE), ("val", SFT_VAL_FILE)):
        path = Path(out_dir) / name
        if path.is_file():
            duck.load_jsonl(con, path, f"split_{split}", cols, ("prompt", "theorem"))
            con.execute(
                f"""CREATE OR REPLACE TEMP TABLE split_{split}_states AS
                SELECT theorem, {duck.sql_str(split)} AS source,
                       CASE WHEN starts_with(prompt, ?) AND ends_with(prompt, ?)
                            THEN prompt[length(?) + 1: length(prompt) - length(?)] ELSE prompt END AS state
                FROM split_{split}""", [PROMPT_PREFIX, PROMPT_SUFFIX, PROMPT_PREFIX, PROMPT_SUFFIX])
            tables.append(f"split_{split}_states")
    if not tables:
        return []
    return find_matches(con, tables, problems, None, ngram_tokens)
