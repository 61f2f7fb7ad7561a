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

import contextlib
import mmap
import multiprocessing as mp
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from itertools import compress, repeat
from operator import attrgetter
from pathlib import Path
from typing import Annotated, Any

import msgspec
import numpy as np

from burnqed_assets.data.io import LineReport, forked_workers, pwrite_all
from burnqed_assets.data.pairs import (
    DUCKDB_TRIM_CHARS,
    INT64_MAX,
    INT64_MIN,
    EncodedBlock,
    PairsWriter,
    add_rows,
    duckdb_blank,
    duckdb_escapes,
    json_bytes,
    kept_lines,
)
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
SWEEP_BLOCK_BYTES = 512 << 10  # the file is decoded in blocks of whole lines of about this size
SWEEP_BYTES_PER_WORKER = 4 << 20  # a smaller share of the file costs more to hand over than to scan


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
                     con=None, workers: int | None = None, block_bytes: int = SWEEP_BLOCK_BYTES) -> CleanPoolResult:
    """Sweep `traced_path` and write the clean pairs to `dest` (JSONL in input order, plus its
    `data.pairs` index for the steps that read the pool).

    One pass over the file, in blocks of whole lines: msgspec decodes a block into typed records
    in C (the type checks DuckDB's reader makes), every per-pair rule runs column-wise over the
    block, and its candidate lines are encoded back in C. Blocks share no state, so the file's
    parts are scanned side by side (`workers` processes, by default one per CPU as the file's
    size allows); joining the scans in file order finds first appearances, copies of earlier
    pairs (a 64-bit hash, every match confirmed against the earlier line) and contaminated
    theorems. A file with any line this pass does not accept (bad JSON, a
    missing or mistyped field, a blank line) is swept by `build_clean_pool_duckdb` instead,
    whose line-checked reader reports each such line as file:line; both give the same pool and
    report on a file they both read (tested).
    """
    traced_path = Path(traced_path)
    parts = _parts(traced_path, workers or sweep_workers(traced_path.stat().st_size))
    with _part_workers(traced_path, parts, block_bytes) as forked:
        swept = _sweep(traced_path, parts, forked, block_bytes)
        if swept is not None:
            writer, result, contaminated = swept
            result.clean_pairs = writer.write(dest, contaminated)
            return result
    return build_clean_pool_duckdb(traced_path, dest, con)


# per distinct tactic: its flags (bits) for the sweep's rules
_T_CONTAMINATED, _T_BLANK = 1, 2
_T_AXIOM = {ax: 4 << k for k, ax in enumerate(SUSPICIOUS_AXIOMS)}
_T_ANY_AXIOM = sum(_T_AXIOM.values())


class TracedPair(msgspec.Struct, gc=False):
    """One traced line as the sweep reads it: the types DuckDB's reader accepts (a string, an
    integer within BIGINT, or null/absent for the optional fields), checked while decoding."""

    theorem: str
    state: str
    tactic: str
    state_after: str | None = None
    depth: Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)] | None = None
    source: str | None = None


_DECODER = msgspec.json.Decoder(TracedPair)
_ENCODER = msgspec.json.Encoder()


def _tactic_flags(tactics: list[str]) -> np.ndarray:
    """The rule flags of each tactic; each word is looked for tactic by tactic only when the
    tactics joined hold it at all (a tactic never contains NUL-free words across two tactics)."""
    flags = np.zeros(len(tactics), dtype=np.int64)
    joined = "\x00".join(tactics)
    for word, bit in (("sorry", _T_CONTAMINATED), ("admit", _T_CONTAMINATED), ("cheat", _T_CONTAMINATED),
                      *_T_AXIOM.items()):
        if word in joined:
            flags[_has(tactics, word)] |= bit
    for i in np.flatnonzero(_starts(tactics, " ") | ~np.fromiter(map(bool, tactics), np.bool_, len(tactics))).tolist():
        if duckdb_blank(tactics[i]):
            flags[i] |= _T_BLANK
    return flags


def _blocks(path: Path, start: int, end: int, block_bytes: int) -> Iterator[tuple[int, bytes]]:
    """(offset, block) for bytes [start, end) of the file in blocks of whole lines of about
    `block_bytes` (`start` begins a line; the last block may lack its final newline)."""
    with open(path, "rb") as fh:
        fh.seek(start)
        carry, pos = b"", start
        while pos < end and (data := fh.read(min(block_bytes, end - pos))):
            pos += len(data)
            cut = data.rfind(b"\n") + 1
            if not cut:
                carry += data
                continue
            block = carry + data[:cut] if carry else data[:cut]
            yield pos - len(data) - len(carry), block
            carry = data[cut:]
        if carry:
            yield pos - len(carry), carry


def _grown(a: np.ndarray, size: int) -> np.ndarray:
    """`a` with room for `size` entries (capacity doubled: amortized O(1) per entry)."""
    if a.size >= size:
        return a
    out = np.zeros(max(size, 2 * a.size), dtype=a.dtype)
    out[: a.size] = a
    return out


def _escaped(texts: list[str]) -> list[bytes]:
    """The escaped JSON text of each string, from one encoded JSON array split at its '","'
    (inside a JSON string every '"' is escaped, so the separator occurs only between items)."""
    if not texts:
        return []
    return json_bytes(texts)[2:-2].split(b'","')


def _has(texts: list[str], word: str) -> np.ndarray:
    """Per text: it contains `word` (a C-level pass, no Python code per text)."""
    return np.fromiter(map(str.__contains__, texts, repeat(word)), dtype=np.bool_, count=len(texts))


def _starts(texts: list[str], prefix: str) -> np.ndarray:
    return np.fromiter(map(str.startswith, texts, repeat(prefix)), dtype=np.bool_, count=len(texts))


_THEOREM, _STATE, _TACTIC, _DEPTH, _SOURCE = (attrgetter(f) for f in ("theorem", "state", "tactic", "depth", "source"))


@dataclass
class _BlockScan:
    """What one block of lines says on its own, with no state shared across blocks (so blocks
    can be scanned in any process, in any order); `_sweep` joins the scans in file order."""

    rows: int
    line_start: np.ndarray  # int64 per row: the line's byte offset in the file
    theorems: list[str]  # the block's distinct names, in order of first appearance
    theorem_row: np.ndarray  # int64 per name: the row where it first appears
    theorem_at: np.ndarray  # int64 per row: index into `theorems`
    tactics: list[str]
    tactic_row: np.ndarray
    tactic_at: np.ndarray
    pair_hash: np.ndarray  # int64 per row: hash of (theorem, depth, state, tactic)
    contaminated: np.ndarray  # bool per row
    malformed: np.ndarray  # int8 per row: 0, or 1 + index in MALFORMED_REASONS (first reason wins)
    axioms: list[int]  # mentions per SUSPICIOUS_AXIOMS
    contamination_examples: list[tuple[int, str]]  # (row, text) of the block's first contaminated rows
    candidates: np.ndarray  # rows well formed and free of banned words: pool lines unless copies
    encoded: EncodedBlock  # the candidates' lines
    sources: list[str]  # the candidates' distinct sources (null read as GOEDEL_SOURCE)
    source_at: np.ndarray  # per candidate: index into `sources`
    depth: np.ndarray  # per candidate (null read as 0)


def _pair_hashes(ths: list[str], depths: list[int], sts: list[str], tacs: list[str]) -> np.ndarray:
    """64-bit hash of each pair's duplicate key (every match is confirmed against the earlier line:
    a hash can collide). Python's string hash: the same in forked workers, which share its seed."""
    return np.fromiter(map(hash, zip(ths, depths, sts, tacs)), dtype=np.int64, count=len(ths))


def _dictionary(values: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(distinct values in order of first appearance, the row of each one's first appearance,
    per row the index of its value in the distinct list)."""
    first: dict[str, int] = {}
    first_row = np.fromiter(map(first.setdefault, values, range(len(values))), dtype=np.int64, count=len(values))
    rows = np.fromiter(first.values(), dtype=np.int64, count=len(first))
    lut = np.zeros(len(values), dtype=np.int64)
    lut[rows] = np.arange(rows.size)
    return list(first), rows, lut[first_row]


def _scan_block(block: bytes, offset: int) -> _BlockScan | None:
    """The per-pair rules on one block of whole lines starting at byte `offset` of the file, each
    one C-level pass over a column (`map` of a str method, then numpy); Python runs per line
    only for the few lines a rule flags. None when a line needs the line-checked reader (bad
    JSON, a missing or mistyped field, a blank line)."""
    try:
        rows = _DECODER.decode_lines(block)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    k = len(rows)
    ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10)
    if not k or k != ends.size + (not block.endswith(b"\n")):
        return None  # a blank line (skipped by the decoder): DuckDB's reader counts lines itself
    line_start = np.empty(k, dtype=np.int64)
    line_start[0] = 0
    line_start[1:] = ends[: k - 1] + 1
    line_start += offset
    zs = DUCKDB_TRIM_CHARS
    ths, sts, tacs = list(map(_THEOREM, rows)), list(map(_STATE, rows)), list(map(_TACTIC, rows))
    depths = list(map(_DEPTH, rows))
    if None in depths:  # coalesce(depth, 0)
        depths = [0 if d is None else d for d in depths]
    theorems, theorem_row, theorem_at = _dictionary(ths)
    tactics, tactic_row, tactic_at = _dictionary(tacs)
    tf = _tactic_flags(tactics)[tactic_at]
    # a word absent from the block's bytes is in none of its states (JSON escapes a letter
    # only as \uXXXX: with one in the block, every state is searched)
    escapes = b"\\u" in block

    def has(word: str) -> np.ndarray:
        if escapes or word.encode() in block:
            return _has(sts, word)
        return np.zeros(k, dtype=np.bool_)

    # contamination: BANNED_TACTIC_WORDS in the tactic or BANNED_STATE_WORDS in the state
    st_sorry = has("sorry")
    cont = st_sorry | (tf & _T_CONTAMINATED != 0)
    contamination_ex = [(r, f"{ths[r]}: tactic {tacs[r][:60]!r}, state {sts[r][:60]!r}")
                        for r in np.flatnonzero(cont)[:EXAMPLES].tolist()]
    # suspicious axioms: each looked for in the state only where a shorter word is there
    axioms = [0] * len(SUSPICIOUS_AXIOMS)
    maybe = (tf & _T_ANY_AXIOM != 0) | st_sorry | has("decide") | has("ofReduceBool")
    for r in np.flatnonzero(maybe).tolist():
        for j, (ax, bit) in enumerate(_T_AXIOM.items()):
            if tf[r] & bit or ax in sts[r]:
                axioms[j] += 1
    # malformed, first reason wins (DuckDB's trim, `data.pairs.duckdb_blank`: only a state
    # that starts with ' ' can trim to empty or to 'no goals')
    lead = _starts(sts, " ")
    turnstile = _has(sts, TURNSTILE)
    empty = np.zeros(k, dtype=np.bool_)  # an empty state has no turnstile: only those are looked at
    for r in np.flatnonzero(~turnstile).tolist():
        empty[r] = not sts[r]
    no_goals = _starts(sts, "no goals")
    for r in np.flatnonzero(lead).tolist():
        trimmed = sts[r].strip(zs)
        empty[r] = not trimmed
        no_goals[r] = no_goals[r] or sts[r].lstrip(zs).startswith("no goals")
    why = np.zeros(k, dtype=np.int8)  # 1 + index in MALFORMED_REASONS
    for code, hit in enumerate((empty, no_goals, ~turnstile, tf & _T_BLANK != 0), start=1):
        why[(why == 0) & hit] = code
    pair_hash = _pair_hashes(ths, depths, sts, tacs)
    del block
    # the pool's candidate lines: well formed, without a banned word (a later copy of an earlier
    # pair, or a theorem found contaminated further on, is dropped when the scans are joined)
    mask = (why == 0) & ~cont
    candidates = np.flatnonzero(mask)
    kept = list(compress(rows, mask.tolist()))
    del rows
    sources = list(map(_SOURCE, kept))
    if None in sources:  # coalesce(source, 'goedel_workbook') in the written line
        for r in kept:
            if r.source is None:
                r.source = GOEDEL_SOURCE
        sources = list(map(_SOURCE, kept))
    if None in map(_DEPTH, kept):  # coalesce(depth, 0)
        for r in kept:
            if r.depth is None:
                r.depth = 0
    if sources and sources.count(sources[0]) == len(sources):  # one source (the usual case)
        source_names, source_at = sources[:1], np.zeros(len(sources), dtype=np.int64)
    else:
        source_names, _, source_at = _dictionary(sources)
    if kept:
        encoded = _ENCODER.encode_lines(kept)
        lines = encoded.split(b"\n")
        lines.pop()
        name_len = np.fromiter(map(len, _escaped(theorems)), dtype=np.int64, count=len(theorems))
        # control characters other than \b\f\n\r\t reach JSON text only as \uXXXX escapes: a block
        # whose input has none cannot need DuckDB's upper-case escapes
        lines_block = EncodedBlock.of(lines, name_len[theorem_at[candidates]], data=encoded, may_escape=escapes)
    else:
        lines_block = EncodedBlock.of([], np.zeros(0, np.int64))
    return _BlockScan(
        rows=k, line_start=line_start, theorems=theorems, theorem_row=theorem_row, theorem_at=theorem_at,
        tactics=tactics, tactic_row=tactic_row, tactic_at=tactic_at, pair_hash=pair_hash, contaminated=cont,
        malformed=why, axioms=axioms, contamination_examples=contamination_ex, candidates=candidates,
        encoded=lines_block, sources=source_names, source_at=source_at,
        depth=np.fromiter(depths, dtype=np.int64, count=k)[candidates])


def _parts(path: Path, workers: int) -> list[tuple[int, int]]:
    """`workers` byte ranges of about equal size, each made of whole lines."""
    size = path.stat().st_size
    cuts = [0]
    with open(path, "rb") as fh:
        for i in range(1, workers):
            fh.seek(max(cuts[-1], size * i // workers))
            fh.readline()
            if fh.tell() < size:
                cuts.append(fh.tell())
    return list(zip(cuts, cuts[1:] + [size]))


def sweep_workers(size: int) -> int:
    """Processes for a sweep of a file of `size` bytes (`data.io.forked_workers`)."""
    return forked_workers(size, SWEEP_BYTES_PER_WORKER)


def _scan_part(path: Path, start: int, end: int, block_bytes: int) -> list[_BlockScan] | None:
    """The scans of the blocks of bytes [start, end) of the file, in order."""
    scans = []
    for offset, block in _blocks(path, start, end, block_bytes):
        scan = _scan_block(block, offset)
        if scan is None:
            return None
        scans.append(scan)
    return scans


def _part_worker(conn: Any, path: Path, start: int, end: int, block_bytes: int) -> None:
    """A forked worker: scan bytes [start, end), send the scans without their encoded bytes,
    then write the lines the joined sweep keeps into the pool file at the offsets it names."""
    scans = _scan_part(path, start, end, block_bytes)
    conn.send(None if scans is None else [replace(s, encoded=s.encoded.without_data()) for s in scans])
    order = conn.recv()
    if order is None or scans is None:
        return
    dest, jobs = order
    fd = os.open(dest, os.O_WRONLY)
    try:
        for ref, lines, offset in jobs:
            block = scans[ref].encoded
            if lines is None:
                data = block.data
            else:
                mask = np.zeros(len(block), dtype=np.bool_)
                mask[lines] = True
                data = kept_lines(block.data, block.line_start, mask)
            pwrite_all(fd, duckdb_escapes(data) if block.may_escape else data, offset)  # same length
    finally:
        os.close(fd)
    conn.send("written")


class _PartWorker:
    """One part of the file scanned by a forked worker (fork: it shares this process's
    string-hash seed and needs no imports). Its blocks' encoded bytes stay there: the scans
    come back without them, and the worker writes its own kept lines into the pool file (a
    `data.pairs.BlockOwner`), so the pool's bytes never cross the pipe."""

    def __init__(self, ctx: Any, path: Path, start: int, end: int, block_bytes: int) -> None:
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_part_worker, args=(child, path, start, end, block_bytes), daemon=True)
        self._process.start()
        child.close()

    def _receive(self) -> Any:
        try:
            return self._conn.recv()
        except (EOFError, OSError):
            self._process.join()
            raise RuntimeError(f"a clean-pool sweep worker died (exit code {self._process.exitcode})") from None

    def scans(self) -> list[_BlockScan] | None:
        scans = self._receive()
        for ref, scan in enumerate(scans or ()):
            scan.encoded.owner, scan.encoded.ref = self, ref
        return scans

    def start_writing(self, path: Path, jobs: list[tuple[int, np.ndarray | None, int]]) -> None:
        self._conn.send((str(path), jobs))

    def wait(self) -> None:
        if self._receive() != "written":
            raise RuntimeError("a clean-pool sweep worker did not write its lines")

    def close(self) -> None:
        if self._process.is_alive():
            try:
                self._conn.send(None)  # not asked to write (or done): let it exit
            except OSError:
                pass
            self._process.join(timeout=5)
            if self._process.is_alive():
                self._process.terminate()
        self._process.join()
        self._conn.close()


@contextlib.contextmanager
def _part_workers(path: Path, parts: list[tuple[int, int]], block_bytes: int) -> Iterator[list[_PartWorker]]:
    """A forked worker for each part but the first (which this process scans), stopped on exit."""
    workers: list[_PartWorker] = []
    try:
        if len(parts) > 1 and "fork" in mp.get_all_start_methods():
            ctx = mp.get_context("fork")
            try:
                for a, b in parts[1:]:
                    workers.append(_PartWorker(ctx, path, a, b, block_bytes))
            except (OSError, AssertionError):  # no child processes here (e.g. in a daemon): scan here
                for w in workers:
                    w.close()
                workers = []
        yield workers
    finally:
        for w in workers:
            w.close()


def _scan_file(path: Path, parts: list[tuple[int, int]], forked: list[_PartWorker],
               block_bytes: int) -> Iterator[_BlockScan | None]:
    """Every block's scan in file order: the parts without a worker scanned here (joined while
    the workers scan theirs), then the workers' scans."""
    for a, b in parts[: len(parts) - len(forked)]:
        for offset, block in _blocks(path, a, b, block_bytes):
            yield _scan_block(block, offset)
    for worker in forked:
        yield from worker.scans() or [None]


def _sweep(path: Path, parts: list[tuple[int, int]], forked: list[_PartWorker],
           block_bytes: int) -> tuple[PairsWriter, CleanPoolResult, set[str]] | None:
    """Join the block scans in file order: first appearances, copies of earlier pairs,
    contaminated theorems, counts and examples. None when a block needs the line-checked reader
    or a hash match turns out not to be a copy."""
    assert BANNED_STATE_WORDS == ("sorry", "sorryAx") and set(BANNED_TACTIC_WORDS) == {"sorry", "admit", "cheat",
                                                                                    "sorryAx"}
    writer = PairsWriter()
    # ids are the row (0-based) where a theorem / tactic / source / pair first appears
    theorem_first, tactic_first, source_first = writer.theorem_ids, writer.tactic_ids, writer.source_ids
    seen: dict[int, int] = {}  # pair hash -> its first row
    copies: list[tuple[int, int]] = []  # (row, first row with its hash): confirmed once the sweep is done
    good = np.zeros(0, dtype=np.bool_)  # by theorem id: a pair neither malformed nor a copy
    contaminated: dict[str, int] = {}  # theorem -> first contaminated line
    n_contaminated = 0
    malformed = np.zeros(len(MALFORMED_REASONS) + 1, dtype=np.int64)
    axioms = [0] * len(SUSPICIOUS_AXIOMS)
    contamination_ex: list[str] = []
    malformed_ex: list[str] = []
    duplicate_ex: list[str] = []
    line_starts = []
    loc = f"{path}:"
    n = 0
    for scan in _scan_file(path, parts, forked, block_bytes):
        if scan is None:
            return None
        base, n = n, n + scan.rows
        line_starts.append(scan.line_start)
        tid = np.fromiter(map(theorem_first.setdefault, scan.theorems, (scan.theorem_row + base).tolist()),
                          dtype=np.int64, count=len(scan.theorems))[scan.theorem_at]
        first = np.fromiter(map(seen.setdefault, scan.pair_hash.tolist(), range(base, n)), dtype=np.int64,
                            count=scan.rows)
        dup = first != np.arange(base, n, dtype=np.int64)
        names = scan.theorems
        at = scan.theorem_at
        cont = np.flatnonzero(scan.contaminated)
        n_contaminated += cont.size
        for r, i in zip(cont.tolist(), at[cont].tolist()):
            contaminated.setdefault(names[i], base + r + 1)
        for r, text in scan.contamination_examples[: EXAMPLES - len(contamination_ex)]:
            contamination_ex.append(f"{loc}{base + r + 1}: {text}")
        axioms = [a + b for a, b in zip(axioms, scan.axioms)]
        why = scan.malformed
        malformed += np.bincount(why, minlength=malformed.size)
        for r in np.flatnonzero(why)[: EXAMPLES - len(malformed_ex)].tolist():
            malformed_ex.append(f"{loc}{base + r + 1}: {names[at[r]]}: {MALFORMED_REASONS[why[r] - 1]}")
        dup_rows = np.flatnonzero(dup)
        copies += zip((dup_rows + base).tolist(), first[dup_rows].tolist())
        for r in dup_rows[: EXAMPLES - len(duplicate_ex)].tolist():
            duplicate_ex.append(f"{loc}{base + r + 1}: {names[at[r]]}: duplicate of an earlier pair")
        good = _grown(good, n)
        good[tid[(why == 0) & ~dup]] = True
        # the pool's lines: candidates that are first copies (their theorem may still turn out
        # contaminated further on; `write` drops those)
        keep = ~dup[scan.candidates]
        put = scan.candidates[keep]
        if not put.size:
            continue
        tactic_ids = np.fromiter(map(tactic_first.setdefault, scan.tactics, (scan.tactic_row + base).tolist()),
                                 dtype=np.int64, count=len(scan.tactics))
        source_ids = np.fromiter(map(source_first.setdefault, scan.sources, range(base, base + len(scan.sources))),
                                 dtype=np.int64, count=len(scan.sources))
        writer.add_block(scan.encoded.keep(keep))
        writer.theorem_id.frombytes(tid[put].tobytes())
        writer.tactic_id.frombytes(tactic_ids[scan.tactic_at[put]].tobytes())
        writer.source_id.frombytes(source_ids[scan.source_at[keep]].tobytes())
        writer.depth.frombytes(scan.depth[keep].tobytes())
        writer.depth_null.extend(bytes(put.size))
    if copies and not _copies_confirmed(path, copies, np.concatenate(line_starts)):
        return None
    good_at = good.tolist()
    dropped = [{"theorem": th, "reason": "contaminated (sorry/admit/cheat/sorryAx)", "first_line": f"{loc}{line}"}
               for th, line in contaminated.items()]
    # theorems that lost every pair to the malformed/duplicate rules, by first line (= id + 1)
    dropped += [{"theorem": th, "reason": "no well-formed pair left", "first_line": f"{loc}{ix + 1}"}
                for th, ix in theorem_first.items() if not good_at[ix] and th not in contaminated]
    result = CleanPoolResult(
        traced_pairs=n, traced_theorems=len(theorem_first), bad_lines=0, bad_line_examples=[],
        contaminated_pairs=n_contaminated, contaminated_theorems=len(contaminated),
        contamination_examples=contamination_ex,
        suspicious_axiom_mentions={ax: c for ax, c in zip(SUSPICIOUS_AXIOMS, axioms) if c},
        malformed=dict(zip(MALFORMED_REASONS, malformed[1:].tolist())), malformed_examples=malformed_ex,
        duplicate_pairs=len(copies), duplicate_examples=duplicate_ex, clean_pairs=0,
        clean_theorems=sum(1 for th, ix in theorem_first.items() if good_at[ix] and th not in contaminated),
        dropped_theorems=dropped)
    return writer, result, set(contaminated)


def _copies_confirmed(path: Path, copies: list[tuple[int, int]], line_start: np.ndarray) -> bool:
    """Every hash match is the same pair (theorem, depth, state, tactic) as its first row: both
    lines read back from the file and decoded."""
    rows = np.array(copies, dtype=np.int64).reshape(-1)
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        ends = np.r_[line_start[1:] - 1, len(data) - (data[-1:] == b"\n")]
        lines = [data[s:e] for s, e in zip(line_start[rows].tolist(), ends[rows].tolist())]
    pairs = _DECODER.decode_lines(b"\n".join(lines))
    keys = [(p.theorem, p.depth or 0, p.state, p.tactic) for p in pairs]
    return keys[0::2] == keys[1::2]


def build_clean_pool_duckdb(traced_path: str | os.PathLike[str], dest: str | os.PathLike[str],
                            con=None) -> CleanPoolResult:
    """The sweep in DuckDB with its line-checked reader: every unreadable line is reported as
    file:line and counted (the path for a file with bad lines; same rules, same outputs).

    One read of the file computes every per-pair flag (contamination, malformed reason, the
    pair's 64-bit hash); duplicates and contaminated theorems come from hash aggregates and
    only the few affected rows are updated.
    """
    from burnqed_assets.data import duck

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

    writer = PairsWriter()
    cur = con.execute(f"""SELECT theorem, state, tactic, state_after, coalesce(depth, 0),
        coalesce(source, {duck.sql_str(GOEDEL_SOURCE)}) FROM traced WHERE NOT dropped ORDER BY _line""")
    add_rows(writer.add, cur)
    clean_pairs = writer.write(dest)
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
    n_bad_theorems = int(duck.scalar(con, "SELECT count(*) FROM bad_theorems"))
    con.execute("DROP TABLE traced; DROP TABLE bad_theorems")
    return CleanPoolResult(
        traced_pairs=report.rows + report.bad_count,
        traced_theorems=int(stats[1]),
        bad_lines=report.bad_count,
        bad_line_examples=[str(b) for b in report.bad[:EXAMPLES]],
        contaminated_pairs=int(stats[0]),
        contaminated_theorems=n_bad_theorems,
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
