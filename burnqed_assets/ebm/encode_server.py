"""Encode server (plan Task 2.6): energies E(state, goal) over HTTP on 127.0.0.1, and its client.

The server loads a merged causal LM (its last-content-token hidden state is the embedding,
`models.embedding.EmbeddingExtractor`) and a `GoalConditionedEnergyHead` checkpoint
(`ebm.head.load_head`, weights_only=True). EBM-guided search calls it through
`HttpEnergyScorer`; in one process `EnergyModel` is the same scorer without HTTP.

    POST /energy  {"pairs": [{"state": str, "goal": str}, ...]}  -> {"energies": [float, ...]}
    GET  /health  -> {"status": "ok", "d_model": int, "max_batch": int}

Errors are JSON `{"error": ...}`: 400 for malformed JSON or fields, 413 for a batch above
`max_batch` or a body above `max_body_bytes`, 404 for another path.

Run it:  python -m burnqed_assets.ebm.encode_server --model DIR --head FILE.pt [--port 8081]
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import torch

from burnqed_assets.search.policy import SearchInfrastructureError

log = logging.getLogger(__name__)

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
DEFAULT_MAX_BATCH = 256
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024


class EnergyModel:
    """Embeds (state, goal) texts and scores them with the head; goal embeddings are cached."""

    def __init__(self, extractor: Any, head: Any, batch_size: int = 16, goal_cache_size: int = 4096):
        self.extractor = extractor
        self.head = head.eval()
        self.batch_size = batch_size
        self.goal_cache_size = goal_cache_size
        self._goal_cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()  # one model; HTTP handler threads take turns
        hidden = _hidden_size(extractor.model)
        if hidden is not None and hidden != head.d_model:
            raise ValueError(f"energy head expects d_model={head.d_model} but the model's hidden size is {hidden}: "
                             "the head was trained on another model's embeddings")
        self.d_model = head.d_model
        self.quantization = "none"

    @classmethod
    def from_paths(cls, model_dir: str, head_path: str, max_length: int = 512, device: str = "auto",
                   dtype: str = "float32", batch_size: int = 16, quantization: str = "none") -> EnergyModel:
        """Load encoder + head. `quantization="nf4"` loads the encoder 4-bit through bitsandbytes on
        a GPU (a 7B encoder in ~4-5 GB beside the SGLang server, not a second ~14 GB bf16 copy);
        on CPU it falls back to the unquantised model (`self.quantization` says which)."""
        from burnqed_assets.ebm.head import load_head
        from burnqed_assets.models.embedding import EmbeddingExtractor
        from burnqed_assets.models.loading import load_causal_lm, load_tokenizer, pick_device

        dev = pick_device(device)
        qconfig, effective = encoder_quantization(quantization, dev, dtype)
        tokenizer = load_tokenizer(model_dir)
        model = load_causal_lm(model_dir, device=device, dtype=dtype, quantization_config=qconfig).eval()
        head = load_head(head_path, map_location=str(dev)).to(next(model.parameters()).device)
        energy = cls(EmbeddingExtractor(model, tokenizer, max_length=max_length), head, batch_size=batch_size)
        energy.quantization = effective
        return energy

    def _embed(self, texts: Sequence[str]) -> torch.Tensor:
        chunks = [self.extractor.encode(list(texts[i:i + self.batch_size]))
                  for i in range(0, len(texts), self.batch_size)]
        return torch.cat(chunks, dim=0).float()

    def _goal_embeddings(self, goals: Sequence[str]) -> dict[str, torch.Tensor]:
        missing = [g for g in dict.fromkeys(goals) if g not in self._goal_cache]
        if missing:
            for g, z in zip(missing, self._embed(missing)):
                self._goal_cache[g] = z
                if len(self._goal_cache) > self.goal_cache_size:
                    self._goal_cache.popitem(last=False)
        return {g: self._goal_cache[g] for g in goals}

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        if not pairs:
            return []
        with self._lock, torch.no_grad():
            z_state = self._embed([s for s, _ in pairs])
            goals = self._goal_embeddings([g for _, g in pairs])
            z_goal = torch.stack([goals[g] for _, g in pairs]).to(z_state.device)
            head_dtype = next(self.head.parameters()).dtype
            energies = self.head.energy(z_state.to(head_dtype), z_goal.to(head_dtype))
        return [float(e) for e in energies.float().cpu()]

    def score(self, states: Sequence[str], goal: str) -> list[float]:
        return self.score_pairs([(s, goal) for s in states])


ENCODER_QUANTIZATIONS = ("nf4", "none")


def encoder_quantization(quantization: str, device: torch.device, dtype: str = "bfloat16") -> tuple[Any, str]:
    """(transformers quantization config or None, the quantisation actually used).

    nf4 (plan Task 2.6's encode server): 4-bit NormalFloat weights with double quantisation,
    bf16 compute, through bitsandbytes; CUDA only. On CPU the encoder loads unquantised
    (demo; reported as "none (nf4 needs CUDA)"). On CUDA without bitsandbytes it fails: a silent
    full-precision 7B next to the SGLang server would run the GPU out of memory.
    """
    if quantization not in ENCODER_QUANTIZATIONS:
        raise ValueError(f"encoder quantization {quantization!r}: choose one of {ENCODER_QUANTIZATIONS}")
    if quantization == "none":
        return None, "none"
    if torch.device(device).type != "cuda":
        return None, "none (nf4 needs CUDA)"
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        raise ImportError("settings.ebm.encoder_quantization='nf4' needs bitsandbytes on the GPU machine: "
                          "pip install -e '.[gpu]' (or set it to 'none' with GPU memory to spare)")
    from transformers import BitsAndBytesConfig

    compute = torch.bfloat16 if dtype in ("bfloat16", "float32") else getattr(torch, dtype)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute), "nf4"


def _hidden_size(model: Any) -> int | None:
    cfg = getattr(model, "config", None)
    return getattr(cfg, "hidden_size", None) if cfg is not None else None


# --------------------------------------------------------------------------- server


class RequestError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def parse_energy_request(body: bytes, max_batch: int) -> list[tuple[str, str]]:
    """The (state, goal) pairs of a request body, or a RequestError naming what is wrong."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"malformed JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("pairs"), list):
        raise RequestError(400, 'expected a JSON object {"pairs": [{"state": ..., "goal": ...}, ...]}')
    items = data["pairs"]
    if len(items) > max_batch:
        raise RequestError(413, f"batch of {len(items)} pairs exceeds max_batch={max_batch}; split it")
    pairs = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise RequestError(400, f"pairs[{i}]: expected an object with 'state' and 'goal'")
        for key in ("state", "goal"):
            if not isinstance(item.get(key), str):
                raise RequestError(400, f"pairs[{i}].{key}: missing or not a string")
        pairs.append((item["state"], item["goal"]))
    return pairs


class EncodeServer:
    """ThreadingHTTPServer bound to loopback; `start()` serves on a daemon thread."""

    def __init__(self, model: Any, host: str = "127.0.0.1", port: int = 8081, max_batch: int = DEFAULT_MAX_BATCH,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES):
        if host not in LOOPBACK_HOSTS:
            raise ValueError(f"the encode server binds to loopback only (got host={host!r}); "
                             "reach it from elsewhere through an SSH tunnel")
        self.model = model
        self.max_batch = max_batch
        self.max_body_bytes = max_body_bytes
        self.requests = 0
        self.pairs_scored = 0
        self._thread: threading.Thread | None = None
        self.httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self.httpd.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt: str, *args: Any) -> None:
                log.debug("encode_server: " + fmt, *args)

            def _send(self, status: int, obj: Any) -> None:
                data = json.dumps(obj).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server naming
                if self.path.rstrip("/") == "/health":
                    self._send(200, {"status": "ok", "d_model": getattr(server.model, "d_model", None),
                                     "max_batch": server.max_batch,
                                     "quantization": getattr(server.model, "quantization", None)})
                else:
                    self._send(404, {"error": f"no such path {self.path}; use POST /energy or GET /health"})

            def do_POST(self) -> None:  # noqa: N802
                if self.path.rstrip("/") != "/energy":
                    self._send(404, {"error": f"no such path {self.path}; use POST /energy"})
                    return
                try:
                    length = int(self.headers.get("Content-Length") or -1)
                except ValueError:
                    length = -1
                if length < 0:
                    self.close_connection = True
                    self._send(411, {"error": "Content-Length required"})
                    return
                if length > server.max_body_bytes:
                    self.close_connection = True  # the body is not read: drop the connection
                    self._send(413, {"error": f"body of {length} bytes exceeds {server.max_body_bytes}"})
                    return
                body = self.rfile.read(length)
                try:
                    pairs = parse_energy_request(body, server.max_batch)
                    energies = server.model.score_pairs(pairs)
                except RequestError as exc:
                    self._send(exc.status, {"error": str(exc)})
                    return
                except Exception as exc:  # noqa: BLE001 - the caller gets a 500 with the reason
                    log.exception("encode_server: scoring failed")
                    self._send(500, {"error": f"scoring failed: {type(exc).__name__}: {exc}"})
                    return
                server.requests += 1
                server.pairs_scored += len(pairs)
                self._send(200, {"energies": energies})

        return Handler

    def start(self) -> EncodeServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="encode-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> EncodeServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


@dataclass
class EnergyService:
    """A running encode server and the search's client for it (see `energy_service`)."""

    model: EnergyModel
    server: EncodeServer
    scorer: HttpEnergyScorer


@contextmanager
def energy_service(model_dir: str, head_path: str, *, host: str = "127.0.0.1", max_length: int = 512,
                   device: str = "auto", dtype: str = "float32", batch_size: int = 16, quantization: str = "none",
                   say: Callable[[str], None] | None = None) -> Iterator[EnergyService]:
    """An encode server for (model, head) on `host` at a free port, for the duration of the block;
    the scorer is closed and the server stopped on exit, also when the search fails."""
    model = EnergyModel.from_paths(model_dir, head_path, max_length=max_length, device=device, dtype=dtype,
                                   batch_size=batch_size, quantization=quantization)
    server = EncodeServer(model, host=host, port=0).start()
    if say is not None:
        say(f"encode server at {server.url} (model {model_dir}, encoder {model.quantization}, head {head_path})")
    scorer = HttpEnergyScorer(server.url)
    try:
        yield EnergyService(model, server, scorer)
    finally:
        scorer.close()
        server.stop()


# --------------------------------------------------------------------------- client


class EncodeServerError(SearchInfrastructureError):
    """The encode server failed or refused a request (stops a search run; resumable)."""


class HttpEnergyScorer:
    """The search's EBM scorer over HTTP: chunks to the server's batch bound, retries 5xx and
    connection errors with backoff, fails at once with the server's message on a 4xx."""

    def __init__(self, base_url: str, timeout_s: float = 60.0, retries: int = 3, backoff_s: float = 0.5,
                 max_batch: int = DEFAULT_MAX_BATCH):
        import httpx

        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_batch = max_batch
        self._client = httpx.Client(timeout=httpx.Timeout(timeout_s))

    def close(self) -> None:
        self._client.close()

    def health(self) -> dict[str, Any] | None:
        try:
            resp = self._client.get(f"{self.base_url}/health", timeout=min(5.0, self.timeout_s))
            return resp.json() if resp.status_code == 200 else None
        except Exception:  # noqa: BLE001
            return None

    def score(self, states: Sequence[str], goal: str) -> list[float]:
        return self.score_pairs([(s, goal) for s in states])

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        out: list[float] = []
        for i in range(0, len(pairs), self.max_batch):
            chunk = pairs[i:i + self.max_batch]
            energies = self._post({"pairs": [{"state": s, "goal": g} for s, g in chunk]})
            if len(energies) != len(chunk):
                raise EncodeServerError(f"encode server returned {len(energies)} energies for {len(chunk)} pairs")
            out.extend(float(e) for e in energies)
        return out

    def _post(self, body: dict[str, Any]) -> list[float]:
        import httpx

        last = "no attempt"
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1) * (1 + 0.1 * random.random()))
            try:
                resp = self._client.post(f"{self.base_url}/energy", json=body)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            if resp.status_code >= 500:
                last = f"HTTP {resp.status_code}: {resp.text[:200]}"
                continue
            if resp.status_code >= 400:
                raise EncodeServerError(f"encode server {self.base_url} rejected the request: "
                                        f"HTTP {resp.status_code}: {resp.text[:300]}")
            return resp.json()["energies"]
        raise EncodeServerError(f"encode server {self.base_url}/energy failed after {self.retries + 1} "
                                f"attempt(s): {last}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve E(state, goal) on 127.0.0.1")
    parser.add_argument("--model", required=True, help="merged HF model directory")
    parser.add_argument("--head", required=True, help="GoalConditionedEnergyHead checkpoint (.pt)")
    parser.add_argument("--host", default="127.0.0.1", choices=LOOPBACK_HOSTS)
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--quantization", default="nf4", choices=ENCODER_QUANTIZATIONS,
                        help="encoder weights: nf4 through bitsandbytes on a GPU (falls back to none on CPU)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    model = EnergyModel.from_paths(args.model, args.head, max_length=args.max_length, device=args.device,
                                   dtype=args.dtype, quantization=args.quantization)
    server = EncodeServer(model, host=args.host, port=args.port, max_batch=args.max_batch)
    log.info("encode server on %s (d_model=%d, max_batch=%d, encoder %s)", server.url, model.d_model,
             args.max_batch, model.quantization)
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()


if __name__ == "__main__":
    main()
