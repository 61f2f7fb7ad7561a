"""Benchmark: demo tracing (M.5) through the warm Lean pool, LocalLeanPool vs 1 and 2 Ray actors.

    python benchmarks/ray_pool_throughput.py          # joins RAY_ADDRESS, or starts Ray in-process
    python benchmarks/ray_pool_throughput.py --tactic-latency 0.01

The demo corpus (143 theorems, 3 chunks of 50) is traced with `trace_corpus` and the REPL
stand-in (a real subprocess speaking the REPL's JSON protocol; not Lean) on a fresh checkpoint
folder per repeat, so every chunk is traced each time. The baseline is the local pool (threads
of this process) with 1 worker, measured in the same run. Workers are warm before timing
(pool start, REPL start and header import are timed apart as start-up). Reported per backend:
median wall, theorems/s; and the per-theorem overhead of the Ray actor pool =
(median wall, Ray × 1 − median wall, local × 1) / theorems.
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
from burnqed_assets.lean.ray_pool import make_lean_pool, shutdown_local_ray  # noqa: E402
from burnqed_assets.lean.tracing import ReplTraceJob, trace_corpus  # noqa: E402
from burnqed_assets.settings import get_settings  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tactic-latency", type=float, default=0.0, help="stand-in seconds per tactic request")
    args = ap.parse_args()
    extra = ("--tactic-latency", str(args.tactic_latency)) if args.tactic_latency else ()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="ray_pool_bench_") as tmp:
        root = Path(tmp)
        settings = get_settings("demo", root / "data")
        phase_m.goedel_source(settings)
        phase_m.goedel_migration(settings)
        theorems, _ = phase_m.tracing_theorems(settings)
        size = settings.lean.trace_chunk_size
        job = ReplTraceJob()
        warm = theorems[:4]
        for name, backend, workers in (("local x1", "local", 1), ("ray x1", "ray", 1), ("ray x2", "ray", 2)):
            s = replace(settings, pool=replace(settings.pool, backend=backend))
            t0 = time.perf_counter()
            pool = make_lean_pool(s, size=workers, extra_standin_args=extra)
            for _ in range(workers):  # every worker started, header imported
                list(pool.map_unordered(job, warm))
            startup = time.perf_counter() - t0
            walls = []
            try:
                for r in range(args.repeats):
                    t1 = time.perf_counter()
                    run = trace_corpus(theorems, job, root / f"{backend}{workers}_{r}.jsonl",
                                       root / f"ckpt_{backend}{workers}_{r}", chunk_size=size, pool=pool)
                    walls.append(time.perf_counter() - t1)
                    assert run.theorems == len(theorems) and not run.missing_chunks and run.ok > 100
                stats = pool.stats()
            finally:
                pool.close()
            assert stats["pool"] == backend and stats["workers"] == workers, stats
            results[name] = {"startup_s": startup, "wall_s": statistics.median(walls)}
        shutdown_local_ray()

    n = len(theorems)
    print(f"demo tracing through the pool: {n} theorems, chunks of {size}, stand-in tactic latency "
          f"{args.tactic_latency:g} s, median of {args.repeats} (warm workers)")
    print(f"{'pool':<10} {'start-up s':>10} {'wall s':>8} {'theorems/s':>11} {'ms/theorem':>11}")
    for name, r in results.items():
        print(f"{name:<10} {r['startup_s']:>10.2f} {r['wall_s']:>8.2f} {n / r['wall_s']:>11.1f} "
              f"{1000 * r['wall_s'] / n:>11.2f}")
    overhead_ms = (results["ray x1"]["wall_s"] - results["local x1"]["wall_s"]) / n * 1000
    print(f"per-theorem overhead of a Ray actor vs a local worker: {overhead_ms:+.2f} ms")
    print(f"speed-up, 2 vs 1 Ray workers: {results['ray x1']['wall_s'] / results['ray x2']['wall_s']:.2f}x")


if __name__ == "__main__":
    main()
