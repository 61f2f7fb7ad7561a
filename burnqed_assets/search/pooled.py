"""Best-first search on the warm Lean pool, fanned out over policy endpoints from one work queue.

One pool job per theorem (`SearchJob`): the worker's warm REPL (header imported once per REPL
generation, `lean.pool.LeanWorker.theorem`) serves the whole search of that theorem, the
theorem's clock starts once its header env is ready, and the REPL is recycled only between
theorems. The same code runs on `LocalLeanPool` (threads of this process) and `RayLeanPool`
(actors): a job for actors carries picklable specs (`SGLangPolicySpec`, `TransformersPolicySpec`,
`HttpScorerSpec`) that each actor turns into its own client once, instead of live objects.

Fan-out (`search_on_pool`): each policy endpoint (an SGLang server per GPU, or the in-process
model) has `concurrency` slots; every slot takes the next theorem from one shared queue when it
is free, so a slow server simply takes fewer theorems. Sampling is seeded per (run seed, state,
sample), so which endpoint searched a theorem changes where the time went, never the tree.

`EnvPool` gives plain `LeanEnv` objects (test fakes, benchmarks) the pool's interface, so they run
through this same path.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from burnqed_assets.lean.env import LeanEnv, ProofState
from burnqed_assets.search.config import SearchConfig
from burnqed_assets.search.engine import (
    EnergyScorer,
    SearchResult,
    SearchStopped,
    Theorem,
    Verifier,
    env_check_file_verifier,
    search_theorem,
)
from burnqed_assets.search.policy import Policy, SearchInfrastructureError

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- picklable specs


class WorkerSpec:
    """A picklable recipe for an object a pool worker builds once per process (`resolve`)."""

    def build(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class SGLangPolicySpec(WorkerSpec):
    """An SGLang server's client, built in the worker process (Ray actors)."""

    url: str
    max_new_tokens: int = 128
    timeout_s: float = 120.0
    retries: int = 3
    max_batch: int = 32
    seed: int | None = 0

    def build(self) -> Policy:
        from burnqed_assets.search.policy import SGLangPolicy

        return SGLangPolicy(self.url, max_new_tokens=self.max_new_tokens, timeout_s=self.timeout_s,
                            retries=self.retries, max_batch=self.max_batch, seed=self.seed)


@dataclass(frozen=True)
class TransformersPolicySpec(WorkerSpec):
    """The in-process model, loaded once in each worker process that searches with it."""

    model_dir: str
    device: str = "auto"
    dtype: str = "float32"
    max_new_tokens: int = 64
    seed: int | None = 0
    cpu_threads: int = 0
    how_to_obtain: str = ""

    def build(self) -> Policy:
        from burnqed_assets.search.policy import TransformersPolicy

        return TransformersPolicy.from_pretrained(self.model_dir, device=self.device, dtype=self.dtype,
                                                  max_new_tokens=self.max_new_tokens, seed=self.seed,
                                                  how_to_obtain=self.how_to_obtain, cpu_threads=self.cpu_threads)


@dataclass(frozen=True)
class HttpScorerSpec(WorkerSpec):
    """The encode server's client (EBM-guided search), built in the worker process."""

    url: str

    def build(self) -> EnergyScorer:
        from burnqed_assets.ebm.encode_server import HttpEnergyScorer

        return HttpEnergyScorer(self.url)


_BUILT: dict[WorkerSpec, Any] = {}
_BUILD_LOCK = threading.Lock()


def resolve(ref: Any) -> Any:
    """A live object as is; a `WorkerSpec` built once per process (then shared by its theorems)."""
    if not isinstance(ref, WorkerSpec):
        return ref
    with _BUILD_LOCK:
        if ref not in _BUILT:
            _BUILT[ref] = ref.build()
        return _BUILT[ref]


@dataclass(frozen=True)
class PolicyEndpoint:
    """One policy (an SGLang server's client, or the in-process model), how many searches it
    serves at once, and the picklable spec a worker in another process builds it from."""

    policy: Policy | None
    concurrency: int = 1
    name: str = ""
    spec: WorkerSpec | None = None

    def for_workers(self, in_process: bool) -> Any:
        if in_process and self.policy is not None:
            return self.policy
        if self.spec is not None:
            return self.spec
        raise ValueError(f"policy endpoint {self.name or '?'!r} has no picklable spec: a pool whose workers run "
                         "in other processes (Ray) needs one (SGLangPolicySpec / TransformersPolicySpec)")


def as_endpoints(policy: Policy | PolicyEndpoint | Sequence[PolicyEndpoint],
                 concurrency: int = 1) -> list[PolicyEndpoint]:
    if isinstance(policy, PolicyEndpoint):
        return [policy]
    if isinstance(policy, (list, tuple)):
        if not policy:
            raise ValueError("no policy endpoint given")
        return [e if isinstance(e, PolicyEndpoint) else PolicyEndpoint(e, concurrency, f"policy{i}")
                for i, e in enumerate(policy)]
    return [PolicyEndpoint(policy, concurrency, "policy")]


def scorer_for_workers(scorer: Any, in_process: bool) -> Any:
    if scorer is None or in_process or isinstance(scorer, WorkerSpec):
        return scorer
    url = getattr(scorer, "base_url", None)
    if url:
        return HttpScorerSpec(str(url))
    raise ValueError(f"the scorer {type(scorer).__name__} cannot travel to pool workers in other processes; "
                     "give an HttpScorerSpec (the encode server's URL)")


# --------------------------------------------------------------------------- one theorem, one job


class TheoremSession:
    """The worker's env for one search. A REPL that died (or was restarted) mid-search took every
    proof state of this tree with it: the search ends with stop_reason "error" (or "timeout" when
    the theorem's budget killed it) instead of spending its remaining budget on "proof state
    lost" answers. Envs without a supervised process (fakes) pass through."""

    def __init__(self, env: Any, timeout_s: float | None = None):
        self._env = env
        self.name = getattr(env, "name", "env")
        self._process = getattr(env, "process", None)
        self._deadline = time.monotonic() + timeout_s if timeout_s else None
        self._generation: int | None = None

    def __getattr__(self, attr: str) -> Any:  # verified_by, stats, ... of the env
        return getattr(self._env, attr)

    def _current(self) -> int:
        p = self._process
        return int(p.generation) if p.is_alive() else -1

    def _check(self, detail: str) -> None:
        if self._process is None or self._generation is None:
            return
        if self._current() != self._generation:
            if self._deadline is not None and time.monotonic() >= self._deadline:
                raise SearchStopped("timeout", f"the theorem's time budget ran out in Lean ({detail})")
            raise SearchStopped("error", f"the REPL died mid-search; its proof states are gone ({detail})")

    def open_theorem(self, statement: str, header: str = "") -> ProofState:
        state = self._env.open_theorem(statement, header)
        if self._process is not None:
            self._generation = self._current()
        return state

    def run_tactic(self, state: ProofState, tactic: str) -> Any:
        self._check("before a tactic")
        out = self._env.run_tactic(state, tactic)
        self._check(str(getattr(out, "error", "") or "after a tactic"))
        return out

    def check_file(self, code: str) -> Any:
        self._check("before verification")
        out = self._env.check_file(code)
        self._check(str(getattr(out, "error", "") or "after verification"))
        return out


@dataclass(frozen=True)
class SearchAbort:
    """A job's answer when a service the whole run needs failed (policy or encode server):
    the driver re-raises it and the theorem is not recorded (a resumed run searches it again)."""

    error: BaseException


def perf_clock() -> Callable[[], float]:
    return time.perf_counter


@dataclass(frozen=True)
class SearchJob:
    """`job(worker, theorem)` for a Lean pool: the whole best-first search of one theorem in the
    worker's warm env. Picklable when its policy / scorer are specs and its factories top-level."""

    policy: Any  # Policy, or a WorkerSpec the worker resolves
    cfg: SearchConfig
    scorer: Any = None  # EnergyScorer, WorkerSpec or None
    verifier_factory: Callable[[Any], Verifier] = env_check_file_verifier
    clock_factory: Callable[[], Callable[[], float]] = perf_clock  # one clock per theorem

    def __call__(self, worker: Any, theorem: Theorem) -> SearchResult | SearchAbort:
        try:
            policy, scorer = resolve(self.policy), resolve(self.scorer)
        except Exception as exc:  # noqa: BLE001 - no policy in this worker: the run stops, nothing recorded
            return SearchAbort(SearchInfrastructureError(
                f"the search worker could not build its policy / scorer: {type(exc).__name__}: {exc}"))
        # The header env is readied (recycling first if due) before the theorem's clock starts.
        with worker.theorem(theorem.header, timeout_s=self.cfg.timeout_s) as env:
            session = TheoremSession(env, self.cfg.timeout_s)
            try:
                return search_theorem(theorem, session, policy, self.cfg, scorer, self.verifier_factory(session),
                                      clock=self.clock_factory(), prepare_header=False)
            except SearchInfrastructureError as exc:
                return SearchAbort(exc)


def result_of(job_result: Any, theorem: Theorem) -> SearchResult:
    """The pool's answer as a SearchResult: a worker failure outside the search (header import
    crashed twice, timed out) is the theorem's stop_reason "error", never a silent loss."""
    value = getattr(job_result, "value", None)
    if isinstance(value, SearchAbort):
        raise value.error
    if job_result.ok and isinstance(value, SearchResult):
        return value
    return SearchResult(theorem=theorem.name, proved=False, source=theorem.source, stop_reason="error",
                        error=f"Lean worker {job_result.status}: {job_result.error}"[:2000],
                        elapsed_s=float(getattr(job_result, "seconds", 0.0)))


# --------------------------------------------------------------------------- plain envs as a pool

EnvSource = LeanEnv | Callable[[], LeanEnv]


class _LockedEnv:
    """Serialises calls to one shared env (a single Lean process is not thread-safe)."""

    def __init__(self, env: Any):
        self._env = env
        self._lock = threading.Lock()
        self.name = getattr(env, "name", "env")

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._env, attr)

    def open_theorem(self, statement: str, header: str = "") -> ProofState:
        with self._lock:
            return self._env.open_theorem(statement, header)

    def run_tactic(self, state: ProofState, tactic: str) -> Any:
        with self._lock:
            return self._env.run_tactic(state, tactic)

    def check_file(self, code: str) -> Any:
        with self._lock:
            return self._env.check_file(code)


class _EnvWorker:
    def __init__(self, worker_id: int):
        self.worker_id = worker_id
        self.env: Any = None

    @contextlib.contextmanager
    def theorem(self, header: str = "", timeout_s: float | None = None) -> Iterator[Any]:
        new_theorem, prepare = getattr(self.env, "new_theorem", None), getattr(self.env, "prepare_header", None)
        if callable(new_theorem):
            new_theorem()
        if callable(prepare):
            prepare(header)
        yield self.env

    def run(self, job: Callable[[Any, Any], Any], item: Any, index: int) -> Any:
        from burnqed_assets.lean.pool import JobResult

        t0 = time.monotonic()
        try:
            value = job(self, item)
        except Exception as exc:  # noqa: BLE001 - one item's failure never stops the pool
            return JobResult(index, "error", error=f"{type(exc).__name__}: {exc}"[:500],
                             seconds=time.monotonic() - t0, worker=self.worker_id)
        return JobResult(index, "ok", value=value, seconds=time.monotonic() - t0, worker=self.worker_id)


class EnvPool:
    """The pool interface over plain `LeanEnv`s (test fakes, benchmarks): `env` is one shared env
    (calls serialised when `size` > 1) or a factory giving each worker its own (closed with the pool)."""

    kind = "envs"
    in_process = True

    def __init__(self, env: EnvSource, size: int = 1):
        self.size = max(1, int(size))
        shared = not isinstance(env, type) and (isinstance(env, LeanEnv) or not callable(env))
        if shared:
            one: Any = _LockedEnv(env) if self.size > 1 else env
            self._make: Callable[[], Any] = lambda: one  # noqa: E731
        else:
            self._make = env  # type: ignore[assignment]
        self._owned = not shared
        self.workers = [_EnvWorker(i) for i in range(self.size)]
        self._idle: queue.Queue[_EnvWorker] = queue.Queue()
        for w in self.workers:
            self._idle.put(w)

    def run(self, job: Callable[[Any, Any], Any], item: Any, index: int = 0) -> Any:
        worker = self._idle.get()
        try:
            if worker.env is None:
                try:
                    worker.env = self._make()
                except Exception as exc:
                    raise SearchInfrastructureError(
                        f"could not start the Lean env: {type(exc).__name__}: {exc}") from exc
            return worker.run(job, item, index)
        finally:
            self._idle.put(worker)

    def map_unordered(self, job: Callable[[Any, Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        for index, item in enumerate(items):
            yield self.run(job, item, index)

    def stats(self) -> dict[str, Any]:
        return {"pool": self.kind, "workers": self.size}

    def close(self) -> None:
        if not self._owned:
            return
        for w in self.workers:
            if w.env is not None:
                try:
                    w.env.close()
                except Exception as exc:  # noqa: BLE001
                    log.warning("closing env failed: %s", exc)
                w.env = None


def is_pool(lean: Any) -> bool:
    """A Lean pool (`lean.pool.LeanPool` or `EnvPool`), as opposed to a plain env or env factory."""
    return callable(getattr(lean, "run", None)) and hasattr(lean, "in_process") and hasattr(lean, "size")


# --------------------------------------------------------------------------- the work queue


@dataclass
class PoolSearchRun:
    """What `search_on_pool` did: results in input order, and which endpoint searched how many."""

    results: list[SearchResult]
    endpoint_theorems: dict[str, int] = field(default_factory=dict)


def search_on_pool(theorems: Sequence[Theorem], pool: Any, endpoints: Sequence[PolicyEndpoint], cfg: SearchConfig,
                   scorer: Any = None, verifier_factory: Callable[[Any], Verifier] | None = None,
                   on_result: Callable[[SearchResult], None] | None = None,
                   clock_factory: Callable[[], Callable[[], float]] = perf_clock) -> PoolSearchRun:
    """Search `theorems` on `pool`: every endpoint slot (concurrency per endpoint) takes the next
    theorem from one queue when it is free and runs it as one pool job. `on_result` runs on the
    slot's thread as each theorem ends. The first infrastructure failure (policy or encode server
    down, a worker lost, a failed `on_result`) stops every slot after its current theorem and is
    raised; finished theorems were handed to `on_result` already."""
    todo = deque(enumerate(theorems))
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[BaseException] = []
    results: dict[int, SearchResult] = {}
    counts = {e.name: 0 for e in endpoints}
    scorer_ref = scorer_for_workers(scorer, pool.in_process)
    verifier_factory = verifier_factory or env_check_file_verifier

    def slot(endpoint: PolicyEndpoint) -> None:
        try:
            job = SearchJob(endpoint.for_workers(pool.in_process), cfg, scorer_ref, verifier_factory, clock_factory)
            while not stop.is_set():
                with lock:
                    if not todo:
                        return
                    index, theorem = todo.popleft()
                res = result_of(pool.run(job, theorem, index), theorem)
                if on_result is not None:
                    on_result(res)
                with lock:
                    results[index] = res
                    counts[endpoint.name] += 1
        except BaseException as exc:  # noqa: BLE001 - raised below, once every slot stopped
            with lock:
                errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=slot, args=(e,), name=f"search-{e.name or i}-{k}", daemon=True)
               for i, e in enumerate(endpoints) for k in range(max(1, e.concurrency))]
    for t in threads:
        t.start()
    try:
        for t in threads:
            t.join()
    except BaseException:  # Ctrl-C in the driver: the slots stop after their current theorem
        stop.set()
        raise
    if errors:
        raise errors[0]
    return PoolSearchRun([results[i] for i in sorted(results)], counts)


def search_many(theorems: Iterable[Theorem], env: EnvSource | Any, policy: Policy | Sequence[PolicyEndpoint],
                cfg: SearchConfig, concurrency: int = 1, scorer: EnergyScorer | None = None,
                verifier_factory: Callable[[Any], Verifier] | None = None,
                on_result: Callable[[SearchResult], None] | None = None) -> list[SearchResult]:
    """Search theorems with `concurrency` slots (or the endpoints' own) on a Lean pool, or on a
    plain env / env factory (`EnvPool`, closed at the end)."""
    endpoints = as_endpoints(policy, concurrency)
    owned = not is_pool(env)
    pool = EnvPool(env, sum(max(1, e.concurrency) for e in endpoints)) if owned else env
    try:
        return search_on_pool(list(theorems), pool, endpoints, cfg, scorer, verifier_factory, on_result).results
    finally:
        if owned:
            pool.close()
