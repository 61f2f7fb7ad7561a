"""SGLang HTTP client against a fake /generate server on 127.0.0.1 (normal, slow, failing, flaky)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from burnqed_assets.data.prompt import PROMPT_PREFIX
from burnqed_assets.search.policy import BatchingPolicy, PolicyError, SGLangPolicy


class FakeSGLang:
    """Answers like SGLang's native /generate: len(text) * n outputs, prompt-major."""

    def __init__(self, mode: str = "normal", delay_s: float = 0.0, fail_times: int = 0):
        self.mode = mode
        self.delay_s = delay_s
        self.fail_times = fail_times
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                self._send(200, {"ok": True})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                if outer.delay_s:
                    time.sleep(outer.delay_s)
                if outer.mode == "failing" or len(outer.requests) <= outer.fail_times:
                    return self._send(503, {"error": "overloaded"})
                if outer.mode == "bad_request":
                    return self._send(400, {"error": "max_new_tokens must be positive"})
                texts = body["text"] if isinstance(body["text"], list) else [body["text"]]
                params = body["sampling_params"]
                per_prompt = params if isinstance(params, list) else [params] * len(texts)  # as SGLang
                outs, seen = [], {}
                for i, t in enumerate(texts):
                    state = t[len(PROMPT_PREFIX):].split("\n-/")[0]
                    first = seen.setdefault(t, 0)  # one entry per sample: number repeats of a prompt
                    seen[t] += per_prompt[i]["n"]
                    for j in range(first, first + per_prompt[i]["n"]):
                        outs.append({"text": f"tac_{state}_{j}\n```",
                                     "meta_info": {"output_token_logprobs": [[-0.5, 11, None], [-0.25 * j, 12, None]],
                                                   "finish_reason": {"type": "stop"}}})
                self._send(200, outs)

            def _send(self, code, obj):
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_batch_of_prompts_with_n_samples_and_logprobs():
    with FakeSGLang() as srv:
        pol = SGLangPolicy(srv.url, max_new_tokens=32, timeout_s=5, retries=0, max_batch=2)
        out = pol.generate_batch(["s0", "s1", "s2"], n=3, temperature=1.3)
        assert pol.health()
        pol.close()
    assert [[c.tactic for c in group] for group in out] == [[f"tac_s{i}_{j}" for j in range(3)] for i in range(3)]
    assert out[1][2].logprob == pytest.approx(-0.5 - 0.5)
    assert len(srv.requests) == 2  # batches of at most 2 prompts
    req = srv.requests[0]
    assert req["return_logprob"] is True
    # one entry per sample, each with its own seed (SGLang would repeat one sample for n > 1 with one seed)
    assert len(req["text"]) == len(req["sampling_params"]) == 2 * 3
    assert all(p["n"] == 1 and p["temperature"] == 1.3 and p["max_new_tokens"] == 32 for p in req["sampling_params"])
    assert len({p["sampling_seed"] for p in req["sampling_params"]}) == 6
    assert req["text"][0].startswith(PROMPT_PREFIX) and "s0" in req["text"][0]


def test_sampling_seeds_depend_on_run_seed_state_and_sample_only():
    a = SGLangPolicy("http://127.0.0.1:9", seed=7)
    b = SGLangPolicy("http://127.0.0.1:9", seed=7)
    seeds = [p["sampling_seed"] for p in a.payload(["x", "y"], 2, 1.0)["sampling_params"]]
    # the same state gets the same seeds whatever batch it travels in
    assert seeds[2:] == [p["sampling_seed"] for p in b.payload(["y"], 2, 1.0)["sampling_params"]]
    assert len(set(seeds)) == 4 and all(0 <= s < 2 ** 31 for s in seeds)
    other = [p["sampling_seed"] for p in SGLangPolicy("http://127.0.0.1:9", seed=8).payload(["x"], 2, 1.0)
             ["sampling_params"]]
    assert other != seeds[:2]
    unseeded = SGLangPolicy("http://127.0.0.1:9", seed=None).payload(["x", "y"], 2, 1.0)
    assert unseeded["sampling_params"]["n"] == 2 and len(unseeded["text"]) == 2
    for pol in (a, b):
        pol.close()


def test_slow_server_times_out_with_a_clear_error():
    with FakeSGLang(delay_s=1.0) as srv:
        pol = SGLangPolicy(srv.url, timeout_s=0.2, retries=1, backoff_s=0.01)
        t0 = time.monotonic()
        with pytest.raises(PolicyError, match="after 2 attempt.*Timeout"):
            pol.generate("s", 2, 1.0)
        assert time.monotonic() - t0 < 1.5  # two 0.2 s timeouts, not two full 1 s responses
        pol.close()


def test_failing_server_is_retried_with_backoff_then_fails():
    with FakeSGLang(mode="failing") as srv:
        pol = SGLangPolicy(srv.url, timeout_s=2, retries=2, backoff_s=0.05)
        t0 = time.monotonic()
        with pytest.raises(PolicyError, match="3 attempt.*HTTP 503"):
            pol.generate("s", 1, 1.0)
        assert time.monotonic() - t0 >= 0.05 + 0.1  # backoff 0.05 then 0.1
        assert len(srv.requests) == 3 and pol.retries_used == 2
        pol.close()


def test_flaky_server_recovers_after_a_retry():
    with FakeSGLang(fail_times=1) as srv:
        pol = SGLangPolicy(srv.url, timeout_s=2, retries=2, backoff_s=0.01)
        out = pol.generate("s", 2, 1.0)
        assert [c.tactic for c in out] == ["tac_s_0", "tac_s_1"] and len(srv.requests) == 2
        pol.close()


def test_client_error_is_not_retried():
    with FakeSGLang(mode="bad_request") as srv:
        pol = SGLangPolicy(srv.url, timeout_s=2, retries=3, backoff_s=0.01)
        with pytest.raises(PolicyError, match="HTTP 400.*max_new_tokens"):
            pol.generate("s", 1, 1.0)
        assert len(srv.requests) == 1
        pol.close()


def test_server_down_is_a_clear_error():
    pol = SGLangPolicy("http://127.0.0.1:9", timeout_s=0.5, retries=1, backoff_s=0.01)
    with pytest.raises(PolicyError, match="127.0.0.1:9/generate failed after 2"):
        pol.generate("s", 1, 1.0)
    assert not pol.health()


def test_wrong_output_count_is_rejected():
    with pytest.raises(PolicyError, match="3 outputs for 2 prompt"):
        SGLangPolicy.parse_response([{"text": "a", "meta_info": {"output_token_logprobs": []}}] * 3, 2, 1)


def test_batching_policy_merges_concurrent_calls_into_one_request():
    with FakeSGLang(delay_s=0.05) as srv:
        pol = BatchingPolicy(SGLangPolicy(srv.url, timeout_s=5, retries=0), max_batch=8, max_wait_s=0.2)
        results: dict[int, list] = {}

        def call(i):
            results[i] = pol.generate(f"s{i}", 2, 1.0)

        threads = [threading.Thread(target=call, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for i in range(6):
        assert [c.tactic for c in results[i]] == [f"tac_s{i}_0", f"tac_s{i}_1"]
    assert pol.states_sent == 6 and pol.batches_sent < 6
    assert len(srv.requests) == pol.batches_sent


def test_concurrent_search_through_batched_sglang_client():
    from burnqed_assets.search.engine import SearchConfig, Theorem
    from burnqed_assets.search.pooled import search_many
    from search_fakes import PROVED, FakeEnv

    names = [f"t{i}" for i in range(6)]
    roots = {n: f"r{i}" for i, n in enumerate(names)}
    # the fake server answers tac_<state>_<j>; tac_r<i>_1 proves even theorems
    tr = {f"r{i}": ({f"tac_r{i}_1": PROVED} if i % 2 == 0 else {f"tac_r{i}_0": f"s{i}"}) for i in range(6)}
    with FakeSGLang(delay_s=0.02) as srv:
        client = SGLangPolicy(srv.url, timeout_s=5, retries=0)
        policy = BatchingPolicy(client, max_batch=8, max_wait_s=0.05)
        res = search_many([Theorem(n, n) for n in names], FakeEnv(roots, tr), policy,
                          SearchConfig(max_nodes=20, num_candidates=2), concurrency=3)
        client.close()
    assert [r.proved for r in res] == [i % 2 == 0 for i in range(6)]
    assert res[0].proof == ["tac_r0_1"]
    assert policy.batches_sent < policy.states_sent  # expansions of different theorems shared requests


def test_make_policy_fails_fast_when_sglang_is_down(tmp_path):
    from burnqed_assets.search.pipeline import make_policy
    from burnqed_assets.settings import get_settings, with_overrides
    import dataclasses

    s = get_settings("demo", tmp_path)
    s = with_overrides(s, search=dataclasses.replace(s.search, policy_backend="sglang",
                                                     sglang_url="http://127.0.0.1:9"))
    with pytest.raises(ConnectionError, match="docs/search.md"):
        make_policy(s)
    with FakeSGLang() as srv:
        s2 = with_overrides(s, search=dataclasses.replace(s.search, sglang_url=srv.url))
        assert isinstance(make_policy(s2), BatchingPolicy)
