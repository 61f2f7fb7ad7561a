"""The Phase 1 search deliverables as plain functions (the Dagster assets call one each).

- `build_contrastive_pool_2k`: plan Task 1.3 selection (depth >= 3, harder sources first).
- `generate_trajectories`: plan Task 1.3 search on the pool, in chunks (the asset's partitions)
  merged into search_iter0.parquet + stats.
- `evaluate_minif2f`: plan Tasks 1.4 / 2.6, LLM-only (or EBM-guided with a scorer).

Every search runs on the warm Lean pool (`lean.ray_pool.make_lean_pool`: Ray actors or threads
of this process), one job per theorem, with one slot per search the policy endpoints serve at
once (`search.pooled`). Each returns a dataclass; its `metadata()` is what the asset shows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from burnqed_assets.data.io import read_json, write_json
from burnqed_assets.search.chunks import fingerprint_digest, finished_marker, merge_chunks, plan_chunks, search_chunk
from burnqed_assets.search.engine import ProofVerifierFactory
from burnqed_assets.search.policy import BatchingPolicy, Policy, SGLangPolicy, TransformersPolicy
from burnqed_assets.search.pooled import (
    PolicyEndpoint,
    SGLangPolicySpec,
    TransformersPolicySpec,
    as_endpoints,
    is_pool,
    perf_clock,
)
from burnqed_assets.search.run import (
    BenchmarkEvaluation,
    TrajectoryStats,
    evaluate_benchmark,
    load_benchmark,
    select_contrastive_pool,
    theorems_from_records,
)
from burnqed_assets.search.serving import ManagedServer, ServerSpec, confirm_served_model
from burnqed_assets.settings import Settings

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- policy


def _transformers_spec(settings: Settings, model_dir: Path | None = None) -> TransformersPolicySpec:
    s = settings.search
    return TransformersPolicySpec(str(model_dir or settings.paths.merged_model(0)), device=settings.model.device,
                                  dtype=settings.model.dtype, max_new_tokens=s.max_new_tokens, seed=settings.data.seed,
                                  cpu_threads=s.cpu_threads, how_to_obtain="materialize the `merged_iter0` asset first")


def _sglang_spec(settings: Settings, url: str) -> SGLangPolicySpec:
    s = settings.search
    return SGLangPolicySpec(url, max_new_tokens=s.max_new_tokens, timeout_s=s.http_timeout_s, retries=s.http_retries,
                            max_batch=s.http_max_batch, seed=settings.data.seed)


def make_policy(settings: Settings, model_dir: Path | None = None) -> Policy:
    """The profile's policy: in-process transformers (demo) or the SGLang server (full)."""
    s = settings.search
    if s.policy_backend == "transformers":
        spec = _transformers_spec(settings, model_dir)
        return TransformersPolicy.from_pretrained(
            spec.model_dir, device=spec.device, dtype=spec.dtype, max_new_tokens=spec.max_new_tokens,
            seed=spec.seed, how_to_obtain=spec.how_to_obtain, cpu_threads=spec.cpu_threads)
    if s.policy_backend == "sglang":
        return _sglang_policy(settings, s.sglang_url)
    raise ValueError(f"unknown settings.search.policy_backend {s.policy_backend!r}; "
                     "choose 'transformers' or 'sglang'")


def _sglang_policy(settings: Settings, url: str, server_check: Callable[[], None] | None = None,
                   require_health: bool = True) -> Policy:
    s = settings.search
    client = SGLangPolicy(url, max_new_tokens=s.max_new_tokens, timeout_s=s.http_timeout_s,
                          retries=s.http_retries, max_batch=s.http_max_batch, seed=settings.data.seed,
                          server_check=server_check)
    if require_health and not client.health():
        raise ConnectionError(f"no SGLang server answers at {url}/health; start it as docs/search.md "
                              "explains (bound to 127.0.0.1) with the merged model")
    return BatchingPolicy(client, max_batch=s.http_max_batch)


def _close_policy(policy: Any) -> None:
    inner = getattr(policy, "inner", policy)
    close = getattr(inner, "close", None)
    if callable(close):
        close()


def managed_server_specs(settings: Settings, launcher: Sequence[str] | None = None) -> list[ServerSpec]:
    """One server spec per GPU of `search.sglang_gpus` (CUDA_VISIBLE_DEVICES=<gpu>, its own port:
    `sglang_port + i`, or a free one when sglang_port is 0), or the one server of `sglang_port`."""
    s = settings.search
    base = ServerSpec.from_settings(s, log_file=settings.paths.server_log, launcher=launcher)
    if not s.sglang_gpus:
        return [base]
    return [replace(base, port=s.sglang_port + i if s.sglang_port else 0,
                    env={**dict(base.env), "CUDA_VISIBLE_DEVICES": str(gpu)})
            for i, gpu in enumerate(s.sglang_gpus)]


def _start_all(servers: Sequence[ManagedServer]) -> None:
    """Start every server at once (each loads its model in minutes); stop them all if one fails."""
    with ThreadPoolExecutor(max_workers=len(servers), thread_name_prefix="sglang-start") as ex:
        futures = [ex.submit(srv.start) for srv in servers]
        errors = [f.exception() for f in futures]
    failed = [e for e in errors if e is not None]
    if failed:
        for srv in servers:
            srv.stop()
        raise failed[0]


@contextmanager
def policy_session(settings: Settings, model_dir: Path, launcher: Sequence[str] | None = None,
                   say: Callable[[str], None] | None = None) -> Iterator[list[PolicyEndpoint]]:
    """The policy endpoints of one search step, with their servers' whole lifecycle. Each endpoint
    carries the live policy (for workers in this process) and a picklable spec (Ray actors).

    transformers (demo): the model in process, one endpoint. sglang, managed (full): launch one
    server per GPU of `search.sglang_gpus` (else one) with `model_dir` (launcher: `launcher` or
    settings.search.sglang_launcher), wait for /health, confirm the served model, yield one
    endpoint per server, stop them when the step ends. sglang, unmanaged: the servers at
    `search.sglang_urls` (else `sglang_url`), after the same model check."""
    s = settings.search
    if s.policy_backend != "sglang":
        policy = make_policy(settings, model_dir)
        yield [PolicyEndpoint(policy, s.concurrency, "in-process", _transformers_spec(settings, model_dir))]
        return
    several = len(s.sglang_gpus) > 1 if s.sglang_managed else len(s.sglang_urls) > 1
    per = (s.endpoint_concurrency or s.concurrency) if several else s.concurrency
    if not s.sglang_managed:
        import httpx

        urls = s.sglang_urls or (s.sglang_url,)
        with httpx.Client() as client:
            for url in urls:  # every endpoint must serve the model this step evaluates
                confirm_served_model(client, url, model_dir)
        endpoints = [PolicyEndpoint(_sglang_policy(settings, url), per, url, _sglang_spec(settings, url))
                     for url in urls]
        try:
            yield endpoints
        finally:
            for e in endpoints:
                _close_policy(e.policy)
        return
    servers = [ManagedServer(spec, model_dir) for spec in managed_server_specs(settings, launcher)]
    _start_all(servers)
    endpoints = []
    try:
        for srv in servers:
            if say is not None:
                gpu = srv.spec.env.get("CUDA_VISIBLE_DEVICES")
                say(f"policy server at {srv.url}{f' on GPU {gpu}' if gpu else ''} serving {model_dir} "
                    f"(ready in {srv.started_s:.1f}s, log {srv.log_path})")
            endpoints.append(PolicyEndpoint(
                _sglang_policy(settings, srv.url, server_check=srv.check_alive, require_health=False), per, srv.url,
                _sglang_spec(settings, srv.url)))
        yield endpoints
    finally:
        for e in endpoints:
            _close_policy(e.policy)
        for srv in servers:
            srv.stop()


def _model_fingerprint(settings: Settings, model_dir: Path) -> dict[str, Any]:
    """Identifies the policy for resume: another model (or rebuilt weights) restarts the run."""
    files = sorted(p for p in Path(model_dir).glob("*") if p.is_file()) if Path(model_dir).is_dir() else []
    return {"backend": settings.search.policy_backend, "model_dir": str(model_dir),
            "model_files": [(p.name, p.stat().st_size, int(p.stat().st_mtime)) for p in files],
            "sglang_url": settings.search.sglang_url if settings.search.policy_backend == "sglang"
            and not settings.search.sglang_managed else None}


def search_slots(endpoints: Sequence[PolicyEndpoint]) -> int:
    return sum(max(1, e.concurrency) for e in endpoints)


@contextmanager
def search_pool(settings: Settings, slots: int, lean: Any = None) -> Iterator[Any]:
    """The warm Lean pool of one search step: `lean` when given (a pool, a plain env or an env
    factory), else the profile's pool (settings.pool: Ray actors or threads), closed at the end.
    One worker per search slot, at most `lean.pool_workers` (the REPLs the machine holds: a
    Mathlib REPL takes ~6.5 GB); slots beyond that wait for a free worker."""
    if lean is not None:
        yield lean
        return
    from burnqed_assets.lean.ray_pool import make_lean_pool

    size = max(1, min(slots, settings.lean.pool_workers))
    if size < slots:
        log.info("%d search slots share %d Lean worker(s) (lean.pool_workers)", slots, size)
    pool = make_lean_pool(settings, size=size)
    try:
        yield pool
    finally:
        pool.close()


def _pool_stats(lean: Any) -> dict[str, Any]:
    stats = getattr(lean, "stats", None)
    if not (is_pool(lean) and callable(stats)):
        return {}
    try:
        return dict(stats())
    except Exception as exc:  # noqa: BLE001 - counters never fail a step
        log.warning("Lean pool stats: %s", exc)
        return {}


def _policy_context(settings: Settings, model_dir: Path, policy: Any, session: Any,
                    launcher: Sequence[str] | None, say: Callable[[str], None] | None) -> AbstractContextManager[Any]:
    if policy is not None:
        return _given(policy)
    if session is not None:
        return session()
    return policy_session(settings, model_dir, launcher, say)


@contextmanager
def _given(value: Any) -> Iterator[Any]:
    yield value


# --------------------------------------------------------------------------- Task 1.3 selection


@dataclass(frozen=True)
class ContrastivePoolSelection:
    """What `build_contrastive_pool_2k` selected and skipped (asset metadata)."""

    path: str
    selected: int
    pool_size: int
    too_shallow: int
    missing_statement: int
    missing_statement_examples: list[str]
    min_depth: int
    max_theorems: int
    hardness_tiers: dict[str, int]
    mean_max_depth: float
    sources: dict[str, int]
    preview: list[str]

    def metadata(self) -> dict[str, Any]:
        return asdict(self)


def build_contrastive_pool_2k(settings: Settings) -> ContrastivePoolSelection:
    src = settings.paths.contrastive_pool
    if not src.exists():
        raise FileNotFoundError(f"{src} is missing: materialize the `contrastive_pool` asset first")
    entries = read_json(src)
    if not isinstance(entries, list):
        raise ValueError(f"{src}: expected a JSON list of pool entries, got {type(entries).__name__}")
    sel = select_contrastive_pool(entries, settings.search.max_theorems, settings.data.contrastive_min_depth,
                                  source_path=str(src))
    out = settings.paths.contrastive_pool_2k
    write_json(out, sel.selected)
    depths = [int(e.get("max_depth") or 0) for e in sel.selected]
    return ContrastivePoolSelection(
        path=str(out), selected=len(sel.selected), pool_size=sel.candidates, too_shallow=sel.too_shallow,
        missing_statement=sel.missing_statement, missing_statement_examples=list(sel.missing_statement_examples),
        min_depth=settings.data.contrastive_min_depth, max_theorems=settings.search.max_theorems,
        hardness_tiers=dict(sel.tier_counts), mean_max_depth=sum(depths) / len(depths) if depths else 0.0,
        sources=_count(e.get("source") for e in sel.selected), preview=[str(e.get("theorem")) for e in sel.selected[:10]])


def _count(values: Iterable[Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[str(v)] = out.get(str(v), 0) + 1
    return out


# --------------------------------------------------------------------------- Task 1.3 search


def _progress_logger(say: Callable[[str], None] | None, every: int = 1) -> Any:
    if say is None:
        return None

    def progress(done: int, total: int, res: Any) -> None:
        if done % every == 0 or done == total:
            say(f"[{done}/{total}] {res.theorem}: proved={res.proved} nodes={len(res.nodes)} "
                f"{res.elapsed_s:.1f}s {res.stop_reason}{' ' + res.error if res.error else ''}")

    return progress


def trajectory_chunk_count(settings: Settings) -> int:
    """Chunk partitions the trajectory search may use: the graph's chunk partitions
    (`lean.trace_partitions`, shared with tracing so one run can cover both)."""
    return settings.lean.trace_partitions


@dataclass(frozen=True)
class TrajectoryRun:
    """The trajectory search of the asked chunks and the merged deliverable (plan Task 1.3)."""

    stats: TrajectoryStats
    path: str
    stats_path: str
    results_path: str
    proved_names: list[str]
    profile: str
    lean_backend: str
    policy_backend: str
    search_config: dict[str, Any]
    chunk_size: int
    chunks: int  # chunks holding theorems
    chunks_this_run: list[int]
    chunks_searched: list[int]  # of those asked, searched now (the others were finished already)
    missing_chunks: list[int]  # not finished: the deliverable lacks them (the blocking check says so)
    searched_theorems: int
    resumed_theorems: int  # taken from an interrupted chunk's per-theorem parts
    lean_pool: dict[str, Any] = field(default_factory=dict)  # pool counters of this run (none: no chunk to do)
    endpoint_theorems: dict[str, int] = field(default_factory=dict)  # fan-out: theorems per endpoint

    def stats_file(self) -> dict[str, Any]:
        """trajectory_stats.json: what repeats from run to run (no pool counters, no fan-out split)."""
        return {**self.stats.as_dict(), "profile": self.profile, "lean_backend": self.lean_backend,
                "policy_backend": self.policy_backend, "search_config": self.search_config,
                "chunk_size": self.chunk_size, "chunks": self.chunks, "missing_chunks": self.missing_chunks}


def generate_trajectories(settings: Settings, policy: Any = None, lean: Any = None, iteration: int = 0,
                          chunks: Iterable[int] | None = None, say: Callable[[str], None] | None = None,
                          launcher: Sequence[str] | None = None,
                          session: Callable[[], AbstractContextManager[Any]] | None = None,
                          clock_factory: Callable[[], Callable[[], float]] = perf_clock) -> TrajectoryRun:
    """Search the selected pool with the full per-theorem budget (Gotcha 8: depth over breadth),
    chunk by chunk (`chunks`: the asked partitions' indices; default all), then rebuild the
    deliverable from every finished chunk. The policy (`policy`, else `session()`, else
    `policy_session`) and the Lean pool (`lean`, else the profile's) start only when an asked
    chunk is unfinished."""
    pool_path = settings.paths.contrastive_pool_2k
    if not pool_path.exists():
        raise FileNotFoundError(f"{pool_path} is missing: materialize `contrastive_pool_2k` first")
    theorems = theorems_from_records(read_json(pool_path), name_key="theorem")
    cfg = settings.search
    size = cfg.trajectory_chunk_size
    planned = plan_chunks(theorems, size)
    if len(planned) > trajectory_chunk_count(settings):
        raise ValueError(f"{sum(map(len, planned))} theorems to search need {len(planned)} chunks of "
                         f"{size}, more than the {trajectory_chunk_count(settings)} chunk partitions: raise "
                         f"settings.search.trajectory_chunk_size or settings.lean.trace_partitions "
                         f"in the {settings.profile!r} profile")
    asked = sorted(set(range(len(planned)) if chunks is None else chunks))
    model_dir = settings.paths.merged_model(iteration)
    fingerprint = {"config": cfg.engine_fields(), "scorer": False, **_model_fingerprint(settings, model_dir)}
    paths = settings.paths
    digest = fingerprint_digest(fingerprint)
    todo = [i for i in asked if i < len(planned)
            and finished_marker(paths.search_chunk(iteration, i), planned[i], digest) is None]
    searched = resumed = 0
    pool_stats: dict[str, Any] = {}
    endpoint_theorems: dict[str, int] = {}
    if todo:
        with ExitStack() as stack:
            endpoints = as_endpoints(stack.enter_context(
                _policy_context(settings, model_dir, policy, session, launcher, say)), cfg.concurrency)
            pool = stack.enter_context(search_pool(settings, search_slots(endpoints), lean))
            for i in todo:
                if say is not None:
                    say(f"chunk {i}: searching {len(planned[i])} theorem(s)")
                out = search_chunk(i, planned[i], paths.search_chunk(iteration, i), pool, endpoints, cfg, fingerprint,
                                   verifier_factory=ProofVerifierFactory(tuple(settings.lean.allowed_axioms)),
                                   progress=_progress_logger(say, max(1, len(planned[i]) // 10)),
                                   clock_factory=clock_factory)
                if out.run is not None:
                    searched += out.run.searched
                    resumed += out.run.resumed
                    for name, n in out.run.endpoint_theorems.items():
                        endpoint_theorems[name] = endpoint_theorems.get(name, 0) + n
            pool_stats = _pool_stats(pool)
    merged = merge_chunks(planned, lambda i: paths.search_chunk(iteration, i), fingerprint,
                          paths.search_trajectories(iteration), paths.search_results(iteration))
    run = TrajectoryRun(
        stats=merged.stats(), path=str(paths.search_trajectories(iteration)), stats_path=str(paths.trajectory_stats),
        results_path=str(paths.search_results(iteration)),
        proved_names=[r["theorem"] for r in merged.results if r["proved"]][:20], profile=settings.profile,
        lean_backend=settings.lean.backend, policy_backend=cfg.policy_backend, search_config=cfg.engine_fields(),
        chunk_size=size, chunks=len(planned), chunks_this_run=asked, chunks_searched=todo,
        missing_chunks=merged.missing, searched_theorems=searched, resumed_theorems=resumed, lean_pool=pool_stats,
        endpoint_theorems=endpoint_theorems)
    write_json(paths.trajectory_stats, run.stats_file())
    return run


# --------------------------------------------------------------------------- Tasks 1.4 / 2.6


@dataclass(frozen=True)
class MiniF2FEvaluation:
    """One benchmark evaluation step: the search's outcome plus what was selected and how."""

    evaluation: BenchmarkEvaluation
    benchmark: str
    benchmark_size: int
    selection: str
    selectable_problems: int
    iteration: int
    tag: str
    profile: str
    lean_backend: str
    policy_backend: str
    summary_path: str
    lean_pool: dict[str, Any] = field(default_factory=dict)

    @property
    def proved(self) -> int:
        return self.evaluation.proved

    @property
    def attempted(self) -> int:
        return self.evaluation.attempted

    @property
    def rate(self) -> float:
        return self.evaluation.rate

    @property
    def errors(self) -> int:
        return self.evaluation.errors

    @property
    def proved_names(self) -> list[str]:
        return self.evaluation.proved_names

    def summary(self) -> dict[str, Any]:
        """The summary JSON (evals/iter_N/<benchmark>_<tag>.json): what repeats from run to run."""
        return {**self.evaluation.as_dict(), "benchmark": self.benchmark, "benchmark_size": self.benchmark_size,
                "selection": self.selection, "selectable_problems": self.selectable_problems,
                "iteration": self.iteration, "tag": self.tag, "profile": self.profile,
                "lean_backend": self.lean_backend, "policy_backend": self.policy_backend,
                "summary_path": self.summary_path}


def evaluate_minif2f(settings: Settings, benchmark: str, policy: Any = None, lean: Any = None,
                     scorer: Any = None, iteration: int = 0, tag: str = "llm",
                     say: Callable[[str], None] | None = None,
                     launcher: Sequence[str] | None = None) -> MiniF2FEvaluation:
    """Evaluate on one normalised benchmark file (first settings.search.max_eval_theorems problems).
    `tag` names the outputs ("llm" for LLM-only; e.g. "ebm" for an EBM-guided run with `scorer`).
    Without `policy`, the merged model of `iteration` is served for this call only (`policy_session`);
    without `lean`, the profile's warm Lean pool runs the searches."""
    src = settings.paths.benchmark(benchmark).test
    if not src.exists():
        raise FileNotFoundError(f"{src} is missing: materialize the benchmark port asset first")
    all_problems = load_benchmark(src)
    # The REPL stand-in only knows recorded theorems: evaluate those it can answer, and say so.
    from burnqed_assets.lean.factory import answerable_filter

    can_answer = getattr(lean, "can_answer", None) or answerable_filter(settings)
    candidates = [p for p in all_problems if can_answer(p["name"])] if callable(can_answer) else all_problems
    selection = ("stand-in-answerable problems (recorded root state with recorded tactics), file order"
                 if callable(can_answer) else "file order")
    limit = settings.search.max_eval_theorems
    problems = candidates[:limit] if limit is not None else candidates
    model_dir = settings.paths.merged_model(iteration)
    paths = settings.paths.search_eval(benchmark, iteration, tag)
    with ExitStack() as stack:
        endpoints = as_endpoints(stack.enter_context(_policy_context(settings, model_dir, policy, None, launcher, say)),
                                 settings.search.concurrency)
        pool = stack.enter_context(search_pool(settings, search_slots(endpoints), lean))
        evaluation = evaluate_benchmark(problems, pool, endpoints, settings, scorer=scorer, out_path=paths.results,
                                        trajectories_path=paths.trajectories,
                                        verifier_factory=ProofVerifierFactory(tuple(settings.lean.allowed_axioms)),
                                        fingerprint={**_model_fingerprint(settings, model_dir), "tag": tag},
                                        progress=_progress_logger(say, max(1, len(problems) // 20)))
        pool_stats = _pool_stats(pool)
    out = MiniF2FEvaluation(evaluation=evaluation, benchmark=benchmark, benchmark_size=len(all_problems),
                            selection=selection, selectable_problems=len(candidates), iteration=iteration, tag=tag,
                            profile=settings.profile, lean_backend=settings.lean.backend,
                            policy_backend=settings.search.policy_backend, summary_path=str(paths.summary),
                            lean_pool=pool_stats)
    write_json(paths.summary, out.summary())
    return out


def plot_depth_distribution(stats: TrajectoryStats, dest: Path) -> Path:
    """Bar chart of states per depth (the EBM needs depth ≥ 4; plan Gotcha 8)."""
    from burnqed_assets.reports.plots import plt, save_figure

    dist = {int(k): v for k, v in stats.depth_distribution.items()}
    depths = sorted(dist)
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(depths, [dist[d] for d in depths],
           color=["#d55816" if d >= stats.deep_state_depth else "#4a7ab5" for d in depths])
    ax.set_xlabel("depth")
    ax.set_ylabel("states")
    ax.set_title(f"deep share (≥{stats.deep_state_depth}) = {stats.deep_state_share:.2f}")
    return save_figure(fig, dest)
