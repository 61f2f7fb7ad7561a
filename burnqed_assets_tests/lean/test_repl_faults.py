"""Faults of the REPL process: hang, crash, garbage, memory growth, orphans, recycling."""

from __future__ import annotations

import _thread
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from fake_repl import FAKE_DELAY_S
from lean_fakes import fake_argv

from burnqed_assets.lean.repl_client import (
    ReplCrashError,
    ReplMemoryError,
    ReplProcess,
    ReplProtocolError,
    ReplTimeoutError,
)
from burnqed_assets.lean.repl_env import ReplLeanEnv
from burnqed_assets.settings import get_settings

CMD = {"cmd": "theorem t : 1 = 1 := by rfl"}


def _gone(pid: int) -> bool:
    """No process, or a zombie already dead (PID 1 of a container may reap it late)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _child_pid(proc: ReplProcess) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        kids = psutil.Process(proc.pid).children(recursive=True)
        if kids:
            return kids[0].pid
        time.sleep(0.05)
    raise AssertionError("fake REPL did not spawn its child")


def _wait_gone(*pids: int) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if all(_gone(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("fault,error,counter", [
    ("--hang-on", ReplTimeoutError, "timeouts"),
    ("--crash-on", ReplCrashError, "crashes"),
    ("--garbage-on", ReplProtocolError, "protocol_errors"),
    ("--grow-on", ReplMemoryError, "memory_kills"),
])
def test_fault_recovers_without_orphans(fault, error, counter):
    # Only the hang needs the short deadline; the others must be caught for their own reason.
    timeout = 2.0 if fault == "--hang-on" else 30.0
    proc = ReplProcess(fake_argv("--rules", "--spawn-child", fault, "2"), timeout_s=timeout, memory_cap_mb=300)
    try:
        assert proc.send(CMD)["env"] == 0
        pid, child = proc.pid, _child_pid(proc)
        with pytest.raises(error) as info:
            proc.send({"cmd": "theorem u : 2 = 2 := by rfl"})
        # The caller is told what failed and on which request.
        assert "theorem u" in str(info.value) and info.value.request == {"cmd": "theorem u : 2 = 2 := by rfl"}
        assert proc.counters[counter] == 1
        assert _wait_gone(pid, child), "REPL or its child survived the failure"
        # The next call gets a fresh process (the fault is on request 2 of each process only).
        assert proc.send(CMD)["env"] == 0
        assert proc.counters["restarts"] == 1 and proc.pid != pid
    finally:
        proc.close()


def test_crash_error_carries_stderr():
    with ReplProcess(fake_argv("--rules", "--crash-on", "1"), timeout_s=5) as proc:
        with pytest.raises(ReplCrashError, match="simulated segfault"):
            proc.send(CMD)


def test_close_kills_process_group():
    proc = ReplProcess(fake_argv("--rules", "--spawn-child"), timeout_s=5)
    proc.send(CMD)
    pid, child = proc.pid, _child_pid(proc)
    proc.close()
    assert _wait_gone(pid, child)


def test_recycle_every_n_commands():
    with ReplProcess(fake_argv("--rules"), timeout_s=5, restart_every=3) as proc:
        for _ in range(3):
            proc.send(CMD)
        first = proc.pid
        assert proc.recycle_if_due() is True
        assert _wait_gone(first)
        assert proc.send(CMD)["env"] == 0  # fresh process: env ids restart
        assert proc.counters["recycles"] == 1 and proc.generation == 2


def test_one_theorem_failure_does_not_poison_the_next():
    settings = get_settings("demo")
    env = ReplLeanEnv.from_argv(fake_argv("--rules"), settings)
    env.process.timeout_s = 1.5
    env.theorem_timeout_s = 1.5
    try:
        s1 = env.open_theorem("theorem a (x : Nat) : x = x := by", header="import Mathlib\n")  # requests 1, 2
        res = env.run_tactic(s1, "hang")  # the fake REPL never answers this tactic
        assert res.status == "error" and "timeout" in res.error
        stale = env.run_tactic(s1, "rfl")
        assert stale.status == "error" and "lost" in stale.error
        s2 = env.open_theorem("theorem b (x : Nat) : x = x := by", header="import Mathlib\n")
        assert env.run_tactic(s2, "rfl").status == "proved"
        stats = env.stats()
        assert stats["repl_timeouts"] == 1 and stats["repl_restarts"] == 1 and stats["stale_states"] == 1
    finally:
        env.close()


def test_settings_timeouts_reach_the_process():
    settings = get_settings("demo")
    env = ReplLeanEnv.from_argv(fake_argv("--rules"), settings)
    try:
        assert env.process.timeout_s == settings.lean.command_timeout_s
        assert env.process.memory_cap_mb == settings.lean.memory_cap_mb
        assert env.process.restart_every == settings.lean.restart_every
        assert re.search(r"\d", str(env.stats()))
    finally:
        env.close()


def test_process_killed_between_calls_is_restarted():
    with ReplProcess(fake_argv("--rules", "--spawn-child"), timeout_s=5) as proc:
        proc.send(CMD)
        pid, child = proc.pid, _child_pid(proc)
        psutil.Process(pid).kill()  # e.g. the kernel OOM-killer, outside our supervision
        proc._proc.wait(timeout=5)
        assert proc.send(CMD)["env"] == 0
        assert proc.counters["crashes"] == 1 and proc.counters["restarts"] == 1
        assert _wait_gone(child)  # the old process's child was cleaned up with it


class _Interrupted(Exception):
    """What an alarm handler of the caller raises (trace_one's TraceTimeout, for instance)."""


def _raise_interrupted(signum, frame):
    raise _Interrupted()


def _interrupt_with_alarm(delay_s: float) -> None:
    signal.signal(signal.SIGALRM, _raise_interrupted)
    signal.setitimer(signal.ITIMER_REAL, delay_s)


def _interrupt_with_ctrl_c(delay_s: float) -> None:
    threading.Timer(delay_s, _thread.interrupt_main).start()


@pytest.mark.parametrize("interrupt,exc_type", [(_interrupt_with_alarm, _Interrupted),
                                                (_interrupt_with_ctrl_c, KeyboardInterrupt)],
                         ids=["alarm", "keyboard_interrupt"])
def test_interrupted_request_never_answers_the_next_one(interrupt, exc_type):
    """A is interrupted while the REPL works on it; B must get B's own answer, not A's late one."""
    old = signal.getsignal(signal.SIGALRM)
    with ReplProcess(fake_argv("--rules"), timeout_s=10) as proc:
        proc.send(CMD)
        first = proc.pid
        try:
            interrupt(0.3)
            with pytest.raises(exc_type):
                proc.send({"cmd": "theorem a : A_PROP := by sorry -- FAKE_DELAY"})  # answers after FAKE_DELAY_S
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        time.sleep(FAKE_DELAY_S)  # A's answer would be in the pipe by now if the process had been kept
        got = proc.send({"cmd": "theorem b : B_PROP := by sorry"})
        assert got["sorries"][0]["goal"] == "⊢ B_PROP"
        assert got["env"] == 0 and proc.pid != first  # a fresh process answered
        assert _wait_gone(first), "an interrupted request left its REPL running"
        assert proc.counters["interrupted"] == 1


_SUPERVISOR = """
import sys, threading, time
sys.path.insert(0, {tests!r})
from fake_repl import FAKE_DELAY_S
from lean_fakes import fake_argv
from burnqed_assets.lean.repl_client import ReplProcess
procs = []
def start():  # from a short-lived thread: the REPL must outlive the thread, not the process
    p = ReplProcess(fake_argv("--rules"), timeout_s=10)
    p.send({{"cmd": "theorem t : 1 = 1 := by rfl"}})
    procs.append(p)
t = threading.Thread(target=start); t.start(); t.join()
# Keep the REPL busy (it never reads stdin again, so the pipe's EOF cannot end it).
threading.Thread(target=procs[0].send, args=({{"cmd": "FAKE_SLOW"}}, 600), daemon=True).start()
print(procs[0].pid, flush=True)
time.sleep(600)
"""


def test_repl_dies_with_its_supervisor():
    tests = str(Path(__file__).resolve().parent)
    sup = subprocess.Popen([sys.executable, "-c", _SUPERVISOR.format(tests=tests)], stdout=subprocess.PIPE,
                           text=True, env={**os.environ, "PYTHONPATH": str(Path(tests).parents[1])})
    try:
        repl_pid = int(sup.stdout.readline())
        time.sleep(0.5)
        assert not _gone(repl_pid), "the REPL died with the thread that started it"
        sup.kill()  # SIGKILL: no finally, no atexit, no __del__ runs in the supervisor
        sup.wait(timeout=10)
        assert _wait_gone(repl_pid), "the REPL outlived its SIGKILLed supervisor"
    finally:
        sup.kill()


@pytest.mark.parametrize("fault,error,counter", [
    ("--hang-on", ReplTimeoutError, "timeouts"),
    ("--crash-on", ReplCrashError, "crashes"),
    ("--garbage-on", ReplProtocolError, "protocol_errors"),
])
def test_standin_faults_through_the_launcher(tmp_path, fault, error, counter):
    """The REPL stand-in's own fault flags, through the same client and launcher as Lean."""
    from burnqed_assets.lean.factory import repl_command
    from burnqed_assets.lean.repl_env import launcher_from_settings

    settings = get_settings("demo", tmp_path)
    cmd = repl_command(settings, (fault, "2"))
    with ReplProcess(list(cmd.argv), cwd=cmd.cwd, timeout_s=3.0, launcher=launcher_from_settings(settings)) as proc:
        assert proc.send({"cmd": "import Mathlib"})["env"] == 0
        first = proc.pid
        with pytest.raises(error):
            proc.send({"cmd": "theorem demo_handwritten_1 : ∀ x : ℝ, 3 * x + 2 = 11 → x = 3 := by sorry", "env": 0})
        assert proc.counters[counter] == 1 and _wait_gone(first)
        assert proc.send({"cmd": "import Mathlib"})["env"] == 0 and proc.pid != first


def test_verifier_call_mid_search_never_recycles_the_repl():
    """A rejected proof mid-search (check_file) must leave the theorem's proof states alive,
    even when the recycle condition is met; the next theorem is where the recycle happens."""
    settings = get_settings("demo")
    env = ReplLeanEnv.from_argv(fake_argv("--rules"), settings)
    env.process.restart_every = 2
    try:
        root = env.open_theorem("theorem a (x : Nat) : x = x := by", header="import Mathlib\n")
        gen = env.process.generation
        assert not env.check_file("import Mathlib\n\ntheorem a (x : Nat) : x = x := by\n  FAKE_ERROR\n").ok
        assert env.run_tactic(root, "open_goal").status == "open"  # not "proof state lost"
        assert env.process.generation == gen and env.process.counters["recycles"] == 0
        env.open_theorem("theorem b (x : Nat) : x = x := by", header="import Mathlib\n")
        assert env.process.counters["recycles"] == 1  # between theorems
    finally:
        env.close()
