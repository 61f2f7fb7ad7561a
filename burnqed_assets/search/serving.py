"""The policy server's lifecycle: launch SGLang for one model, check it, stop it (no Dagster here).

`ManagedServer` starts the launcher command (by default `python -m sglang.launch_server`) with
`--model-path <dir> --host 127.0.0.1 --port <port> --mem-fraction-static <f>`, in its own process
group, waits until `GET /health` answers 200, then confirms through `GET /model_info` (SGLang
>= 0.5; `/get_model_info` on older servers) that the server holds the model it was asked for,
before any request is sent. `stop()` ends the whole process group (SGLang's scheduler and
detokenizer are child processes): SIGTERM, then SIGKILL after a grace period. The server also
gets the parent-death signal, so a step process killed outright (SIGKILL, OOM) leaves no server.

The launcher is a setting (`settings.search.sglang_launcher`), so tests run this same code
against `burnqed_assets.search.serving_standin`, a stand-in that speaks SGLang's HTTP API.

Log-probabilities: the search priority is the sum of the policy's raw (temperature 1)
token log-probabilities, the quantity the in-process demo policy reports. SGLang reports
temperature-scaled log-probabilities unless `SGLANG_RETURN_ORIGINAL_LOGPROB` is set
(`RETURN_ORIGINAL_LOGPROB` in releases before 0.5), so the launcher sets both.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from burnqed_assets.search.policy import SearchInfrastructureError

log = logging.getLogger(__name__)

PYTHON_PLACEHOLDER = "{python}"
DEFAULT_LAUNCHER: tuple[str, ...] = (PYTHON_PLACEHOLDER, "-m", "sglang.launch_server")
STANDIN_LAUNCHER: tuple[str, ...] = (PYTHON_PLACEHOLDER, "-m", "burnqed_assets.search.serving_standin")
# Raw (T=1) log-probs from SGLang: current name, and the name before 0.5.
RAW_LOGPROB_ENV = {"SGLANG_RETURN_ORIGINAL_LOGPROB": "1", "RETURN_ORIGINAL_LOGPROB": "1"}
LOOPBACK = "127.0.0.1"


class ServingError(SearchInfrastructureError):
    """The policy server could not start, serves another model, or died."""


@dataclass(frozen=True)
class ServerSpec:
    """How to launch the policy server (settings.search holds the values the profiles use)."""

    launcher: tuple[str, ...] = DEFAULT_LAUNCHER
    port: int = 30000  # 0 = a free port picked at start
    mem_fraction_static: float = 0.80
    startup_timeout_s: float = 900.0  # a 7B model loads and captures CUDA graphs in minutes
    stop_timeout_s: float = 30.0
    poll_interval_s: float = 0.5
    extra_args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    log_file: Callable[[int], Path] | None = None  # port -> where stdout/stderr go (default: a temp file)

    @classmethod
    def from_settings(cls, search: Any, log_file: Callable[[int], Path] | None = None,
                      launcher: Sequence[str] | None = None) -> ServerSpec:
        return cls(launcher=tuple(launcher or search.sglang_launcher), port=search.sglang_port,
                   mem_fraction_static=search.sglang_mem_fraction_static,
                   startup_timeout_s=search.sglang_startup_timeout_s,
                   extra_args=tuple(search.sglang_extra_args), log_file=log_file)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def launch_command(spec: ServerSpec, model_path: str | Path, port: int) -> list[str]:
    """The argv for one server: SGLang's flags (python/sglang/srt/server_args.py)."""
    argv = [sys.executable if a == PYTHON_PLACEHOLDER else a for a in spec.launcher]
    return [*argv, "--model-path", str(model_path), "--host", LOOPBACK, "--port", str(port),
            "--mem-fraction-static", str(spec.mem_fraction_static), *spec.extra_args]


def same_model(served: str | None, expected: str | Path) -> bool:
    """A served `model_path` names the expected model (same resolved directory, or same string
    for a hub id)."""
    if not served:
        return False
    if served == str(expected):
        return True
    try:
        return Path(served).resolve() == Path(expected).resolve()
    except OSError:
        return False


def confirm_served_model(client: Any, url: str, expected: str | Path) -> dict[str, Any]:
    """The server's model info, after checking it serves `expected` as a generator; ServingError if not."""
    info = None
    for path in ("/model_info", "/get_model_info"):  # /get_model_info: deprecated alias, older servers
        try:
            resp = client.get(f"{url}{path}", timeout=10.0)
        except Exception as exc:  # noqa: BLE001
            raise ServingError(f"{url}{path} failed: {exc}") from exc
        if resp.status_code == 200:
            info = resp.json()
            break
    if not isinstance(info, dict) or "model_path" not in info:
        raise ServingError(f"{url} gave no model_info with a model_path: {str(info)[:200]}")
    if not same_model(info.get("model_path"), expected):
        raise ServingError(f"the server at {url} serves {info.get('model_path')!r}, not the model this step "
                           f"evaluates ({expected}); refusing to send requests")
    if info.get("is_generation") is False:
        raise ServingError(f"the server at {url} holds an embedding model, not a generator")
    return info


class ManagedServer:
    """One policy server process for one model; a context manager (`with ManagedServer(...) as s`)."""

    def __init__(self, spec: ServerSpec, model_path: str | Path, client: Any = None):
        self.spec = spec
        self.model_path = str(model_path)
        self.port = spec.port or free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.process: subprocess.Popen | None = None
        self.model_info: dict[str, Any] = {}
        self.log_path: Path | None = None
        self._log_file: Any = None
        self._client = client
        self.started_s: float | None = None

    # ------------------------------------------------------------------ start

    def start(self) -> ManagedServer:
        import httpx

        if self._client is None:
            self._client = httpx.Client(timeout=httpx.Timeout(10.0))
        if self._port_taken():
            raise ServingError(f"cannot start the policy server: {LOOPBACK}:{self.port} is already in use "
                               "(another server, or one left over from an earlier run); stop it or set "
                               "settings.search.sglang_port")
        argv = launch_command(self.spec, self.model_path, self.port)
        if self.spec.log_file is not None:
            self.log_path = Path(self.spec.log_file(self.port))
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
        else:
            import tempfile

            self.log_path = Path(tempfile.mkstemp(prefix=f"sglang_{self.port}_", suffix=".log")[1])
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        env = {**os.environ, **RAW_LOGPROB_ENV, **dict(self.spec.env)}
        log.info("starting policy server: %s (log %s)", " ".join(argv), self.log_path)
        t0 = time.monotonic()
        try:
            # Own session: stop() signals the whole group (SGLang forks scheduler/detokenizer).
            # Parent-death signal (forked from a long-lived thread): a step process that is killed
            # outright takes the server with it; SGLang's own children follow their parent.
            from burnqed_assets.lean.repl_client import spawn_supervised

            self.process = spawn_supervised(argv, stdout=self._log_file, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        except OSError as exc:
            self._close_log()
            raise ServingError(f"cannot start the policy server ({argv[0]}): {exc}; check "
                               "settings.search.sglang_launcher (SGLang installed?)") from exc
        try:
            self._wait_healthy(t0)
            self._confirm_model()
        except BaseException:
            self.stop()
            raise
        self.started_s = time.monotonic() - t0
        log.info("policy server ready at %s in %.1fs serving %s", self.url, self.started_s, self.model_path)
        return self

    def _port_taken(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            return s.connect_ex((LOOPBACK, self.port)) == 0

    def _wait_healthy(self, t0: float) -> None:
        deadline = t0 + self.spec.startup_timeout_s
        while True:
            code = self.process.poll() if self.process else None
            if code is not None:
                raise ServingError(f"the policy server exited with code {code} before it was healthy "
                                   f"(model {self.model_path}); last log lines:\n{self.log_tail()}")
            try:
                if self._client.get(f"{self.url}/health", timeout=5.0).status_code == 200:
                    return
            except Exception:  # noqa: BLE001 - not up yet
                pass
            if time.monotonic() > deadline:
                raise ServingError(f"the policy server did not answer {self.url}/health within "
                                   f"{self.spec.startup_timeout_s:.0f}s (model {self.model_path}); "
                                   f"last log lines:\n{self.log_tail()}")
            time.sleep(self.spec.poll_interval_s)

    def _confirm_model(self) -> None:
        self.model_info = confirm_served_model(self._client, self.url, self.model_path)

    # ------------------------------------------------------------------ while running

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def check_alive(self) -> None:
        """Raise ServingError naming the exit code and log tail if the server process ended."""
        code = self.exit_code()
        if self.process is not None and code is not None:
            raise ServingError(f"the policy server ({self.model_path}) died mid-run with exit code {code}; "
                               f"last log lines:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        text = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(text[-lines:]) or "(empty log)"

    # ------------------------------------------------------------------ stop

    def stop(self) -> None:
        """End the server's process group; idempotent."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            self._signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=self.spec.stop_timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("policy server %s ignored SIGTERM for %.0fs: SIGKILL", self.url, self.spec.stop_timeout_s)
                self._signal_group(proc, signal.SIGKILL)
                proc.wait(timeout=10)
        if proc is not None:
            # Children that outlived the leader (a crash) are in the same group: end them too.
            self._signal_group(proc, signal.SIGKILL)
        self._close_log()
        if self._client is not None:
            self._client.close()
            self._client = None

    @staticmethod
    def _signal_group(proc: subprocess.Popen, sig: int) -> None:
        try:
            os.killpg(proc.pid, sig)  # pgid == pid: start_new_session
        except (ProcessLookupError, PermissionError):
            pass

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> ManagedServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
