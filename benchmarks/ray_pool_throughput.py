"""Benchmark: demo tracing (M.5) through the Lean worker pool, in-process vs 1 and 2 Ray actors.

    python benchmarks/ray_pool_throughput.py                 # joins RAY_ADDRESS, or starts Ray here
    python benchmarks/ray_pool_throughput.py --work-ms 50    # + 50 ms of stand-in work per theorem

The same 143 demo theorems (recorded traces, 3 chunks of 50) go through `trace_corpus` with a
fresh checkpoint folder per repeat, so every chunk is traced. The baseline is the in-process
pool in the same run. Reported: theorems/s per backend (median of the repeats, warm workers:
Ray start and actor construction are timed apart as start-up) and the per-theorem overhead of
the actor pool = (median wall, Ray with 1 worker − median wall, in-process) / theorems.
`--work-ms` adds a sleep per theorem (a stand-in for Lean time, not Lean) so the 1 → 2 worker
scaling shows; with 0 the recorded tracer is ~µs and the numbers are pure pool overhead.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from burnqed_assets.lean import phase_m  # noqa: E402
from burnqed_assets.lean.ray_pool import InProcessPool, RayWorkerPool, shutdown_local_ray  # noqa: E402
from burnqed_assets.lean.tracing import RecordedTracer, trace_corpus  # noqa: E402
from burnqed_assets.settings import get_settings, with_overrides  # noqa: E402


class WorkTracer(RecordedTracer):
    """The recorded tracer plus a fixed sleep per theorem (stand-in work, not Lean)."""

    def __init__(self, inner: RecordedTracer, work_s: float):
        self.by_theorem, self.report, self.work_s = inner.by_theorem, inner.report, work_s

    def __call__(self, theorem):
        if self.work_s:
            time.sleep(self.work_s)
        return super().__call__(theorem)


def _time_pool(pool, theorems, tracer, chunk_size: int, repeats: int, root: Path) -> list[float]:
    walls = []
    for r in range(repeats):
        t0 = time.perf_counter()
        run = trace_corpus(theorems, tracer, root / f"pairs_{r}.jsonl", root / f"ckpt_{r}", chunk_size=chunk_size,
                           pool=pool)
        walls.append(time.perf_counter() - t0)
        assert run.ok + run.failed + run.rejected + run.timeouts == len(theorems) and not run.missing_chunks
    return walls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--work-ms", type=float, default=0.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ray_pool_bench_") as tmp:
        root = Path(tmp)
        settings = get_settings("demo", root / "data")
        phase_m.goedel_source(settings)
        phase_m.goedel_migration(settings)
        tracer = WorkTracer(phase_m.make_tracer(settings)[0], args.work_ms / 1000)
        theorems = phase_m.tracing_theorems(settings, tracer)
        size = settings.lean.trace_chunk_size
        factory = phase_m.TracerFactory(settings, tracer)
        results: dict[str, dict[str, float]] = {}

        pool = InProcessPool(factory)
        walls = _time_pool(pool, theorems, tracer, size, args.repeats, root / "inprocess")
        pool.close()
        results["in-process"] = {"startup_s": 0.0, "wall_s": statistics.median(walls)}
        for workers in (1, 2):
            t0 = time.perf_counter()
            pool = RayWorkerPool(factory, replace(settings.pool, workers=workers), shutdown_local=False)
            list(pool.map_unordered(lambda w, x: x, range(workers * 4)))  # actors up, tracers built
            startup = time.perf_counter() - t0
            walls = _time_pool(pool, theorems, tracer, size, args.repeats, root / f"ray{workers}")
            restarts = pool.stats()["actor_restarts"]
            pool.close()
            assert restarts == 0
            results[f"ray x{workers}"] = {"startup_s": startup, "wall_s": statistics.median(walls)}
        shutdown_local_ray()

    n = len(theorems)
    print(f"demo tracing: {n} theorems, chunks of {size}, {args.work_ms:g} ms stand-in work per theorem, "
          f"median of {args.repeats}")
    print(f"{'backend':<12} {'start-up s':>10} {'wall s':>8} {'theorems/s':>11}")
    for name, r in results.items():
        print(f"{name:<12} {r['startup_s']:>10.2f} {r['wall_s']:>8.3f} {n / r['wall_s']:>11.1f}")
    overhead_ms = (results["ray x1"]["wall_s"] - results["in-process"]["wall_s"]) / n * 1000
    print(f"per-theorem overhead of the Ray actor pool (1 worker vs in-process): {overhead_ms:.2f} ms")
    print(f"speed-up 2 vs 1 Ray workers: {results['ray x1']['wall_s'] / results['ray x2']['wall_s']:.2f}x")


if __name__ == "__main__":
    main()
