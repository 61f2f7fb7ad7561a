"""Chunked, resumable tracing of migrated proofs into (state, tactic) pairs (plan Task M.5).

- Theorems are cut into chunks of `chunk_size` (500 in full). A finished chunk leaves
  `chunk_NNNNN.jsonl` + `chunk_NNNNN.done.json` (its theorem list and counts) under the
  checkpoint folder, both written atomically; a re-run skips every chunk whose marker matches
  its theorem list, and the output file is rebuilt from the chunk files in order, so a crash
  at any point loses or duplicates no rows.
- Each theorem gets `timeout_s` (120 s in full; `signal.alarm` inside the worker), workers are
  min(16, 0.75 × cpu) (Gotcha 15), and leftover Lean processes of this Python process are
  killed at every chunk boundary (Gotcha 10).
- A theorem whose proof or any traced tactic/state holds a banned construct (verifier's static
  scan, plan M.6 words) is rejected whole (Gotcha 12).

Tracers: `ReplTraceJob` (the default, both profiles: the REPL's `allTactics` output through
the warm worker pool; in the demo the REPL is the stand-in), `LeanDojoTracer` (the
alternative: lean-dojo, the `full` extra, traces the migrated Lake project once) and
`RecordedTracer` (a test helper: recorded rows, no REPL).
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from burnqed_assets.data.io import LineReport, atomic_open, iter_jsonl, write_json
from burnqed_assets.data.schema import BANNED_STATE_WORDS, BANNED_TACTIC_WORDS, GOEDEL_SOURCE, prefixed
from burnqed_assets.lean.proof_text import NO_GOALS, parse_proof_file
from burnqed_assets.lean.verify import static_scan, strip_comments_and_strings

log = logging.getLogger(__name__)

LEAN_PROCESS_NAMES = ("lean", "lake", "repl")


class TraceTimeout(Exception):
    pass


class TraceFailure(Exception):
    """Tracing a theorem failed (its message is recorded with the theorem)."""


@dataclass
class TheoremOutcome:
    theorem: str
    status: str  # ok | failed | rejected | timeout
    rows: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""
    seconds: float = 0.0


Tracer = Callable[[dict[str, Any]], list[dict[str, Any]]]  # {name, full_proof} -> pairs


# ---------------------------------------------------------------------------- filters
def banned_reason(theorem: dict[str, Any], rows: Sequence[dict[str, Any]]) -> str | None:
    """Why a theorem must be rejected whole, or None."""
    found = static_scan(theorem.get("full_proof") or "")
    if found:
        return f"proof: {found[0]}"
    for r in rows:
        tactic = strip_comments_and_strings(str(r.get("tactic", "")))
        hit = next((w for w in BANNED_TACTIC_WORDS if w in tactic), None) or (
            static_scan(tactic)[0].code if static_scan(tactic) else None)
        if hit:
            return f"tactic at depth {r.get('depth')}: banned {hit!r}"
        for key in ("state", "state_after"):
            state = str(r.get(key) or "")
            word = next((w for w in BANNED_STATE_WORDS if w in state), None)
            if word:
                return f"{key} at depth {r.get('depth')}: contains {word!r}"
    return None


# ---------------------------------------------------------------------------- one theorem
def _alarm_handler(signum: int, frame: Any) -> None:
    raise TraceTimeout()


def trace_one(tracer: Tracer, theorem: dict[str, Any], timeout_s: float) -> TheoremOutcome:
    """Trace one theorem under a `signal.alarm` timeout (when on the main thread)."""
    name = theorem["name"]
    t0 = time.monotonic()
    use_alarm = threading.current_thread() is threading.main_thread() and timeout_s > 0
    old = signal.signal(signal.SIGALRM, _alarm_handler) if use_alarm else None
    if use_alarm:
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        rows = tracer(theorem)
        reason = banned_reason(theorem, rows)
        if reason:
            return TheoremOutcome(name, "rejected", reason=reason, seconds=time.monotonic() - t0)
        if not rows:
            return TheoremOutcome(name, "failed", reason="tracer returned no pairs", seconds=time.monotonic() - t0)
        return TheoremOutcome(name, "ok", rows=rows, seconds=time.monotonic() - t0)
    except TraceTimeout:
        return TheoremOutcome(name, "timeout", reason=f"exceeded {timeout_s:.0f}s", seconds=time.monotonic() - t0)
    except Exception as exc:  # noqa: BLE001 - one theorem's failure never stops the chunk
        return TheoremOutcome(name, "failed", reason=f"{type(exc).__name__}: {exc}"[:500],
                              seconds=time.monotonic() - t0)
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)


def _worker(args: tuple[Tracer, dict[str, Any], float]) -> TheoremOutcome:
    return trace_one(*args)


# ---------------------------------------------------------------------------- processes
def cleanup_lean_processes(names: Iterable[str] = LEAN_PROCESS_NAMES) -> int:
    """Kill Lean/lake/REPL processes descended from THIS process (zombies of crashed workers)."""
    killed = 0
    try:
        children = psutil.Process().children(recursive=True)
    except psutil.NoSuchProcess:  # pragma: no cover
        return 0
    wanted = tuple(names)
    for child in children:
        try:
            pname = child.name().lower()
            if child.status() == psutil.STATUS_ZOMBIE:
                child.wait(timeout=0)
                killed += 1
            elif any(pname.startswith(n) for n in wanted):
                child.kill()
                killed += 1
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.TimeoutExpired):
            pass
    return killed


def default_workers(cpu_count: int | None = None) -> int:
    cpus = cpu_count or mp.cpu_count()
    return max(1, min(16, int(cpus * 0.75)))


# ---------------------------------------------------------------------------- the corpus
@dataclass(frozen=True)
class TheoremFailure:
    """A theorem that was not traced (failed, timed out, or rejected whole), with the reason."""

    theorem: str
    status: str  # failed | timeout | rejected
    reason: str

    def as_row(self) -> dict[str, str]:
        return {"theorem": self.theorem, "status": self.status, "reason": self.reason}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> TheoremFailure:
        return cls(str(row["theorem"]), str(row["status"]), str(row["reason"]))

    def __str__(self) -> str:
        return f"{self.theorem}: {self.status}: {self.reason}"


@dataclass(frozen=True)
class TraceChunkDone:
    """The done marker of one tracing chunk (written after its rows file): which theorems it
    holds (`chunk_id`) and its counts."""

    chunk_id: str
    theorems: int
    ok: int = 0
    failed: int = 0
    timeout: int = 0
    rejected: int = 0
    rows: int = 0
    failures: tuple[TheoremFailure, ...] = ()
    zombies_killed: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"chunk_id": self.chunk_id, "theorems": self.theorems, "ok": self.ok, "failed": self.failed,
                "timeout": self.timeout, "rejected": self.rejected, "rows": self.rows,
                "failures": [f.as_row() for f in self.failures], "zombies_killed": self.zombies_killed}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TraceChunkDone:
        return cls(chunk_id=str(data["chunk_id"]), theorems=int(data.get("theorems", 0)), ok=int(data.get("ok", 0)),
                   failed=int(data.get("failed", 0)), timeout=int(data.get("timeout", 0)),
                   rejected=int(data.get("rejected", 0)), rows=int(data.get("rows", 0)),
                   failures=tuple(TheoremFailure.from_row(f) for f in data.get("failures") or ()),
                   zombies_killed=int(data.get("zombies_killed", 0)))

    def counts(self) -> str:
        return (f"ok {self.ok}, failed {self.failed}, timeout {self.timeout}, rejected {self.rejected}, "
                f"rows {self.rows}")


@dataclass
class TraceRun:
    output: Path
    theorems: int = 0
    ok: int = 0
    failed: int = 0
    timeouts: int = 0
    rejected: int = 0
    rows: int = 0
    chunks: int = 0
    chunks_skipped: int = 0
    zombies_killed: int = 0
    failures: list[TheoremFailure] = field(default_factory=list)
    missing_chunks: list[int] = field(default_factory=list)  # not finished (yet)
    chunk_errors: list[str] = field(default_factory=list)  # chunks that failed in this run

    @property
    def failure_rate(self) -> float:
        """Failed or timed-out theorems over attempted (rejected cheats are not tracing failures)."""
        attempted = self.theorems - self.rejected
        return (self.failed + self.timeouts) / attempted if attempted else 0.0

    def as_metadata(self) -> dict[str, Any]:
        return {"theorems": self.theorems, "traced_ok": self.ok, "failed": self.failed, "timeouts": self.timeouts,
                "rejected_banned": self.rejected, "rows": self.rows, "chunks": self.chunks,
                "chunks_skipped_resumed": self.chunks_skipped, "zombies_killed": self.zombies_killed,
                "failure_rate": round(self.failure_rate, 6), "missing_chunks": list(self.missing_chunks),
                "chunk_errors": list(self.chunk_errors)}


def _chunk_id(names: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(names).encode("utf-8")).hexdigest()[:16]


def plan_chunks(theorems: Sequence[dict[str, Any]], chunk_size: int) -> list[list[dict[str, Any]]]:
    """Consecutive chunks of `chunk_size` theorems (chunk i = Dagster partition i)."""
    return [list(theorems[s:s + chunk_size]) for s in range(0, len(theorems), chunk_size)]


def chunk_files(checkpoint_dir: Path, index: int) -> tuple[Path, Path]:
    """(rows file, done marker) of chunk `index`."""
    return checkpoint_dir / f"chunk_{index:05d}.jsonl", checkpoint_dir / f"chunk_{index:05d}.done.json"


def finished_marker(checkpoint_dir: Path, index: int, chunk: Sequence[dict[str, Any]]) -> TraceChunkDone | None:
    """The marker of a chunk finished with exactly these theorems, else None."""
    rows_path, done_path = chunk_files(checkpoint_dir, index)
    marker = _read_marker(done_path)
    if marker is not None and marker.chunk_id == _chunk_id([t["name"] for t in chunk]) and rows_path.exists():
        return marker
    return None


def trace_chunk(index: int, chunk: Sequence[dict[str, Any]], tracer: Any, checkpoint_dir: Path,
                workers: int = 1, timeout_s: float = 120.0, pool: Any = None) -> tuple[TraceChunkDone, bool]:
    """Trace one chunk into its checkpoint files unless it is already finished; (marker, skipped).

    The marker is written last, so a crash mid-chunk leaves no marker and the chunk is traced
    again, whole, next time. With `pool` (a `LeanPool`), `tracer` is a pool job (`ReplTraceJob`)
    run on the pool's warm workers (their own per-theorem timeouts, no signals); without it,
    `tracer(theorem)` runs under `trace_one`'s alarm."""
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    marker = finished_marker(checkpoint_dir, index, chunk)
    if marker is not None:
        return marker, True
    rows_path, done_path = chunk_files(checkpoint_dir, index)
    if pool is not None:
        outcomes = _trace_chunk_pool(chunk, tracer, pool)
    else:
        outcomes = _trace_chunk(chunk, tracer, workers, timeout_s)
    counts = {"ok": 0, "failed": 0, "timeout": 0, "rejected": 0, "rows": 0}
    failures = []
    with atomic_open(rows_path) as fh:
        for o in outcomes:
            counts[o.status] += 1
            if o.status == "ok":
                for r in o.rows:
                    fh.write(json.dumps(r, ensure_ascii=False) + "\n")
                counts["rows"] += len(o.rows)
            else:
                failures.append(TheoremFailure(o.theorem, o.status, o.reason))
    # Chunk boundary: no zombie survives into the next chunk. A pool supervises (and keeps
    # warm) its own REPLs, so there is nothing of ours to sweep then.
    killed = cleanup_lean_processes() if pool is None else 0
    marker = TraceChunkDone(chunk_id=_chunk_id([t["name"] for t in chunk]), theorems=len(chunk), **counts,
                            failures=tuple(failures), zombies_killed=killed)
    write_json(done_path, marker.as_json())  # written last: its presence means the rows file is complete
    return marker, False


def merge_chunks(chunks: Sequence[Sequence[dict[str, Any]]], checkpoint_dir: Path, output: Path) -> TraceRun:
    """Rebuild `output` from every finished chunk, in chunk order (atomic), and total their
    markers. Chunks not finished yet are listed in `missing_chunks`, never half-included;
    stale chunk files of an earlier, longer corpus are not read."""
    run = TraceRun(output=output)
    with atomic_open(output) as out:
        for index, chunk in enumerate(chunks):
            run.chunks += 1
            marker = finished_marker(checkpoint_dir, index, chunk)
            if marker is None:
                run.missing_chunks.append(index)
                continue
            _add_counts(run, marker)
            with open(chunk_files(checkpoint_dir, index)[0], encoding="utf-8") as fh:
                for line in fh:
                    out.write(line)
    return run


def trace_corpus(theorems: Sequence[dict[str, Any]], tracer: Any, output: Path, checkpoint_dir: Path,
                 chunk_size: int = 500, workers: int = 1, timeout_s: float = 120.0,
                 progress: Callable[[str], None] | None = None, pool: Any = None,
                 only_chunks: Iterable[int] | None = None) -> TraceRun:
    """Trace every theorem (or only the chunks `only_chunks`: Dagster partitions) in resumable
    chunks, then rebuild `output` (atomic) from all finished chunks. A chunk that raises (e.g.
    its pool worker was lost) is recorded in `chunk_errors` and the other chunks go on."""
    chunks = plan_chunks(theorems, chunk_size)
    wanted = range(len(chunks)) if only_chunks is None else sorted(set(only_chunks))
    outcomes = run_chunks([i for i in wanted if i < len(chunks)],
                          lambda i: trace_chunk(i, chunks[i], tracer, checkpoint_dir, workers, timeout_s, pool),
                          lambda marker: marker.counts(), progress)
    run = merge_chunks(chunks, checkpoint_dir, output)
    run.chunks_skipped = outcomes.skipped
    run.chunk_errors = outcomes.errors
    return run


@dataclass
class ChunkOutcomes:
    """What a pass over resumable chunks did: finished chunks it skipped, chunks that raised."""

    skipped: int = 0
    errors: list[str] = field(default_factory=list)


def run_chunks(indices: Iterable[int], run_one: Callable[[int], tuple[Any, bool]],
               describe: Callable[[Any], str], progress: Callable[[str], None] | None = None,
               label: str = "chunk") -> ChunkOutcomes:
    """Run each chunk (`run_one(index)` → (result, was_already_done)). A chunk that raises is
    recorded and the others go on: it is re-run alone later (its Dagster partition)."""
    outcomes = ChunkOutcomes()
    for index in indices:
        try:
            result, was_done = run_one(index)
        except Exception as exc:  # noqa: BLE001 - this chunk is re-run alone; the others go on
            outcomes.errors.append(f"chunk {index}: {type(exc).__name__}: {exc}"[:500])
            if progress:
                progress(f"{label} {index}: FAILED ({outcomes.errors[-1]})")
            continue
        outcomes.skipped += was_done
        if progress:
            progress(f"{label} {index}: already done, skipped" if was_done else f"{label} {index}: {describe(result)}")
    return outcomes


def _read_marker(path: Path) -> TraceChunkDone | None:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        return TraceChunkDone.from_json(data) if isinstance(data, dict) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _add_counts(run: TraceRun, marker: TraceChunkDone) -> None:
    run.theorems += marker.theorems
    run.ok += marker.ok
    run.failed += marker.failed
    run.timeouts += marker.timeout
    run.rejected += marker.rejected
    run.rows += marker.rows
    run.zombies_killed += marker.zombies_killed
    run.failures.extend(marker.failures)


def _trace_chunk(chunk: Sequence[dict[str, Any]], tracer: Tracer, workers: int,
                 timeout_s: float) -> list[TheoremOutcome]:
    # Serial tracing in this process is safe when the per-theorem alarm works here (main thread)
    # or the tracer cannot hang (recorded data); otherwise even one worker runs in a child process.
    alarm_works = threading.current_thread() is threading.main_thread()
    if workers <= 1 and (alarm_works or not getattr(tracer, "may_hang", True)):
        return [trace_one(tracer, t, timeout_s) for t in chunk]
    workers = max(1, workers)
    # Fresh worker processes per chunk ("spawn": no inherited locks/threads); each worker
    # enforces the per-theorem alarm itself.
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        return list(pool.map(_worker, [(tracer, t, timeout_s) for t in chunk]))


def outcome_from_rows(theorem: dict[str, Any], rows: list[dict[str, Any]], seconds: float) -> TheoremOutcome:
    """A traced theorem's rows → ok, or rejected whole (banned construct), or failed (no rows)."""
    name = theorem["name"]
    reason = banned_reason(theorem, rows)
    if reason:
        return TheoremOutcome(name, "rejected", reason=reason, seconds=seconds)
    if not rows:
        return TheoremOutcome(name, "failed", reason="tracer returned no pairs", seconds=seconds)
    return TheoremOutcome(name, "ok", rows=rows, seconds=seconds)


def _trace_chunk_pool(chunk: Sequence[dict[str, Any]], job: Any, pool: Any) -> list[TheoremOutcome]:
    outcomes: list[TheoremOutcome | None] = [None] * len(chunk)
    for res in pool.map_unordered(job, chunk):
        theorem = chunk[res.index]
        if res.ok:
            outcomes[res.index] = outcome_from_rows(theorem, res.value, res.seconds)
        else:
            status = "timeout" if res.status == "timeout" else "failed"
            outcomes[res.index] = TheoremOutcome(theorem["name"], status, reason=f"{res.status}: {res.error}"[:500],
                                                 seconds=res.seconds)
    missing = [chunk[i]["name"] for i, o in enumerate(outcomes) if o is None]
    if missing:  # a pool that loses an item must not let the chunk be marked done
        raise RuntimeError(f"the Lean pool returned no result for {len(missing)} theorem(s), e.g. {missing[:3]}")
    return [o for o in outcomes if o is not None]


# ---------------------------------------------------------------------------- tracers
class RecordedTracer:
    """Demo tracer: the recorded pairs of each theorem (no Lean run; rows keep their provenance)."""

    may_hang = False

    def __init__(self, files: Iterable[Path], report: LineReport | None = None):
        self.by_theorem: dict[str, list[dict[str, Any]]] = {}
        self.report = report or LineReport()
        for f in files:
            for _, rec in iter_jsonl(f, self.report, validate=_validate_recorded):
                self.by_theorem.setdefault(rec["theorem"], []).append(rec)

    def theorems(self) -> list[str]:
        return list(self.by_theorem)

    def __call__(self, theorem: dict[str, Any]) -> list[dict[str, Any]]:
        rows = self.by_theorem.get(theorem["name"])
        if rows is None:
            raise TraceFailure(f"no recorded trace for {theorem['name']}")
        return [dict(r) for r in rows]


def _validate_recorded(rec: dict[str, Any]) -> str | None:
    for k in ("theorem", "state", "tactic"):
        if not isinstance(rec.get(k), str) or not rec[k].strip():
            return f"missing or empty {k!r}"
    if not isinstance(rec.get("depth"), int):
        return "missing integer 'depth'"
    return None


class ReplTraceJob:
    """The default tracer (plan M.5): the REPL's tactic-level output through the warm pool.

    One `allTactics` command per theorem gives every tactic of the proof (nested ones too) with
    its goals before and a `proofState`; running the tactic on that proof state gives the goals
    after (`null` when that re-run fails: the pair is kept, the next state is unknown, and the
    count is in `state_after_unknown`). Depth is the depth in the proof tree: the number of
    tactic steps from the root goal, following the state each tactic was applied to (the most
    recent tactic that produced it: a state reached again on another branch is another node; a goal
    that no earlier tactic produced, e.g. inside `have ... := by`, hangs below the innermost
    tactic whose source range contains it). Picklable: a Ray actor runs it the same way.
    Underscore-prefixed keys of a tactic entry (provenance that only the REPL stand-in sends,
    e.g. `_derived`) are kept on the row, so recorded rows stay labelled as such.
    """

    may_hang = True

    def __init__(self, source: str = GOEDEL_SOURCE):
        self.source = source

    def __call__(self, worker: Any, theorem: dict[str, Any]) -> list[dict[str, Any]]:
        code = theorem.get("full_proof") or ""
        parsed = parse_proof_file(code)
        if parsed is None:
            raise TraceFailure("no theorem declaration in the proof file")
        from burnqed_assets.lean.repl_env import split_imports

        header, _ = split_imports(code)
        with worker.theorem(header) as env:
            resp = env.all_tactics(code)
            errors = [m for m in resp.get("messages", []) or [] if m.get("severity") == "error"]
            if "message" in resp and "env" not in resp:
                raise TraceFailure(f"REPL: {resp['message']}")
            if errors:
                raise TraceFailure("Lean error: " + "; ".join(str(m.get("data", ""))[:200] for m in errors[:3]))
            tactics = [t for t in resp.get("tactics", []) or [] if isinstance(t, dict) and t.get("tactic")]
            if not tactics:
                raise TraceFailure("the REPL reported no tactics for this proof")
            afters = [self._after(env, t) for t in tactics]
        depths = proof_tree_depths(tactics, afters)
        name = prefixed(self.source, theorem["name"].split("::", 1)[-1])
        rows = []
        for t, after, depth in zip(tactics, afters, depths):
            row = {"theorem": name, "state": str(t.get("goals", "")), "tactic": str(t["tactic"]),
                   "state_after": after, "depth": depth, "source": self.source}
            row.update({k: v for k, v in t.items() if k.startswith("_")})
            rows.append(row)
        return rows

    @staticmethod
    def _after(env: Any, tactic: dict[str, Any]) -> str | None:
        ps = tactic.get("proofState")
        if not isinstance(ps, int):
            return None
        resp = env.tactic_on(ps, str(tactic["tactic"]))
        if "message" in resp and "goals" not in resp:
            return None
        if any(m.get("severity") == "error" for m in resp.get("messages", []) or []) or resp.get("sorries"):
            return None
        goals = resp.get("goals")
        if goals is None:
            return None
        if not goals:
            return NO_GOALS if str(resp.get("proofStatus", "Completed")) == "Completed" else None
        return "\n\n".join(str(g) for g in goals)


def _range(t: dict[str, Any]) -> tuple[tuple[int, int], tuple[int, int]] | None:
    pos, end = t.get("pos"), t.get("endPos")
    if not isinstance(pos, dict) or not isinstance(end, dict):
        return None
    return (int(pos.get("line", 0)), int(pos.get("column", 0))), (int(end.get("line", 0)), int(end.get("column", 0)))


def proof_tree_depths(tactics: Sequence[dict[str, Any]], afters: Sequence[str | None]) -> list[int]:
    """Depth of each tactic's state in the proof tree (see `ReplTraceJob`)."""
    depth_of_state: dict[str, int] = {}
    depths: list[int] = []
    ranges = [_range(t) for t in tactics]
    for i, t in enumerate(tactics):
        key = " ".join(str(t.get("goals", "")).split())
        if i == 0:
            depth = 0
        elif key in depth_of_state:
            depth = depth_of_state[key]
        else:
            parent = None
            r = ranges[i]
            if r is not None:
                for j in range(i - 1, -1, -1):  # innermost earlier tactic whose range contains this one
                    rj = ranges[j]
                    if rj is not None and rj[0] <= r[0] and r[1] <= rj[1] and rj != r:
                        parent = j
                        break
            depth = depths[parent] + 1 if parent is not None else depths[-1] + 1
        depth_of_state.setdefault(key, depth)
        depths.append(depth)
        after = afters[i]
        if after is not None and after != NO_GOALS:
            # Latest producer wins: a state reached again along another branch is a new tree node.
            depth_of_state[" ".join(after.split())] = depth + 1
    return depths


class LeanDojoTracer:
    """The alternative M.5 tracer: LeanDojo traces the migrated Lake project (a git repository,
    see `lake_project.py`) ONCE, in `prepare()` in the parent; the traced tactics are turned
    into plain rows right there, and only those rows travel to the workers (pickling drops the
    heavy traced repo), so no worker re-loads the trace inside its theorem timeout. Depth is the
    depth in the proof tree (`proof_tree_depths`), not the tactic's list index. lean-dojo is
    the `full` extra, imported here only."""

    def __init__(self, repo_dir: Path, source: str = GOEDEL_SOURCE):
        self.repo_dir = Path(repo_dir)
        self.source = source
        self._rows: dict[str, list[dict[str, Any]]] | None = None  # "<file>::<name>" and name -> rows

    def __getstate__(self) -> dict[str, Any]:
        return {"repo_dir": self.repo_dir, "source": self.source, "_rows": self._rows}

    def prepare(self) -> None:
        """Trace the repository once (LeanDojo caches it) and extract every theorem's rows."""
        if self._rows is not None:
            return
        try:
            from lean_dojo import LeanGitRepo, trace  # the `full` extra
        except ImportError as exc:
            raise TraceFailure("lean-dojo is not installed: `pip install -e .[full]` (see docs/lean.md)") from exc
        traced_repo = trace(LeanGitRepo.from_path(str(self.repo_dir)))
        rows: dict[str, list[dict[str, Any]]] = {}
        for thm in traced_repo.get_traced_theorems():
            tactics = [{"tactic": t.tactic, "goals": t.state_before} for t in thm.get_traced_tactics()]
            afters = [t.state_after for t in thm.get_traced_tactics()]
            extracted = [{"state": t["goals"], "tactic": t["tactic"], "state_after": a, "depth": d}
                         for t, a, d in zip(tactics, afters, proof_tree_depths(tactics, afters))]
            name = thm.theorem.full_name
            rows[f"{thm.theorem.file_path}::{name}"] = extracted
            rows.setdefault(name, extracted)
        self._rows = rows

    def __call__(self, theorem: dict[str, Any]) -> list[dict[str, Any]]:
        if self._rows is None:
            self.prepare()
        assert self._rows is not None
        bare = theorem["name"].split("::", 1)[-1]
        module = theorem.get("module")
        key = f"{Path(*str(module).split('.')).with_suffix('.lean')}::{bare}" if module else bare
        found = self._rows.get(key, self._rows.get(bare))
        if found is None:
            raise TraceFailure(f"{bare} not found in the LeanDojo trace of {self.repo_dir}")
        return [{"theorem": prefixed(self.source, bare), **r, "source": self.source} for r in found]
