"""Traced-pair JSONL files (the clean pool, the LEAN-GitHub pairs) and the column index beside each.

A pairs file holds one JSON object per line with the keys theorem, state, tactic, state_after,
depth, source in that order, written compactly with the bytes DuckDB's `COPY ... (FORMAT JSON)`
gives (orjson's output with DuckDB's upper-case `\\u001B` escapes; a test holds the two writers
to the same bytes on every control character and on realistic data).

Beside it, `<name>.index.npz` holds what the steps that read the pairs need, column-wise:
dictionary-encoded theorem, tactic and source columns (the tactic dictionary as escaped JSON
texts), depth, and the byte span of each state's escaped JSON text inside the file. A reader
(`read_pairs`) takes each state by its span and each tactic from the dictionary, with no JSON
parse, and can copy them straight into its own JSON output: JSON escaping works character by
character, so the escaped text of `prefix + state` is the escaped prefix followed by the
state's escaped text. The index records the size and mtime of the file it describes and is
used only while the file still has them; otherwise (a file edited by hand, or written by an
older version) the file is parsed line by line into the same columns, and a bad line is
reported with its file:line by DuckDB's line-checked reader.
"""

from __future__ import annotations

import io
import mmap
import os
import re
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import orjson

from burnqed_assets.data.io import ConcurrentWrite, atomic_path

INDEX_SUFFIX = ".index.npz"
INDEX_VERSION = 2
STRING_FIELDS = ("theorem", "state", "tactic", "state_after", "source")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_BLOCK = 16384  # lines per write

# DuckDB's trim()/ltrim() strip exactly the Unicode space separators (category Zs), not tabs or
# newlines (measured over every code point); the SQL rules these Python rules replace used them.
DUCKDB_TRIM_CHARS = " \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"

_LOWER_HEX_ESCAPE = re.compile(rb"\\(u00[01][0-9a-f]|.)", re.DOTALL)


def _upper_hex(m: re.Match[bytes]) -> bytes:
    g = m.group(1)
    return b"\\u" + g[1:].upper() if len(g) == 5 else m.group(0)


def duckdb_escapes(out: bytes) -> bytes:
    """orjson output with DuckDB's escapes: `\\u001B` where orjson writes `\\u001b` (same length)."""
    # control characters other than \b\f\n\r\t are rare: one substring test on the common path
    return _LOWER_HEX_ESCAPE.sub(_upper_hex, out) if b"\\u00" in out else out


def json_bytes(value: object) -> bytes:
    """Compact JSON of `value`, byte for byte as DuckDB's JSON writer gives it."""
    return duckdb_escapes(orjson.dumps(value))


def json_text(value: str) -> bytes:
    """The escaped JSON text of a string, without its quotes."""
    return json_bytes(value)[1:-1]


def text_of(escaped: bytes) -> str:
    """The string whose escaped JSON text is `escaped` (inverse of `json_text`)."""
    return orjson.loads(b'"' + escaped + b'"')


def duckdb_blank(s: str) -> bool:
    """DuckDB's `s = '' OR (starts_with(s, ' ') AND trim(s) = '')` (the SQL `duck.blank`)."""
    return not s or (s[0] == " " and not s.strip(DUCKDB_TRIM_CHARS))


def add_rows(add: Callable[..., None], cur: Any) -> None:
    """`add(*row)` for every row of a DuckDB cursor, fetched in batches."""
    while batch := cur.fetchmany(8192):
        for row in batch:
            add(*row)


def index_path(jsonl: str | os.PathLike[str]) -> Path:
    p = Path(jsonl)
    return p.with_name(p.stem + INDEX_SUFFIX)


def _stamp(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


def _texts_blob(texts: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    if texts:
        np.cumsum(np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)), out=offsets[1:])
    return np.frombuffer(b"".join(texts), dtype=np.uint8), offsets


def _first_appearance(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense ids in order of first appearance: (new id per row, old id of each new id)."""
    if not ids.size:
        return ids.astype(np.int32), np.zeros(0, np.int64)
    old = np.fromiter(dict.fromkeys(ids.tolist()), dtype=np.int64)  # unique, in order of first appearance
    lut = np.zeros(int(old.max()) + 1, dtype=np.int32)
    lut[old] = np.arange(old.size, dtype=np.int32)
    return lut[ids], old


_STATE_END = b'","tactic":"'


@dataclass
class EncodedBlock:
    """Newline-terminated pair lines, with each line's start and its state's text span.

    A block may leave its bytes in the process that encoded them (`data` None, `size` their
    length, `owner` a `BlockOwner` there): `keep` then works on the spans alone and records in
    `lines` which of the owner's lines remain, for the owner to write."""

    data: bytes | None
    line_start: np.ndarray  # int64, relative to `data`
    state_start: np.ndarray
    state_end: np.ndarray
    may_escape: bool = True  # may hold orjson's lower-case \u00xx escapes (False: its input had no \u)
    size: int = -1  # len(data)
    owner: BlockOwner | None = None  # holds `data` when it is None
    ref: int = -1  # the block's number at its owner
    lines: np.ndarray | None = None  # the owner's lines that remain (None: all)

    def __post_init__(self) -> None:
        if self.data is not None:
            self.size = len(self.data)

    @classmethod
    def of(cls, lines: list[bytes], theorem_len: np.ndarray, data: bytes | None = None,
           may_escape: bool = True) -> EncodedBlock:
        """The block of `lines` (lines without their newline; `data` is their joined form when
        the caller has it); `theorem_len` is the escaped length of each line's theorem name."""
        n = len(lines)
        lengths = np.fromiter(map(len, lines), dtype=np.int64, count=n) + 1
        line_start = np.zeros(n, dtype=np.int64)
        if n:
            np.cumsum(lengths[:-1], out=line_start[1:])
        # a state's text follows '{"theorem":"' + theorem + '","state":"' and ends at the first
        # '","tactic":"' (inside a JSON string every '"' is escaped: the pattern cannot occur there)
        rel = theorem_len + 23
        end = np.fromiter(map(bytes.find, lines, repeat(_STATE_END), rel.tolist()), dtype=np.int64, count=n)
        return cls(data if data is not None else b"\n".join(lines) + b"\n" if lines else b"",
                   line_start, line_start + rel, line_start + end, may_escape)

    def __len__(self) -> int:
        return int(self.line_start.size)

    def line(self, i: int) -> bytes:
        end = self.line_start[i + 1] - 1 if i + 1 < len(self) else self.size - 1
        return self.data[int(self.line_start[i]):int(end)]

    def keep(self, mask: np.ndarray) -> EncodedBlock:
        """The block without the lines where `mask` is false (runs of kept lines copied as slices)."""
        if mask.all():
            return self
        bounds = np.r_[self.line_start, self.size]
        lengths = np.diff(bounds)[mask]
        line_start = np.zeros(lengths.size, dtype=np.int64)
        if lengths.size:
            np.cumsum(lengths[:-1], out=line_start[1:])
        shift = line_start - self.line_start[mask]
        kept = dict(line_start=line_start, state_start=self.state_start[mask] + shift,
                    state_end=self.state_end[mask] + shift, may_escape=self.may_escape)
        if self.data is None:
            lines = np.arange(len(self)) if self.lines is None else self.lines
            return EncodedBlock(None, size=int(lengths.sum()), owner=self.owner, ref=self.ref, lines=lines[mask], **kept)
        return EncodedBlock(kept_lines(self.data, self.line_start, mask), **kept)

    def without_data(self) -> EncodedBlock:
        """The block's spans without its bytes (left with the process that holds them, which the
        receiving side names as `owner`)."""
        return EncodedBlock(None, self.line_start, self.state_start, self.state_end, self.may_escape, self.size)


def kept_lines(data: bytes, line_start: np.ndarray, mask: np.ndarray) -> bytes:
    """The lines of `data` (starting at `line_start`) where `mask` is true, joined."""
    if mask.all():
        return data
    bounds = np.r_[line_start, len(data)]
    edges = np.flatnonzero(np.diff(np.r_[False, mask, False].astype(np.int8)))
    return b"".join(data[bounds[a]: bounds[b]] for a, b in zip(edges[::2].tolist(), edges[1::2].tolist()))


class BlockOwner(Protocol):
    """Where the bytes of blocks encoded in another process live: `start_writing` hands over
    the file and, per block, the lines that remain and their offset in it; `wait` returns once
    they are written."""

    def start_writing(self, path: Path, jobs: list[tuple[int, np.ndarray | None, int]]) -> None: ...

    def wait(self) -> None: ...


class PairsWriter:
    """Collects pairs as canonical JSON lines and their columns; `write` puts both in files.

    `add` takes one pair (theorem, state and tactic are `str`, never None). A sweep over millions
    of pairs may instead append to the columns itself and hand over its lines already encoded,
    in blocks (`add_block`), as the M.6 sweep does.
    """

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.blocks: list[EncodedBlock] = []
        self.theorem_ids: dict[str, int] = {}
        self.theorem_len: dict[int, int] = {}  # theorem id -> escaped JSON length of its name
        self.tactic_ids: dict[str, int] = {}
        self.source_ids: dict[str | None, int] = {}
        # ids index the dictionaries above; they need not be dense (the M.6 sweep uses the row
        # where a value first appears): `write` renumbers them in order of first appearance
        self.theorem_id = array("q")
        self.tactic_id = array("q")
        self.source_id = array("q")
        self.depth = array("q")
        self.depth_null = bytearray()

    def __len__(self) -> int:
        return len(self.theorem_id)

    def theorem(self, name: str) -> int:
        tid = self.theorem_ids.get(name)
        if tid is None:
            tid = self.theorem_ids[name] = len(self.theorem_ids)
            self.theorem_len[tid] = len(orjson.dumps(name)) - 2
        return tid

    def add(self, theorem: str, state: str, tactic: str, state_after: str | None, depth: int | None,
            source: str | None) -> None:
        self.lines.append(orjson.dumps({"theorem": theorem, "state": state, "tactic": tactic,
                                        "state_after": state_after, "depth": depth, "source": source}))
        self.theorem_id.append(self.theorem(theorem))
        tac = self.tactic_ids.get(tactic)
        if tac is None:
            tac = self.tactic_ids[tactic] = len(self.tactic_ids)
        self.tactic_id.append(tac)
        sid = self.source_ids.get(source)
        if sid is None:
            sid = self.source_ids[source] = len(self.source_ids)
        self.source_id.append(sid)
        self.depth.append(0 if depth is None else depth)
        self.depth_null.append(depth is None)
        if len(self.lines) >= _BLOCK:
            self._flush()

    def _flush(self) -> None:
        if self.lines:
            tid = self.theorem_id[len(self.theorem_id) - len(self.lines):]
            self.blocks.append(EncodedBlock.of(self.lines, np.fromiter(map(self.theorem_len.__getitem__, tid),
                                                                       dtype=np.int64, count=len(tid))))
            self.lines = []

    def add_block(self, block: EncodedBlock) -> None:
        """Lines encoded by the caller (who appended their columns), in the key order of `add`."""
        self._flush()
        self.blocks.append(block)

    def write(self, dest: str | os.PathLike[str], drop_theorems: set[str] | frozenset[str] = frozenset()) -> int:
        """Write the lines (less those of `drop_theorems`) to `dest` and its index; return the count."""
        self._flush()
        dest = Path(dest)
        n_all = len(self)

        def col(a: array | bytearray, dtype) -> np.ndarray:
            return np.frombuffer(a, dtype=dtype) if n_all else np.zeros(0, dtype)

        columns = {"theorem_id": col(self.theorem_id, np.int64), "tactic_id": col(self.tactic_id, np.int64),
                   "source_id": col(self.source_id, np.int64), "depth": col(self.depth, np.int64),
                   "depth_null": col(self.depth_null, np.bool_)}
        keep = None
        if drop_theorems:
            dropped = [i for name, i in self.theorem_ids.items() if name in drop_theorems]
            if dropped:
                keep = ~np.isin(columns["theorem_id"], dropped)
        starts_out, ends_out, buffers, offsets = [], [], [], []
        elsewhere: dict[int, tuple[BlockOwner, list[tuple[int, np.ndarray | None, int]]]] = {}
        row = pos = 0
        for block in self.blocks:
            size = len(block)
            if keep is not None:
                block = block.keep(keep[row: row + size])
            row += size
            starts_out.append(block.state_start + pos)
            ends_out.append(block.state_end + pos)
            if block.data is None:  # written by the process that holds it
                elsewhere.setdefault(id(block.owner), (block.owner, []))[1].append((block.ref, block.lines, pos))
            else:
                buffers.append(duckdb_escapes(block.data) if block.may_escape else block.data)  # same length
                offsets.append(pos)
            pos += block.size
        self.blocks = []
        with atomic_path(dest) as tmp:
            # the file is written by two threads here and by the blocks' owners, while the
            # index columns are built here
            writing = ConcurrentWrite(tmp, buffers, offsets=offsets, size=pos)
            started: list[BlockOwner] = []
            try:
                for owner, jobs in elsewhere.values():
                    owner.start_writing(tmp, jobs)
                    started.append(owner)
                if keep is not None:
                    columns = {k: v[keep] for k, v in columns.items()}
                n = int(columns["theorem_id"].size)
                # dictionaries hold the values of the rows written, in order of first appearance
                columns["theorem_id"], theorem_old = _first_appearance(columns["theorem_id"])
                columns["tactic_id"], tactic_old = _first_appearance(columns["tactic_id"])
                columns["source_id"], source_old = _first_appearance(columns["source_id"])
                theorem_names = {i: name for name, i in self.theorem_ids.items()}
                tactic_names = {i: name for name, i in self.tactic_ids.items()}
                source_names = {i: name for name, i in self.source_ids.items()}
                tactics = [tactic_names[i] for i in tactic_old.tolist()]
                # escaped texts from one encoded JSON array, split at '","' (which cannot occur inside a string)
                tactic_text, tactic_offsets = _texts_blob(json_bytes(tactics)[2:-2].split(b'","') if tactics else [])
                meta = {"version": INDEX_VERSION, "rows": n,
                        "theorems": [theorem_names[i] for i in theorem_old.tolist()],
                        "sources": [source_names[i] for i in source_old.tolist()]}
                arrays = dict(**columns, state_start=np.concatenate(starts_out) if starts_out else np.zeros(0, np.int64),
                              state_end=np.concatenate(ends_out) if ends_out else np.zeros(0, np.int64),
                              tactic_text=tactic_text, tactic_offsets=tactic_offsets)
            finally:
                writing.wait()
                for owner in started:
                    owner.wait()
        meta.update(_stamp(dest))
        buf = io.BytesIO()
        np.savez(buf, meta=np.frombuffer(orjson.dumps(meta), dtype=np.uint8), **arrays)
        with atomic_path(index_path(dest)) as tmp:
            tmp.write_bytes(buf.getbuffer())
        return n


@dataclass
class PairTable:
    """The rows of a pairs file, column-wise. A state is its escaped JSON text inside `blob`
    (`state_json(i)`, start -1 when missing; an indexed table reads `blob`, the file, when a
    state is first asked for); tactics are a dictionary of escaped texts."""

    path: Path
    _blob: bytes | None
    theorems: list[str]
    theorem_id: np.ndarray  # int32, index into `theorems`
    tactics: list[bytes]  # escaped JSON texts
    tactic_id: np.ndarray  # int32, index into `tactics`
    sources: list[str | None]
    source_id: np.ndarray  # int32, index into `sources`
    depth: np.ndarray  # int64, 0 where null
    depth_null: np.ndarray  # bool
    state_start: np.ndarray  # int64 byte offsets into `blob`
    state_end: np.ndarray
    indexed: bool  # read through a fresh index (no JSON parse)

    def __len__(self) -> int:
        return int(self.theorem_id.size)

    @property
    def blob(self) -> bytes | mmap.mmap:
        """The file's bytes (mapped, not copied: a state is sliced out when asked for)."""
        if self._blob is None:
            with open(self.path, "rb") as fh:
                self._blob = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if self._size else b""
            if len(self._blob) != self._size:
                raise RuntimeError(f"{self.path} changed while it was read")
        return self._blob

    _size: int = -1

    def state_json(self, i: int) -> bytes:
        return self.blob[int(self.state_start[i]):int(self.state_end[i])]

    def tactic_json(self, i: int) -> bytes:
        return self.tactics[int(self.tactic_id[i])]

    def depth_or(self, default: int) -> np.ndarray:
        """`coalesce(depth, default)` per row."""
        return np.where(self.depth_null, default, self.depth) if self.depth_null.any() else self.depth

    @classmethod
    def empty(cls, path: str | os.PathLike[str]) -> PairTable:
        z32, z64 = np.zeros(0, np.int32), np.zeros(0, np.int64)
        return cls(Path(path), b"", [], z32, [], z32, [], z32, z64, np.zeros(0, np.bool_), z64, z64, False)


def _read_index(path: Path, required: Sequence[str]) -> PairTable | None:
    idx = index_path(path)
    if not idx.is_file() or not path.is_file():
        return None
    try:
        with np.load(idx, allow_pickle=False) as z:
            meta = orjson.loads(z["meta"].tobytes())
            if meta.get("version") != INDEX_VERSION or {k: meta.get(k) for k in ("bytes", "mtime_ns")} != _stamp(path):
                return None
            if "source" in required and None in meta["sources"]:
                return None  # the parse names the lines without a source
            arrays = {k: z[k] for k in ("theorem_id", "tactic_id", "source_id", "depth", "depth_null", "state_start",
                                        "state_end", "tactic_text", "tactic_offsets")}
    except (OSError, ValueError, KeyError, orjson.JSONDecodeError):
        return None  # unreadable or from another version: parse the file instead
    if "depth" in required and arrays["depth_null"].any():
        return None
    if len(arrays["theorem_id"]) != meta["rows"]:
        return None
    text, offsets = arrays["tactic_text"].tobytes(), arrays["tactic_offsets"].tolist()
    tactics = list(map(text.__getitem__, map(slice, offsets, offsets[1:])))
    return PairTable(path, None, meta["theorems"], arrays["theorem_id"], tactics, arrays["tactic_id"],
                     meta["sources"], arrays["source_id"], arrays["depth"], arrays["depth_null"],
                     arrays["state_start"], arrays["state_end"], True, meta["bytes"])


class _Rejected(Exception):
    """A line the Python reader does not take; DuckDB's line-checked reader decides (and names it)."""


class _Columns:
    """Builds a PairTable row by row (the parse and DuckDB paths)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.pos = 0
        self.theorems: dict[str, int] = {}
        self.tactics: dict[str, int] = {}
        self.sources: dict[str | None, int] = {}
        self.tid, self.tac, self.sid, self.depth = array("i"), array("i"), array("i"), array("q")
        self.null = bytearray()
        self.spans = array("q")

    def add(self, theorem: str, state: str | None, tactic: str, depth: int | None, source: str | None) -> None:
        self.tid.append(self.theorems.setdefault(theorem, len(self.theorems)))
        self.tac.append(self.tactics.setdefault(tactic, len(self.tactics)))
        self.sid.append(self.sources.setdefault(source, len(self.sources)))
        self.depth.append(0 if depth is None else depth)
        self.null.append(depth is None)
        if state is None:
            self.spans.extend((-1, -1))
        else:
            text = json_text(state)
            self.parts.append(text)
            self.spans.extend((self.pos, self.pos + len(text)))
            self.pos += len(text)

    def table(self, path: Path) -> PairTable:
        n = len(self.tid)

        def col(a, dtype) -> np.ndarray:
            return np.frombuffer(a, dtype=dtype).copy() if n else np.zeros(0, dtype)

        spans = col(self.spans, np.int64).reshape(-1, 2)
        return PairTable(path, b"".join(self.parts), list(self.theorems), col(self.tid, np.int32),
                         [json_text(t) for t in self.tactics], col(self.tac, np.int32), list(self.sources),
                         col(self.sid, np.int32), col(self.depth, np.int64), col(self.null, np.bool_),
                         spans[:, 0].copy(), spans[:, 1].copy(), False)


def _parse(path: Path, required: Sequence[str]) -> PairTable:
    """Parse a pairs file that has no fresh index into the same columns."""
    loads = orjson.loads
    cols = _Columns()
    req = set(required)
    with open(path, "rb") as fh:
        for line in fh:
            try:
                d = loads(line)
            except orjson.JSONDecodeError:
                if line in (b"\n", b"\r\n"):
                    continue  # a blank line carries no record (DuckDB's reader skips it too)
                raise _Rejected from None
            if type(d) is not dict:
                raise _Rejected
            for f in STRING_FIELDS:
                v = d.get(f)
                if (v is None and f in req) or (v is not None and type(v) is not str):
                    raise _Rejected
            dv = d.get("depth")
            if (dv is None and "depth" in req) or (dv is not None and (type(dv) is not int
                                                                       or not INT64_MIN <= dv <= INT64_MAX)):
                raise _Rejected
            cols.add(d["theorem"], d.get("state"), d["tactic"], dv, d.get("source"))
    return cols.table(path)


def _via_duckdb(path: Path, required: Sequence[str]) -> PairTable:
    """Read through DuckDB's line-checked loader: it raises `BadInputError` naming every bad line;
    a file it accepts (JSON that orjson refused) is read from its rows."""
    from burnqed_assets.data import duck

    con = duck.connect(threads=1)
    columns = {"theorem": "VARCHAR", "state": "VARCHAR", "tactic": "VARCHAR", "state_after": "VARCHAR",
               "depth": "BIGINT", "source": "VARCHAR"}
    duck.load_jsonl(con, path, "_pairs_in", columns, tuple(dict.fromkeys((*required, "tactic"))))
    cols = _Columns()
    cur = con.execute("SELECT theorem, state, tactic, depth, source FROM _pairs_in ORDER BY _line")
    add_rows(cols.add, cur)
    con.execute("DROP TABLE _pairs_in")
    return cols.table(path)


def read_pairs(path: str | os.PathLike[str], required: Sequence[str] = ("theorem", "state", "tactic")) -> PairTable:
    """The rows of a pairs file: through its index when fresh, else parsed line by line.

    `theorem` and `tactic` are always required; a line that is not a JSON object, lacks a
    `required` field or holds a field of the wrong type raises `BadInputError` with its file:line.
    """
    path = Path(path)
    required = tuple(dict.fromkeys(("theorem", "tactic", *required)))
    table = _read_index(path, required)
    if table is not None:
        return table
    try:
        return _parse(path, required)
    except _Rejected:
        return _via_duckdb(path, required)
