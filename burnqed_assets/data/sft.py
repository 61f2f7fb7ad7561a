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

The pairs are read through their `data.pairs` index: states and tactics stay the escaped JSON
text they are in the input files, are compared and hashed as such (the escaping is one-to-one),
and are copied into the output lines as they are, with the escaped prompt prefix and suffix
around them; nothing is parsed or re-encoded. The writer measures on the lines it writes what
the split checks (Task 0.6) look for and records it beside the split (`SFT_SPLIT_CHECK_FILE`);
`verify_split` returns that record while train/val still have the size and mtime it names, and
re-reads both files otherwise.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from functools import partial
from itertools import chain, count, repeat
from operator import methodcaller
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from burnqed_assets.data.io import (
    atomic_open,
    atomic_path,
    forked_workers,
    pwrite_all,
    read_json,
    run_forked,
    write_json,
)
from burnqed_assets.data.pairs import DUCKDB_TRIM_CHARS, PairTable, json_bytes, json_text, read_pairs, text_of
from burnqed_assets.data.prompt import PROMPT_PREFIX, PROMPT_SUFFIX
from burnqed_assets.data.schema import GOEDEL_SOURCE, SOURCE_PREFIX
from burnqed_assets.paths import SFT_SPLIT_CHECK_FILE, SFT_STATS_FILE, SFT_TRAIN_FILE, SFT_VAL_FILE

PAIR_COLUMNS = {"theorem": "VARCHAR", "state": "VARCHAR", "tactic": "VARCHAR", "depth": "BIGINT", "source": "VARCHAR"}
PAIR_REQUIRED = ("theorem", "state", "tactic", "source")
_BARE = re.compile(r"^[a-z_]+::")
_LAST_COMPONENT = re.compile(r"([^.]+)\Z")  # RE2's `([^.]+)$`: `$` is the end of the text
_EXAMPLES = 20
_WRITE_BYTES_PER_WORKER = 16 << 20  # a split file's share per writing process, at least
_HEXDIGEST = methodcaller("hexdigest")


# ----------------------------------------------------------------------------- results


@dataclass
class SourceSplit:
    train_pairs: int = 0
    val_pairs: int = 0
    train_theorems: int = 0
    val_theorems: int = 0

    @property
    def pairs(self) -> int:
        return self.train_pairs + self.val_pairs

    @property
    def theorems(self) -> int:
        return self.train_theorems + self.val_theorems

    def as_dict(self) -> dict[str, int]:
        return {**asdict(self), "pairs": self.pairs, "theorems": self.theorems}


@dataclass
class SftDropped:
    duplicate_pairs: int
    duplicate_pairs_across_theorems: int  # later copies under another theorem (often another source)
    contaminated_theorems: int
    contaminated_theorem_names: list[str]  # first 20, sorted
    sorry_theorems: int
    benchmark_theorems: int
    benchmark_theorem_names: list[str]  # first 20, sorted


@dataclass
class SftDatasetStats:
    """What `build_sft_dataset` wrote (stats.json holds `as_dict()`)."""

    train_pairs: int
    val_pairs: int
    train_theorems: int
    val_theorems: int
    by_source: dict[str, SourceSplit]
    input_pairs: dict[str, int]  # goedel_clean, lean_github
    dropped: SftDropped
    goedel_depth_distribution: dict[str, int]
    seed: int
    val_fraction: float

    @property
    def total_pairs(self) -> int:
        return self.train_pairs + self.val_pairs

    @property
    def sources(self) -> list[str]:
        return sorted(self.by_source)

    def as_dict(self) -> dict[str, Any]:
        return {
            "total_pairs": self.total_pairs,
            "train_pairs": self.train_pairs,
            "val_pairs": self.val_pairs,
            "train_theorems": self.train_theorems,
            "val_theorems": self.val_theorems,
            "by_source": {k: v.as_dict() for k, v in self.by_source.items()},
            "sources": self.sources,
            "input_pairs": self.input_pairs,
            "dropped": asdict(self.dropped),
            "goedel_depth_distribution": self.goedel_depth_distribution,
            "seed": self.seed,
            "val_fraction": self.val_fraction,
        }


@dataclass
class SplitVerification:
    """The Task 0.6 checks on a written split."""

    train_pairs: int
    val_pairs: int
    leaked_theorems: int
    leak_examples: list[str]
    pairs_in_both_splits: int
    pairs_in_both_examples: list[str]
    bad_format_pairs: int
    bad_format_examples: list[str]
    pairs_by_source: dict[str, int]
    unreadable_lines: int
    unreadable_examples: list[str]
    benchmark_theorems: list[str]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ContrastivePoolInfo:
    theorems: int
    depth_threshold: int
    eligible_at_min_depth: int
    fallback_used: bool
    decision: str
    with_statement: int
    excluded_benchmark: int
    excluded_contaminated: int


@dataclass(frozen=True)
class Statement:
    formal_statement: str
    header: str = ""


# ----------------------------------------------------------------------------- helpers


def bare_name(theorem: str) -> str:
    """The theorem name without its source prefix (SQL: regexp_replace(theorem, '^[a-z_]+::', ''))."""
    return _BARE.sub("", theorem, count=1)


def _is_benchmark_name(theorem: str, benchmark: set[str]) -> bool:
    """Benchmark guard of the merge: the bare name, or its last dotted component, is a problem name."""
    bare = bare_name(theorem)
    m = _LAST_COMPONENT.search(bare)
    return bare in benchmark or (m.group(1) if m else "") in benchmark


def _split_check_name(theorem: str, benchmark: set[str]) -> bool:
    """The split check's own reading of the rule (as `_reread_split` applies it)."""
    bare = re.sub(r"^[a-z_]+::", "", theorem)
    return bare in benchmark or bare.rsplit(".", 1)[-1] in benchmark


def _sql_round(x: float) -> int:
    """DuckDB's round() of a double: half away from zero (Python's round() is half to even)."""
    r = math.floor(x)
    return int(r + 1) if x - r >= 0.5 else int(r)


def _prefixed(theorem: str, source: str | None) -> str:
    prefix = SOURCE_PREFIX.get(source) if source is not None else None
    return prefix + theorem if prefix is not None and not theorem.startswith(prefix) else theorem


def _blank(escaped: bytes) -> bool:
    """DuckDB's blank(text) of a string given as its escaped JSON text."""
    return not escaped or (escaped[0] == 0x20 and not text_of(escaped).strip(DUCKDB_TRIM_CHARS))


def _stamp(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


def _benchmark_key(benchmark: set[str] | None) -> str:
    if not benchmark:
        return ""
    return hashlib.sha256("\n".join(sorted(benchmark)).encode()).hexdigest()


class _Merged:
    """The union of the input tables in merge order (every Goedel pair, then every GitHub pair),
    with global theorem ids (names prefixed), tactic ids and source ids."""

    def __init__(self, tables: list[PairTable]):
        self.tables = tables
        # theorem and tactic ids are handed out by `setdefault` from a running counter (C-level
        # passes): unique but not dense, so `names` and `tactics` are indexed by id (with gaps);
        # source ids are dense
        name_ix: dict[str, int] = {}
        source_ix: dict[str | None, int] = {}
        tactic_ix: dict[bytes, int] = {}
        counter = count()
        gids, sids, tids = [], [], []
        for t in tables:
            # the prefixed name depends on (theorem, source): one lookup per combination present
            ns = max(1, len(t.sources))
            combo = t.theorem_id.astype(np.int64) * ns + t.source_id
            present = np.flatnonzero(np.bincount(combo, minlength=len(t.theorems) * ns))
            g = np.zeros(len(t.theorems) * ns, dtype=np.int64)
            s = np.zeros(len(t.theorems) * ns, dtype=np.int64)
            for si, src in enumerate(t.sources):
                here = present[present % ns == si]
                names = [t.theorems[i] for i in (here // ns).tolist()]
                prefix = SOURCE_PREFIX.get(src) if src is not None else None
                if prefix is not None:
                    names = [n if n.startswith(prefix) else prefix + n for n in names]
                g[here] = np.fromiter(map(name_ix.setdefault, names, counter), dtype=np.int64, count=len(names))
                s[here] = source_ix.setdefault(src, len(source_ix))
            tac = np.fromiter(map(tactic_ix.setdefault, t.tactics, counter), dtype=np.int64, count=len(t.tactics))
            gids.append(g[combo])
            sids.append(s[combo])
            tids.append(tac[t.tactic_id] if len(t) else np.zeros(0, np.int64))
        size = next(counter)
        self.names: list[str] = [""] * size  # by theorem id
        for name, i in name_ix.items():
            self.names[i] = name
        self.sources: list[str | None] = list(source_ix)
        self.tactics: list[bytes] = [b""] * size  # escaped JSON texts, by tactic id
        for text, i in tactic_ix.items():
            self.tactics[i] = text
        self.tactic_ids = list(tactic_ix.values())
        self.theorem_ids = list(name_ix.values())
        self.gid = np.concatenate(gids)
        self.sid = np.concatenate(sids)
        self.tac = np.concatenate(tids)
        self.depth = np.concatenate([t.depth for t in tables])
        self.depth_null = np.concatenate([t.depth_null for t in tables])
        self.bounds = np.cumsum([0] + [len(t) for t in tables])

    def __len__(self) -> int:
        return int(self.gid.size)

    def rows(self, k: int) -> slice:
        return slice(int(self.bounds[k]), int(self.bounds[k + 1]))

    def pair(self, o: int) -> tuple[bytes, int]:
        """(state text, tactic id) of merged row `o`: equal pairs, equal values."""
        k = int(np.searchsorted(self.bounds, o, side="right")) - 1
        return self.tables[k].state_json(o - int(self.bounds[k])), int(self.tac[o])


def _states(t: PairTable, rows: np.ndarray | None = None) -> Iterator[bytes]:
    """The escaped state texts of `rows` (all rows by default), sliced in C (no Python loop)."""
    starts, ends = (t.state_start, t.state_end) if rows is None else (t.state_start[rows], t.state_end[rows])
    return map(t.blob.__getitem__, map(slice, starts.tolist(), ends.tolist()))


def _contains(t: PairTable, word: bytes) -> np.ndarray:
    """Per row: its state text contains `word` (one scan of the whole file; ASCII words only)."""
    hit = np.zeros(len(t), dtype=np.bool_)
    pos = t.blob.find(word)
    while pos >= 0:
        r = int(np.searchsorted(t.state_start, pos, side="right")) - 1
        if r >= 0 and pos + len(word) <= t.state_end[r]:
            hit[r] = True
        pos = t.blob.find(word, pos + 1)
    return hit


def _scan(m: _Merged) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per merged row: the pair's hash, whether it is a later copy, the merge ordinal of its
    first copy, and whether it holds a banned word (Gotcha 12)."""
    n = len(m)
    # banned words are ASCII letters, which JSON escaping never touches (and no escape starts
    # one of them), so they are searched in the escaped texts
    banned_tactic = np.zeros(len(m.tactics), dtype=np.bool_)
    joined = b"\x00".join(m.tactics)  # a word found nowhere needs no tactic-by-tactic search
    for word in (b"sorry", b"admit", b"cheat"):
        if word in joined:
            banned_tactic |= np.fromiter(map(bytes.__contains__, m.tactics, repeat(word)), dtype=np.bool_,
                                         count=len(m.tactics))
    banned = banned_tactic[m.tac] if n else np.zeros(0, np.bool_)
    state_hashes = []
    for k, t in enumerate(m.tables):
        banned[m.rows(k)] |= _contains(t, b"sorry")
        state_hashes.append(np.fromiter(map(hash, _states(t)), dtype=np.int64, count=len(t)))
    # one 64-bit key per pair: the state's hash mixed with the tactic id (uint64 wraps around)
    hashes = (np.concatenate(state_hashes).view(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
              + m.tac.astype(np.uint64)).view(np.int64)
    _, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    first_of = first[inverse.reshape(-1)].astype(np.int64)
    later = np.flatnonzero(first_of != np.arange(n))
    dup = np.zeros(n, dtype=np.bool_)
    if later.size:  # confirm each copy against its first: a different pair means the hash collided
        groups: dict[int, dict[tuple[bytes, int], int]] = {}
        for o in later.tolist():
            f = int(first_of[o])
            g = groups.setdefault(f, {m.pair(f): f})
            f = g.setdefault(m.pair(o), o)
            first_of[o] = f
            dup[o] = f != o
    return hashes, dup, first_of, banned


def _escaped(texts: list[str]) -> list[bytes]:
    """The escaped JSON text of each string, from one encoded JSON array split at its '","'
    (inside a JSON string every '"' is escaped, so the separator occurs only between items)."""
    return json_bytes(texts)[2:-2].split(b'","') if texts else []


def _texts_of(escaped: list[bytes]) -> list[str]:
    """The strings of escaped JSON texts, decoded as one JSON array."""
    return orjson.loads(b'["' + b'","'.join(escaped) + b'"]') if escaped else []


def _names_in(names: list[str], ids: Iterable[int]) -> list[str]:
    return sorted(names[i] for i in ids)


# ----------------------------------------------------------------------------- the SFT set


def benchmark_names(paths: Iterable[str | os.PathLike[str]]) -> set[str]:
    """Problem names of miniF2F-style JSONL files (`name` field); missing files are skipped."""
    from burnqed_assets.data import duck

    names: set[str] = set()
    for p in paths:
        if Path(p).is_file():
            con = duck.connect(threads=1)
            duck.load_jsonl(con, p, "bench", {"name": "VARCHAR"}, ("name",))
            names.update(n for (n,) in con.execute("SELECT name FROM bench").fetchall())
    return names


def build_sft_dataset(clean_pairs: str | os.PathLike[str], github_pairs: str | os.PathLike[str],
                      out_dir: str | os.PathLike[str], seed: int = 42, val_fraction: float = 0.05,
                      benchmark: set[str] | None = None, contaminated: Iterable[str] = ()) -> SftDatasetStats:
    """Write train.jsonl, val.jsonl, stats.json and the split-check record under `out_dir`.

    `contaminated`: theorems the decontamination gate matched to a benchmark problem (dropped);
    `benchmark`: miniF2F problem names (dropped, and recorded for `verify_split`).
    """
    out_dir = Path(out_dir)
    gh = Path(github_pairs)
    tables = [read_pairs(clean_pairs, PAIR_REQUIRED),
              read_pairs(gh, PAIR_REQUIRED) if gh.exists() else PairTable.empty(gh)]
    m = _Merged(tables)
    n = len(m)
    hashes, dup, first_of, banned = _scan(m)
    gid, sid = m.gid, m.sid
    n_gid = len(m.names)
    duplicates = int(dup.sum())
    cross_duplicates = int((gid[dup] != gid[first_of[dup]]).sum())
    sorry_ids = np.unique(gid[banned])
    bench_ids = sorted(i for i in m.theorem_ids if _is_benchmark_name(m.names[i], benchmark)) if benchmark else []
    contaminated = set(contaminated)
    contaminated_ids = sorted(i for i in m.theorem_ids if m.names[i] in contaminated) if contaminated else []
    dropped_theorem = np.zeros(n_gid, dtype=np.bool_)
    for ids in (sorry_ids, bench_ids, contaminated_ids):
        dropped_theorem[np.asarray(ids, dtype=np.int64)] = True
    keep = ~dup & ~dropped_theorem[gid] if n else np.zeros(0, np.bool_)
    # theorem-level split: per source (in name order), the round(val_fraction * n) theorems
    # (>= 1 when n >= 2) first by md5(seed|theorem), then by name
    val_theorem = np.zeros(n_gid, dtype=np.bool_)
    for s in sorted(range(len(m.sources)), key=lambda s: m.sources[s]):
        ids = np.flatnonzero(np.bincount(gid[keep & (sid == s)], minlength=n_gid)).tolist()  # distinct theorems
        k = 0 if len(ids) < 2 else max(1, _sql_round(len(ids) * float(val_fraction)))
        if k:
            names = [m.names[i] for i in ids]
            keys = list(map(_HEXDIGEST, map(hashlib.md5, map(str.encode, map(f"{seed}|".__add__, names)))))
            # the k smallest (md5, name): a partition finds the k-th key, the few candidates are sorted
            arr = np.array(keys, dtype="S32")
            kth = np.partition(arr, k - 1)[k - 1] if k < arr.size else arr.max()
            candidates = np.flatnonzero(arr <= kth).tolist()
            ranked = sorted((keys[i], names[i], ids[i]) for i in candidates)[:k]
            val_theorem[[i for _, _, i in ranked]] = True
    is_val = keep & val_theorem[gid]
    out_dir.mkdir(parents=True, exist_ok=True)
    check = _write_split(m, keep, is_val, hashes, out_dir, benchmark)
    # per source and split: pairs and distinct theorems (over kept rows)
    by_source: dict[str, SourceSplit] = {}
    for s in sorted((s for s in range(len(m.sources)) if (keep & (sid == s)).any()), key=lambda s: m.sources[s]):
        d = by_source[m.sources[s]] = SourceSplit()
        for flag, rows in (("train", keep & ~is_val & (sid == s)), ("val", is_val & (sid == s))):
            setattr(d, f"{flag}_pairs", int(rows.sum()))
            setattr(d, f"{flag}_theorems", int(np.count_nonzero(np.bincount(gid[rows], minlength=n_gid))))
    goedel = [s for s, name in enumerate(m.sources) if name == GOEDEL_SOURCE]
    goedel_rows = keep & np.isin(sid, goedel)
    depths, counts = np.unique(np.where(m.depth_null, -1, m.depth)[goedel_rows], return_counts=True)
    stats = SftDatasetStats(
        train_pairs=check.train_pairs, val_pairs=check.val_pairs,
        train_theorems=sum(d.train_theorems for d in by_source.values()),
        val_theorems=sum(d.val_theorems for d in by_source.values()),
        by_source=by_source,
        input_pairs={"goedel_clean": len(tables[0]), "lean_github": len(tables[1])},
        dropped=SftDropped(
            duplicate_pairs=duplicates, duplicate_pairs_across_theorems=cross_duplicates,
            contaminated_theorems=len(contaminated_ids),
            contaminated_theorem_names=_names_in(m.names, contaminated_ids)[:_EXAMPLES],
            sorry_theorems=int(sorry_ids.size), benchmark_theorems=len(bench_ids),
            benchmark_theorem_names=_names_in(m.names, bench_ids)[:_EXAMPLES]),
        goedel_depth_distribution={str(k): int(v) for k, v in zip(depths.tolist(), counts.tolist())},
        seed=seed, val_fraction=val_fraction)
    write_json(out_dir / SFT_STATS_FILE, stats.as_dict())
    return stats


def _write_split(m: _Merged, keep: np.ndarray, is_val: np.ndarray, hashes: np.ndarray, out_dir: Path,
                 benchmark: set[str] | None) -> SplitVerification:
    """Write the kept rows into train/val (merge order) and measure the Task 0.6 checks on them.

    A line is `head + state + mid + tactic + tail`, where the tail depends on (theorem, source)
    only; the pieces are gathered with C-level iterators, so no Python code runs per line."""
    head = b'{"prompt":"' + json_text(PROMPT_PREFIX)
    mid = json_text(PROMPT_SUFFIX) + b'","completion":"'
    ns = max(1, len(m.sources))
    combo = m.gid * ns + m.sid
    present = np.flatnonzero(np.bincount(combo[keep])) if keep.any() else np.zeros(0, np.int64)
    names = _escaped([m.names[g] for g in (present // ns).tolist()])
    sources = _escaped([m.sources[s] for s in range(len(m.sources))])
    tails = {c: b'","theorem":"' + name + b'","source":"' + sources[c % ns] + b'"}\n'
             for c, name in zip(present.tolist(), names)}
    train_path, val_path = out_dir / SFT_TRAIN_FILE, out_dir / SFT_VAL_FILE
    tail_len = np.zeros(int(present.max()) + 1 if present.size else 0, dtype=np.int64)
    tail_len[present] = [len(tails[c]) for c in present.tolist()]
    tactic_len = np.fromiter(map(len, m.tactics), dtype=np.int64, count=len(m.tactics))
    for path, rows_of_split in ((train_path, keep & ~is_val), (val_path, is_val)):
        # every line's length is known before it is built: the file is cut into shares of about
        # equal bytes, each built and written at its own offset by its own process
        rows = [np.flatnonzero(rows_of_split[m.rows(k)]) for k in range(len(m.tables))]  # the file's lines, in order
        first_line = np.cumsum([0] + [r.size for r in rows])  # of each table's rows in the file
        ends = np.cumsum(np.concatenate([
            len(head) + len(mid) + t.state_end[r] - t.state_start[r] + tactic_len[m.tac[int(m.bounds[k]) + r]]
            + tail_len[combo[int(m.bounds[k]) + r]] for k, (t, r) in enumerate(zip(m.tables, rows))]))
        total = int(ends[-1]) if ends.size else 0
        workers = forked_workers(total, _WRITE_BYTES_PER_WORKER)
        cuts = [0, *np.searchsorted(ends, np.arange(1, workers) * total // workers).tolist(), ends.size]

        def write_share(a: int, b: int) -> None:
            at = int(ends[a - 1]) if a else 0
            for c in range(a, b, 16384):
                d = min(b, c + 16384)
                data = b"".join(lines_of(k, rows[k][max(c, lo) - lo: min(d, hi) - lo])
                                for k, (lo, hi) in enumerate(zip(first_line[:-1].tolist(), first_line[1:].tolist()))
                                if max(c, lo) < min(d, hi))
                pwrite_all(fd, data, at)
                at += len(data)

        def lines_of(k: int, block: np.ndarray) -> bytes:
            base = int(m.bounds[k])
            pieces = zip(repeat(head), _states(m.tables[k], block), repeat(mid),
                         map(m.tactics.__getitem__, m.tac[base + block].tolist()),
                         map(tails.__getitem__, combo[base + block].tolist()))
            return b"".join(chain.from_iterable(pieces))

        with atomic_path(path) as tmp:
            fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC)
            try:
                os.ftruncate(fd, total)
                run_forked([partial(write_share, a, b) for a, b in zip(cuts, cuts[1:]) if b > a])
            finally:
                os.close(fd)
    return _measured_checks(m, keep, is_val, hashes, benchmark, train_path, val_path)


def _measured_checks(m: _Merged, keep: np.ndarray, is_val: np.ndarray, hashes: np.ndarray,
                     benchmark: set[str] | None, train_path: Path, val_path: Path) -> SplitVerification:
    """The split checks measured on the rows just written, recorded beside the split."""
    train = keep & ~is_val
    n_gid = len(m.names)
    in_train = np.bincount(m.gid[train], minlength=n_gid) > 0
    in_val = np.bincount(m.gid[is_val], minlength=n_gid) > 0
    leak = _names_in(m.names, np.flatnonzero(in_train & in_val).tolist())
    # the same (prompt, completion) in both files = the same (state, tactic): hash, then compare
    val_rows = np.flatnonzero(is_val)
    candidates = np.flatnonzero(train & np.isin(hashes, hashes[val_rows]))
    both: set[tuple[bytes, int]] = set()
    if candidates.size:
        val_pairs = {m.pair(int(o)) for o in val_rows[np.isin(hashes[val_rows], hashes[candidates])].tolist()}
        both = {p for p in (m.pair(int(o)) for o in candidates.tolist()) if p in val_pairs}
    both_examples = []
    if both:
        for o in val_rows.tolist():
            pair = m.pair(o)
            if pair in both and len(both_examples) < 10:
                both_examples.append(f"{m.names[int(m.gid[o])]}: {text_of(m.tactics[pair[1]])[:60]!r}")
    # a blank completion fails the format check (the prompt is built with its prefix and suffix)
    blank_tactic = np.array([_blank(t) for t in m.tactics], dtype=np.bool_)
    bad = []
    for path, rows in ((train_path, np.flatnonzero(train)), (val_path, val_rows)):
        if rows.size:
            bad += [f"{path}:{line + 1}" for line in np.flatnonzero(blank_tactic[m.tac[rows]]).tolist()]
    kept_sources = m.sid[keep]
    by_source = {m.sources[s]: int((kept_sources == s).sum())
                 for s in sorted(set(kept_sources.tolist()), key=lambda s: m.sources[s])}
    names = [m.names[i] for i in np.flatnonzero(in_train | in_val).tolist()]
    result = SplitVerification(
        train_pairs=int(train.sum()), val_pairs=int(val_rows.size), leaked_theorems=len(leak),
        leak_examples=leak[:_EXAMPLES], pairs_in_both_splits=len(both), pairs_in_both_examples=both_examples,
        bad_format_pairs=len(bad), bad_format_examples=bad[:_EXAMPLES], pairs_by_source=by_source,
        unreadable_lines=0, unreadable_examples=[],
        benchmark_theorems=sorted(t for t in names if _split_check_name(t, benchmark)) if benchmark else [])
    write_json(train_path.parent / SFT_SPLIT_CHECK_FILE, {
        "result": result.as_dict(), "benchmark_key": _benchmark_key(benchmark),
        "files": {SFT_TRAIN_FILE: _stamp(train_path), SFT_VAL_FILE: _stamp(val_path)}})
    return result


def verify_split(out_dir: str | os.PathLike[str], benchmark: set[str] | None = None,
                 reread: bool = False) -> SplitVerification:
    """Task 0.6 on a written split: leak, prompt format, sources, benchmark names.

    The writer's record of the split it wrote answers while train/val are the files it names
    (same size and mtime) and the benchmark names are the ones it checked; otherwise (or with
    `reread`) both files are read again and every check runs on what they hold.
    """
    out_dir = Path(out_dir)
    record_path = out_dir / SFT_SPLIT_CHECK_FILE
    if not reread and record_path.is_file():
        try:
            record = read_json(record_path)
            fresh = all(_stamp(out_dir / name) == record["files"][name] for name in (SFT_TRAIN_FILE, SFT_VAL_FILE))
            if fresh and record["benchmark_key"] == _benchmark_key(benchmark):
                return SplitVerification(**record["result"])
        except (OSError, KeyError, TypeError, ValueError):
            pass  # an unreadable record: read the split itself
    return _reread_split(out_dir, benchmark)


def _reread_split(out_dir: Path, benchmark: set[str] | None) -> SplitVerification:
    """Independent re-read of train/val; each file is read once, every check runs on the two tables."""
    from burnqed_assets.data import duck
    from burnqed_assets.data.io import LineReport

    con = duck.connect(input_bytes=duck.file_bytes(out_dir / SFT_TRAIN_FILE, out_dir / SFT_VAL_FILE))
    cols = {"prompt": "VARCHAR", "completion": "VARCHAR", "theorem": "VARCHAR", "source": "VARCHAR"}
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
        bench_hits = sorted(t for t in names if _split_check_name(t, benchmark))
    con.execute("DROP TABLE train; DROP TABLE val; DROP TABLE leak; DROP TABLE pairs_both; DROP TABLE by_source")
    return SplitVerification(
        train_pairs=n_train, val_pairs=n_val, leaked_theorems=n_leak, leak_examples=leak,
        pairs_in_both_splits=n_pairs_both, pairs_in_both_examples=pairs_both, bad_format_pairs=n_bad_format,
        bad_format_examples=[f"{f}:{n}" for f, n in bad_format],
        pairs_by_source={k: int(v) for k, v in sources.items()}, unreadable_lines=report.bad_count,
        unreadable_examples=[str(b) for b in report.bad[:10]], benchmark_theorems=bench_hits)


# ----------------------------------------------------------------------------- statements, pool


def load_statements(statement_files: Iterable[Path] = (), proof_files: Iterable[Path] = ()) -> dict[str, Statement]:
    """Bare theorem name -> its statement and header.

    `statement_files`: JSONL `{name, header, formal_statement}`; `proof_files`: Goedel-style JSONL
    `{problem_id, full_proof}`, split at `theorem <name>` (header before, statement up to `:= by`).
    """
    from burnqed_assets.data import duck

    out: dict[str, Statement] = {}
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
                out[name] = Statement(formal_statement=proof[m.start(): m.end() + by.end()], header=header)
    for p in statement_files:
        if not Path(p).is_file():
            continue
        con = duck.connect(threads=1)
        duck.load_jsonl(con, p, "st", {"name": "VARCHAR", "header": "VARCHAR", "formal_statement": "VARCHAR"},
                        ("name", "formal_statement"))
        for name, header, stmt in con.execute("SELECT name, header, formal_statement FROM st").fetchall():
            out[name] = Statement(formal_statement=stmt, header=header or "")
    return out


def build_contrastive_pool(clean_pairs: str | os.PathLike[str], dest: str | os.PathLike[str],
                           min_depth: int = 3, fallback_depth: int = 2, min_theorems: int = 3000,
                           statements: Mapping[str, Statement] | None = None,
                           benchmark: set[str] | None = None, contaminated: Iterable[str] = ()) -> ContrastivePoolInfo:
    """Goedel theorems deep enough for contrastive search (plan 0.6); lower the bar if too few.

    Per theorem: its deepest depth, its pair count and its root state (the state of its
    shallowest pair, the first in the file among equals). Benchmark names and the theorems
    the decontamination gate matched (`contaminated`) are left out."""
    contaminated = set(contaminated)
    t = read_pairs(clean_pairs, ("theorem", "state", "tactic"))
    goedel_ids = [i for i, s in enumerate(t.sources) if s is None or s == GOEDEL_SOURCE]
    rows = np.flatnonzero(np.isin(t.source_id, goedel_ids))
    tid, depth = t.theorem_id[rows], t.depth_or(0)[rows]
    # theorem, then depth, then file order: the first row of each theorem is its root
    order = np.lexsort((rows, depth, tid))
    tid_sorted = tid[order]
    starts = np.flatnonzero(np.r_[True, tid_sorted[1:] != tid_sorted[:-1]]) if rows.size else np.zeros(0, np.int64)
    ends = np.r_[starts[1:], tid_sorted.size].astype(np.int64)
    theorem_of = tid_sorted[starts]
    max_depth = depth[order][ends - 1] if rows.size else np.zeros(0, np.int64)
    num_pairs = ends - starts
    root_row = rows[order[starts]]
    at_min = int((max_depth >= min_depth).sum())
    threshold = min_depth if at_min >= min_theorems else fallback_depth
    decision = (f"depth >= {min_depth}: {at_min} theorems (>= {min_theorems})" if threshold == min_depth else
                f"depth >= {min_depth} gave {at_min} < {min_theorems} theorems: lowered to depth >= {fallback_depth}")
    statements = statements or {}
    selected = np.flatnonzero(max_depth >= threshold)
    names = [t.theorems[i] for i in theorem_of[selected].tolist()]
    depths, counts, roots = max_depth[selected].tolist(), num_pairs[selected].tolist(), root_row[selected].tolist()
    order = sorted(range(len(names)), key=lambda k: (-depths[k], names[k]))
    entries, excluded_benchmark, excluded_contaminated = [], 0, 0
    keep = []
    for k in order:
        bare = bare_name(names[k])
        if benchmark and bare in benchmark:
            excluded_benchmark += 1
        elif names[k] in contaminated:
            excluded_contaminated += 1
        else:
            keep.append(k)
    # the root states, decoded in one pass (a JSON array of their escaped texts)
    root_states = _texts_of([t.state_json(roots[k]) for k in keep])
    for k, root in zip(keep, root_states):
        st = statements.get(bare_name(names[k]))
        entries.append({"theorem": names[k], "max_depth": depths[k], "num_pairs": counts[k], "root_state": root,
                        "source": GOEDEL_SOURCE, "formal_statement": st.formal_statement if st else None,
                        "header": st.header if st else None})
    # orjson writes the bytes of write_json's json.dumps(indent=2, ensure_ascii=False) for these
    # str/int/None values (tested), ~5x faster: the pool holds a root state per deep theorem
    with atomic_open(dest, "wb") as fh:
        fh.write(orjson.dumps(entries, option=orjson.OPT_INDENT_2) + b"\n")
    return ContrastivePoolInfo(
        theorems=len(entries), depth_threshold=int(threshold), eligible_at_min_depth=at_min,
        fallback_used=threshold != min_depth, decision=decision,
        with_statement=sum(e["formal_statement"] is not None for e in entries),
        excluded_benchmark=excluded_benchmark, excluded_contaminated=excluded_contaminated)
