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
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import compress, repeat
from operator import attrgetter
from pathlib import Path
from typing import Annotated, Any

import msgspec
import numpy as np

from burnqed_assets.data.io import LineReport
from burnqed_assets.data.pairs import (
    DUCKDB_TRIM_CHARS,
    INT64_MAX,
    INT64_MIN,
    EncodedBlock,
    PairsWriter,
    duckdb_blank,
    json_bytes,
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
    """Sweep `traced_path` and write the clean pairs to `dest` (JSONL in input order, plus its
    `data.pairs` index for the steps that read the pool).

    One pass over the file, in blocks: msgspec decodes a block of lines into typed records in C
    (the type checks DuckDB's reader makes), a Python loop computes every per-pair flag, the
    duplicate check (a 64-bit hash of the pair, every match confirmed against the earlier line)
    and every count, with the tactic rules run once per distinct tactic, and the block's clean
    lines are encoded back in C. A file with any line this pass does not accept (bad JSON, a
    missing or mistyped field, a blank line) is swept by `build_clean_pool_duckdb` instead,
    whose line-checked reader reports each such line as file:line; both give the same pool and
    report on a file they both read (tested).
    """
    traced_path = Path(traced_path)
    swept = _sweep(traced_path)
    if swept is None:
        return build_clean_pool_duckdb(traced_path, dest, con)
    writer, result, contaminated = swept
    result.clean_pairs = writer.write(dest, contaminated)
    return result


# per distinct tactic: its flags (bits) for the sweep's rules
_T_CONTAMINATED, _T_BLANK = 1, 2
_T_AXIOM = {ax: 4 << k for k, ax in enumerate(SUSPICIOUS_AXIOMS)}
_T_ANY_AXIOM = sum(_T_AXIOM.values())
_CHUNK_BYTES = 2 << 20  # the file is decoded in blocks of whole lines of about this size


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


def _blocks(path: Path) -> Iterator[bytes]:
    """The file in blocks of whole lines of about `_CHUNK_BYTES` (the last may lack its final newline)."""
    with open(path, "rb") as fh:
        carry = b""
        while data := fh.read(_CHUNK_BYTES):
            cut = data.rfind(b"\n") + 1
            if not cut:
                carry += data
                continue
            yield carry + data[:cut] if carry else data[:cut]
            carry = data[cut:]
        if carry:
            yield carry


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


def _sweep(path: Path) -> tuple[PairsWriter, CleanPoolResult, set[str]] | None:
    """The sweep, block by block, column-wise: each rule is one C-level pass over a block's
    column (`map` of a str method, a dict's `setdefault`), then numpy; Python runs per line only
    for the few lines a rule flags. None when a line needs the line-checked reader (bad JSON, a
    missing or mistyped field, a blank line) or a 64-bit hash match turns out not to be a copy."""
    assert BANNED_STATE_WORDS == ("sorry", "sorryAx") and set(BANNED_TACTIC_WORDS) == {"sorry", "admit", "cheat",
                                                                                    "sorryAx"}
    zs = DUCKDB_TRIM_CHARS
    writer = PairsWriter()
    # ids are the row (0-based) where a theorem / tactic / source / pair first appears
    theorem_first, tactic_first, source_first = writer.theorem_ids, writer.tactic_ids, writer.source_ids
    seen: dict[int, int] = {}  # hash of (theorem, depth, state, tactic) -> its first row
    tactic_flags = np.zeros(0, dtype=np.int64)  # by tactic id: the rule flags of that tactic
    theorem_len = np.zeros(0, dtype=np.int64)  # by theorem id: the escaped length of its name
    copies: list[tuple[int, int, tuple]] = []  # (row, first row, key): confirmed once the sweep is done
    unwritten: dict[int, tuple] = {}  # row -> key, for first copies not in the pool (to confirm copies of them)
    good: set[int] = set()  # theorems with a pair that is neither malformed nor a copy
    contaminated: dict[str, int] = {}  # theorem -> first contaminated line
    n_contaminated = 0
    malformed = dict.fromkeys(MALFORMED_REASONS, 0)
    axioms = dict.fromkeys(SUSPICIOUS_AXIOMS, 0)
    contamination_ex: list[str] = []
    malformed_ex: list[str] = []
    duplicate_ex: list[str] = []
    written_rows = []  # per block: the rows written
    loc = f"{path}:"
    n = 0
    for block in _blocks(path):
        try:
            rows = _DECODER.decode_lines(block)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
        k = len(rows)
        if k != block.count(b"\n") + (not block.endswith(b"\n")):
            return None  # a blank line (skipped by the decoder): DuckDB's reader counts lines itself
        base, n = n, n + k
        here = np.arange(base, n, dtype=np.int64)
        ths, sts, tacs = list(map(_THEOREM, rows)), list(map(_STATE, rows)), list(map(_TACTIC, rows))
        depths = list(map(_DEPTH, rows))
        if None in depths:  # coalesce(depth, 0)
            depths = [0 if d is None else d for d in depths]
        tid = np.fromiter(map(theorem_first.setdefault, ths, range(base, n)), dtype=np.int64, count=k)
        tac = np.fromiter(map(tactic_first.setdefault, tacs, range(base, n)), dtype=np.int64, count=k)
        first = np.fromiter(map(seen.setdefault, map(hash, zip(ths, depths, sts, tacs)), range(base, n)),
                            dtype=np.int64, count=k)
        theorem_len = _grown(theorem_len, n)
        new = np.flatnonzero(tid == here)
        if new.size:  # escaped lengths of the new names: one JSON array, split at its '","'
            theorem_len[base + new] = list(map(len, _escaped([ths[r] for r in new.tolist()])))
        tactic_flags = _grown(tactic_flags, n)
        new = np.flatnonzero(tac == here)
        tactic_flags[base + new] = _tactic_flags([tacs[r] for r in new.tolist()])
        tf = tactic_flags[tac]
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
        for r in np.flatnonzero(cont).tolist():
            n_contaminated += 1
            th, line = ths[r], base + r + 1
            contaminated.setdefault(th, line)
            if len(contamination_ex) < EXAMPLES:
                contamination_ex.append(f"{loc}{line}: {th}: tactic {tacs[r][:60]!r}, state {sts[r][:60]!r}")
        # suspicious axioms: each looked for in the state only where a shorter word is there
        maybe = (tf & _T_ANY_AXIOM != 0) | st_sorry | has("decide") | has("ofReduceBool")
        for r in np.flatnonzero(maybe).tolist():
            for ax, bit in _T_AXIOM.items():
                if tf[r] & bit or ax in sts[r]:
                    axioms[ax] += 1
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
        for r in np.flatnonzero(why).tolist():
            reason = MALFORMED_REASONS[why[r] - 1]
            malformed[reason] += 1
            if len(malformed_ex) < EXAMPLES:
                malformed_ex.append(f"{loc}{base + r + 1}: {ths[r]}: {reason}")
        # copies of an earlier pair (confirmed at the end: a 64-bit hash can collide)
        dup = first != here
        for r in np.flatnonzero(dup).tolist():
            copies.append((base + r, int(first[r]), (ths[r], depths[r], sts[r], tacs[r])))
            if len(duplicate_ex) < EXAMPLES:
                duplicate_ex.append(f"{loc}{base + r + 1}: {ths[r]}: duplicate of an earlier pair")
        del block
        ok = (why == 0) & ~dup
        good.update(tid[ok].tolist())
        for r in np.flatnonzero(~dup & ~(ok & ~cont)).tolist():
            unwritten[base + r] = (ths[r], depths[r], sts[r], tacs[r])
        # the pool's lines: well-formed first copies without a banned word (their theorem may
        # still turn out contaminated further on; `write` drops those)
        mask = ok & ~cont
        put = np.flatnonzero(mask)
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
            sid = np.full(len(kept), source_first.setdefault(sources[0], base), dtype=np.int64)
        else:
            sid = np.fromiter(map(source_first.setdefault, sources, range(base, base + len(kept))), dtype=np.int64,
                              count=len(kept))
        if not kept:
            continue
        encoded = _ENCODER.encode_lines(kept)
        lines = encoded.split(b"\n")
        lines.pop()
        tid_kept = tid[put]
        # control characters other than \b\f\n\r\t reach JSON text only as \uXXXX escapes: a block
        # whose input has none cannot need DuckDB's upper-case escapes
        writer.add_block(EncodedBlock.of(lines, theorem_len[tid_kept], data=encoded, may_escape=escapes))
        writer.theorem_id.frombytes(tid_kept.tobytes())
        writer.tactic_id.frombytes(tac[put].tobytes())
        writer.source_id.frombytes(sid.tobytes())
        writer.depth.frombytes(np.fromiter(depths, dtype=np.int64, count=k)[put].tobytes())
        writer.depth_null.extend(bytes(put.size))
        written_rows.append(put + base)
    if copies and not _copies_confirmed(copies, unwritten, written_rows, writer.blocks):
        return None
    dropped = [{"theorem": th, "reason": "contaminated (sorry/admit/cheat/sorryAx)", "first_line": f"{loc}{line}"}
               for th, line in contaminated.items()]
    # theorems that lost every pair to the malformed/duplicate rules, by first line (= id + 1)
    dropped += [{"theorem": th, "reason": "no well-formed pair left", "first_line": f"{loc}{ix + 1}"}
                for th, ix in theorem_first.items() if ix not in good and th not in contaminated]
    result = CleanPoolResult(
        traced_pairs=n, traced_theorems=len(theorem_first), bad_lines=0, bad_line_examples=[],
        contaminated_pairs=n_contaminated, contaminated_theorems=len(contaminated),
        contamination_examples=contamination_ex,
        suspicious_axiom_mentions={ax: c for ax, c in axioms.items() if c},
        malformed=malformed, malformed_examples=malformed_ex, duplicate_pairs=len(copies),
        duplicate_examples=duplicate_ex, clean_pairs=0,
        clean_theorems=sum(1 for th, ix in theorem_first.items() if ix in good and th not in contaminated),
        dropped_theorems=dropped)
    return writer, result, set(contaminated)


def _copies_confirmed(copies: list[tuple[int, int, tuple]], unwritten: dict[int, tuple],
                      written_rows: list[np.ndarray], blocks: list[EncodedBlock]) -> bool:
    """Every hash match is the same pair as its first row (pool lines decoded back)."""
    rows = np.concatenate(written_rows) if written_rows else np.zeros(0, np.int64)
    bounds = np.cumsum([0] + [len(b) for b in blocks])
    for _, first, key in copies:
        earlier = unwritten.get(first)
        if earlier is None:
            row = int(np.searchsorted(rows, first))
            k = int(np.searchsorted(bounds, row, side="right")) - 1
            r = _DECODER.decode(blocks[k].line(row - int(bounds[k])))
            earlier = (r.theorem, r.depth, r.state, r.tactic)
        if earlier != key:
            return False
    return True


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
    while batch := cur.fetchmany(8192):
        for row in batch:
            writer.add(*row)
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
