"""A warm pool of Lean REPL workers shared by migration, tracing, verification and search.

The seam (what a Ray backend implements too):
- `WorkerConfig`: everything a worker needs, picklable (the REPL command, the launcher, the
  timeouts and memory limits). Ship it to a process or a Ray actor and build a `LeanWorker`.
- `LeanWorker`: ONE supervised REPL (`ReplLeanEnv`) plus its header environments. A job is a
  picklable callable `job(worker, item) -> value`; `worker.run(job, item)` wraps it in the
  theorem lifecycle: recycle the REPL if its measured memory says so (between theorems, never
  inside one), elaborate the item's header once per REPL generation (`import Mathlib` is paid
  once, then every theorem reuses the env), start the theorem's clock only then, and turn
  failures into a `JobResult` (a crashed REPL is restarted and the item retried once).
- `LeanPool` (protocol): `map_unordered(job, items) -> Iterator[JobResult]` (results as they
  finish, each with its item's index), `run(job, item, index)` (one item on the next free
  worker, blocking; thread-safe, so callers with their own work queue, such as search's
  per-endpoint slots, share the pool), `stats()` (counters for asset metadata), `close()`.
  `in_process` says whether jobs run in this process (live objects may travel in a job) or in
  other processes (a job must pickle: Ray actors).
  `LocalLeanPool` runs `size` workers on threads of this process (the work happens in the REPL
  processes; the threads only wait on pipes).

Counters: theorems, header imports vs reuses, recycles, timeouts, crashes, retries, peak RSS.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from burnqed_assets.lean.factory import ReplCommand, repl_command
from burnqed_assets.lean.launcher import LeanLauncher
from burnqed_assets.lean.repl_client import (
    ReplCrashError,
    ReplMemoryError,
    ReplProcess,
    ReplProtocolError,
    ReplTimeoutError,
)
from burnqed_assets.lean.repl_env import ReplLeanEnv, launcher_from_settings
from burnqed_assets.settings import Settings

log = logging.getLogger(__name__)

Job = Callable[["LeanWorker", Any], Any]
_INFRA = (ReplCrashError, ReplProtocolError, ReplMemoryError)  # the process failed, not the theorem


@dataclass(frozen=True)
class WorkerConfig:
    """Picklable recipe of one warm worker."""

    command: ReplCommand
    launcher: LeanLauncher
    command_timeout_s: float = 60.0
    theorem_timeout_s: float = 120.0
    memory_cap_mb: int | None = 8192
    recycle_rss_mb: float | None = None
    restart_every: int = 0
    retries_on_crash: int = 1

    @classmethod
    def from_settings(cls, settings: Settings, extra_standin_args: tuple[str, ...] = ()) -> WorkerConfig:
        lean = settings.lean
        return cls(command=repl_command(settings, extra_standin_args), launcher=launcher_from_settings(settings),
                   command_timeout_s=lean.command_timeout_s, theorem_timeout_s=lean.theorem_timeout_s,
                   memory_cap_mb=lean.memory_cap_mb, recycle_rss_mb=lean.recycle_threshold_mb,
                   restart_every=lean.restart_every)

    def make_env(self) -> ReplLeanEnv:
        proc = ReplProcess(list(self.command.argv), cwd=self.command.cwd, timeout_s=self.command_timeout_s,
                           memory_cap_mb=self.memory_cap_mb, restart_every=self.restart_every,
                           launcher=self.launcher, recycle_rss_mb=self.recycle_rss_mb)
        return ReplLeanEnv(proc, theorem_timeout_s=self.theorem_timeout_s, verified_by=self.command.verified_by)


@dataclass
class JobResult:
    index: int  # position of the item in the input
    status: str  # ok | timeout | crash | error
    value: Any = None
    error: str = ""
    seconds: float = 0.0  # on the theorem's clock (header import excluded)
    worker: int = -1

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class LeanWorker:
    """One supervised REPL with warm header environments (see the module doc)."""

    def __init__(self, config: WorkerConfig, worker_id: int = 0):
        self.config = config
        self.worker_id = worker_id
        self.env = config.make_env()
        self.counters: dict[str, int] = {"theorems": 0, "ok": 0, "timeouts": 0, "crashes": 0, "errors": 0,
                                         "retries": 0}
        self._clock_started: float | None = None

    @property
    def verified_by(self) -> str:
        return self.env.verified_by

    @contextlib.contextmanager
    def theorem(self, header: str = "", timeout_s: float | None = None) -> Iterator[ReplLeanEnv]:
        """Between-theorem recycle, header env ready, then the theorem's clock starts with
        `timeout_s` (default: the worker's `theorem_timeout_s`; a search passes its own budget)."""
        self.env.new_theorem()
        self.env.prepare_header(header)  # recycles first if due, then the (warm) header env
        self.env.start_clock(self.config.theorem_timeout_s if timeout_s is None else timeout_s)
        self._clock_started = time.monotonic()
        try:
            yield self.env
        finally:
            self.env._deadline = None  # the budget belongs to this theorem only

    def run(self, job: Job, item: Any, index: int = 0) -> JobResult:
        attempts = 1 + max(0, self.config.retries_on_crash)
        self.counters["theorems"] += 1
        last = ""
        for attempt in range(attempts):
            self._clock_started = None
            t0 = time.monotonic()
            try:
                value = job(self, item)
            except ReplTimeoutError as exc:  # per-call or per-theorem: the theorem's own failure
                self.counters["timeouts"] += 1
                return JobResult(index, "timeout", error=str(exc)[:500], seconds=self._elapsed(t0),
                                 worker=self.worker_id)
            except _INFRA as exc:
                self.counters["crashes"] += 1
                last = f"{type(exc).__name__}: {exc}"[:500]
                if attempt + 1 < attempts:
                    self.counters["retries"] += 1
                    log.warning("worker %d: REPL failed on item %d (%s); retrying on a fresh process",
                                self.worker_id, index, last[:200])
                    continue
                return JobResult(index, "crash", error=last, seconds=self._elapsed(t0), worker=self.worker_id)
            except Exception as exc:  # noqa: BLE001 - one item's failure never stops the pool
                self.counters["errors"] += 1
                return JobResult(index, "error", error=f"{type(exc).__name__}: {exc}"[:500],
                                 seconds=self._elapsed(t0), worker=self.worker_id)
            self.counters["ok"] += 1
            return JobResult(index, "ok", value=value, seconds=self._elapsed(t0), worker=self.worker_id)
        return JobResult(index, "crash", error=last, worker=self.worker_id)  # pragma: no cover

    def _elapsed(self, t0: float) -> float:
        start = self._clock_started if self._clock_started is not None else t0
        return time.monotonic() - start

    def stats(self) -> dict[str, Any]:
        env = self.env.stats()
        return {**self.counters, "imports": int(env.get("header_imports", 0)),
                "reuses": int(env.get("header_reuses", 0)), "recycles": int(env.get("repl_recycles", 0)),
                "repl_starts": int(env.get("repl_starts", 0)), "repl_timeouts": int(env.get("repl_timeouts", 0)),
                "repl_crashes": int(env.get("repl_crashes", 0)) + int(env.get("repl_protocol_errors", 0))
                + int(env.get("repl_memory_kills", 0)),
                "peak_rss_mb": float(env.get("repl_peak_rss_mb", 0.0))}

    def close(self) -> None:
        self.env.close()


@runtime_checkable
class LeanPool(Protocol):
    """What migration, tracing and verification use; `LocalLeanPool` here, a Ray pool elsewhere."""

    size: int
    in_process: bool

    def map_unordered(self, job: Job, items: Iterable[Any]) -> Iterator[JobResult]:
        """Run `job(worker, item)` for every item; yield results as they finish (with `.index`)."""

    def run(self, job: Job, item: Any, index: int = 0) -> JobResult:
        """Run `job(worker, item)` on the next free worker and wait for it (thread-safe)."""

    def stats(self) -> dict[str, Any]:
        """Counters summed over workers (imports, reuses, recycles, timeouts, crashes, peak RSS)."""

    def close(self) -> None:
        """Kill every worker's REPL."""


class LocalLeanPool:
    """`size` warm workers on threads of this process; workers persist across `map_unordered` calls."""

    kind = "local"
    in_process = True

    def __init__(self, config: WorkerConfig, size: int):
        if size < 1:
            raise ValueError("a Lean pool needs at least one worker")
        self.config = config
        self.size = int(size)
        self.workers = [LeanWorker(config, i) for i in range(self.size)]
        self._idle: queue.Queue[LeanWorker] = queue.Queue()
        for w in self.workers:
            self._idle.put(w)
        self._executor = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix="lean-pool")
        self._closed = False
        self._lock = threading.Lock()

    def _run(self, job: Job, index: int, item: Any) -> JobResult:
        worker = self._idle.get()
        try:
            return worker.run(job, item, index)
        finally:
            self._idle.put(worker)

    def run(self, job: Job, item: Any, index: int = 0) -> JobResult:
        """One item on the next idle worker, on the calling thread (blocks while all are busy)."""
        if self._closed:
            raise RuntimeError("the Lean pool is closed")
        return self._run(job, index, item)

    def map_unordered(self, job: Job, items: Iterable[Any]) -> Iterator[JobResult]:
        if self._closed:
            raise RuntimeError("the Lean pool is closed")
        pending: set[Future[JobResult]] = set()
        source = iter(enumerate(items))
        # Keep at most 2 x size items in flight: a 30K-theorem corpus is not queued at once.
        try:
            for index, item in source:
                pending.add(self._executor.submit(self._run, job, index, item))
                if len(pending) >= 2 * self.size:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    yield from (f.result() for f in done)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield from (f.result() for f in done)
        finally:
            for f in pending:
                f.cancel()

    @property
    def verified_by(self) -> str:
        return self.config.command.verified_by

    def stats(self) -> dict[str, Any]:
        return pool_stats([w.stats() for w in self.workers], self.size, self.kind,
                          self.config.launcher.reason, self.config.command.label)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._executor.shutdown(wait=True, cancel_futures=True)
        for w in self.workers:
            w.close()

    def __enter__(self) -> LocalLeanPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def pool_stats(per_worker: list[dict[str, Any]], size: int, kind: str, sandbox: str, repl: str) -> dict[str, Any]:
    """Sum worker counters (peak RSS: the max) into the pool's metadata."""
    total: dict[str, Any] = {"pool": kind, "workers": size, "sandbox": sandbox, "repl": repl}
    for s in per_worker:
        for k, v in s.items():
            if k == "peak_rss_mb":
                total[k] = max(float(total.get(k, 0.0)), float(v))
            else:
                total[k] = total.get(k, 0) + v
    return total


def make_pool(settings: Settings, size: int | None = None,
              extra_standin_args: tuple[str, ...] = ()) -> LocalLeanPool:
    """The profile's warm pool (`settings.lean.pool_workers` workers unless `size` is given)."""
    return LocalLeanPool(WorkerConfig.from_settings(settings, extra_standin_args),
                         size or settings.lean.pool_workers)


@dataclass
class CheckJob:
    """Verify a whole proof file in the worker's warm header env (migration, benchmarks)."""

    allowed_axioms: tuple[str, ...] = ("propext", "Classical.choice", "Quot.sound")

    def __call__(self, worker: LeanWorker, code: str) -> Any:
        from burnqed_assets.lean.repl_env import split_imports
        from burnqed_assets.lean.verify import verify_proof

        header, _ = split_imports(code)
        with worker.theorem(header) as env:
            return verify_proof(code, env, allowed_axioms=self.allowed_axioms)
