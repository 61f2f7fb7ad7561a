"""Tracing (M.5): resumable chunks without lost/duplicated rows, timeouts, banned-construct
rejection, zombie cleanup, and the REPL tracer on the fake REPL."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import psutil
import pytest

from burnqed_assets.lean.pool import make_pool
from burnqed_assets.lean.tracing import (
    LeanDojoTracer,
    ReplTraceJob,
    TraceFailure,
    cleanup_lean_processes,
    default_workers,
    proof_tree_depths,
    trace_corpus,
)
from burnqed_assets.settings import get_settings


class CountingTracer:
    """Two pairs per theorem; records which theorems it was asked to trace."""

    def __init__(self, crash_at: str | None = None):
        self.calls: list[str] = []
        self.crash_at = crash_at

    def __call__(self, theorem):
        if theorem["name"] == self.crash_at:
            raise KeyboardInterrupt("simulated kill of the whole run")
        self.calls.append(theorem["name"])
        if theorem["name"].startswith("slow"):
            time.sleep(5)
        if theorem["name"].startswith("broken"):
            raise RuntimeError("lean crashed")
        tactic = "sorry" if theorem["name"].startswith("cheat") else "simp"
        return [{"theorem": theorem["name"], "state": "⊢ P", "tactic": "intro h", "state_after": "h : Q\n⊢ P", "depth": 0},
                {"theorem": theorem["name"], "state": "h : Q\n⊢ P", "tactic": tactic, "state_after": "no goals", "depth": 1}]


def _theorems(n: int) -> list[dict]:
    return [{"name": f"t{i:03d}", "full_proof": ""} for i in range(n)]


def _rows(path) -> list[dict]:
    return [json.loads(line) for line in open(path, encoding="utf-8")]


def test_resume_skips_finished_chunks_without_duplicates(tmp_path):
    theorems = _theorems(10)
    out, ckpt = tmp_path / "pairs.jsonl", tmp_path / "ckpt"
    crashing = CountingTracer(crash_at="t007")
    with pytest.raises(KeyboardInterrupt):
        trace_corpus(theorems, crashing, out, ckpt, chunk_size=3)
    assert not out.exists()  # nothing half-written
    assert sorted(p.name for p in ckpt.glob("*.done.json")) == ["chunk_00000.done.json", "chunk_00001.done.json"]
    again = CountingTracer()
    run = trace_corpus(theorems, again, out, ckpt, chunk_size=3)
    assert again.calls == ["t006", "t007", "t008", "t009"]  # finished chunks skipped
    assert run.chunks == 4 and run.chunks_skipped == 2 and run.ok == 10
    rows = _rows(out)
    assert len(rows) == 20 == run.rows
    assert len({(r["theorem"], r["depth"]) for r in rows}) == 20
    assert [r["theorem"] for r in rows[::2]] == [t["name"] for t in theorems]  # input order kept
    third = CountingTracer()
    trace_corpus(theorems, third, out, ckpt, chunk_size=3)
    assert third.calls == [] and _rows(out) == rows


def test_changed_chunk_is_retraced(tmp_path):
    out, ckpt = tmp_path / "pairs.jsonl", tmp_path / "ckpt"
    trace_corpus(_theorems(4), CountingTracer(), out, ckpt, chunk_size=2)
    changed = _theorems(3) + [{"name": "new", "full_proof": ""}]
    tracer = CountingTracer()
    run = trace_corpus(changed, tracer, out, ckpt, chunk_size=2)
    assert tracer.calls == ["t002", "new"] and run.chunks_skipped == 1
    assert {r["theorem"] for r in _rows(out)} == {"t000", "t001", "t002", "new"}


def test_failures_timeouts_and_banned_rejections(tmp_path):
    theorems = [{"name": "ok", "full_proof": ""}, {"name": "broken", "full_proof": ""},
                {"name": "slow", "full_proof": ""}, {"name": "cheat", "full_proof": ""},
                {"name": "cheat_in_proof", "full_proof": "theorem x : True := by\n  admit\n"}]
    run = trace_corpus(theorems, CountingTracer(), tmp_path / "p.jsonl", tmp_path / "c", chunk_size=10,
                       timeout_s=0.5)
    status = {f.theorem: f.status for f in run.failures}
    assert status == {"broken": "failed", "slow": "timeout", "cheat": "rejected", "cheat_in_proof": "rejected"}
    assert run.ok == 1 and {r["theorem"] for r in _rows(tmp_path / "p.jsonl")} == {"ok"}
    assert run.failure_rate == pytest.approx(2 / 3)  # rejected cheats are not tracing failures


def test_parallel_workers_match_serial(tmp_path):
    theorems = _theorems(6)
    serial = trace_corpus(theorems, CountingTracer(), tmp_path / "s.jsonl", tmp_path / "cs", chunk_size=3, workers=1)
    parallel = trace_corpus(theorems, CountingTracer(), tmp_path / "p.jsonl", tmp_path / "cp", chunk_size=3, workers=2)
    assert _rows(tmp_path / "s.jsonl") == _rows(tmp_path / "p.jsonl") and serial.rows == parallel.rows == 12


def test_worker_cap():
    assert default_workers(2) == 1 and default_workers(64) == 16 and default_workers(8) == 6


def test_cleanup_kills_our_lean_zombies(tmp_path):
    fake_lean = tmp_path / "lean"
    shutil.copy(shutil.which("sleep"), fake_lean)
    os.chmod(fake_lean, 0o755)
    proc = subprocess.Popen([str(fake_lean), "300"])
    try:
        assert cleanup_lean_processes() >= 1
        proc.wait(timeout=5)
        assert not psutil.pid_exists(proc.pid) or psutil.Process(proc.pid).status() == psutil.STATUS_ZOMBIE
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_proof_tree_depths_follow_states_not_list_positions():
    # A real allTactics shape: `have h : P := by simp` holds a nested tactic; two branches.
    t = [
        {"tactic": "intro x", "goals": "⊢ A", "pos": {"line": 2, "column": 2}, "endPos": {"line": 2, "column": 9}},
        {"tactic": "have h : P := by simp", "goals": "x\n⊢ B", "pos": {"line": 3, "column": 2},
         "endPos": {"line": 3, "column": 23}},
        {"tactic": "simp", "goals": "x\n⊢ P", "pos": {"line": 3, "column": 19}, "endPos": {"line": 3, "column": 23}},
        {"tactic": "exact h", "goals": "x\nh\n⊢ B", "pos": {"line": 4, "column": 2}, "endPos": {"line": 4, "column": 9}},
        {"tactic": "omega", "goals": "x\n⊢ B", "pos": {"line": 6, "column": 2}, "endPos": {"line": 6, "column": 7}},
    ]
    afters = ["x\n⊢ B", "x\nh\n⊢ B", "no goals", "no goals", "no goals"]
    # list positions would say 0,1,2,3,4; the tree: root 0, after intro 1, nested simp below
    # `have` 2, after have 2, and `omega` is a second branch from the depth-1 state.
    assert proof_tree_depths(t, afters) == [0, 1, 2, 2, 1]


def test_repl_trace_job_through_the_pool_on_the_standin(tmp_path):
    settings = get_settings("demo", tmp_path)
    proof = ("import Mathlib\nimport Aesop\n\ntheorem demo_handwritten_1 : ∀ x : ℝ, 3 * x + 2 = 11 → x = 3 := by\n"
             "  intro x h₀\n")
    with make_pool(settings, size=1) as pool:
        (res,) = list(pool.map_unordered(ReplTraceJob(), [{"name": "goedel::demo_handwritten_1", "full_proof": proof}]))
        assert res.ok, res.error
        rows = res.value
        assert rows[0]["theorem"] == "goedel::demo_handwritten_1" and rows[0]["depth"] == 0
        assert rows[0]["state_after"] == rows[1]["state"] and rows[-1]["state_after"] == "no goals"
        (bad,) = list(pool.map_unordered(ReplTraceJob(), [{"name": "nope", "full_proof": "theorem nope : True := by\n  trivial\n"}]))
        assert bad.status == "error" and "no recorded trace" in bad.error


def test_leandojo_missing_is_a_clear_error(tmp_path):
    try:
        import lean_dojo  # noqa: F401
        pytest.skip("lean-dojo installed")
    except ImportError:
        pass
    with pytest.raises(TraceFailure, match=r"pip install -e \.\[full\]"):
        LeanDojoTracer(tmp_path)({"name": "t", "full_proof": ""})


def _demo_migrated(root):
    from burnqed_assets.lean import phase_m

    settings = get_settings("demo", root)
    phase_m.goedel_source(settings)
    phase_m.goedel_migration(settings)
    return settings


def test_pool_tracing_survives_a_killed_worker_and_a_killed_run(tmp_path):
    """The demo corpus through a 2-worker pool: a worker's REPL is SIGKILLed mid-chunk, and
    later the whole run dies mid-way; the re-run gives exactly the rows of an undisturbed run."""
    import signal
    import threading

    from burnqed_assets.lean import phase_m

    clean = _demo_migrated(tmp_path / "clean")
    with make_pool(clean, size=2) as pool:
        phase_m.goedel_tracing(clean, pool=pool)
    want = (clean.paths.tracing.pairs).read_bytes()
    assert len(want.splitlines()) > 100

    settings = _demo_migrated(tmp_path / "faulty")
    with make_pool(settings, size=2, extra_standin_args=("--tactic-latency", "0.01")) as pool:
        killed: list[int] = []

        def kill_mid_chunk() -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and pool.stats()["theorems"] < 10:  # inside chunk 0 (25 theorems)
                time.sleep(0.01)
            pid = pool.workers[0].env.process.pid
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

        killer = threading.Thread(target=kill_mid_chunk)
        killer.start()
        chunks_seen: list[str] = []

        def die_after_two_chunks(msg: str) -> None:
            chunks_seen.append(msg)
            if len(chunks_seen) == 2:
                raise KeyboardInterrupt("simulated kill of the whole run")

        with pytest.raises(KeyboardInterrupt):
            phase_m.goedel_tracing(settings, pool=pool, progress=die_after_two_chunks)
        killer.join()
        assert killed, "the worker was not killed"
        stats = pool.stats()
        # The killed REPL was replaced (2 + the restart). Whether the kill lands mid-request (a
        # crash, the theorem retried) or between two theorems (a dead process found and restarted
        # at the next one) depends on timing; either way no row may change.
        assert stats["repl_starts"] >= 3, stats
    with make_pool(settings, size=2) as pool:
        report = phase_m.goedel_tracing(settings, pool=pool)
        assert pool.stats()["theorems"] < report.theorems  # finished chunks were not traced again
    assert report.chunks_skipped_resumed == 2
    assert report.lake_project["commit"] and report.lake_project["modules"] > 50  # traced from the Lake project
    assert settings.paths.tracing.pairs.read_bytes() == want  # none lost, none duplicated, same order


def test_leandojo_rows_travel_to_workers_without_the_trace(tmp_path):
    """After `prepare()` (the one trace, in the parent) a pickled tracer carries plain rows only."""
    import pickle

    tracer = LeanDojoTracer(tmp_path)
    rows = [{"state": "⊢ A", "tactic": "intro", "state_after": "⊢ B", "depth": 0},
            {"state": "⊢ B", "tactic": "simp", "state_after": "no goals", "depth": 1}]
    tracer._rows = {"GoedelMigrated/P_t.lean::t": rows, "t": rows}  # what prepare() extracts
    clone = pickle.loads(pickle.dumps(tracer))
    got = clone({"name": "goedel::t", "full_proof": "", "module": "GoedelMigrated.P_t"})
    assert [r["tactic"] for r in got] == ["intro", "simp"] and got[0]["theorem"] == "goedel::t"
    with pytest.raises(TraceFailure, match="not found"):
        clone({"name": "goedel::u", "full_proof": ""})
