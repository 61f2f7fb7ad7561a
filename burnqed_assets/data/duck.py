"""DuckDB helpers: line-checked JSONL loading and atomic Parquet export.

Rows never pass through Python one dict at a time: DuckDB reads the file as raw lines in
parallel (so every record keeps its file:line), validates and parses each line in SQL, and
the bad ones come back as `BadLine`s for the caller's `LineReport`. Exports go through
`io.atomic_path`, so a failed run never leaves half a file. DuckDB itself is imported on first
use (~25 MB and 0.1 s that a step which never queries should not pay).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from burnqed_assets.data.io import BadInputError, BadLine, LineReport, atomic_path

if TYPE_CHECKING:
    import duckdb

# JSON types DuckDB's json_type() reports for an acceptable value of each SQL type.
_TYPE_WORDS = {"VARCHAR": "a string", "BIGINT": "an integer", "DOUBLE": "a number", "BOOLEAN": "a boolean"}
_JSON_TYPES = {
    "VARCHAR": ("VARCHAR",),
    "BIGINT": ("BIGINT", "UBIGINT"),
    "DOUBLE": ("DOUBLE", "BIGINT", "UBIGINT"),
    "BOOLEAN": ("BOOLEAN",),
}
MAX_LINE_BYTES = 64 * 1024 * 1024  # LEAN-GitHub states can be long; DuckDB's default is 2 MB


_DATABASE: tuple[int, duckdb.DuckDBPyConnection] | None = None  # (pid, the process's in-memory database)


def connect(threads: int | None = None, memory_limit: str | None = None,
            input_bytes: int | None = None) -> duckdb.DuckDBPyConnection:
    """A connection to this process's in-memory DuckDB database; spills rather than growing without bound.

    Starting a DuckDB database costs ~0.1 s (more than a small step's queries), so a process
    opens one and every step takes a cursor on it. Steps keep their tables TEMP: they are
    private to the cursor and freed when it is closed or collected, so nothing leaks between
    steps and two cursors never see each other's tables.
    `input_bytes` (the size of the files a step reads) picks the thread count when `threads`
    is not given: one thread per 64 MiB, up to the cores not already busy (CPU count minus the
    1-minute load average, at least 1, at most 8). Every thread keeps its own read and sort
    buffers, so a small input on many threads costs memory and gains nothing; on a busy machine
    extra threads only wait for each other (measured: 300K pairs, 2 cores at load 8, one
    thread used 15-20 % less CPU for the same M.6 sweep and no more wall time).
    The allocator hands freed memory back to the OS after each query (DuckDB's default keeps
    up to 128 MiB cached), which keeps a step's peak RSS near its data.
    """
    global _DATABASE
    import duckdb

    if _DATABASE is None or _DATABASE[0] != os.getpid():  # a forked child needs its own (threads are not forked)
        db = duckdb.connect(":memory:")
        db.execute("SET preserve_insertion_order = true")
        db.execute("SET enable_progress_bar = false")
        db.execute("SET allocator_flush_threshold = '16MiB'")
        db.execute("SET allocator_bulk_deallocation_flush_threshold = '16MiB'")
        _DATABASE = (os.getpid(), db)
    if threads is None:
        idle = (os.cpu_count() or 1) - round(os.getloadavg()[0])
        cpus = max(1, min(8, idle))
        threads = cpus if input_bytes is None else max(1, min(cpus, -(-int(input_bytes) // (64 << 20))))
    con = _DATABASE[1].cursor()
    con.execute(f"SET threads = {int(threads)}")
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    return con


def file_bytes(*paths: str | os.PathLike[str]) -> int:
    """Total size of the files that exist among `paths` (for `connect(input_bytes=...)`)."""
    return sum(Path(p).stat().st_size for p in paths if Path(p).is_file())


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def load_jsonl(
    con: duckdb.DuckDBPyConnection,
    path: str | os.PathLike[str],
    table: str,
    columns: Mapping[str, str],
    required: Sequence[str] = (),
    report: LineReport | None = None,
    transform: str | None = None,
) -> int:
    """Create `table(_file, _line, <columns>)` from a JSONL file; return the good row count.

    A line is bad when it is not JSON, not an object, or a `required` field is missing or of
    the wrong JSON type (an optional field of the wrong type too); bad lines are added to
    `report` as `file:line: reason` (blank lines carry no record and are skipped). Absent
    optional fields become NULL. Fast path: DuckDB's parallel `read_json`, accepted only when
    it reads every line of the file with all required fields; otherwise the line-checked path
    runs and names each bad line. Without a `report`, any bad line raises `BadInputError`.
    `transform`, a query over `{rows}` (the good rows), adds derived columns in the same pass,
    e.g. `SELECT *, hash(state) AS h FROM {rows}`, so a step never copies the table to add them.
    """
    path = Path(path)
    n = _load_jsonl_fast(con, path, table, columns, required, transform)
    if n is None:
        n = _load_jsonl_checked(con, path, table, columns, required, report, transform)
    if report is not None:
        report.rows += int(n)
    return int(n)


def _line_count(path: Path) -> int:
    n, last = 0, b"\n"
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (1 if last != b"\n" else 0)


def _transformed(select: str, transform: str | None) -> str:
    return select if transform is None else transform.replace("{rows}", f"({select})")


def _typed(column: str, sql_type: str) -> str:
    """A JSON column as `sql_type` (only called once every value has the right JSON type)."""
    return f"({column} ->> '$') AS {column}" if sql_type == "VARCHAR" else f"CAST({column} AS {sql_type}) AS {column}"


def _wrong_json_type(column: str, sql_type: str) -> str:
    """SQL: a JSON value that is neither `sql_type` nor null."""
    if sql_type == "VARCHAR":
        # a JSON text is a string or null iff it starts with '"' or 'n': no parse of a long state
        return f"left(CAST({column} AS VARCHAR), 1) NOT IN ('\"', 'n')"
    return f"json_type({column}) NOT IN ({', '.join(_sql_str(t) for t in _JSON_TYPES[sql_type] + ('NULL',))})"


def _load_jsonl_fast(con, path: Path, table: str, columns: Mapping[str, str], required: Sequence[str],
                     transform: str | None = None) -> int | None:
    import duckdb

    src = _sql_str(str(path))
    # Columns are read as JSON and their JSON types checked before the cast: read_json would
    # silently turn a depth "3" into 3 or a tactic 5 into "5"; such a file takes the checked
    # path, which names each line.
    spec = "{" + ", ".join(f"{_sql_str(k)}: 'JSON'" for k in columns) + "}"
    wrong = " OR ".join(_wrong_json_type(c, t) for c, t in columns.items() if t in _JSON_TYPES) or "false"
    typed = ", ".join(_typed(c, t) if t in _JSON_TYPES else f"CAST({c} AS {t}) AS {c}" for c, t in columns.items())
    try:
        # row_number() OVER () is DuckDB's streaming window: line numbers in file order, no sort
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _fast_raw AS
            SELECT row_number() OVER () AS _line, {', '.join(columns)}
            FROM read_json({src}, format='newline_delimited', columns={spec},
                           maximum_object_size={MAX_LINE_BYTES})""")
    except duckdb.Error:
        return None
    if scalar(con, f"SELECT count(*) FILTER (WHERE {wrong}) FROM _fast_raw"):
        con.execute("DROP TABLE _fast_raw")
        return None
    select = f"SELECT {src} AS _file, _line, {typed} FROM _fast_raw"
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS {_transformed(select, transform)}")
    except duckdb.Error:
        con.execute("DROP TABLE _fast_raw")
        return None
    con.execute("DROP TABLE _fast_raw")
    missing = " OR ".join(f"{c} IS NULL" for c in required) or "false"
    n, n_missing = con.execute(f"SELECT count(*), count(*) FILTER (WHERE {missing}) FROM {table}").fetchall()[0]
    # every physical line became a row (no blank or skipped line): row_number is the line number
    if n_missing or n != _line_count(path):
        con.execute(f"DROP TABLE {table}")
        return None
    return int(n)


def invalid_utf8_lines(path: str | os.PathLike[str]) -> list[BadLine]:
    """Each line of a file that is not valid UTF-8, with the offending byte's column."""
    bad = []
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                bad.append(BadLine(Path(path), lineno, f"invalid UTF-8 (byte 0x{raw[exc.start]:02x} at byte "
                                                       f"column {exc.start + 1})"))
    return bad


def _load_jsonl_checked(con, path: Path, table: str, columns: Mapping[str, str], required: Sequence[str],
                        report: LineReport | None, transform: str | None = None) -> int:
    src = _sql_str(str(path))
    read_from = path
    encoding_bad = invalid_utf8_lines(path)
    if encoding_bad:
        # DuckDB stops at the first invalid byte: report every such line with its file:line, and
        # read a copy where those lines are blank (blank lines carry no record; numbers stay)
        if report is None:
            raise BadInputError(encoding_bad)
        report.bad.extend(encoding_bad)
        skip = {b.line for b in encoding_bad}
        fd, tmp = tempfile.mkstemp(prefix=".utf8-", suffix=".jsonl")
        with os.fdopen(fd, "wb") as out, open(path, "rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                out.write(b"\n" if lineno in skip else raw)
        read_from = Path(tmp)
    try:
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _raw AS
            SELECT row_number() OVER () AS _line, line
            FROM read_csv({_sql_str(str(read_from))}, columns={{'line': 'VARCHAR'}}, delim='\\x01', quote='',
                          escape='', header=false, auto_detect=false, max_line_size={MAX_LINE_BYTES})"""
        )
    finally:
        if read_from != path:
            read_from.unlink()
    names = list(columns)
    # one parse per line gives the root type and every field's JSON type (NULL list = not JSON)
    paths = "[" + ", ".join(["'$'"] + [_sql_str("$." + k) for k in names]) + "]"
    checks = ["WHEN _t IS NULL THEN 'malformed JSON'",
              "WHEN _t[1] <> 'OBJECT' THEN 'expected a JSON object, got ' || lower(_t[1])"]
    for i, name in enumerate(names, start=2):
        sql_type = columns[name]
        if sql_type not in _JSON_TYPES:
            continue
        if name in required:
            allowed = ", ".join(_sql_str(t) for t in _JSON_TYPES[sql_type])
            checks.append(f"WHEN coalesce(_t[{i}] NOT IN ({allowed}), true) "
                          f"THEN {_sql_str(f'field {name!r} missing or not {_TYPE_WORDS[sql_type]}')}")
        else:
            allowed = ", ".join(_sql_str(t) for t in _JSON_TYPES[sql_type] + ("NULL",))
            checks.append(f"WHEN _t[{i}] NOT IN ({allowed}) "
                          f"THEN {_sql_str(f'field {name!r} is not {_TYPE_WORDS[sql_type]}')}")
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _checked AS
        SELECT _line, line, CASE {' '.join(checks)} ELSE NULL END AS reason
        FROM (SELECT _line, line, TRY(json_type(line, {paths})) AS _t
              FROM _raw WHERE line IS NOT NULL AND trim(line) <> '')"""
    )
    bad = [BadLine(path, int(n), reason) for n, reason in
           con.execute("SELECT _line, reason FROM _checked WHERE reason IS NOT NULL ORDER BY _line").fetchall()]
    if bad and report is None:  # no report to count them in: fail loudly rather than drop rows
        con.execute("DROP TABLE _raw; DROP TABLE _checked")
        raise BadInputError(bad)
    if report is not None:
        report.bad.extend(bad)
    struct = "{" + ", ".join(f'"{k}": "{v}"' for k, v in columns.items()) + "}"
    fields = ", ".join(f"_s.{k} AS {k}" for k in columns)
    select = f"""SELECT {src} AS _file, _line, {fields}
        FROM (SELECT _line, json_transform(line, {_sql_str(struct)}) AS _s FROM _checked WHERE reason IS NULL)
        ORDER BY _line"""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS {_transformed(select, transform)}")
    con.execute("DROP TABLE _raw; DROP TABLE _checked")
    return int(scalar(con, f"SELECT count(*) FROM {table}"))


def copy_to_parquet(con: duckdb.DuckDBPyConnection, query: str, dest: str | os.PathLike[str],
                    params: Sequence[Any] | None = None, compression: str = "ZSTD") -> int:
    with atomic_path(dest) as tmp:
        rows = con.execute(f"COPY ({query}) TO {_sql_str(str(tmp))} (FORMAT PARQUET, COMPRESSION {compression})",
                           params or []).fetchall()
    return int(rows[0][0])


def scalar(con: duckdb.DuckDBPyConnection, query: str, params: Sequence[Any] | None = None) -> Any:
    """The single value of a query (fetches the whole result so the connection is free again)."""
    rows = con.execute(query, params or []).fetchall()
    return rows[0][0] if rows else None


def any_contains(column: str, words: Sequence[str]) -> str:
    """SQL: `column` contains any of `words` (one substring scan per word that is needed)."""
    # a word that contains another listed word adds no match ('sorryAx' ⊃ 'sorry'): skip its scan
    needed = [w for w in words if not any(v != w and v in w for v in words)]
    return "(" + " OR ".join(f"contains({column}, {_sql_str(w)})" for w in needed) + ")"


def blank(column: str) -> str:
    """SQL for `trim(column) = ''` (DuckDB's trim strips spaces) without copying every string to trim it."""
    return f"({column} = '' OR (starts_with({column}, ' ') AND trim({column}) = ''))"


def sql_str(value: str) -> str:
    """A SQL string literal (for paths and constants built into a query)."""
    return _sql_str(value)
