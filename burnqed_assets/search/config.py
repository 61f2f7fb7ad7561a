"""Best-first search configuration (plan Tasks 1.3, 1.4, 2.6): budgets, sampling, serving endpoints.

Light: imports nothing heavy, so settings.py composes profiles from it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class SearchConfig:
    max_nodes: int = 800
    timeout_s: float = 300.0
    num_candidates: int = 16
    temperature: float = 1.3
    length_normalised: bool = False
    ebm_lambda: float = 1.0  # used only when a scorer is given
    eval_max_nodes: int = 600  # the evaluation budget (Tasks 1.4 / 2.6); `for_evaluation` applies it
    concurrency: int = 10  # searches at once per policy endpoint; each holds one warm Lean pool worker
    max_theorems: int = 2000
    # Theorems per chunk of the trajectory search (the `trajectories` asset's partitions, shared
    # with tracing: chunk_000 ...); a finished chunk is never searched again.
    trajectory_chunk_size: int = 500
    max_eval_theorems: int | None = None  # None = all benchmark problems
    # The policy server. Managed (default): each search step launches `sglang_launcher` with the
    # merged model it evaluates on 127.0.0.1:sglang_port, checks /model_info, and stops it at the
    # end (search.serving). Unmanaged: requests go to an already running server at sglang_url
    # (its model is still checked). "{python}" is this interpreter.
    sglang_managed: bool = True
    sglang_launcher: tuple[str, ...] = ("{python}", "-m", "sglang.launch_server")
    sglang_port: int = 30000
    # SGLang's share of GPU memory for weights + KV cache; the rest holds the nf4 encoder (EBM search).
    sglang_mem_fraction_static: float = 0.80
    sglang_startup_timeout_s: float = 900.0
    # Deterministic inference makes SGLang honour each request's `sampling_seed` (the policy sends
    # one per sample, derived from the run seed and the state), so a search does not depend on
    # batching or thread timing.
    sglang_extra_args: tuple[str, ...] = ("--enable-deterministic-inference",)
    sglang_url: str = "http://127.0.0.1:30000"
    # Fan-out, managed: one server per GPU named here (CUDA_VISIBLE_DEVICES=<gpu>, port
    # sglang_port + i on 127.0.0.1), e.g. ("0", "1", "2", "3"). Empty: one server.
    sglang_gpus: tuple[str, ...] = ()
    # Fan-out, unmanaged: several running policy servers. Empty: sglang_url.
    sglang_urls: tuple[str, ...] = ()
    # Searches at once per endpoint when there are several (0: `concurrency`). Every endpoint slot
    # takes the next theorem from one shared queue, so a slower server searches fewer theorems.
    endpoint_concurrency: int = 0
    encode_server_host: str = "127.0.0.1"
    encode_server_port: int = 8081
    # Policy backend: "sglang" (HTTP to sglang_url, full) | "transformers" (in process, demo CPU).
    policy_backend: str = "sglang"
    max_new_tokens: int = 128
    http_timeout_s: float = 120.0
    http_retries: int = 3
    http_max_batch: int = 32  # prompts per SGLang request (concurrent expansions are batched)
    encode_max_batch: int = 256  # (state, goal) pairs per encode-server request
    cpu_threads: int = 0  # torch threads for in-process generation (0 = torch default; demo 1, see models.loading)

    def for_evaluation(self) -> SearchConfig:
        return replace(self, max_nodes=self.eval_max_nodes)

    def engine_fields(self) -> dict[str, object]:
        """What shapes one tree search (recorded with the trajectories and in the resume fingerprint)."""
        return {"max_nodes": self.max_nodes, "timeout_s": self.timeout_s, "num_candidates": self.num_candidates,
                "temperature": self.temperature, "length_normalised": self.length_normalised,
                "ebm_lambda": self.ebm_lambda}
