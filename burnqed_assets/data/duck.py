"""DuckDB helpers: line-checked JSONL loading and atomic JSONL/Parquet export.

Rows never pass through Python one dict at a time: DuckDB reads the file as raw lines in
parallel (so every record keeps its file:line), validates and parses each line in SQL, and
the bad ones come back as `BadLine`s for the caller's `LineReport`. Exports go through
`io.atomic_path`, so a failed run never leaves half a file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb

from burnqed_assets.data.io import LineReport, atomic_path

# JSON types DuckDB's json_type() reports for an acceptable value of each SQL type.
_TYPE_WORDS = {"VARCHAR": "a string", "BIGINT": "an integer", "DOUBLE": "a number", "BOOLEAN": "a boolean"}
_JSON_TYPES = {
    "VARCHAR": ("VARCHAR",),
    "BIGINT": ("BIGINT", "UBIGINT"),
    "DOUBLE": ("DOUBLE", "BIGINT", "UBIGINT"),
    "BOOLEAN": ("BOOLEAN",),
}
MAX_LINE_BYTES = 64 * 1024 * 1024  # LEAN-GitHub states can be long; DuckDB's default is 2 MB


def connect(threads: int | None = None, memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection; spills to a temp dir rather than growing without bound."""
    con = duckdb.connect(":memory:")
    con.execute(f"SET threads = {int(threads or max(1, min(8, os.cpu_count() or 1)))}")
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute("SET preserve_insertion_order = true")
    return con


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def load_jsonl(
    con: duckdb.DuckDBPyConnection,
    path: str | os.PathLike[str],
    table: str,
    columns: Mapping[str, str],
    required: Sequence[str] = (),
    report: LineReport | None = None,
) -> int:
    """Create `table(_file, _line, <columns>)` from a JSONL file; return the good row count.

    A line is bad when it is not JSON, not an object, or a `required` field is missing or of
    the wrong JSON type; bad lines are added to `report` as `file:line: reason` (blank lines
    carry no record and are skipped). Optional fields that are absent become NULL.
    """
    path = Path(path)
    src = _sql_str(str(path))
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _raw AS
        SELECT row_number() OVER () AS _line, line
        FROM read_csv({src}, columns={{'line': 'VARCHAR'}}, delim='\\x01', quote='', escape='',
                      header=false, auto_detect=false, max_line_size={MAX_LINE_BYTES})"""
    )
    checks = ["WHEN NOT json_valid(line) THEN 'malformed JSON'",
              "WHEN json_type(line) <> 'OBJECT' THEN 'expected a JSON object, got ' || lower(json_type(line))"]
    for name in required:
        allowed = ", ".join(_sql_str(t) for t in _JSON_TYPES[columns[name]])
        checks.append(
            f"WHEN coalesce(json_type(line, {_sql_str('$.' + name)}) NOT IN ({allowed}), true) "
            f"THEN {_sql_str(f'field {name!r} missing or not {_TYPE_WORDS[columns[name]]}')}"
        )
    for name, sql_type in columns.items():
        if name in required or sql_type not in _JSON_TYPES:
            continue
        allowed = ", ".join(_sql_str(t) for t in _JSON_TYPES[sql_type] + ("NULL",))
        checks.append(
            f"WHEN json_type(line, {_sql_str('$.' + name)}) NOT IN ({allowed}) "
            f"THEN {_sql_str(f'field {name!r} is not {_TYPE_WORDS[sql_type]}')}"
        )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _checked AS
        SELECT _line, line, CASE {' '.join(checks)} ELSE NULL END AS reason
        FROM _raw WHERE line IS NOT NULL AND trim(line) <> ''"""
    )
    if report is not None:
        for line_no, reason in con.execute("SELECT _line, reason FROM _checked WHERE reason IS NOT NULL ORDER BY _line").fetchall():
            report.add(path, int(line_no), reason)
    struct = "{" + ", ".join(f'"{k}": "{v}"' for k, v in columns.items()) + "}"
    fields = ", ".join(f"_s.{k} AS {k}" for k in columns)
    con.execute(
        f"""CREATE OR REPLACE TABLE {table} AS
        SELECT {src} AS _file, _line, {fields}
        FROM (SELECT _line, json_transform(line, {_sql_str(struct)}) AS _s FROM _checked WHERE reason IS NULL)
        ORDER BY _line"""
    )
    con.execute("DROP TABLE _raw; DROP TABLE _checked")
    n = scalar(con, f"SELECT count(*) FROM {table}")
    if report is not None:
        report.rows += int(n)
    return int(n)


def copy_to_jsonl(con: duckdb.DuckDBPyConnection, query: str, dest: str | os.PathLike[str],
                  params: Sequence[Any] | None = None) -> int:
    """Write a query's rows as JSONL (one object per line, columns in select order), atomically."""
    with atomic_path(dest) as tmp:
        con.execute(f"COPY ({query}) TO {_sql_str(str(tmp))} (FORMAT JSON)", params or [])
    return _count_lines(dest)


def copy_to_parquet(con: duckdb.DuckDBPyConnection, query: str, dest: str | os.PathLike[str],
                    params: Sequence[Any] | None = None) -> int:
    with atomic_path(dest) as tmp:
        con.execute(f"COPY ({query}) TO {_sql_str(str(tmp))} (FORMAT PARQUET, COMPRESSION ZSTD)", params or [])
    return int(scalar(con, f"SELECT count(*) FROM read_parquet({_sql_str(str(dest))})"))


def _count_lines(path: str | os.PathLike[str]) -> int:
    n = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            n += chunk.count(b"\n")
    return n


def scalar(con: duckdb.DuckDBPyConnection, query: str, params: Sequence[Any] | None = None) -> Any:
    """The single value of a query (fetches the whole result so the connection is free again)."""
    rows = con.execute(query, params or []).fetchall()
    return rows[0][0] if rows else None


def sql_str(value: str) -> str:
    """A SQL string literal (for paths and constants built into a query)."""
    return _sql_str(value)
