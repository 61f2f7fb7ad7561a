"""The migration check in chunks (the Dagster partitions of `goedel_427_proofs`): any mix of chunk
runs gives the bytes of one whole run; a failed chunk re-runs alone; a run SIGKILLed mid-chunk
re-runs to the same rows, none lost or duplicated. Demo corpus (100 Goedel proofs, chunks of 50),
the real pool and the REPL stand-in."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from burnqed_assets.lean import phase_m
from burnqed_assets.lean.lake_project import read_lake_project
from burnqed_assets.lean.migration import migration_chunk_files
from burnqed_assets.lean.pool import make_pool
from burnqed_assets.settings import get_settings

REPO = Path(__file__).resolve().parents[2]


def _source(root: Path):
    settings = get_settings("demo", root)
    phase_m.goedel_source(settings)
    return settings


def _deliverable(settings) -> dict[str, bytes]:
    """Every file the migration delivers (checkpoints aside), by path relative to its folder; the
    Lake project's git metadata is represented by its commit."""
    d = settings.paths.migration.dir
    files = {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*"))
             if p.is_file() and "checkpoints" not in p.parts and ".git" not in p.parts}
    files["lake_project HEAD"] = read_lake_project(settings.paths.migration.lake_project).commit.encode()
    return files


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """One unpartitioned run (every chunk in one call): the reference bytes."""
    settings = _source(tmp_path_factory.mktemp("whole"))
    out = phase_m.goedel_migration(settings)
    assert out.chunks == 2 and out.complete and out.chunks_skipped_resumed == 0
    return settings, _deliverable(settings)


def _reset(settings) -> None:
    shutil.rmtree(settings.paths.migration.dir, ignore_errors=True)


class FailingPool:
    """The real pool, except that a batch holding any of `poison` proofs fails (a lost worker)."""

    def __init__(self, pool, poison: set[str]):
        self.pool, self.poison = pool, poison
        self.size, self.verified_by = pool.size, pool.verified_by

    def map_unordered(self, job, items):
        items = list(items)
        if any(code in self.poison for code in items):
            raise RuntimeError("worker lost (injected)")
        return self.pool.map_unordered(job, items)

    def stats(self):
        return self.pool.stats()


def test_chunk_runs_in_any_order_give_the_bytes_of_one_whole_run(whole, tmp_path):
    settings, want = whole
    # Same data root as the whole run, outputs removed: paths inside the summary are the same.
    _reset(settings)
    first = phase_m.goedel_migration(settings, chunks=[1])
    assert first.missing_chunks == (0,) and first.summary.total == 50  # the summary covers chunk 1 only
    assert json.loads(settings.paths.migration.summary.read_text())["missing_chunks"] == [0]
    with pytest.raises(FileNotFoundError, match="chunk_000 not finished"):
        phase_m.tracing_theorems(settings)  # a partial Lake project is never traced
    second = phase_m.goedel_migration(settings, chunks=[0, 2])  # chunk 2 holds no proofs: nothing to do
    assert second.complete and second.chunks_this_run == (0,)
    assert _deliverable(settings) == want
    again = phase_m.goedel_migration(settings)  # everything finished: no pool starts, nothing redone
    assert again.chunks_skipped_resumed == 2 and again.lean_stats == {}
    assert _deliverable(settings) == want


def test_a_failed_chunk_reruns_alone(whole):
    settings, want = whole
    _reset(settings)
    records = [json.loads(x) for x in settings.paths.goedel_source_proofs.read_text(encoding="utf-8").splitlines()]
    size = settings.lean.trace_chunk_size
    with make_pool(settings, size=1) as pool:
        failing = FailingPool(pool, {r["full_proof"] for r in records[size:]})
        with pytest.raises(RuntimeError, match="chunk 1: RuntimeError: worker lost"):
            phase_m.goedel_migration(settings, pool=failing)
    summary = json.loads(settings.paths.migration.summary.read_text())
    assert summary["missing_chunks"] == [1] and summary["total"] == size  # chunk 0's results were kept
    ckpt = settings.paths.migration.checkpoints
    kept = {p: p.stat().st_mtime_ns for p in migration_chunk_files(ckpt, 0)}
    assert not migration_chunk_files(ckpt, 1)[1].exists()

    with make_pool(settings, size=1) as pool:
        rerun = phase_m.goedel_migration(settings, pool=pool, chunks=[1])
        assert pool.stats()["theorems"] == len(records) - size  # only the failed chunk's proofs compiled
    assert rerun.complete and rerun.chunks_skipped_resumed == 0
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # the finished chunk was not touched
    assert _deliverable(settings) == want


KILLER = textwrap.dedent("""
    import os, signal, sys, threading, time
    from burnqed_assets.lean import phase_m
    from burnqed_assets.lean.pool import make_pool
    from burnqed_assets.settings import get_settings

    settings = get_settings("demo", sys.argv[1])
    pool = make_pool(settings, size=2, extra_standin_args=("--tactic-latency", "0.01"))

    def kill_mid_chunk_1():
        while pool.stats()["theorems"] < 60:  # chunk 0 holds proofs 0-49
            time.sleep(0.005)
        print("killing", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=kill_mid_chunk_1, daemon=True).start()
    phase_m.goedel_migration(settings, pool=pool)
    print("finished without being killed", flush=True)
""")


def test_a_killed_run_reruns_to_the_same_rows(whole):
    settings, want = whole
    _reset(settings)
    proc = subprocess.run([sys.executable, "-c", KILLER, str(settings.data_root)], capture_output=True, text=True,
                          timeout=300, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    ckpt = settings.paths.migration.checkpoints
    assert migration_chunk_files(ckpt, 0)[1].exists()  # finished before the kill
    assert not migration_chunk_files(ckpt, 1)[1].exists()  # killed inside it: no marker, redone whole

    out = phase_m.goedel_migration(settings)
    assert out.complete and out.chunks_skipped_resumed == 1
    assert _deliverable(settings) == want
    ids = [json.loads(x)["problem_id"] for x in settings.paths.migration.proofs.read_text().splitlines()]
    dropped = [json.loads(x)["problem_id"] for x in settings.paths.migration.dropped.read_text().splitlines()]
    assert len(ids) == len(set(ids)) and not set(ids) & set(dropped)  # none duplicated
    assert len(ids) + len(dropped) == 100  # none lost


def test_a_changed_proof_redoes_its_chunk_only(whole):
    settings, _ = whole
    _reset(settings)
    phase_m.goedel_migration(settings)
    ckpt = settings.paths.migration.checkpoints
    before = [migration_chunk_files(ckpt, i)[1].read_bytes() for i in (0, 1)]
    rows = [json.loads(x) for x in settings.paths.goedel_source_proofs.read_text(encoding="utf-8").splitlines()]
    rows[-1]["full_proof"] += "\n-- edited upstream\n"  # a data fix in chunk 1
    settings.paths.goedel_source_proofs.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    try:
        out = phase_m.goedel_migration(settings)
        assert out.chunks_skipped_resumed == 1
        after = [migration_chunk_files(ckpt, i)[1].read_bytes() for i in (0, 1)]
        assert after[0] == before[0] and after[1] != before[1]
    finally:
        phase_m.goedel_source(settings)  # the module's reference source again
