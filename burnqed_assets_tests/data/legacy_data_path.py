"""The M.6 / M.8 / M.9 / M.10 data path as it was before the Python rewrite (DuckDB throughout),
frozen here as the reference the new path must match byte for byte (test_data_same_bytes.py).

Copied from burnqed_assets/data/{integrity,exploration,lean_github,sft}.py at ed7354d, with the
Parquet sidecars left out (they held the same rows as the JSONL files they sat beside) and the
helpers they used inlined. Not used by the package.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from burnqed_assets.data import duck
from burnqed_assets.data.exploration import DEPTH_BUCKETS, _percentiles, depth_bucket, import_surface
from burnqed_assets.data.integrity import (
    EXAMPLES,
    MALFORMED_REASONS,
    SUSPICIOUS_AXIOMS,
    TRACED_COLUMNS,
    TRACED_REQUIRED,
    CleanPoolResult,
)
from burnqed_assets.data.io import LineReport, atomic_open, atomic_path, write_json
from burnqed_assets.data.lean_github import BANNED, COLUMNS, HASH_SCALE, REQUIRED, TRIVIAL_TACTICS, LeanGithubResult, _load
from burnqed_assets.data.prompt import PROMPT_PREFIX, PROMPT_SUFFIX
from burnqed_assets.data.schema import (
    BANNED_STATE_WORDS,
    BANNED_TACTIC_WORDS,
    GOEDEL_SOURCE,
    LEAN_GITHUB_SOURCE,
    SOURCE_PREFIX,
    TURNSTILE,
)
from burnqed_assets.paths import SFT_STATS_FILE, SFT_TRAIN_FILE, SFT_VAL_FILE

PAIR_COLUMNS = {"theorem": "VARCHAR", "state": "VARCHAR", "tactic": "VARCHAR", "depth": "BIGINT", "source": "VARCHAR"}
PAIR_REQUIRED = ("theorem", "state", "tactic", "source")
_GITHUB_ORD = 10_000_000_000
TACTIC_NAME_SQL = r"regexp_extract(trim(tactic), '^[^\s\[\(]*')"


def copy_to_jsonl(con, query: str, dest, params=None) -> int:
    with atomic_path(dest) as tmp:
        rows = con.execute(f"COPY ({query}) TO {duck.sql_str(str(tmp))} (FORMAT JSON)", params or []).fetchall()
    return int(rows[0][0])


def export_jsonl(con, source: str, columns: Sequence[str], order_by: str | None, dest) -> int:
    cols = ", ".join(columns)
    if order_by is None:
        return copy_to_jsonl(con, f"SELECT {cols} FROM {source}", dest)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _export AS SELECT {cols} FROM {source} ORDER BY {order_by}")
    n = copy_to_jsonl(con, f"SELECT {cols} FROM _export", dest)
    con.execute("DROP TABLE _export")
    return n


def load_pairs(con, path, table, columns, required=(), report=None, transform=None) -> int:
    return duck.load_jsonl(con, path, table, columns, required, report, transform)


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
    clean_pairs = export_jsonl(
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


def explore(clean_pairs: str | os.PathLike[str], clean_pool_report: dict[str, Any] | None = None,
            lean_dirs: Iterable[Path] = (), proof_jsonl: Iterable[Path] = (),
            percentiles: tuple[int, ...] = (25, 50, 75, 90, 95), contrastive_min_depth: int = 3,
            contrastive_min_theorems: int = 3000) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The exploration report and the arrays its plots need."""
    con = duck.connect()
    load_pairs(con, clean_pairs, "pairs", {"theorem": "VARCHAR", "tactic": "VARCHAR", "depth": "BIGINT"},
                    ("theorem", "tactic"))
    per_theorem = con.execute(
        "SELECT count(*) AS n, max(coalesce(depth, 0)) AS d FROM pairs GROUP BY theorem ORDER BY theorem"
    ).fetchnumpy()
    lengths, depths = per_theorem["n"].astype(np.int64), per_theorem["d"].astype(np.int64)
    n_theorems, n_pairs = int(lengths.size), int(lengths.sum())
    buckets = Counter(depth_bucket(int(d)) for d in depths)
    pair_depths = dict(con.execute("SELECT coalesce(depth, 0), count(*) FROM pairs GROUP BY 1 ORDER BY 1").fetchall())
    deep_pairs = sum(v for k, v in pair_depths.items() if k >= 3)
    tactic_rows = con.execute(
        f"SELECT {TACTIC_NAME_SQL} AS name, count(*) AS c FROM pairs GROUP BY 1 ORDER BY c DESC, name"
    ).fetchall()
    total = sum(c for _, c in tactic_rows) or 1
    top, cumulative = [], 0
    for name, c in tactic_rows[:30]:
        cumulative += c
        top.append({"tactic": name, "count": int(c), "share": c / total, "cumulative_share": cumulative / total})
    imports, import_source = import_surface(lean_dirs, proof_jsonl)
    eligible = int((depths >= contrastive_min_depth).sum())
    report = {
        "clean_theorems": n_theorems,
        "clean_pairs": n_pairs,
        "proof_length": {**_percentiles(lengths, percentiles), "mean": float(lengths.mean()) if n_theorems else 0.0},
        "depth_distribution": {b: int(buckets.get(b, 0)) for b in DEPTH_BUCKETS},
        "depth_distribution_share": {b: (buckets.get(b, 0) / n_theorems if n_theorems else 0.0) for b in DEPTH_BUCKETS},
        "pair_depth_distribution": {str(k): int(v) for k, v in pair_depths.items()},
        "deep_pairs": int(deep_pairs),
        "deep_pair_share": deep_pairs / n_pairs if n_pairs else 0.0,
        "contrastive_eligible": eligible,
        "contrastive_eligible_depth2": int((depths >= 2).sum()),
        "contrastive_pool_warning": eligible < contrastive_min_theorems,
        "top_30_tactics": top,
        "top5_tactic_share": sum(c for _, c in tactic_rows[:5]) / total,
        "top10_tactic_share": sum(c for _, c in tactic_rows[:10]) / total,
        "unique_tactic_names": len(tactic_rows),
        "top_20_imports": [{"module": m, "count": c} for m, c in imports.most_common(20)],
        "unique_import_paths": len(imports),
        "import_source": import_source,
    }
    if clean_pool_report:
        report["clean_pool"] = {k: clean_pool_report.get(k) for k in (
            "traced_pairs", "traced_theorems", "clean_pairs", "clean_theorems", "clean_fraction",
            "contaminated_pairs", "malformed_states", "duplicate_pairs", "bad_lines")}
    return report, {"proof_lengths": lengths, "max_depths": depths}


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
    prefix = SOURCE_PREFIX[LEAN_GITHUB_SOURCE]
    kept = f"""(SELECT CASE WHEN starts_with(full_name, {duck.sql_str(prefix)}) THEN full_name
                    ELSE {duck.sql_str(prefix)} || full_name END AS theorem,
               state_before AS state, tactic, state_after, CAST(NULL AS BIGINT) AS depth,
               {duck.sql_str(LEAN_GITHUB_SOURCE)} AS source, _file, _line
        FROM judged WHERE drop_reason IS NULL)"""
    kept_pairs = export_jsonl(
        con, kept, ["theorem", "state", "tactic", "state_after", "depth", "source"], "_file, _line", dest)
    trivial_rows, trivial_kept, kept_theorems = con.execute(
        "SELECT count(*) FILTER (WHERE trivial), count(*) FILTER (WHERE trivial AND drop_reason IS NULL), "
        "count(DISTINCT full_name) FILTER (WHERE drop_reason IS NULL) FROM judged").fetchall()[0]
    return LeanGithubResult(
        rows_read=report.rows, bad_lines=report.bad_count, bad_line_examples=[str(b) for b in report.bad[:10]],
        dropped={k: int(v) for k, v in dropped.items()}, trivial_rows=int(trivial_rows),
        trivial_kept=int(trivial_kept), kept_pairs=kept_pairs, kept_theorems=int(kept_theorems), input_files=n_files,
    )


def _prefix_sql(col: str = "theorem", src: str = "source") -> str:
    cases = " ".join(
        f"WHEN {src} = {duck.sql_str(s)} AND NOT starts_with({col}, {duck.sql_str(p)}) THEN {duck.sql_str(p)} || {col}"
        for s, p in SOURCE_PREFIX.items())
    return f"CASE {cases} ELSE {col} END"


def _bare_sql(col: str = "theorem") -> str:
    return f"regexp_replace({col}, '^[a-z_]+::', '')"


def build_sft_dataset(clean_pairs: str | os.PathLike[str], github_pairs: str | os.PathLike[str],
                      out_dir: str | os.PathLike[str], seed: int = 42, val_fraction: float = 0.05,
                      benchmark: set[str] | None = None, contaminated: Iterable[str] = (),
                      con=None) -> dict[str, Any]:
    """Write train.jsonl, val.jsonl and stats.json under `out_dir`; return the stats.

    `contaminated`: theorems the decontamination gate matched to a benchmark problem (dropped).

    The two inputs are read once, each into a table that carries its per-pair flags (prefixed
    theorem, banned word, pair hash, keep, is_val). Duplicates, dropped theorems and the val
    theorems come from hash aggregates and update only the rows they touch; train and val then
    stream out of the two tables (WHERE + UNION ALL keep insertion order, so no sort or join).
    """
    con = con or duck.connect()
    out_dir = Path(out_dir)
    banned = f"{duck.any_contains('tactic', BANNED_TACTIC_WORDS)} OR {duck.any_contains('state', BANNED_STATE_WORDS)}"
    flags = f"""SELECT *, {banned} AS banned, hash(state, tactic) AS _h, true AS keep, false AS is_val
        FROM (SELECT * REPLACE ({_prefix_sql()} AS theorem) FROM {{rows}})"""
    n_goedel = load_pairs(con, clean_pairs, "goedel_in", PAIR_COLUMNS, PAIR_REQUIRED, transform=flags)
    n_github = load_pairs(con, github_pairs, "github_in", PAIR_COLUMNS, PAIR_REQUIRED, transform=flags) \
        if Path(github_pairs).exists() else 0
    if not n_github:
        con.execute("CREATE OR REPLACE TEMP TABLE github_in AS SELECT * FROM goedel_in LIMIT 0")
    # merge order: every Goedel pair, then every GitHub pair, each in file order
    con.execute(f"""CREATE OR REPLACE TEMP VIEW merged AS
        SELECT *, _line AS _ord FROM goedel_in UNION ALL SELECT *, {_GITHUB_ORD} + _line AS _ord FROM github_in""")
    con.execute(
        """CREATE OR REPLACE TEMP TABLE dup_groups AS
        SELECT _h, min(_ord) AS first, arg_min(theorem, _ord) AS first_theorem, count(*) AS n
        FROM merged GROUP BY _h HAVING count(*) > 1""")
    duplicates = int(duck.scalar(con, "SELECT coalesce(sum(n - 1), 0) FROM dup_groups"))
    # copies under another theorem (often another source): kept, they could split across train/val
    cross_duplicates = int(duck.scalar(
        con, "SELECT count(*) FROM merged m JOIN dup_groups d USING (_h) WHERE m._ord > d.first "
             "AND m.theorem <> d.first_theorem")) if duplicates else 0
    if duplicates:  # later copies of a pair
        for table, offset in (("goedel_in", 0), ("github_in", _GITHUB_ORD)):
            con.execute(f"""UPDATE {table} SET keep = false FROM dup_groups d
                WHERE {table}._h = d._h AND {offset} + {table}._line > d.first""")
    con.execute("CREATE OR REPLACE TEMP TABLE sorry_theorems AS SELECT DISTINCT theorem FROM merged WHERE banned")
    con.execute("CREATE OR REPLACE TEMP TABLE bench_names (name VARCHAR)")
    if benchmark:
        con.executemany("INSERT INTO bench_names VALUES (?)", [[n] for n in sorted(benchmark)])
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE bench_theorems AS SELECT theorem FROM (SELECT DISTINCT theorem FROM merged)
            WHERE {_bare_sql()} IN (SELECT name FROM bench_names)
               OR regexp_extract({_bare_sql()}, '([^.]+)$', 1) IN (SELECT name FROM bench_names)""")
    else:
        con.execute("CREATE OR REPLACE TEMP TABLE bench_theorems (theorem VARCHAR)")
    con.execute("CREATE OR REPLACE TEMP TABLE contaminated_names (theorem VARCHAR)")
    if contaminated := sorted(set(contaminated)):
        con.executemany("INSERT INTO contaminated_names VALUES (?)", [[t] for t in contaminated])
    con.execute("""CREATE OR REPLACE TEMP TABLE contaminated_theorems AS SELECT DISTINCT theorem FROM merged
        WHERE theorem IN (SELECT theorem FROM contaminated_names)""")
    if duck.scalar(con, "SELECT (SELECT count(*) FROM sorry_theorems) + (SELECT count(*) FROM bench_theorems) "
                        "+ (SELECT count(*) FROM contaminated_theorems)"):
        for table in ("goedel_in", "github_in"):
            con.execute(f"""UPDATE {table} SET keep = false WHERE keep AND theorem IN
                (SELECT theorem FROM sorry_theorems UNION ALL SELECT theorem FROM bench_theorems
                 UNION ALL SELECT theorem FROM contaminated_theorems)""")
    # theorem-level split: per source, the round(val_fraction * n) theorems (>= 1 when n >= 2)
    # first by md5(seed|theorem); a top-k per source, not a window over every theorem
    con.execute("CREATE OR REPLACE TEMP TABLE split_theorems AS SELECT DISTINCT source, theorem FROM merged WHERE keep")
    con.execute("CREATE OR REPLACE TEMP TABLE val_theorems (theorem VARCHAR)")
    for src, k in con.execute(
            """SELECT source, CASE WHEN n < 2 THEN 0 ELSE greatest(1, CAST(round(n * ?) AS BIGINT)) END
               FROM (SELECT source, count(*) AS n FROM split_theorems GROUP BY source) ORDER BY source""",
            [float(val_fraction)]).fetchall():
        if k:
            con.execute(f"""INSERT INTO val_theorems SELECT theorem FROM split_theorems WHERE source = ?
                ORDER BY md5(? || '|' || theorem), theorem LIMIT {int(k)}""", [src, str(seed)])
    for table in ("goedel_in", "github_in"):
        con.execute(f"UPDATE {table} SET is_val = true WHERE keep AND theorem IN (SELECT theorem FROM val_theorems)")
    prompt = f"{duck.sql_str(PROMPT_PREFIX)} || state || {duck.sql_str(PROMPT_SUFFIX)} AS prompt"
    written = {}
    for split, flag, name in (("train", "false", SFT_TRAIN_FILE), ("val", "true", SFT_VAL_FILE)):
        q = " UNION ALL ".join(
            f"SELECT {prompt}, tactic AS completion, theorem, source FROM {t} WHERE keep AND is_val = {flag}"
            for t in ("goedel_in", "github_in"))
        written[split] = copy_to_jsonl(con, q, out_dir / name)
    by_source: dict[str, dict[str, int]] = {}
    for src, is_val, pairs, theorems in con.execute(
            """SELECT source, is_val, count(*), count(DISTINCT theorem) FROM merged WHERE keep
               GROUP BY 1, 2 ORDER BY 1, 2""").fetchall():
        d = by_source.setdefault(src, {"train_pairs": 0, "val_pairs": 0, "train_theorems": 0, "val_theorems": 0})
        key = "val" if is_val else "train"
        d[f"{key}_pairs"], d[f"{key}_theorems"] = int(pairs), int(theorems)
    for d in by_source.values():
        d["pairs"], d["theorems"] = d["train_pairs"] + d["val_pairs"], d["train_theorems"] + d["val_theorems"]
    depth_rows = con.execute(
        f"""SELECT coalesce(depth, -1), count(*) FROM merged WHERE keep AND source = {duck.sql_str(GOEDEL_SOURCE)}
            GROUP BY 1 ORDER BY 1""").fetchall()
    stats = {
        "total_pairs": written["train"] + written["val"],
        "train_pairs": written["train"],
        "val_pairs": written["val"],
        "train_theorems": sum(d["train_theorems"] for d in by_source.values()),
        "val_theorems": sum(d["val_theorems"] for d in by_source.values()),
        "by_source": by_source,
        "sources": sorted(by_source),
        "input_pairs": {"goedel_clean": n_goedel, "lean_github": n_github},
        "dropped": {
            "duplicate_pairs": duplicates,
            "duplicate_pairs_across_theorems": cross_duplicates,
            "contaminated_theorems": int(duck.scalar(con, "SELECT count(*) FROM contaminated_theorems")),
            "contaminated_theorem_names": [t for (t,) in con.execute(
                "SELECT theorem FROM contaminated_theorems ORDER BY 1 LIMIT 20").fetchall()],
            "sorry_theorems": int(duck.scalar(con, "SELECT count(*) FROM sorry_theorems")),
            "benchmark_theorems": int(duck.scalar(con, "SELECT count(*) FROM bench_theorems")),
            "benchmark_theorem_names": [t for (t,) in con.execute(
                "SELECT theorem FROM bench_theorems ORDER BY 1 LIMIT 20").fetchall()],
        },
        "goedel_depth_distribution": {str(k): int(v) for k, v in depth_rows},
        "seed": seed,
        "val_fraction": val_fraction,
    }
    write_json(out_dir / SFT_STATS_FILE, stats)
    return stats


def verify_split(out_dir: str | os.PathLike[str], benchmark: set[str] | None = None) -> dict[str, Any]:
    """Independent re-read of train/val (Task 0.6): leak, prompt format, sources, benchmark names.

    Each file is read once; every check then runs on the two loaded tables.
    """
    out_dir = Path(out_dir)
    con = duck.connect(input_bytes=duck.file_bytes(out_dir / SFT_TRAIN_FILE, out_dir / SFT_VAL_FILE))
    cols = {"prompt": "VARCHAR", "completion": "VARCHAR", "theorem": "VARCHAR", "source": "VARCHAR"}
    from burnqed_assets.data.io import LineReport

    report = LineReport()
    n_train = duck.load_jsonl(con, out_dir / SFT_TRAIN_FILE, "train", cols, tuple(cols), report)
    n_val = duck.load_jsonl(con, out_dir / SFT_VAL_FILE, "val", cols, tuple(cols), report)
    con.execute("CREATE OR REPLACE TEMP TABLE leak AS SELECT theorem FROM train INTERSECT SELECT theorem FROM val")
    n_leak = int(duck.scalar(con, "SELECT count(*) FROM leak"))
    leak = [t for (t,) in con.execute("SELECT theorem FROM leak ORDER BY 1 LIMIT 20").fetchall()] if n_leak else []
    con.execute("""CREATE OR REPLACE TEMP TABLE pairs_both AS
        SELECT prompt, completion FROM train INTERSECT SELECT prompt, completion FROM val""")
    n_pairs_both = int(duck.scalar(con, "SELECT count(*) FROM pairs_both"))
    pairs_both = [f"{t}: {c[:60]!r}" for t, c in con.execute(
        "SELECT v.theorem, v.completion FROM val v JOIN pairs_both b USING (prompt, completion) "
        "ORDER BY v._line LIMIT 10").fetchall()] if n_pairs_both else []
    bad_sql = f"NOT starts_with(prompt, ?) OR NOT ends_with(prompt, ?) OR {duck.blank('completion')}"
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE by_source AS
        SELECT source, count(*) AS n, count(*) FILTER (WHERE {bad_sql}) AS bad
        FROM (SELECT source, prompt, completion FROM train UNION ALL SELECT source, prompt, completion FROM val)
        GROUP BY source""", [PROMPT_PREFIX, PROMPT_SUFFIX])
    sources = dict(con.execute("SELECT source, n FROM by_source ORDER BY 1").fetchall())
    n_bad_format = int(duck.scalar(con, "SELECT coalesce(sum(bad), 0) FROM by_source"))
    bad_format = con.execute(
        f"""SELECT _file, _line FROM (SELECT * FROM train UNION ALL SELECT * FROM val)
           WHERE {bad_sql} ORDER BY _file, _line LIMIT 20""", [PROMPT_PREFIX, PROMPT_SUFFIX]).fetchall() \
        if n_bad_format else []
    bench_hits: list[str] = []
    if benchmark:
        names = [t for (t,) in con.execute(
            "SELECT DISTINCT theorem FROM (SELECT theorem FROM train UNION ALL SELECT theorem FROM val)").fetchall()]
        bench_hits = sorted(t for t in names
                            if re.sub(r"^[a-z_]+::", "", t) in benchmark or
                            re.sub(r"^[a-z_]+::", "", t).rsplit(".", 1)[-1] in benchmark)
    return {
        "train_pairs": n_train,
        "val_pairs": n_val,
        "leaked_theorems": n_leak,
        "leak_examples": leak,
        "pairs_in_both_splits": n_pairs_both,
        "pairs_in_both_examples": pairs_both,
        "bad_format_pairs": n_bad_format,
        "bad_format_examples": [f"{f}:{n}" for f, n in bad_format],
        "pairs_by_source": {k: int(v) for k, v in sources.items()},
        "unreadable_lines": report.bad_count,
        "unreadable_examples": [str(b) for b in report.bad[:10]],
        "benchmark_theorems": bench_hits,
    }


def build_contrastive_pool(clean_pairs: str | os.PathLike[str], dest: str | os.PathLike[str],
                           min_depth: int = 3, fallback_depth: int = 2, min_theorems: int = 3000,
                           statements: dict[str, dict[str, str]] | None = None,
                           benchmark: set[str] | None = None, contaminated: Iterable[str] = ()) -> dict[str, Any]:
    """Goedel theorems deep enough for contrastive search (plan 0.6); lower the bar if too few.

    Benchmark names and the theorems the decontamination gate matched (`contaminated`) are left out."""
    contaminated = set(contaminated)
    con = duck.connect()
    load_pairs(con, clean_pairs, "pairs", PAIR_COLUMNS, ("theorem", "state", "tactic"))
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE per_theorem AS
        SELECT theorem, max(coalesce(depth, 0)) AS max_depth, count(*) AS num_pairs,
               arg_min(state, coalesce(depth, 0) * 10000000000 + _line) AS root_state,
               any_value(coalesce(source, {duck.sql_str(GOEDEL_SOURCE)})) AS source
        FROM pairs WHERE coalesce(source, {duck.sql_str(GOEDEL_SOURCE)}) = {duck.sql_str(GOEDEL_SOURCE)}
        GROUP BY theorem"""
    )
    at_min = int(duck.scalar(con, f"SELECT count(*) FROM per_theorem WHERE max_depth >= {int(min_depth)}"))
    depth = min_depth if at_min >= min_theorems else fallback_depth
    decision = (f"depth >= {min_depth}: {at_min} theorems (>= {min_theorems})" if depth == min_depth else
                f"depth >= {min_depth} gave {at_min} < {min_theorems} theorems: lowered to depth >= {fallback_depth}")
    statements = statements or {}
    entries, excluded_benchmark, excluded_contaminated = [], 0, 0
    for theorem, max_depth, num_pairs, root_state, source in con.execute(
            f"SELECT * FROM per_theorem WHERE max_depth >= {int(depth)} ORDER BY max_depth DESC, theorem").fetchall():
        bare = re.sub(r"^[a-z_]+::", "", theorem)
        if benchmark and bare in benchmark:
            excluded_benchmark += 1
            continue
        if theorem in contaminated:
            excluded_contaminated += 1
            continue
        st = statements.get(bare, {})
        entries.append({"theorem": theorem, "max_depth": int(max_depth), "num_pairs": int(num_pairs),
                        "root_state": root_state, "source": source,
                        "formal_statement": st.get("formal_statement"), "header": st.get("header")})
    # orjson writes the bytes of write_json's json.dumps(indent=2, ensure_ascii=False) for these
    # str/int/None values (tested), ~5x faster: the pool holds a root state per deep theorem
    with atomic_open(dest, "wb") as fh:
        fh.write(orjson.dumps(entries, option=orjson.OPT_INDENT_2) + b"\n")
    return {
        "theorems": len(entries),
        "depth_threshold": int(depth),
        "eligible_at_min_depth": at_min,
        "fallback_used": depth != min_depth,
        "decision": decision,
        "with_statement": sum(e["formal_statement"] is not None for e in entries),
        "excluded_benchmark": excluded_benchmark,
        "excluded_contaminated": excluded_contaminated,
    }

