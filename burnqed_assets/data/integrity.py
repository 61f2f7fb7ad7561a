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
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import msgspec
import numpy as np
import orjson

from burnqed_assets.data.io import LineReport
from burnqed_assets.data.pairs import DUCKDB_TRIM_CHARS, INT64_MAX, INT64_MIN, EncodedBlock, PairsWriter, duckdb_blank
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
_CHUNK_BYTES = 32 << 20  # the file is decoded in blocks of whole lines of about this size


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


def _tactic_flags(tactic: str) -> int:
    flags = _T_CONTAMINATED if ("sorry" in tactic or "admit" in tactic or "cheat" in tactic) else 0
    if duckdb_blank(tactic):
        flags |= _T_BLANK
    for ax, bit in _T_AXIOM.items():
        if ax in tactic:
            flags |= bit
    return flags


def _blocks(data: bytes) -> Iterator[tuple[int, int]]:
    """(start, end) of blocks of whole lines of about `_CHUNK_BYTES` (the last line may lack its newline)."""
    start = 0
    while start < len(data):
        end = data.find(b"\n", min(start + _CHUNK_BYTES, len(data)) - 1) + 1 or len(data)
        yield start, end
        start = end


def _sweep(path: Path) -> tuple[PairsWriter, CleanPoolResult, set[str]] | None:
    """The sweep, block by block; None when a line needs the line-checked reader (bad JSON, a
    missing or mistyped field, a blank line) or a 64-bit hash match turns out not to be a copy."""
    assert BANNED_STATE_WORDS == ("sorry", "sorryAx") and set(BANNED_TACTIC_WORDS) == {"sorry", "admit", "cheat",
                                                                                    "sorryAx"}
    zs, turnstile, goedel = DUCKDB_TRIM_CHARS, TURNSTILE, GOEDEL_SOURCE
    writer = PairsWriter()
    theorem_ix, theorem_len, source_ix = writer.theorem_ids, writer.theorem_len, writer.source_ids
    tactics: dict[str, tuple[int, int]] = {}  # tactic -> (id, flags)
    seen: dict[int, int] = {}  # hash of (theorem, depth, state, tactic) -> its first line
    copies: list[tuple[int, int, tuple]] = []  # (line, first line, key): confirmed once the sweep is done
    unwritten: dict[int, tuple] = {}  # line -> key, for lines not in the pool (to confirm copies of them)
    good = bytearray()  # per theorem: it has a pair that is neither malformed nor a copy
    first_line = array("q")  # per theorem
    contaminated: dict[str, int] = {}  # theorem -> first contaminated line
    n_contaminated = 0
    malformed = dict.fromkeys(MALFORMED_REASONS, 0)
    axioms = dict.fromkeys(SUSPICIOUS_AXIOMS, 0)
    contamination_ex: list[str] = []
    malformed_ex: list[str] = []
    duplicate_ex: list[str] = []
    written_lines = array("q")  # input line of each pool line
    loc = f"{path}:"
    n = 0
    data = path.read_bytes()
    theorem_len_arr = np.zeros(0, np.int64)
    view = memoryview(data)
    for start, end in _blocks(data):
        try:
            rows = _DECODER.decode_lines(view[start:end])
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
        if len(rows) != data.count(b"\n", start, end) + (data[end - 1] != 0x0A):
            return None  # a blank line (skipped by the decoder): DuckDB's reader counts lines itself
        first_kept = len(writer)
        keep: list[TracedPair] = []
        for r in rows:
            n += 1
            th, st, tac = r.theorem, r.state, r.tactic
            if r.depth is None:
                r.depth = 0
            if r.source is None:
                r.source = goedel
            ix = theorem_ix.get(th)
            if ix is None:
                ix = theorem_ix[th] = len(good)
                theorem_len.append(len(orjson.dumps(th)) - 2)
                good.append(0)
                first_line.append(n)
            t = tactics.get(tac)
            if t is None:
                t = tactics[tac] = (len(tactics), _tactic_flags(tac))
            tflags = t[1]
            # contamination: BANNED_TACTIC_WORDS in the tactic or BANNED_STATE_WORDS in the state
            st_sorry = "sorry" in st
            cont = st_sorry or tflags & _T_CONTAMINATED
            if cont:
                n_contaminated += 1
                if th not in contaminated:
                    contaminated[th] = n
                if len(contamination_ex) < EXAMPLES:
                    contamination_ex.append(f"{loc}{n}: {th}: tactic {tac[:60]!r}, state {st[:60]!r}")
            # suspicious axioms, looked for in the state only when a shorter word is there
            if tflags & _T_ANY_AXIOM or st_sorry or "decide" in st or "ofReduceBool" in st:
                for ax, bit in _T_AXIOM.items():
                    if tflags & bit or ax in st:
                        axioms[ax] += 1
            # malformed, first reason wins (DuckDB's trim: `data.pairs.duckdb_blank`)
            if not st or (st[0] == " " and not st.strip(zs)):
                why = "empty_state"
            elif st[:8] == "no goals" or (st[0] == " " and st.lstrip(zs)[:8] == "no goals"):
                why = "no_goals_state"
            elif turnstile not in st:
                why = "no_turnstile"
            elif tflags & _T_BLANK:
                why = "empty_tactic"
            else:
                why = None
            h = hash((th, r.depth, st, tac))
            first = seen.setdefault(h, n)
            if first != n:  # a copy of an earlier line (confirmed at the end: the hash could collide)
                copies.append((n, first, (th, r.depth, st, tac)))
                if len(duplicate_ex) < EXAMPLES:
                    duplicate_ex.append(f"{loc}{n}: {th}: duplicate of an earlier pair")
            if why is not None:
                malformed[why] += 1
                if len(malformed_ex) < EXAMPLES:
                    malformed_ex.append(f"{loc}{n}: {th}: {why}")
            elif first == n:
                good[ix] = 1
                if not cont:
                    keep.append(r)
                    written_lines.append(n)
                    writer.theorem_id.append(ix)
                    writer.tactic_id.append(t[0])
                    sid = source_ix.get(r.source)
                    if sid is None:
                        sid = source_ix[r.source] = len(source_ix)
                    writer.source_id.append(sid)
                    writer.depth.append(r.depth)
                    writer.depth_null.append(0)
                    continue
            if first == n:
                unwritten[n] = (th, r.depth, st, tac)
        if keep:
            encoded = _ENCODER.encode_lines(keep)
            lines = encoded.split(b"\n")
            lines.pop()
            if len(theorem_len_arr) < len(theorem_len):
                theorem_len_arr = np.array(theorem_len, dtype=np.int64)
            tid = np.frombuffer(writer.theorem_id[first_kept:], dtype=np.int32)
            writer.add_block(EncodedBlock.of(lines, theorem_len_arr[tid], data=encoded))
    view.release()
    del data
    if copies and not _copies_confirmed(copies, unwritten, written_lines, writer.blocks):
        return None
    writer.tactic_ids.update((tac, t[0]) for tac, t in tactics.items())
    dropped = [{"theorem": th, "reason": "contaminated (sorry/admit/cheat/sorryAx)", "first_line": f"{loc}{line}"}
               for th, line in contaminated.items()]
    # theorems that lost every pair to the malformed/duplicate rules, in first-line order
    dropped += [{"theorem": th, "reason": "no well-formed pair left", "first_line": f"{loc}{first_line[ix]}"}
                for th, ix in theorem_ix.items() if not good[ix] and th not in contaminated]
    result = CleanPoolResult(
        traced_pairs=n, traced_theorems=len(theorem_ix), bad_lines=0, bad_line_examples=[],
        contaminated_pairs=n_contaminated, contaminated_theorems=len(contaminated),
        contamination_examples=contamination_ex,
        suspicious_axiom_mentions={ax: c for ax, c in axioms.items() if c},
        malformed=malformed, malformed_examples=malformed_ex, duplicate_pairs=len(copies),
        duplicate_examples=duplicate_ex, clean_pairs=0,
        clean_theorems=sum(1 for th, ix in theorem_ix.items() if good[ix] and th not in contaminated),
        dropped_theorems=dropped)
    return writer, result, set(contaminated)


def _copies_confirmed(copies: list[tuple[int, int, tuple]], unwritten: dict[int, tuple], written_lines: array,
                      blocks: list[EncodedBlock]) -> bool:
    """Every hash match is the same pair as its first line (pool lines decoded back)."""
    lines = np.frombuffer(written_lines, dtype=np.int64) if len(written_lines) else np.zeros(0, np.int64)
    bounds = np.cumsum([0] + [len(b) for b in blocks])
    for _, first, key in copies:
        earlier = unwritten.get(first)
        if earlier is None:
            row = int(np.searchsorted(lines, first))
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
