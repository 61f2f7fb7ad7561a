"""Task M.10 / 0.6: merge, filter and split the SFT dataset; the contrastive pool.

Merge rules, in order:
  1. union of the clean Goedel pool and the filtered LEAN-GitHub pairs; theorem names get their
     source prefix (`goedel::`, `github::`) if a row lacks it.
  2. duplicate pairs are dropped, the first copy kept: the same (state, tactic), i.e. the same
     (prompt, completion), from any theorem of any source counts once, so no prompt+completion
     can land in both train and val.
  3. sorry filter (Gotcha 12): a theorem with any banned word in a tactic or state is dropped whole.
  4. benchmark guard: a theorem whose unprefixed name (or its last dotted component) is a
     miniF2F problem name is dropped, and so is every theorem the decontamination gate
     (`data.decontam`: statement, root goal, long n-gram) matched to a benchmark problem.
  5. theorem-level split stratified by source: within each source, theorems are ranked by
     md5(seed|theorem) and the first round(val_fraction * n) (at least 1 when n >= 2) go to val.
Records are `{prompt, completion, theorem, source}` with `data.prompt.format_prompt`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from burnqed_assets.data import duck
from burnqed_assets.data.io import atomic_open, write_json
from burnqed_assets.data.schema import (
    BANNED_STATE_WORDS,
    BANNED_TACTIC_WORDS,
    GOEDEL_SOURCE,
    SOURCE_PREFIX,
)
from burnqed_assets.data.prompt import PROMPT_PREFIX, PROMPT_SUFFIX
from burnqed_assets.paths import SFT_STATS_FILE, SFT_TRAIN_FILE, SFT_VAL_FILE

PAIR_COLUMNS = {"theorem": "VARCHAR", "state": "VARCHAR", "tactic": "VARCHAR", "depth": "BIGINT", "source": "VARCHAR"}
PAIR_REQUIRED = ("theorem", "state", "tactic", "source")
_GITHUB_ORD = 10_000_000_000  # merge order key: GitHub line n sorts after every Goedel line


def _prefix_sql(col: str = "theorem", src: str = "source") -> str:
    cases = " ".join(
        f"WHEN {src} = {duck.sql_str(s)} AND NOT starts_with({col}, {duck.sql_str(p)}) THEN {duck.sql_str(p)} || {col}"
        for s, p in SOURCE_PREFIX.items())
    return f"CASE {cases} ELSE {col} END"


def _bare_sql(col: str = "theorem") -> str:
    return f"regexp_replace({col}, '^[a-z_]+::', '')"


def benchmark_names(paths: Iterable[str | os.PathLike[str]]) -> set[str]:
    """Problem names of miniF2F-style JSONL files (`name` field); missing files are skipped."""
    names: set[str] = set()
    for p in paths:
        if Path(p).is_file():
            con = duck.connect(threads=1)
            duck.load_jsonl(con, p, "bench", {"name": "VARCHAR"}, ("name",))
            names.update(n for (n,) in con.execute("SELECT name FROM bench").fetchall())
    return names


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
    con = con or duck.connect(input_bytes=duck.file_bytes(duck.sidecar_path(clean_pairs), duck.sidecar_path(github_pairs)))
    out_dir = Path(out_dir)
    banned = f"{duck.any_contains('tactic', BANNED_TACTIC_WORDS)} OR {duck.any_contains('state', BANNED_STATE_WORDS)}"
    flags = f"""SELECT *, {banned} AS banned, hash(state, tactic) AS _h, true AS keep, false AS is_val
        FROM (SELECT * REPLACE ({_prefix_sql()} AS theorem) FROM {{rows}})"""
    n_goedel = duck.load_pairs(con, clean_pairs, "goedel_in", PAIR_COLUMNS, PAIR_REQUIRED, transform=flags)
    n_github = duck.load_pairs(con, github_pairs, "github_in", PAIR_COLUMNS, PAIR_REQUIRED, transform=flags) \
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
        written[split] = duck.copy_to_jsonl(con, q, out_dir / name)
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


def load_statements(statement_files: Iterable[Path] = (), proof_files: Iterable[Path] = ()) -> dict[str, dict[str, str]]:
    """Bare theorem name -> {formal_statement, header}.

    `statement_files`: JSONL `{name, header, formal_statement}`; `proof_files`: Goedel-style JSONL
    `{problem_id, full_proof}`, split at `theorem <name>` (header before, statement up to `:= by`).
    """
    out: dict[str, dict[str, str]] = {}
    for p in proof_files:
        if not Path(p).is_file():
            continue
        con = duck.connect(threads=1)
        duck.load_jsonl(con, p, "proofs", {"problem_id": "VARCHAR", "full_proof": "VARCHAR"}, ("problem_id", "full_proof"))
        for name, proof in con.execute("SELECT problem_id, full_proof FROM proofs").fetchall():
            m = re.search(rf"(?m)^theorem\s+{re.escape(name)}\b", proof)
            by = re.search(r":=\s*by\b", proof[m.end():]) if m else None
            if m and by:
                header = proof[: m.start()]
                header = header[: header.find("/-")] if "/-" in header else header  # drop the informal docstring
                out[name] = {"header": header, "formal_statement": proof[m.start(): m.end() + by.end()]}
    for p in statement_files:
        if not Path(p).is_file():
            continue
        con = duck.connect(threads=1)
        duck.load_jsonl(con, p, "st", {"name": "VARCHAR", "header": "VARCHAR", "formal_statement": "VARCHAR"},
                        ("name", "formal_statement"))
        for name, header, stmt in con.execute("SELECT name, header, formal_statement FROM st").fetchall():
            out[name] = {"header": header or "", "formal_statement": stmt}
    return out


def build_contrastive_pool(clean_pairs: str | os.PathLike[str], dest: str | os.PathLike[str],
                           min_depth: int = 3, fallback_depth: int = 2, min_theorems: int = 3000,
                           statements: dict[str, dict[str, str]] | None = None,
                           benchmark: set[str] | None = None, contaminated: Iterable[str] = ()) -> dict[str, Any]:
    """Goedel theorems deep enough for contrastive search (plan 0.6); lower the bar if too few.

    Benchmark names and the theorems the decontamination gate matched (`contaminated`) are left out."""
    contaminated = set(contaminated)
    con = duck.connect(input_bytes=duck.file_bytes(duck.sidecar_path(clean_pairs)))
    duck.load_pairs(con, clean_pairs, "pairs", PAIR_COLUMNS, ("theorem", "state", "tactic"))
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

