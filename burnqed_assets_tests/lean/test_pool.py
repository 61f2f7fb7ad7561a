"""The warm Lean pool on the REPL stand-in: one header import per worker, the theorem clock
starting once the env is ready, per-theorem timeouts, memory recycling between theorems only."""

from __future__ import annotations

import pickle
from dataclasses import replace

from burnqed_assets.lean.pool import CheckJob, LeanPool, LocalLeanPool, WorkerConfig, make_pool
from burnqed_assets.settings import get_settings

HEADER = "import Mathlib\nimport Aesop\n\n"
STMT = "theorem demo_handwritten_{i} : True := by"


def _demo(tmp_path, **lean):
    s = get_settings("demo", tmp_path)
    return replace(s, lean=replace(s.lean, **lean)) if lean else s


def open_job(worker, item):
    """Open a recorded theorem in the worker's warm header env (what search does first)."""
    name, statement = item
    with worker.theorem(HEADER) as env:
        state = env.open_theorem(statement, HEADER, name=name)
        return state.pp


ITEMS = [("demo_handwritten_1", "theorem demo_handwritten_1 : ∀ x : ℝ, 3 * x + 2 = 11 → x = 3 := by")] * 6


def test_each_worker_imports_the_header_once_and_the_clock_starts_after(tmp_path):
    settings = _demo(tmp_path, standin_import_latency_s=0.6)
    with make_pool(settings, size=2) as pool:
        assert isinstance(pool, LeanPool)
        results = list(pool.map_unordered(open_job, ITEMS))
        assert sorted(r.index for r in results) == list(range(6)) and all(r.ok for r in results), results
        assert {r.value for r in results} == {"⊢ ∀ (x : ℝ), 3 * x + 2 = 11 → x = 3"}
        # The 0.6 s "import Mathlib" is not on any theorem's clock.
        assert max(r.seconds for r in results) < 0.6
        stats = pool.stats()
        assert stats["theorems"] == 6 and stats["imports"] == 2 and stats["reuses"] == 4
        assert stats["timeouts"] == stats["crashes"] == stats["recycles"] == 0 and stats["peak_rss_mb"] > 0
        assert "stand-in" in stats["repl"]


def test_per_theorem_timeout_fails_that_theorem_only(tmp_path):
    settings = _demo(tmp_path, theorem_timeout_s=1.5)
    items = [ITEMS[0], ("demo_handwritten_2", "theorem demo_handwritten_2 HANGS : True := by"), ITEMS[0]]
    with make_pool(settings, size=1, extra_standin_args=("--hang-on-text", "HANGS")) as pool:
        results = sorted(pool.map_unordered(open_job, items), key=lambda r: r.index)
        assert [r.status for r in results] == ["ok", "timeout", "ok"]
        assert results[1].seconds < 5
        assert pool.stats()["timeouts"] == 1 and pool.stats()["imports"] == 2  # fresh REPL after the kill


def test_memory_recycles_between_theorems_never_inside(tmp_path):
    # The stand-in keeps 40 MB more after every request; recycle above 120 MB, cap far above.
    settings = _demo(tmp_path, recycle_rss_mb=120.0, memory_cap_mb=4096)
    with make_pool(settings, size=1, extra_standin_args=("--grow-mb", "40")) as pool:
        results = list(pool.map_unordered(open_job, ITEMS))
        assert all(r.ok for r in results), results  # no theorem lost its state to a recycle
        stats = pool.stats()
        assert stats["recycles"] >= 1 and stats["imports"] == 1 + stats["recycles"]
        assert stats["peak_rss_mb"] > 120


def test_worker_config_is_picklable_for_remote_workers(tmp_path):
    config = WorkerConfig.from_settings(_demo(tmp_path))
    again = pickle.loads(pickle.dumps(config))
    assert again == config and again.command.verified_by == "stand-in"
    pool = LocalLeanPool(again, 1)
    try:
        (res,) = list(pool.map_unordered(CheckJob(), [HEADER + "theorem demo_handwritten_1 : ∀ x : ℝ, 3 * x + 2 = 11 → x = 3 := by\n  intro x h₀\n"]))
        assert res.ok and res.value.verified_by == "stand-in" and not res.value.ok  # goals remain: rejected
    finally:
        pool.close()
