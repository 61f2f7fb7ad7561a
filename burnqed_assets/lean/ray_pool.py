"""Ray backend of the warm Lean worker pool (`lean.pool.LeanPool`): one Ray actor per `LeanWorker`.

Each actor builds one `LeanWorker` from the picklable `WorkerConfig` (the REPL command, the
sandboxed launcher, timeouts, memory cap and recycling threshold) and keeps it warm across
theorems and across chunks: the header (`import Mathlib`) is elaborated once per REPL
generation, the REPL is recycled between theorems when its measured memory says so, and a
crashed REPL is restarted and the theorem retried once (all `LeanWorker`'s). Ray adds what one
machine cannot: actors placed by their CPU / memory reservation on any node of a cluster (a
node never gets more REPLs than fit), and a dead actor (its process killed, its node lost)
restarted by Ray with its in-flight item retried, up to `pool.max_restarts`. Past that the
pool replaces the actor and raises `WorkerLost` for the batch, so the chunk fails whole and
its partition is re-run.

Modes (`settings.pool`): `local` joins `RAY_ADDRESS` when it is set (CI's head on 127.0.0.1),
else starts a Ray instance in this process (stopped again when the pool closes); `cluster`
requires `RAY_ADDRESS` / `pool.ray_address`. `make_lean_pool` falls back to `LocalLeanPool`
(threads of this process) when `pool.backend` is `local` or Ray is not installed.

No Dagster here; `ray` is imported lazily.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import queue
import sys
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

from burnqed_assets.lean.pool import Job, JobResult, LeanPool, LeanWorker, LocalLeanPool, WorkerConfig, pool_stats
from burnqed_assets.settings import PoolSettings, Settings

log = logging.getLogger(__name__)


class WorkerLost(RuntimeError):
    """A pool actor died more often than Ray may restart it; the batch it was in failed."""


def ray_installed() -> bool:
    return importlib.util.find_spec("ray") is not None


# Ray reads this once at import: "0" makes a single-node Ray bind every port to 127.0.0.1.
LOOPBACK_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"

_STARTED_HERE = False  # this process started its own Ray instance (stopped when its pool closes)


def ray_address(pool: PoolSettings) -> str | None:
    return pool.ray_address or os.environ.get("RAY_ADDRESS") or None


def connect_ray(pool: PoolSettings, num_cpus: float) -> str:
    """Connect this process to Ray once; returns the GCS address.

    local: join `RAY_ADDRESS` if set, else start Ray here with `num_cpus` for the actors.
    cluster: `RAY_ADDRESS` (or pool.ray_address) must name the head.
    """
    if pool.mode == "local" and not ray_address(pool) and "ray" not in sys.modules:
        # A Ray started here serves this machine only: keep every Ray port on loopback. On Linux
        # Ray otherwise resolves 127.0.0.1 to the host's routable address and listens there.
        os.environ.setdefault(LOOPBACK_ONLY_ENV, "0")
    import ray

    global _STARTED_HERE
    if pool.mode not in ("local", "cluster"):
        raise ValueError(f"unknown settings.pool.mode {pool.mode!r} (local | cluster)")
    if not ray.is_initialized():
        address = ray_address(pool)
        if pool.mode == "cluster" and not address:
            raise ValueError("settings.pool.mode is 'cluster' but neither RAY_ADDRESS nor pool.ray_address is set "
                             "(start a head with `ray start --head`, see docs/operations.md)")
        common: dict[str, Any] = {"namespace": "burnqed", "logging_level": logging.WARNING, "log_to_driver": False}
        if address:
            ray.init(address=address, **common)
        else:
            ray.init(num_cpus=max(1.0, num_cpus), object_store_memory=pool.object_store_mb * 2**20,
                     include_dashboard=False, **common)
            _STARTED_HERE = True
    return ray.get_runtime_context().gcs_address


def shutdown_local_ray() -> None:
    """Stop the Ray instance this process started (its memory goes back; a cluster is left alone)."""
    global _STARTED_HERE
    if _STARTED_HERE:
        import ray

        if ray.is_initialized():
            ray.shutdown()
    _STARTED_HERE = False


class LeanWorkerActor:
    """The actor body: one warm `LeanWorker` (wrapped with `ray.remote` at pool start)."""

    def __init__(self, config: WorkerConfig, worker_id: int):
        self.worker = LeanWorker(config, worker_id)

    def run(self, job: Job, item: Any, index: int) -> tuple[JobResult, int]:
        return self.worker.run(job, item, index), os.getpid()

    def stats(self) -> dict[str, Any]:
        return self.worker.stats()

    def close(self) -> None:
        self.worker.close()


class RayLeanPool:
    """`size` Ray actors, each one warm `LeanWorker`; one item in flight per actor (a REPL is serial)."""

    kind = "ray"
    in_process = False  # jobs are pickled to the actors: they carry specs, never live objects

    def __init__(self, config: WorkerConfig, size: int, pool: PoolSettings, memory_mb: int):
        import ray

        if size < 1:
            raise ValueError("a Lean pool needs at least one worker")
        self.config = config
        self.size = int(size)
        self.max_restarts = pool.max_restarts
        self.address = connect_ray(pool, num_cpus=self.size * pool.actor_num_cpus)
        options = {"num_cpus": pool.actor_num_cpus, "memory": int(memory_mb) * 2**20,
                   "max_restarts": pool.max_restarts, "max_task_retries": pool.max_restarts}
        self._actor_cls = ray.remote(LeanWorkerActor).options(**options)
        self.actors = [self._actor_cls.remote(config, i) for i in range(self.size)]
        self.restarts = 0  # an actor answered from a new process
        self.lost = 0  # actors past max_restarts, replaced
        self.completed = 0  # items answered
        self._pids: dict[int, int] = {}
        self._closed = False
        self._lock = threading.Lock()  # `run` is called from several threads (search slots)
        self._free: queue.Queue[int] = queue.Queue()
        for slot in range(self.size):
            self._free.put(slot)

    def run(self, job: Job, item: Any, index: int = 0) -> JobResult:
        """One item on the next free actor, waiting for its answer (thread-safe). An actor lost
        past its restarts is replaced and `WorkerLost` raised, as in `map_unordered`. Not to be
        mixed with a concurrent `map_unordered` on the same pool (each tracks its own free actors)."""
        import ray

        if self._closed:
            raise RuntimeError("the Lean pool is closed")
        slot = self._free.get()
        try:
            ref = self.actors[slot].run.remote(job, item, index)
            try:
                result, pid = ray.get(ref)
            except ray.exceptions.RayActorError as exc:
                with self._lock:
                    self._replace(slot)
                raise WorkerLost(f"Lean pool actor {slot} died on item {index} and was restarted "
                                 f"{self.max_restarts} time(s) already: {exc}"[:1000]) from exc
            with self._lock:
                if self._pids.get(slot, pid) != pid:
                    self.restarts += 1
                self._pids[slot] = pid
                self.completed += 1
            return result
        finally:
            self._free.put(slot)

    def map_unordered(self, job: Job, items: Iterable[Any]) -> Iterator[JobResult]:
        import ray

        if self._closed:
            raise RuntimeError("the Lean pool is closed")
        queue = deque(enumerate(items))
        idle = list(range(self.size))
        pending: dict[Any, tuple[int, int]] = {}  # ObjectRef -> (item index, actor slot)
        try:
            while queue or pending:
                while queue and idle:
                    index, item = queue.popleft()
                    slot = idle.pop()
                    pending[self.actors[slot].run.remote(job, item, index)] = (index, slot)
                done, _ = ray.wait(list(pending), num_returns=1)
                index, slot = pending.pop(done[0])
                try:
                    result, pid = ray.get(done[0])
                except ray.exceptions.RayActorError as exc:
                    self._replace(slot)  # later batches get a fresh actor; this one fails whole
                    raise WorkerLost(f"Lean pool actor {slot} died on item {index} and was restarted "
                                     f"{self.max_restarts} time(s) already: {exc}"[:1000]) from exc
                if self._pids.get(slot, pid) != pid:
                    self.restarts += 1  # Ray brought the actor back in a new process
                self._pids[slot] = pid
                idle.append(slot)
                self.completed += 1
                yield result
        finally:
            for ref in pending:  # abandoned (consumer stopped, or an error): drop the queued items
                try:
                    ray.cancel(ref)
                except Exception:  # noqa: BLE001 - finished already, or its actor is gone
                    pass

    def _replace(self, slot: int) -> None:
        import ray

        ray.kill(self.actors[slot], no_restart=True)
        self.actors[slot] = self._actor_cls.remote(self.config, slot)
        self._pids.pop(slot, None)
        self.lost += 1

    def stats(self) -> dict[str, Any]:
        import ray

        try:
            per_worker = ray.get([a.stats.remote() for a in self.actors], timeout=60)
        except Exception as exc:  # noqa: BLE001 - counters never fail a step
            log.warning("Ray pool stats: %s", exc)
            per_worker = []
        out = pool_stats(per_worker, self.size, self.kind, self.config.launcher.reason, self.config.command.label)
        out.update({"actor_restarts": self.restarts, "actors_lost": self.lost, "items": self.completed,
                    "ray_address": self.address})
        return out

    def close(self) -> None:
        import ray

        if self._closed:
            return
        self._closed = True
        try:
            ray.get([a.close.remote() for a in self.actors], timeout=60)
        except Exception as exc:  # noqa: BLE001 - the actors are killed below anyway
            log.warning("closing the Ray pool's workers: %s", exc)
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        shutdown_local_ray()

    def __enter__(self) -> RayLeanPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_lean_pool(settings: Settings, size: int | None = None,
                   extra_standin_args: tuple[str, ...] = ()) -> LeanPool:
    """The pool `settings.pool` asks for: Ray actors, or `LocalLeanPool` (asked for, or Ray
    not installed in `local` mode). `size` defaults to `lean.pool_workers`."""
    pool = settings.pool
    config = WorkerConfig.from_settings(settings, extra_standin_args)
    size = size or settings.lean.pool_workers
    if pool.backend == "local":
        return LocalLeanPool(config, size)
    if pool.backend != "ray":
        raise ValueError(f"unknown settings.pool.backend {pool.backend!r} (ray | local)")
    if not ray_installed():
        if pool.mode == "cluster":
            raise RuntimeError("settings.pool.mode is 'cluster' but Ray is not installed: pip install -e '.[ray]'")
        log.warning("Ray is not installed (pip install -e '.[ray]'): the Lean pool runs on threads of this process")
        return LocalLeanPool(config, size)
    memory_mb = pool.actor_memory_mb or settings.lean.memory_cap_mb + 512
    return RayLeanPool(config, size, pool, memory_mb)
