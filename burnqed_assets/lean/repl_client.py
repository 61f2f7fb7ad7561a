"""A supervised JSON client for the Lean REPL process (leanprover-community/repl protocol).

Protocol: one JSON request per block, blocks separated by a blank line; the REPL answers with
one (possibly pretty-printed, multi-line) JSON object followed by a blank line.

Why our own client rather than lean-interact's `LeanServer`: we need every failure mode of
the REPL (hang, crash, garbage on stdout, memory growth) turned into a clear error for the
caller, the process group killed so that no `lake`/`lean` child survives, and counters for
asset metadata. lean-interact still does the toolchain/project setup (see `repl_env`).

Supervision per call: a deadline (`timeout_s`), the RSS of the whole process tree polled
with psutil against `memory_cap_mb`, EOF (crash) and unparsable output detection. Any of
these kills the process group and raises a `ReplError` subclass naming the failed request;
the next call starts a fresh process. `recycle_if_due()` restarts after `restart_every`
commands (called between theorems, never in the middle of one).

Request/response pairing: an exception that is not ours (a `signal.alarm` handler raising,
KeyboardInterrupt, anything) can interrupt `send` after the request was written and before its
answer was read. The REPL would then answer that request into the pipe and the NEXT caller
would read it as its own answer. So any exception inside a request kills the process (counted
as `interrupted`) before it propagates: a later request always goes to a fresh process.

Parent death: every REPL is started with PR_SET_PDEATHSIG=SIGKILL (prctl, in the child before
exec), so a SIGKILLed supervisor never leaves a REPL running under PID 1. The kernel sends that
signal when the *thread* that forked the child exits, so children are forked from one
long-lived spawner thread, never from a short-lived worker thread.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
import os
import queue
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import psutil

from burnqed_assets.lean.launcher import Launch, LeanLauncher

log = logging.getLogger(__name__)

POLL_S = 0.05
PR_SET_PDEATHSIG = 1
_T = TypeVar("_T")


SIG_DFL_HANDLER = ctypes.c_void_p(0)  # libc's SIG_DFL


def _libc() -> Any:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def parent_death_preexec(parent_pid: int, then: Callable[[], None] | None = None) -> Callable[[], None]:
    """A `preexec_fn`: SIGKILL this child when its parent dies (Linux prctl), set before exec;
    `then` runs next (the launcher's rlimits).

    The libc handle is resolved here, in the parent: the child between fork and exec must not
    load libraries. If the parent already died before prctl ran, exit at once.

    SIGTERM and SIGINT go back to their default action: an ignored signal survives exec, and a
    supervisor started from a background shell (SIGINT ignored, which Dagster copies onto
    SIGTERM) would otherwise give children that sit out every stop timeout until SIGKILL.
    Through libc, since Python's signal.signal only works in the main thread."""
    libc = _libc()
    libc.signal.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.signal.restype = ctypes.c_void_p

    def preexec() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        for signum in (signal.SIGTERM, signal.SIGINT):
            libc.signal(signum, SIG_DFL_HANDLER)
        if os.getppid() != parent_pid:
            os._exit(1)
        if then is not None:
            then()

    return preexec


class _Spawner:
    """One long-lived daemon thread that forks every supervised child (see the module doc)."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[Callable[[], Any], queue.Queue[tuple[bool, Any]]]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._guard = threading.Lock()

    def run(self, fn: Callable[[], _T], on_abandon: Callable[[_T], None] | None = None) -> _T:
        """Run `fn` on the spawner thread; if the caller is interrupted while waiting, the result
        (a started process) is handed to `on_abandon` instead of being lost."""
        with self._guard:
            # After a fork (multiprocessing) the thread of the parent does not exist here.
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                self._jobs = queue.Queue()
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._loop, name="repl-spawner", daemon=True)
                self._thread.start()
            reply: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=1)
            self._jobs.put((fn, reply))
        try:
            ok, value = reply.get()
        except BaseException:
            if on_abandon is not None:
                threading.Thread(target=_abandon, args=(reply, on_abandon), daemon=True).start()
            raise
        if not ok:
            raise value
        return value

    def _loop(self) -> None:
        jobs = self._jobs
        while True:
            fn, reply = jobs.get()
            try:
                reply.put((True, fn()))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                reply.put((False, exc))


def _abandon(reply: queue.Queue[tuple[bool, Any]], on_abandon: Callable[[Any], None]) -> None:
    ok, value = reply.get()
    if ok:
        on_abandon(value)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


_SPAWNER = _Spawner()


def spawn_supervised(argv: Sequence[str], then: Callable[[], None] | None = None,
                     **popen_kwargs: Any) -> subprocess.Popen[bytes]:
    """Popen from the spawner thread with the parent-death signal set in the child."""
    preexec = parent_death_preexec(os.getpid(), then)
    return _SPAWNER.run(lambda: subprocess.Popen(list(argv), preexec_fn=preexec, **popen_kwargs),
                        on_abandon=_kill_group)


class ReplError(RuntimeError):
    """The REPL failed on a request; `request` is the call that failed."""

    kind = "error"

    def __init__(self, message: str, request: dict[str, Any] | None = None, stderr_tail: str = ""):
        self.request = request
        self.stderr_tail = stderr_tail
        shown = json.dumps(request, ensure_ascii=False)[:300] if request is not None else "-"
        tail = f"\nREPL stderr (tail): {stderr_tail[-500:]}" if stderr_tail.strip() else ""
        super().__init__(f"Lean REPL {self.kind}: {message}; failed request: {shown}{tail}")


class ReplTimeoutError(ReplError):
    kind = "timeout"


class ReplCrashError(ReplError):
    kind = "crash"


class ReplMemoryError(ReplError):
    kind = "memory cap exceeded"


class ReplProtocolError(ReplError):
    kind = "unparsable output"


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MiB."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total / (1024 * 1024)


class ReplProcess:
    """One supervised REPL process; restarts itself on the next call after a failure."""

    def __init__(self, argv: Sequence[str], cwd: str | os.PathLike[str] | None = None, timeout_s: float = 60.0,
                 memory_cap_mb: int | None = 8192, restart_every: int = 200,
                 env: dict[str, str] | None = None, startup_timeout_s: float = 30.0,
                 launcher: LeanLauncher | None = None, recycle_rss_mb: float | None = None):
        if not argv:
            raise ValueError("ReplProcess needs a command line")
        self.argv = [str(a) for a in argv]
        self.cwd = str(cwd) if cwd is not None else None
        self.timeout_s = float(timeout_s)
        self.memory_cap_mb = memory_cap_mb
        self.restart_every = int(restart_every)
        self.env = env
        self.startup_timeout_s = startup_timeout_s
        self.launcher = launcher
        self.recycle_rss_mb = recycle_rss_mb
        self._launch: Launch | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        self._reader: threading.Thread | None = None
        self._stderr_file: Any = None
        self._lock = threading.Lock()
        self.generation = 0  # increases at every (re)start: REPL env/proof-state ids die with it
        self.commands_since_start = 0
        self.counters: dict[str, int] = {
            "calls": 0, "ok": 0, "starts": 0, "restarts": 0, "recycles": 0, "timeouts": 0, "crashes": 0,
            "memory_kills": 0, "protocol_errors": 0, "interrupted": 0,
            "recycles_memory": 0, "recycles_count": 0,
        }
        self.peak_rss_mb = 0.0

    # ---- process lifecycle --------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def is_alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        if self.is_alive():
            return
        self._stderr_file = tempfile.TemporaryFile()
        # Every Lean process goes through the launcher (sandbox + rlimits); without one (unit
        # tests of the client itself) the command runs as given.
        launch = self.launcher.prepare(self.argv, self.cwd) if self.launcher is not None else None
        self._launch = launch
        argv = launch.argv if launch is not None else self.argv
        env = self.env
        if launch is not None:
            env = {**(self.env if self.env is not None else os.environ), **launch.env}
        # start_new_session: the REPL and everything it spawns (lake -> repl -> lean) share one
        # process group that we can kill as a whole; no shell, argv only.
        self._proc = spawn_supervised(argv, then=launch.apply_rlimits if launch is not None else None,
                                      cwd=self.cwd, env=env, stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=self._stderr_file, start_new_session=True)
        self._lines = queue.Queue()
        self._reader = threading.Thread(target=self._read_stdout, args=(self._proc, self._lines), daemon=True)
        self._reader.start()
        self.generation += 1
        self.commands_since_start = 0
        self.counters["starts"] += 1
        if self.counters["starts"] > 1:
            self.counters["restarts"] += 1

    @staticmethod
    def _read_stdout(proc: subprocess.Popen[bytes], lines: queue.Queue[bytes | None]) -> None:
        assert proc.stdout is not None
        try:
            for line in iter(proc.stdout.readline, b""):
                lines.put(line)
        except (OSError, ValueError):
            pass
        lines.put(None)  # EOF

    def _stderr_tail(self) -> str:
        f = self._stderr_file
        if f is None:
            return ""
        try:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 2000))
            return f.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""

    def kill(self) -> None:
        """Kill the whole process group (and any descendant that left it), then reap."""
        proc = self._proc
        if proc is None:
            return
        try:
            descendants = psutil.Process(proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            descendants = []
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for child in descendants:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL does not fail
            log.error("REPL pid %s did not die after SIGKILL", proc.pid)
        psutil.wait_procs(descendants, timeout=2)
        for stream in (proc.stdin, proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        if self._stderr_file is not None:
            self._stderr_file.close()
            self._stderr_file = None
        if self._launch is not None:
            self._launch.cleanup()
            self._launch = None
        self._proc = None

    def close(self) -> None:
        with self._lock:
            self.kill()

    def rss_mb(self) -> float:
        """Measured resident memory of the REPL's process tree now (0 when not running)."""
        if not self.is_alive():
            return 0.0
        assert self._proc is not None
        rss = tree_rss_mb(self._proc.pid)
        self.peak_rss_mb = max(self.peak_rss_mb, rss)
        return rss

    def recycle_if_due(self) -> bool:
        """Restart when the REPL's measured memory is above `recycle_rss_mb` or after
        `restart_every` commands. Call between theorems only, never inside one."""
        if not self.is_alive():
            return False
        by_count = self.restart_every > 0 and self.commands_since_start >= self.restart_every
        by_memory = self.recycle_rss_mb is not None and self.rss_mb() > self.recycle_rss_mb
        if by_count or by_memory:
            self.kill()
            self.counters["recycles"] += 1
            self.counters["recycles_memory" if by_memory else "recycles_count"] += 1
            return True
        return False

    # ---- one request ----------------------------------------------------------------------------
    def send(self, request: dict[str, Any], timeout_s: float | None = None) -> dict[str, Any]:
        """Send one request and return the parsed response; on any failure kill and raise."""
        with self._lock:
            self.counters["calls"] += 1
            try:
                return self._send_locked(request, timeout_s)
            except ReplError:
                raise  # already killed and counted
            except BaseException:
                # Not ours (alarm handler, KeyboardInterrupt, ...): the request may be in flight,
                # and its late answer must never reach the next caller. Kill before propagating.
                self._fail("interrupted")
                raise

    def _send_locked(self, request: dict[str, Any], timeout_s: float | None) -> dict[str, Any]:
        if not self.is_alive():
            if self._proc is not None:  # died since the last call (e.g. OOM-killer): reap, count, restart
                self.counters["crashes"] += 1
                self.kill()
            self.start()
        assert self._proc is not None and self._proc.stdin is not None
        self.commands_since_start += 1
        payload = (json.dumps(request, ensure_ascii=False) + "\n\n").encode("utf-8")
        try:
            self._proc.stdin.write(payload)
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            tail = self._stderr_tail()
            self._fail("crashes")
            raise ReplCrashError(f"could not write to the REPL ({exc})", request, tail) from exc
        raw = self._read_response(request, timeout_s if timeout_s is not None else self.timeout_s)
        try:
            resp = json.loads(raw)
        except json.JSONDecodeError as exc:
            tail = self._stderr_tail()
            self._fail("protocol_errors")
            raise ReplProtocolError(f"not JSON ({exc.msg}): {raw[:200]!r}", request, tail) from exc
        if not isinstance(resp, dict):
            self._fail("protocol_errors")
            raise ReplProtocolError(f"expected a JSON object, got {type(resp).__name__}", request)
        self.counters["ok"] += 1
        return resp

    def _fail(self, counter: str) -> None:
        self.counters[counter] += 1
        self.kill()

    def _read_response(self, request: dict[str, Any], timeout_s: float) -> str:
        assert self._proc is not None
        deadline = time.monotonic() + timeout_s
        chunks: list[str] = []
        next_memory_check = time.monotonic() + POLL_S * 4  # the process-tree scan is costly
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                tail = self._stderr_tail()
                self._fail("timeouts")
                raise ReplTimeoutError(f"no answer within {timeout_s:.1f}s (process group killed)", request, tail)
            try:
                line = self._lines.get(timeout=min(POLL_S * 4, remaining))
            except queue.Empty:
                # The REPL may be dead while a surviving child still holds stdout open (no EOF).
                if self._proc.poll() is None or not self._lines.empty():
                    self._check_memory(request)
                    continue
                line = None
            if line is None:
                tail = self._stderr_tail()
                code = self._proc.poll()
                self._fail("crashes")
                raise ReplCrashError(f"process exited (code {code}) before answering", request, tail)
            text = line.decode("utf-8", "replace")
            if text.strip():
                # A response is pretty-printed JSON: its line breaks sit between tokens only.
                chunks.append(text.rstrip("\r\n"))
            elif chunks:
                return "\n".join(chunks)
            now = time.monotonic()
            if now >= next_memory_check:
                next_memory_check = now + POLL_S * 4
                self._check_memory(request)

    def _check_memory(self, request: dict[str, Any]) -> None:
        if self._proc is None:
            return
        rss = tree_rss_mb(self._proc.pid)
        self.peak_rss_mb = max(self.peak_rss_mb, rss)
        if self.memory_cap_mb is not None and rss > self.memory_cap_mb:
            tail = self._stderr_tail()
            self._fail("memory_kills")
            raise ReplMemoryError(f"RSS {rss:.0f} MiB > cap {self.memory_cap_mb} MiB (process group killed)",
                                  request, tail)

    def stats(self) -> dict[str, int | float]:
        out: dict[str, int | float] = dict(self.counters)
        out["peak_rss_mb"] = round(self.peak_rss_mb, 1)
        out["generation"] = self.generation
        return out

    def __enter__(self) -> ReplProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # last resort: never leave a REPL behind
        try:
            self.kill()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
