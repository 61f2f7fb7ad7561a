"""The managed policy-server lifecycle (search.serving) against the serving stand-in.

The same `ManagedServer` / `policy_session` code that launches `python -m sglang.launch_server`
in the full profile launches `burnqed_assets.search.serving_standin` here (the launcher is a
setting): start, model check, crash mid-run, stop without orphans, clear start-up errors.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time

import httpx
import pytest

from burnqed_assets.search.pipeline import policy_session
from burnqed_assets.search.policy import SearchInfrastructureError
from burnqed_assets.search.serving import (
    RAW_LOGPROB_ENV,
    STANDIN_LAUNCHER,
    ManagedServer,
    ServerSpec,
    ServingError,
    launch_command,
)
from burnqed_assets.settings import get_settings, with_overrides


def spec(*faults: str, **kw) -> ServerSpec:
    return ServerSpec(launcher=(*STANDIN_LAUNCHER, *faults), port=0, startup_timeout_s=kw.pop("timeout", 60.0),
                      poll_interval_s=0.1, stop_timeout_s=5.0, **kw)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_launch_command_uses_sglang_flags_on_loopback(tmp_path):
    argv = launch_command(ServerSpec(mem_fraction_static=0.7, extra_args=("--dtype", "bfloat16")),
                          tmp_path / "iter_1", 31234)
    assert argv[0] == sys.executable and argv[1:3] == ["-m", "sglang.launch_server"]
    flags = dict(zip(argv[3::2], argv[4::2]))
    assert flags == {"--model-path": str(tmp_path / "iter_1"), "--host": "127.0.0.1", "--port": "31234",
                     "--mem-fraction-static": "0.7", "--dtype": "bfloat16"}


def test_start_confirms_model_serves_and_stops_the_whole_group(tmp_path):
    model = tmp_path / "merged" / "iter_1"
    model.mkdir(parents=True)
    pid_file = tmp_path / "pids.json"
    server = ManagedServer(spec("--spawn-child", "--pid-file", str(pid_file)), model)
    with server:
        assert server.model_info["model_path"] == str(model) and server.model_info["is_generation"] is True
        assert httpx.get(f"{server.url}/health").status_code == 200
        body = {"text": ["a", "b"], "sampling_params": {"n": 3, "temperature": 1.0, "max_new_tokens": 8},
                "return_logprob": True}
        out = httpx.post(f"{server.url}/generate", json=body).json()
        assert len(out) == 6 and all(o["meta_info"]["output_token_logprobs"][0][1] == o["output_ids"][0] for o in out)
        pids = json.loads(pid_file.read_text())
        assert alive(pids["server"]) and alive(pids["child"])
        # the launcher asked the server for raw (T=1) log-probabilities
        env = open(f"/proc/{pids['server']}/environ", "rb").read().split(b"\0")
        assert all(f"{k}={v}".encode() in env for k, v in RAW_LOGPROB_ENV.items())
    assert server.exit_code() is not None
    assert wait_gone(pids["server"]) and wait_gone(pids["child"]), "server or its child outlived stop()"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/health", timeout=2)
    server.stop()  # idempotent


def test_wrong_model_is_refused_before_any_request(tmp_path):
    (tmp_path / "iter_1").mkdir()
    server = ManagedServer(spec("--report-model", str(tmp_path / "iter_0")), tmp_path / "iter_1")
    with pytest.raises(ServingError, match=r"serves .*iter_0.*not the model this step evaluates"):
        server.start()
    assert server.exit_code() is not None  # and it was stopped


def test_start_failure_names_exit_code_and_log(tmp_path):
    server = ManagedServer(spec("--exit-at-start", "7"), tmp_path)
    with pytest.raises(ServingError, match=r"exited with code 7 .*\n.*injected start-up failure"):
        server.start()


def test_never_healthy_times_out_with_a_clear_error(tmp_path):
    server = ManagedServer(spec("--never-healthy", timeout=3.0), tmp_path)
    t0 = time.monotonic()
    with pytest.raises(ServingError, match=r"did not answer .*/health within 3s"):
        server.start()
    assert time.monotonic() - t0 < 20 and server.exit_code() is not None


def test_missing_launcher_is_a_clear_error(tmp_path):
    server = ManagedServer(ServerSpec(launcher=("/nonexistent/sglang-python",), port=0), tmp_path)
    with pytest.raises(ServingError, match="sglang_launcher"):
        server.start()


def _sglang_settings(tmp_path):
    s = get_settings("demo", tmp_path)
    search = dataclasses.replace(s.search, policy_backend="sglang", sglang_port=0, sglang_startup_timeout_s=60.0,
                                 http_retries=3)
    return with_overrides(s, search=search)


def test_policy_session_serves_the_model_and_stops(tmp_path):
    settings = _sglang_settings(tmp_path)
    model = tmp_path / "models" / "merged" / "iter_0"
    model.mkdir(parents=True)
    pid_file = tmp_path / "pids.json"
    with policy_session(settings, model, launcher=[*STANDIN_LAUNCHER, "--pid-file", str(pid_file)]) as endpoints:
        (endpoint,) = endpoints
        policy = endpoint.policy
        assert endpoint.spec.url == endpoint.name  # what a Ray actor builds its own client from
        groups = policy.generate_batch(["⊢ 1 = 1", "x : ℕ\n⊢ x = x"], 2, 1.3)
        assert [len(g) for g in groups] == [2, 2]
        assert all(c.tactic and c.logprob < 0 for g in groups for c in g)
        pid = json.loads(pid_file.read_text())["server"]
        assert alive(pid)
    assert wait_gone(pid)
    assert list((tmp_path / "evals" / "server_logs").glob("sglang_*.log"))  # the server's log is kept


def test_crash_mid_run_fails_at_once_with_exit_code_and_no_orphan(tmp_path):
    settings = _sglang_settings(tmp_path)
    pid_file = tmp_path / "pids.json"
    launcher = [*STANDIN_LAUNCHER, "--crash-after", "1", "--spawn-child", "--pid-file", str(pid_file)]
    t0 = time.monotonic()
    with pytest.raises(SearchInfrastructureError, match=r"died mid-run with exit code 3(.|\n)*injected crash"):
        with policy_session(settings, tmp_path, launcher=launcher) as endpoints:
            policy = endpoints[0].policy
            assert policy.generate("⊢ True", 2, 1.0)  # request 1 is answered
            policy.generate("⊢ False", 2, 1.0)  # request 2 kills the server
    assert time.monotonic() - t0 < 30  # no retry storm against a dead server
    pids = json.loads(pid_file.read_text())
    assert wait_gone(pids["server"]) and wait_gone(pids["child"])


def test_server_dies_with_a_killed_step_process(tmp_path):
    """A step process killed outright (no stop()) leaves no server behind: parent-death signal."""
    import signal
    import subprocess

    pid_file = tmp_path / "pids.json"
    code = f"""
import sys, time
from burnqed_assets.search.serving import STANDIN_LAUNCHER, ManagedServer, ServerSpec
spec = ServerSpec(launcher=(*STANDIN_LAUNCHER, "--pid-file", {str(pid_file)!r}), port=0, startup_timeout_s=60,
                  poll_interval_s=0.1)
ManagedServer(spec, {str(tmp_path)!r}).start()
print("ready", flush=True)
time.sleep(600)
"""
    step = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert step.stdout.readline().strip() == "ready"
        server_pid = json.loads(pid_file.read_text())["server"]
        assert alive(server_pid)
        step.send_signal(signal.SIGKILL)
        step.wait(timeout=10)
        assert wait_gone(server_pid), "the server outlived its killed step process"
    finally:
        if step.poll() is None:
            step.kill()


def test_port_in_use_is_refused_before_launching(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        server = ManagedServer(dataclasses.replace(spec(), port=port), tmp_path)
        with pytest.raises(ServingError, match=rf"127\.0\.0\.1:{port} is already in use"):
            server.start()
        assert server.process is None  # nothing was launched
