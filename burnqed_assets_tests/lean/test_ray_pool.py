"""The warm Lean pool on a real local Ray cluster (one actor per LeanWorker, each with its own
REPL stand-in process): demo tracing and proof verification through Ray actors give the
LocalLeanPool results; a killed actor is restarted by Ray and its theorem retried; an actor
lost past its restarts fails only its chunk, and re-running that chunk (its partition) alone
yields the same rows.

Uses `RAY_ADDRESS` when set (CI starts a head on 127.0.0.1), else starts one for this module.
Heavy (a Ray head, ~1 GB): run under the heavy lock.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

# A driver joining a head by address uses token auth only when RAY_AUTH_MODE says so before Ray
# loads its config (CI exports it); the head this module may start makes the token.
os.environ.setdefault("RAY_AUTH_MODE", "token")
# `ray start --head` does not create a token (only ray.init does): on a fresh machine give this
# module's head and driver one of their own, unless one is already configured (CI exports it).
if not (os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
        or (Path.home() / ".ray" / "auth_token").exists()):
    os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
# Every Ray port on loopback (the variable is read once, when Ray is imported): see ray_pool.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
ray = pytest.importorskip("ray", reason="Ray is the `ray` extra (part of `test`)")

from burnqed_assets.lean import phase_m  # noqa: E402
from burnqed_assets.lean.pool import CheckJob, LocalLeanPool, WorkerConfig  # noqa: E402
from burnqed_assets.lean.ray_pool import RayLeanPool, make_lean_pool, shutdown_local_ray  # noqa: E402
from burnqed_assets.search.pooled import WorkerSpec  # noqa: E402
from burnqed_assets.settings import get_settings  # noqa: E402

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_address(tmp_path_factory):
    """A running Ray head: CI's (RAY_ADDRESS) or one started here, on 127.0.0.1 with 2 CPUs."""
    shutdown_local_ray()
    if os.environ.get("RAY_ADDRESS"):
        yield os.environ["RAY_ADDRESS"]
        ray.shutdown()
        return
    port = _free_port()
    temp = tmp_path_factory.mktemp("ray")
    # Token authentication, said explicitly for the head and `ray status`; the head writes
    # ~/.ray/auth_token, which this process's ray.init then finds and uses (setting RAY_AUTH_MODE
    # here, after Ray's config was loaded, would not reach the client).
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"]}
    head = subprocess.Popen(
        ["ray", "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
         "--include-dashboard=false", "--object-store-memory=200000000", "--disable-usage-stats",
         f"--temp-dir={temp}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while subprocess.run(["ray", "status", f"--address={address}"], capture_output=True, env=env).returncode:
            assert head.poll() is None, "ray start --head exited"
            assert time.monotonic() < deadline, "the Ray head did not come up in 180 s"
            time.sleep(2)
        os.environ["RAY_ADDRESS"] = address
        yield address
    finally:
        ray.shutdown()
        os.environ.pop("RAY_ADDRESS", None)
        head.terminate()  # `ray start --block` stops the processes it started
        head.wait(timeout=60)


def _demo(tmp_path, workers: int = 2, **pool):
    pool.setdefault("backend", "ray")
    settings = get_settings("demo", tmp_path)
    settings = replace(settings, lean=replace(settings.lean, pool_workers=workers),
                       pool=replace(settings.pool, **pool))
    phase_m.goedel_source(settings)
    phase_m.goedel_migration(settings)
    return settings


def _pairs(settings) -> bytes:
    return settings.paths.tracing.pairs.read_bytes()


def _baseline(tmp_path) -> bytes:
    settings = _demo(tmp_path / "baseline", backend="local")
    info = phase_m.goedel_tracing(settings)
    assert info.lean_pool["pool"] == "local" and info.rows > 100
    return _pairs(settings)


def _kill_after(pool: RayLeanPool, items: int, how: str) -> threading.Thread:
    """Once `items` results came back (mid-chunk, work in flight), end actor 0: `crash` SIGKILLs
    its process (an OOM kill, a lost node: Ray restarts it), `ray.kill` kills it for good."""

    def watch():
        deadline = time.monotonic() + 120
        while (pool.completed < items or 0 not in pool._pids) and time.monotonic() < deadline:
            time.sleep(0.005)
        if how == "crash":
            os.kill(pool._pids[0], signal.SIGKILL)
        else:
            ray.kill(pool.actors[0], no_restart=True)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


_RAY_PROCESS_NAMES = ("gcs_server", "raylet", "ray::", "dashboard", "runtime_env", "log_monitor", "monitor.py")


def test_ray_listens_on_loopback_only(ray_address, tmp_path):
    """Every listening socket of the Ray head and its workers is on 127.0.0.1 (services bind to
    loopback; unpatched, Ray on Linux listens on the host's routable address)."""
    import psutil

    pool = make_lean_pool(_demo(tmp_path, workers=1))  # a driver and an actor are up, too
    try:
        listeners = []
        for conn in psutil.net_connections(kind="inet"):
            if conn.status != psutil.CONN_LISTEN or conn.pid is None:
                continue
            try:
                cmd = " ".join(psutil.Process(conn.pid).cmdline())
            except psutil.Error:
                continue
            if any(name in cmd for name in _RAY_PROCESS_NAMES):
                listeners.append((conn.laddr.ip, conn.laddr.port, cmd[:80]))
        assert listeners, "no Ray listener found"
        public = [x for x in listeners if x[0] not in ("127.0.0.1", "::ffff:127.0.0.1", "::1")]
        assert not public, f"Ray listens beyond loopback: {public}"
    finally:
        pool.close()


def test_demo_tracing_through_ray_actors_matches_the_local_pool(ray_address, tmp_path):
    expected = _baseline(tmp_path)
    settings = _demo(tmp_path / "ray")
    info = phase_m.goedel_tracing(settings)
    stats = info.lean_pool
    assert stats["pool"] == "ray" and stats["workers"] == 2 and stats["ray_address"]
    assert stats["theorems"] == info.theorems > settings.lean.trace_chunk_size  # several chunks
    assert stats["reuses"] > 10 * stats["imports"]  # header envs kept warm across theorems and chunks
    assert info.chunks >= 2 and not info.missing_chunks
    assert _pairs(settings) == expected


def test_verification_through_ray_actors_matches_the_local_pool(ray_address, tmp_path):
    settings = _demo(tmp_path)
    proofs = [r["full_proof"] for _, r in phase_m.iter_jsonl(settings.paths.migration.proofs)][:20]
    config = WorkerConfig.from_settings(settings)
    local = LocalLeanPool(config, 1)
    remote = make_lean_pool(settings, size=2)
    try:
        assert isinstance(remote, RayLeanPool)
        here = sorted(local.map_unordered(CheckJob(), proofs), key=lambda r: r.index)
        there = sorted(remote.map_unordered(CheckJob(), proofs), key=lambda r: r.index)
        assert remote.stats()["theorems"] == len(proofs)
    finally:
        remote.close()
        local.close()
    verdict = lambda r: (r.status, r.value.ok, tuple(r.value.reasons), r.value.verified_by)  # noqa: E731
    assert [verdict(r) for r in there] == [verdict(r) for r in here]
    assert all(r.ok for r in there) and {r.value.verified_by for r in there} == {"stand-in"}


def test_killed_actor_is_restarted_and_its_theorem_retried(ray_address, tmp_path):
    expected = _baseline(tmp_path)
    settings = _demo(tmp_path / "ray", max_restarts=2)
    pool = make_lean_pool(settings, extra_standin_args=("--tactic-latency", "0.01"))
    try:
        watcher = _kill_after(pool, items=10, how="crash")
        info = phase_m.goedel_tracing(settings, pool=pool)
        watcher.join(timeout=10)
        stats = pool.stats()
    finally:
        pool.close()
    assert stats["actor_restarts"] >= 1 and stats["actors_lost"] == 0
    assert stats["items"] == info.theorems
    assert _pairs(settings) == expected  # nothing lost, nothing duplicated


def test_lost_actor_fails_its_chunk_and_the_partition_rerun_gives_the_same_rows(ray_address, tmp_path):
    expected = _baseline(tmp_path)
    settings = _demo(tmp_path / "ray", max_restarts=0)
    size = settings.lean.trace_chunk_size
    pool = make_lean_pool(settings, extra_standin_args=("--tactic-latency", "0.01"))
    try:
        watcher = _kill_after(pool, items=size + 10, how="ray.kill")  # in the middle of chunk 1
        with pytest.raises(RuntimeError, match="chunk 1: WorkerLost"):
            phase_m.goedel_tracing(settings, pool=pool)
        watcher.join(timeout=10)
        assert pool.stats()["actors_lost"] == 1
    finally:
        pool.close()
    report = phase_m.tracing_report(settings)
    assert report.missing_chunks == (1,) and report.chunks_this_run == tuple(range(report.chunks))
    # The failed chunk's partition re-run alone (a fresh pool): only its theorems are traced.
    rerun = phase_m.goedel_tracing(settings, chunks=[1])
    assert rerun.chunks_skipped_resumed == 0 and not rerun.missing_chunks
    assert rerun.lean_pool["theorems"] == size
    assert _pairs(settings) == expected


# --------------------------------------------------------------------------- search on Ray actors


@dataclass(frozen=True)
class RecordedOracleSpec(WorkerSpec):
    """A picklable policy recipe: the recorded miniF2F search tactics of each state (plus wrong
    ones), built once in each actor that searches with it (as SGLangPolicySpec builds a client)."""

    def build(self):
        import json
        from collections import defaultdict

        from burnqed_assets.lean.factory import MINIF2F_SEARCH_TRACES
        from burnqed_assets.search.policy import BasePolicy, Candidate

        table: dict = defaultdict(lambda: [("norm_num", -0.3), ("simp", -0.6)])
        for line in MINIF2F_SEARCH_TRACES.read_text(encoding="utf-8").splitlines():
            if line.strip():
                r = json.loads(line)
                table[r["state_before"]].append((r["tactic"], -1.0))

        class Oracle(BasePolicy):
            def generate(self, state, n, temperature):
                return [Candidate(t, lp) for t, lp in table[state]][:n]

        return Oracle()


def _recorded_theorems(n: int):
    import json

    from burnqed_assets.lean.factory import MINIF2F_SEARCH_TRACES
    from burnqed_assets.search.engine import Theorem

    header = ("import Mathlib\nimport Aesop\n\nset_option maxHeartbeats 400000\n\n"
              "open BigOperators Real Nat Topology Rat\n\n")
    steps: dict = {}
    for line in MINIF2F_SEARCH_TRACES.read_text(encoding="utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            steps.setdefault(r["_context"]["full_name"], []).append(r)
    names = sorted(steps, key=lambda k: (-len(steps[k]), k))[:n]
    return [Theorem(k, steps[k][0]["_context"]["statement"] + " := by", header) for k in names]


def test_search_through_ray_actors_gives_the_local_pool_trees(ray_address, tmp_path):
    """One search job per theorem on Ray actors (each a warm REPL, header imported once): the
    job carries a policy spec that each actor builds once, and the trees equal the local pool's."""
    import sys

    from burnqed_assets.search.engine import ProofVerifierFactory, SearchConfig
    from burnqed_assets.search.pooled import PolicyEndpoint, search_on_pool

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the spec class lives in this test
    settings = _demo(tmp_path)
    theorems = _recorded_theorems(6)
    cfg = SearchConfig(max_nodes=40, timeout_s=60.0, num_candidates=8, temperature=1.0)
    spec = RecordedOracleSpec()
    endpoint = PolicyEndpoint(spec.build(), 2, "oracle", spec)
    verifier = ProofVerifierFactory(tuple(settings.lean.allowed_axioms))
    untimed = lambda rs: [{k: v for k, v in r.summary().items()  # noqa: E731
                           if k not in ("elapsed_s", "policy_s", "lean_s", "scorer_s")} for r in rs]
    local = LocalLeanPool(WorkerConfig.from_settings(settings), 2)
    remote = make_lean_pool(settings, size=2)
    try:
        assert isinstance(remote, RayLeanPool) and not remote.in_process
        here = search_on_pool(theorems, local, [endpoint], cfg, verifier_factory=verifier)
        there = search_on_pool(theorems, remote, [endpoint], cfg, verifier_factory=verifier)
        stats = remote.stats()
    finally:
        remote.close()
        local.close()
    assert any(r.proved for r in there.results) and untimed(there.results) == untimed(here.results)
    assert stats["pool"] == "ray" and stats["theorems"] == 6 and stats["imports"] == 2 and stats["reuses"] == 4
