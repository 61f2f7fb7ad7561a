"""The Phase 1 search deliverables as plain functions (the Dagster assets call one each).

- `build_contrastive_pool_2k`: plan Task 1.3 selection (depth >= 3, harder sources first).
- `generate_trajectories`: plan Task 1.3 search on the pool → search_iter0.parquet + stats.
- `evaluate_minif2f`: plan Tasks 1.4 / 2.6, LLM-only (or EBM-guided with a scorer).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from burnqed_assets.data.io import read_json, write_json
from burnqed_assets.search.engine import make_verifier
from burnqed_assets.search.policy import BatchingPolicy, Policy, SGLangPolicy, TransformersPolicy
from burnqed_assets.search.serving import ManagedServer, ServerSpec, confirm_served_model
from burnqed_assets.search.run import (
    PolicyEndpoint,
    evaluate_benchmark,
    load_benchmark,
    run_search,
    select_contrastive_pool,
    theorems_from_records,
    write_results,
)
from burnqed_assets.settings import Settings

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- policy


def make_policy(settings: Settings, model_dir: Path | None = None) -> Policy:
    """The profile's policy: in-process transformers (demo) or the SGLang server (full)."""
    s = settings.search
    if s.policy_backend == "transformers":
        path = model_dir or settings.paths.merged_model(0)
        return TransformersPolicy.from_pretrained(
            str(path), device=settings.model.device, dtype=settings.model.dtype, max_new_tokens=s.max_new_tokens,
            seed=settings.data.seed, how_to_obtain="materialize the `merged_iter0` asset first",
            cpu_threads=s.cpu_threads)
    if s.policy_backend == "sglang":
        return _sglang_policy(settings, s.sglang_url)
    raise ValueError(f"unknown settings.search.policy_backend {s.policy_backend!r}; "
                     "choose 'transformers' or 'sglang'")


def _sglang_policy(settings: Settings, url: str) -> Policy:
    s = settings.search
    client = SGLangPolicy(url, max_new_tokens=s.max_new_tokens, timeout_s=s.http_timeout_s,
                          retries=s.http_retries, max_batch=s.http_max_batch, seed=settings.data.seed)
    if not client.health():
        raise ConnectionError(f"no SGLang server answers at {url}/health; start it as docs/search.md "
                              "explains (bound to 127.0.0.1) with the merged model")
    return BatchingPolicy(client, max_batch=s.http_max_batch)


def policy_endpoints(settings: Settings) -> list[PolicyEndpoint]:
    """One endpoint per URL of `search.sglang_urls` (unmanaged servers), each serving
    `endpoint_concurrency` (or `concurrency`) searches at once."""
    s = settings.search
    per = s.endpoint_concurrency or s.concurrency
    return [PolicyEndpoint(_sglang_policy(settings, url), per, url) for url in s.sglang_urls]


@contextmanager
def policy_session(settings: Settings, model_dir: Path, launcher: Sequence[str] | None = None,
                   say: Callable[[str], None] | None = None) -> Iterator[Policy]:
    """The policy for one search step, with its server's whole lifecycle.

    transformers (demo): the model in process. sglang, managed (full): launch the server with
    `model_dir` (launcher: `launcher` or settings.search.sglang_launcher), wait for /health,
    confirm the served model, yield the batched client, stop the server when the step ends.
    sglang, unmanaged: the server at settings.search.sglang_url, after the same model check."""
    s = settings.search
    if s.policy_backend != "sglang":
        yield make_policy(settings, model_dir)
        return
    if not s.sglang_managed:
        import httpx

        urls = s.sglang_urls or (s.sglang_url,)
        with httpx.Client() as client:
            for url in urls:  # every endpoint must serve the model this step evaluates
                confirm_served_model(client, url, model_dir)
        # Several servers: the theorems are spread over them (run.run_search fans out).
        yield policy_endpoints(settings) if s.sglang_urls else make_policy(settings, model_dir)  # type: ignore[misc]
        return
    spec = ServerSpec.from_settings(s, log_file=settings.paths.server_log, launcher=launcher)
    with ManagedServer(spec, model_dir) as server:
        if say is not None:
            say(f"policy server at {server.url} serving {model_dir} (ready in {server.started_s:.1f}s, "
                f"log {server.log_path})")
        client = SGLangPolicy(server.url, max_new_tokens=s.max_new_tokens, timeout_s=s.http_timeout_s,
                              retries=s.http_retries, max_batch=s.http_max_batch, server_check=server.check_alive,
                              seed=settings.data.seed)
        try:
            yield BatchingPolicy(client, max_batch=s.http_max_batch)
        finally:
            client.close()


def _model_fingerprint(settings: Settings, model_dir: Path) -> dict[str, Any]:
    """Identifies the policy for resume: another model (or rebuilt weights) restarts the run."""
    files = sorted(p for p in Path(model_dir).glob("*") if p.is_file()) if Path(model_dir).is_dir() else []
    return {"backend": settings.search.policy_backend, "model_dir": str(model_dir),
            "model_files": [(p.name, p.stat().st_size, int(p.stat().st_mtime)) for p in files],
            "sglang_url": settings.search.sglang_url if settings.search.policy_backend == "sglang"
            and not settings.search.sglang_managed else None}


def _make_env(settings: Settings) -> Any:
    from burnqed_assets.lean import make_lean_env

    return make_lean_env(settings)


def _env_source(settings: Settings) -> Any:
    """One supervised REPL process (Lean, or the REPL stand-in in demo) per search worker."""
    return lambda: _make_env(settings)


# --------------------------------------------------------------------------- Task 1.3 selection


def build_contrastive_pool_2k(settings: Settings) -> dict[str, Any]:
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
    return {
        "path": str(out), "selected": len(sel.selected), "pool_size": sel.candidates,
        "too_shallow": sel.too_shallow, "missing_statement": sel.missing_statement,
        "missing_statement_examples": sel.missing_statement_examples, "min_depth": settings.data.contrastive_min_depth,
        "max_theorems": settings.search.max_theorems, "hardness_tiers": sel.tier_counts,
        "mean_max_depth": sum(depths) / len(depths) if depths else 0.0,
        "sources": _count(e.get("source") for e in sel.selected),
        "preview": [e.get("theorem") for e in sel.selected[:10]],
    }


def _count(values: Any) -> dict[str, int]:
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


def generate_trajectories(settings: Settings, policy: Policy | None = None, env: Any = None,
                          iteration: int = 0, say: Callable[[str], None] | None = None,
                          launcher: Sequence[str] | None = None) -> dict[str, Any]:
    """Search the selected pool with the full per-theorem budget (Gotcha 8: depth over breadth).
    Without `policy`, the profile's policy runs for this call only (`policy_session`)."""
    pool_path = settings.paths.contrastive_pool_2k
    if not pool_path.exists():
        raise FileNotFoundError(f"{pool_path} is missing: materialize `contrastive_pool_2k` first")
    theorems = theorems_from_records(read_json(pool_path), name_key="theorem")
    model_dir = settings.paths.merged_model(iteration)
    own_env = env is None
    env = env if env is not None else _env_source(settings)
    cfg = settings.search
    out = settings.paths.search_trajectories(iteration)
    with ExitStack() as stack:
        if policy is None:
            policy = stack.enter_context(policy_session(settings, model_dir, launcher, say))
        run = run_search(theorems, env, policy, cfg, out, concurrency=settings.search.concurrency,
                         verifier_factory=lambda e: make_verifier(e, settings),
                         fingerprint=_model_fingerprint(settings, model_dir),
                         progress=_progress_logger(say, max(1, len(theorems) // 20)))
    stats = run.stats()
    stats.update({"profile": settings.profile, "lean_backend": settings.lean.backend,
                  "policy_backend": settings.search.policy_backend, "search_config": cfg.engine_fields(),
                  "resumed_theorems": run.resumed, "searched_theorems": run.searched})
    results_path = settings.paths.search_results(iteration)
    write_results(run.results, results_path)
    write_json(settings.paths.trajectory_stats, stats)
    if own_env:
        _close(env)
    return {**stats, "path": str(out), "stats_path": str(settings.paths.trajectory_stats),
            "results_path": str(results_path),
            "proved_names": [r["theorem"] for r in run.results if r["proved"]][:20]}


# --------------------------------------------------------------------------- Tasks 1.4 / 2.6


def evaluate_minif2f(settings: Settings, benchmark: str, policy: Policy | None = None, env: Any = None,
                     scorer: Any = None, iteration: int = 0, tag: str = "llm",
                     say: Callable[[str], None] | None = None,
                     launcher: Sequence[str] | None = None) -> dict[str, Any]:
    """Evaluate on one normalised benchmark file (first settings.search.max_eval_theorems problems).
    `tag` names the outputs ("llm" for LLM-only; e.g. "ebm" for an EBM-guided run with `scorer`).
    Without `policy`, the merged model of `iteration` is served for this call only (`policy_session`)."""
    src = settings.paths.benchmark(benchmark).test
    if not src.exists():
        raise FileNotFoundError(f"{src} is missing: materialize the benchmark port asset first")
    all_problems = load_benchmark(src)
    own_env = env is None
    env = env if env is not None else _env_source(settings)
    # The REPL stand-in only knows recorded theorems: evaluate those it can answer, and say so.
    from burnqed_assets.lean.factory import answerable_filter

    can_answer = getattr(env, "can_answer", None) or answerable_filter(settings)
    candidates = [p for p in all_problems if can_answer(p["name"])] if callable(can_answer) else all_problems
    selection = ("stand-in-answerable problems (recorded root state with recorded tactics), file order"
                 if callable(can_answer) else "file order")
    limit = settings.search.max_eval_theorems
    problems = candidates[:limit] if limit is not None else candidates
    model_dir = settings.paths.merged_model(iteration)
    paths = settings.paths.search_eval(benchmark, iteration, tag)
    with ExitStack() as stack:
        if policy is None:
            policy = stack.enter_context(policy_session(settings, model_dir, launcher, say))
        summary = evaluate_benchmark(problems, env, policy, settings, scorer=scorer, out_path=paths.results,
                                     trajectories_path=paths.trajectories,
                                     verifier_factory=lambda e: make_verifier(e, settings),
                                     fingerprint={**_model_fingerprint(settings, model_dir), "tag": tag},
                                     progress=_progress_logger(say, max(1, len(problems) // 20)))
    summary.update({"benchmark": benchmark, "benchmark_size": len(all_problems), "selection": selection,
                    "selectable_problems": len(candidates), "iteration": iteration,
                    "tag": tag, "profile": settings.profile, "lean_backend": settings.lean.backend,
                    "policy_backend": settings.search.policy_backend, "summary_path": str(paths.summary)})
    write_json(paths.summary, summary)
    if own_env:
        _close(env)
    return summary


def _close(env: Any) -> None:
    close = getattr(env, "close", None)
    if callable(close) and hasattr(env, "run_tactic"):  # an env, not a per-worker factory
        close()


def plot_depth_distribution(stats: dict[str, Any], dest: Path) -> Path:
    """Bar chart of states per depth (the EBM needs depth ≥ 4; plan Gotcha 8)."""
    from burnqed_assets.reports.plots import plt, save_figure

    dist = {int(k): v for k, v in stats.get("depth_distribution", {}).items()}
    depths = sorted(dist)
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(depths, [dist[d] for d in depths],
           color=["#d55816" if d >= stats.get("deep_state_depth", 4) else "#4a7ab5" for d in depths])
    ax.set_xlabel("depth")
    ax.set_ylabel("states")
    ax.set_title(f"deep share (≥{stats.get('deep_state_depth', 4)}) = {stats.get('deep_state_share', 0.0):.2f}")
    return save_figure(fig, dest)
