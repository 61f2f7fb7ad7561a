"""Serving stand-in: a small HTTP server that speaks SGLang's native API, for tests and CPU runs.

It is NOT SGLang. It accepts `python -m sglang.launch_server`'s core flags (--model-path,
--host, --port, --mem-fraction-static; unknown flags are ignored) so `search.serving.ManagedServer`
launches it exactly as it launches SGLang, and answers with SGLang's response shapes
(python/sglang/srt/entrypoints/http_server.py, 0.5.x):

    GET  /health          -> 200, empty body
    GET  /model_info      -> {"model_path", "tokenizer_path", "is_generation", "preferred_sampling_params",
    GET  /get_model_info      "weight_version", "has_image_understanding", "has_audio_understanding",
                              "model_type", "architectures"}
    POST /generate        {"text": str | [str], "sampling_params": {"n", "temperature", "max_new_tokens",
                           "stop"}, "return_logprob": bool}
                          -> one output object (one prompt, n=1) or a list, prompt-major:
                             {"text", "output_ids", "meta_info": {"id", "finish_reason", "prompt_tokens",
                              "completion_tokens", "cached_tokens", "e2e_latency",
                              "output_token_logprobs": [[logprob, token_id, null], ...]}}

Backends: when --model-path is a Hugging Face model directory (config.json) it samples from that
model with transformers; otherwise it answers from a fixed tactic list (lifecycle tests).
Log-probabilities follow SGLang: log-softmax of the temperature-scaled logits, or of the raw
logits when SGLANG_RETURN_ORIGINAL_LOGPROB (or RETURN_ORIGINAL_LOGPROB) is true.

Faults for tests: --exit-at-start CODE, --never-healthy, --report-model PATH (claims another
model), --crash-after N (the process dies on the N+1-th /generate), --startup-delay S,
--spawn-child (a child process in the server's group, like SGLang's scheduler) with --pid-file.
Speed for fan-out tests: --generate-latency S (every /generate takes S seconds longer) and
--device-latency DEV=S (repeatable: S more when CUDA_VISIBLE_DEVICES is DEV, so one launcher
command gives the servers of a managed fan-out different speeds, as unequal GPUs would).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

CANNED_TACTICS = ("norm_num", "simp", "linarith", "nlinarith [sq_nonneg x]", "ring_nf", "omega", "aesop", "decide")


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def returns_original_logprob() -> bool:
    return _truthy("SGLANG_RETURN_ORIGINAL_LOGPROB") or _truthy("RETURN_ORIGINAL_LOGPROB")


class CannedBackend:
    """Deterministic tactics with fixed per-token log-probs (no model)."""

    model_type = None
    architectures = None

    def generate(self, prompt: str, n: int, temperature: float, max_new_tokens: int, stop: list[str],
                 seed: int) -> list[dict[str, Any]]:
        outs = []
        start = sum(map(ord, prompt)) % len(CANNED_TACTICS)
        for j in range(n):
            tactic = CANNED_TACTICS[(start + j) % len(CANNED_TACTICS)]
            ids = [100 + (ord(c) % 50) for c in tactic][:max_new_tokens]
            lps = [-0.1 * (1 + (j % 3)) for _ in ids]
            outs.append({"text": tactic, "ids": ids, "logprobs": lps,
                         "finish": {"type": "stop", "matched": stop[0] if stop else 2}, "prompt_tokens": len(prompt)})
        return outs


class TransformersBackend:
    """Samples from a local HF causal LM; per-token log-probs as SGLang reports them."""

    def __init__(self, model_path: str):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(1)
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
        self.model_type = getattr(self.model.config, "model_type", None)
        self.architectures = getattr(self.model.config, "architectures", None)
        self._lock = threading.Lock()

    def generate(self, prompt: str, n: int, temperature: float, max_new_tokens: int, stop: list[str],
                 seed: int) -> list[dict[str, Any]]:
        torch = self.torch
        tok = self.tokenizer
        enc = tok(prompt, return_tensors="pt")
        plen = enc["input_ids"].shape[1]
        greedy = temperature <= 0
        eos = tok.eos_token_id
        with self._lock, torch.no_grad():
            torch.manual_seed(seed)
            out = self.model.generate(**enc, do_sample=not greedy, temperature=None if greedy else temperature,
                                      top_k=None if greedy else 0, top_p=None if greedy else 1.0,
                                      num_return_sequences=n if not greedy else 1, max_new_tokens=max_new_tokens,
                                      return_dict_in_generate=True, output_logits=True, eos_token_id=eos,
                                      pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else eos)
        logits = torch.stack(out.logits, dim=1).float()  # raw scores [n, T, V]
        if not greedy and not returns_original_logprob():
            logits = logits / temperature  # SGLang's default: log-probs of the sampling distribution
        seqs = out.sequences[:, plen:]
        token_lps = torch.log_softmax(logits, dim=-1).gather(-1, seqs.unsqueeze(-1)).squeeze(-1)
        outs = []
        for row in range(seqs.shape[0] if not greedy else 1):
            ids: list[int] = []
            lps: list[float] = []
            finish: dict[str, Any] = {"type": "length", "length": max_new_tokens}
            for t, tid in enumerate(seqs[row].tolist()):
                ids.append(tid)
                lps.append(float(token_lps[row, t]))
                if tid == eos:
                    finish = {"type": "stop", "matched": eos}
                    break
                text = tok.decode(ids, skip_special_tokens=True)
                hit = next((s for s in stop if s in text), None)
                if hit is not None:
                    finish = {"type": "stop", "matched": hit}
                    break
            text = tok.decode(ids, skip_special_tokens=True)
            if finish.get("matched") in stop:  # SGLang trims the matched stop string from the text
                text = text[: text.find(finish["matched"])]
            outs.append({"text": text, "ids": ids, "logprobs": lps, "finish": finish, "prompt_tokens": plen})
        while len(outs) < n:  # greedy: n identical samples
            outs.append(dict(outs[0]))
        return outs


class StandinState:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.model_path = args.report_model or args.model_path
        self.requests = 0
        self.lock = threading.Lock()
        is_hf_dir = os.path.isfile(os.path.join(args.model_path, "config.json"))  # a Hugging Face model directory
        self.backend = TransformersBackend(args.model_path) if is_hf_dir else CannedBackend()

    def model_info(self) -> dict[str, Any]:
        return {"model_path": self.model_path, "tokenizer_path": self.model_path, "is_generation": True,
                "preferred_sampling_params": None, "weight_version": "default",
                "has_image_understanding": False, "has_audio_understanding": False,
                "model_type": self.backend.model_type, "architectures": self.backend.architectures}

    def latency_s(self) -> float:
        """Injected seconds per /generate: the flat latency plus this device's (by CUDA_VISIBLE_DEVICES)."""
        device = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        extra = 0.0
        for item in self.args.device_latency or []:
            dev, _, seconds = item.partition("=")
            if dev.strip() == device:
                extra += float(seconds)
        return float(self.args.generate_latency) + extra

    def generate(self, body: dict[str, Any]) -> Any:
        texts = body.get("text")
        single = isinstance(texts, str)
        prompts = [texts] if single else list(texts or [])
        raw_params = body.get("sampling_params") or {}
        # SGLang takes one dict for every prompt or a list with one dict per prompt
        per_prompt = raw_params if isinstance(raw_params, list) else [raw_params] * len(prompts)
        outputs = []
        n = 1
        for i, prompt in enumerate(prompts):
            params = per_prompt[i] or {}
            n = int(params.get("n", 1))
            temperature = float(params.get("temperature", 1.0))
            max_new = int(params.get("max_new_tokens", 128))
            stop = params.get("stop") or []
            stop = [stop] if isinstance(stop, str) else list(stop)
            seed = int(params.get("sampling_seed", 0)) + (0 if isinstance(raw_params, list) else i)
            t0 = time.monotonic()
            for o in self.backend.generate(prompt, n, temperature, max_new, stop, seed):
                meta = {"id": uuid.uuid4().hex, "finish_reason": o["finish"], "prompt_tokens": o["prompt_tokens"],
                        "completion_tokens": len(o["ids"]), "cached_tokens": 0,
                        "e2e_latency": time.monotonic() - t0}
                if body.get("return_logprob"):
                    meta["output_token_logprobs"] = [[lp, tid, None] for lp, tid in zip(o["logprobs"], o["ids"])]
                outputs.append({"text": o["text"], "output_ids": o["ids"], "meta_info": meta})
        return outputs[0] if single and n == 1 else outputs


def make_handler(state: StandinState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt: str, *args: Any) -> None:
            sys.stderr.write("serving_standin: " + (fmt % args) + "\n")

        def _send(self, status: int, obj: Any = None) -> None:
            data = b"" if obj is None else json.dumps(obj).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            path = self.path.rstrip("/")
            if path == "/health":
                self._send(503 if state.args.never_healthy else 200)
            elif path in ("/model_info", "/get_model_info"):
                self._send(200, state.model_info())
            else:
                self._send(404, {"detail": "Not Found"})

        def do_POST(self) -> None:  # noqa: N802
            if self.path.rstrip("/") != "/generate":
                self._send(404, {"detail": "Not Found"})
                return
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            with state.lock:
                state.requests += 1
                if state.args.crash_after is not None and state.requests > state.args.crash_after:
                    sys.stderr.write("serving_standin: injected crash\n")
                    sys.stderr.flush()
                    os._exit(3)  # abrupt, like a CUDA fault: no response, connection dropped
            delay = state.latency_s()
            if delay > 0:
                time.sleep(delay)
            try:
                result = state.generate(body)
            except (KeyError, TypeError, ValueError) as exc:
                self._send(400, {"error": {"message": str(exc)}})
                return
            self._send(200, result)

    return Handler


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="SGLang-API serving stand-in (not SGLang)")
    p.add_argument("--model-path", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=30000)
    p.add_argument("--mem-fraction-static", type=float, default=None)
    p.add_argument("--exit-at-start", type=int, default=None)
    p.add_argument("--never-healthy", action="store_true")
    p.add_argument("--report-model", default=None)
    p.add_argument("--crash-after", type=int, default=None)
    p.add_argument("--startup-delay", type=float, default=0.0)
    p.add_argument("--spawn-child", action="store_true")
    p.add_argument("--pid-file", default=None)
    p.add_argument("--generate-latency", type=float, default=0.0, help="seconds added to every /generate")
    p.add_argument("--device-latency", action="append", default=[], metavar="DEV=SECONDS",
                   help="seconds added to every /generate when CUDA_VISIBLE_DEVICES is DEV (repeatable)")
    args, unknown = p.parse_known_args(argv)
    if unknown:
        sys.stderr.write(f"serving_standin: ignoring SGLang flags {unknown}\n")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit(f"serving_standin: refusing to bind {args.host}: loopback only")
    if args.exit_at_start is not None:
        sys.stderr.write(f"serving_standin: injected start-up failure (model {args.model_path})\n")
        sys.exit(args.exit_at_start)
    child = None
    if args.spawn_child:  # stays in our process group, as SGLang's scheduler does
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    if args.pid_file:
        Path(args.pid_file).write_text(json.dumps({"server": os.getpid(), "child": child.pid if child else None}))
    time.sleep(args.startup_delay)
    state = StandinState(args)
    httpd = ThreadingHTTPServer((args.host, args.port), make_handler(state))
    httpd.daemon_threads = True
    sys.stderr.write(f"serving_standin: serving {args.model_path} on {args.host}:{args.port} "
                     f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '')}, "
                     f"/generate latency {state.latency_s():.3f}s)\n")
    sys.stderr.flush()
    try:
        httpd.serve_forever()
    finally:
        httpd.server_close()


if __name__ == "__main__":
    main()
