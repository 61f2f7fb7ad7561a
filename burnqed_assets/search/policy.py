"""Tactic policies behind one interface: in-process transformers (demo) and SGLang over HTTP (full).

A policy maps a pretty-printed proof state to `n` sampled tactics with their log-probabilities
(sum of token log-probs of the completion). Both implementations format the prompt with
`data.prompt.format_prompt`, the prompt the SFT model was trained on (plan Gotcha 14).
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from burnqed_assets.data.prompt import format_prompt

log = logging.getLogger(__name__)

# The model closes its tactic with the code fence or starts a new comment; cut there.
TACTIC_STOP_STRINGS = ("```", "\n-/", "/-")


@dataclass(frozen=True)
class Candidate:
    """One sampled tactic and its log-probability under the policy."""

    tactic: str
    logprob: float


@runtime_checkable
class Policy(Protocol):
    """Samples candidate tactics for proof states."""

    def generate(self, state: str, n: int, temperature: float) -> list[Candidate]:
        """`n` samples (duplicates possible) for one state."""

    def generate_batch(self, states: Sequence[str], n: int, temperature: float) -> list[list[Candidate]]:
        """`n` samples for each of several states, in order."""


class SearchInfrastructureError(RuntimeError):
    """A service the whole run depends on failed (policy server, encode server, Lean startup).

    Unlike a Lean error on one theorem, this stops the run without recording the theorem as
    attempted, so a resumed run searches it again once the service is back."""


class PolicyError(SearchInfrastructureError):
    """The policy backend failed (server down, bad response) after its retries."""


def sample_seed(run_seed: int, state: str, index: int = 0) -> int:
    """The seed of one sampling call: a hash of (run seed, proof state, sample index), 31 bits.

    Each expansion samples from its own generator keyed by what it samples for, never from
    shared RNG state, so results do not depend on thread timing, batching or which theorem a
    worker searched before. The state text identifies the node (search keeps one node per
    distinct state); the same state gets the same candidates in every run."""
    digest = hashlib.blake2b(f"{int(run_seed)}\x1f{index}\x1f{state}".encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") & 0x7FFFFFFF


def clean_tactic(text: str) -> str:
    """Cut a completion at the first stop string and strip blank edges (keeps inner newlines)."""
    for stop in TACTIC_STOP_STRINGS:
        idx = text.find(stop)
        if idx >= 0:
            text = text[:idx]
    return text.strip("\n").rstrip()


def dedup_candidates(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Drop empty tactics; keep the best log-prob of each distinct tactic, best first."""
    best: dict[str, Candidate] = {}
    for c in candidates:
        tactic = c.tactic.strip()
        if not tactic:
            continue
        if tactic not in best or c.logprob > best[tactic].logprob:
            best[tactic] = Candidate(tactic, float(c.logprob))
    return sorted(best.values(), key=lambda c: -c.logprob)


class BasePolicy:
    """`generate_batch` by looping `generate` (subclasses override whichever is native)."""

    def generate(self, state: str, n: int, temperature: float) -> list[Candidate]:
        return self.generate_batch([state], n, temperature)[0]

    def generate_batch(self, states: Sequence[str], n: int, temperature: float) -> list[list[Candidate]]:
        return [self.generate(s, n, temperature) for s in states]


# --------------------------------------------------------------------------- transformers (demo)


class TransformersPolicy(BasePolicy):
    """In-process generation with a local HF causal LM (demo, CPU). One generation at a time.

    Every call samples with `sample_seed(seed, state)`, not from the global torch RNG."""

    def __init__(self, model: Any, tokenizer: Any, max_new_tokens: int = 64, seed: int | None = 0,
                 cpu_threads: int = 0):
        self.model = model
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.cpu_threads = cpu_threads
        self.seed = 0 if seed is None else int(seed)
        self._lock = threading.Lock()  # one model, several search threads

    @classmethod
    def from_pretrained(cls, path: str, device: str = "auto", dtype: str = "float32",
                        max_new_tokens: int = 64, seed: int | None = None,
                        how_to_obtain: str = "", cpu_threads: int = 0) -> TransformersPolicy:
        from burnqed_assets.models.loading import load_causal_lm, load_tokenizer

        tokenizer = load_tokenizer(path, how_to_obtain)
        model = load_causal_lm(path, device=device, dtype=dtype, how_to_obtain=how_to_obtain)
        model.eval()
        return cls(model, tokenizer, max_new_tokens=max_new_tokens, seed=seed, cpu_threads=cpu_threads)

    def generate(self, state: str, n: int, temperature: float) -> list[Candidate]:
        with self._lock:
            pairs = self._generate_locked(state, n, temperature)
        return [Candidate(clean_tactic(text), float(lp)) for text, lp in pairs]

    def _generate_locked(self, state: str, n: int, temperature: float) -> list[tuple[str, float]]:
        from burnqed_assets.models.generation import generate_tactics
        from burnqed_assets.models.loading import cpu_threads

        with cpu_threads(self.cpu_threads):
            return list(generate_tactics(self.model, self.tokenizer, state, n=n, temperature=temperature,
                                         max_new_tokens=self.max_new_tokens, seed=sample_seed(self.seed, state)))


# --------------------------------------------------------------------------- SGLang over HTTP (full)


class SGLangPolicy(BasePolicy):
    """Client of SGLang's native `/generate` endpoint (server bound to 127.0.0.1; docs/search.md).

    One HTTP request carries a batch of prompts with `sampling_params.n` samples each and
    `return_logprob`; SGLang returns `len(prompts) * n` outputs, prompt-major. Timeouts per
    request, retries with exponential backoff on connection errors, timeouts and 5xx; a 4xx
    or a malformed response fails at once with the server's message.

    Log-probabilities are raw (temperature 1), like `TransformersPolicy`: a managed server
    (`search.serving`) is launched with SGLANG_RETURN_ORIGINAL_LOGPROB set. `server_check`
    (e.g. `ManagedServer.check_alive`) runs after a failed attempt: a dead server fails at once
    with its exit code and log instead of being retried.

    Seeded (`seed` not None, the default): each of the `n` samples of a state is its own prompt
    entry with its own `sampling_seed` (`sample_seed(seed, state, i)`; SGLang hashes the seed with
    the token position, so one seed for all `n` would repeat one sample), and SGLang honours the
    seeds when launched with `--enable-deterministic-inference` (settings.search.sglang_extra_args).
    """

    def __init__(self, base_url: str, max_new_tokens: int = 128, timeout_s: float = 120.0,
                 retries: int = 3, backoff_s: float = 0.5, max_batch: int = 32,
                 stop: Sequence[str] = TACTIC_STOP_STRINGS, client: Any = None,
                 server_check: Callable[[], None] | None = None, seed: int | None = 0):
        import httpx

        self.base_url = base_url.rstrip("/")
        self.max_new_tokens = max_new_tokens
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_batch = max_batch
        self.stop = list(stop)
        self._client = client or httpx.Client(timeout=httpx.Timeout(timeout_s))
        self.server_check = server_check
        self.seed = seed
        self.requests_sent = 0
        self.retries_used = 0

    def close(self) -> None:
        self._client.close()

    def health(self) -> bool:
        try:
            return self._client.get(f"{self.base_url}/health", timeout=min(self.timeout_s, 5.0)).status_code == 200
        except Exception:  # noqa: BLE001 - any failure means not healthy
            return False

    def generate_batch(self, states: Sequence[str], n: int, temperature: float) -> list[list[Candidate]]:
        results: list[list[Candidate]] = []
        for start in range(0, len(states), self.max_batch):
            chunk = list(states[start:start + self.max_batch])
            results.extend(self._request(chunk, n, temperature))
        return results

    def payload(self, states: Sequence[str], n: int, temperature: float) -> dict[str, Any]:
        params = {"temperature": temperature, "max_new_tokens": self.max_new_tokens, "stop": self.stop}
        if self.seed is None:
            return {"text": [format_prompt(s) for s in states], "sampling_params": {"n": n, **params},
                    "return_logprob": True}
        # prompt-major like n > 1: state 0 sample 0..n-1, state 1 sample 0..n-1, ...
        return {
            "text": [format_prompt(s) for s in states for _ in range(n)],
            "sampling_params": [{"n": 1, "sampling_seed": sample_seed(self.seed, s, i), **params}
                                for s in states for i in range(n)],
            "return_logprob": True,
        }

    def _request(self, states: list[str], n: int, temperature: float) -> list[list[Candidate]]:
        import httpx

        body = self.payload(states, n, temperature)
        last_error = "no attempt made"
        for attempt in range(self.retries + 1):
            if attempt:
                self.retries_used += 1
                time.sleep(self.backoff_s * (2 ** (attempt - 1)) * (1 + 0.1 * random.random()))
            self.requests_sent += 1
            try:
                resp = self._client.post(f"{self.base_url}/generate", json=body, timeout=self.timeout_s)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                last_error = f"{type(exc).__name__}: {exc}"
                log.warning("SGLang %s attempt %d/%d failed: %s", self.base_url, attempt + 1,
                            self.retries + 1, last_error)
                if self.server_check is not None:
                    self.server_check()  # a dead server: fail now, with its exit code and log
                continue
            if resp.status_code >= 500:
                last_error = f"HTTP {resp.status_code}: {resp.text[:200]}"
                log.warning("SGLang %s attempt %d/%d: %s", self.base_url, attempt + 1, self.retries + 1, last_error)
                continue
            if resp.status_code >= 400:
                raise PolicyError(f"SGLang {self.base_url}/generate rejected the request: "
                                  f"HTTP {resp.status_code}: {resp.text[:500]}")
            return self.parse_response(resp.json(), len(states), n)
        raise PolicyError(f"SGLang {self.base_url}/generate failed after {self.retries + 1} attempt(s): "
                          f"{last_error}")

    @staticmethod
    def parse_response(data: Any, num_prompts: int, n: int) -> list[list[Candidate]]:
        outputs = data if isinstance(data, list) else [data]
        if len(outputs) != num_prompts * n:
            raise PolicyError(f"SGLang returned {len(outputs)} outputs for {num_prompts} prompt(s) x n={n}")
        grouped: list[list[Candidate]] = []
        for i in range(num_prompts):
            group = []
            for out in outputs[i * n:(i + 1) * n]:
                if not isinstance(out, dict) or "text" not in out:
                    raise PolicyError(f"SGLang output without 'text': {str(out)[:200]}")
                token_lps = (out.get("meta_info") or {}).get("output_token_logprobs")
                if token_lps is None:
                    raise PolicyError("SGLang output without meta_info.output_token_logprobs "
                                      "(was return_logprob sent?)")
                group.append(Candidate(clean_tactic(out["text"]), _sum_logprobs(token_lps)))
            grouped.append(group)
        return grouped


def _sum_logprobs(token_lps: Sequence[Any]) -> float:
    """SGLang gives each token as [logprob, token_id, text|None]; accept {'logprob': x} too."""
    total = 0.0
    for item in token_lps:
        value = item.get("logprob") if isinstance(item, dict) else item[0] if isinstance(item, (list, tuple)) else item
        if value is None:
            continue
        total += float(value)
    return total


# --------------------------------------------------------------------------- batching across threads


class BatchingPolicy(BasePolicy):
    """Collects `generate` calls from concurrent search threads into one `generate_batch`.

    A call waits at most `max_wait_s` for others to join, or until `max_batch` states are
    queued; then one thread sends the batch to the inner policy and hands each caller its
    result. Errors reach every caller of that batch.
    """

    def __init__(self, inner: Policy, max_batch: int = 16, max_wait_s: float = 0.005):
        self.inner = inner
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._cond = threading.Condition()
        self._queue: list[_Pending] = []
        self.batches_sent = 0
        self.states_sent = 0

    def generate(self, state: str, n: int, temperature: float) -> list[Candidate]:
        item = _Pending(state, n, temperature)
        deadline = time.monotonic() + self.max_wait_s
        with self._cond:
            self._queue.append(item)
            self._cond.notify_all()
            while not item.done and len(self._queue) < self.max_batch and time.monotonic() < deadline \
                    and item in self._queue:
                self._cond.wait(timeout=max(0.0, deadline - time.monotonic()))
            if item.done:
                return item.unwrap()
            if item in self._queue:  # this thread leads: take a batch with the same (n, temperature)
                batch = [p for p in self._queue if (p.n, p.temperature) == (n, temperature)][: self.max_batch]
                if item not in batch:
                    batch = [item, *batch[:-1]]
                for p in batch:
                    self._queue.remove(p)
            else:
                batch = []
        if batch:
            try:
                outs = self.inner.generate_batch([p.state for p in batch], n, temperature)
                for p, out in zip(batch, outs):
                    p.result = out
            except BaseException as exc:  # noqa: BLE001 - delivered to every waiter
                for p in batch:
                    p.error = exc
            with self._cond:
                self.batches_sent += 1
                self.states_sent += len(batch)
                for p in batch:
                    p.done = True
                self._cond.notify_all()
        with self._cond:
            while not item.done:
                self._cond.wait()
        return item.unwrap()

    def generate_batch(self, states: Sequence[str], n: int, temperature: float) -> list[list[Candidate]]:
        return self.inner.generate_batch(states, n, temperature)


@dataclass(eq=False)
class _Pending:
    state: str
    n: int
    temperature: float
    result: list[Candidate] | None = None
    error: BaseException | None = None
    done: bool = False

    def unwrap(self) -> list[Candidate]:
        if self.error is not None:
            raise self.error
        return self.result or []
