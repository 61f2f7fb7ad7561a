"""Per-step overhead of the multiprocess executor against in-process, on demo assets.

Runs `dagster asset materialize` on the same selection with BURNQED_EXECUTOR=in_process
and =multiprocess (fresh temp DAGSTER_HOME and data root per run, alternating, N repeats),
then reads each run's event log:

- wall: the whole CLI call (code location load + run), seconds;
- run: RUN_START -> RUN_SUCCESS, seconds;
- step startup (multiprocess only): STEP_WORKER_STARTING -> STEP_START per step, i.e. the
  fresh Python that re-imports the code location (torch, transformers) for every step.

Prints a table and the recommended demo executor (the faster median run time).

    python benchmarks/executor_overhead.py                      # the Phase M / 0 data assets
    python benchmarks/executor_overhead.py --select 'goedel_traced_pairs,clean_pool' --repeats 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def default_selection() -> list[str]:
    """The executable data-group assets (what the weekly data refresh runs), kept only when
    every upstream dep is in the selection too, so the subset runs on a fresh data root."""
    from burnqed_assets.definitions import defs
    from burnqed_assets.defs import operations

    groups = set(operations.data_groups(defs))
    graph = defs.resolve_asset_graph()
    executable = {k for k in graph.get_all_asset_keys() if graph.get(k).is_materializable}
    specs = {s.key: s for s in operations.iter_specs(defs) if s.group_name in groups and s.key in executable
             and not graph.get(s.key).is_partitioned}  # a partitioned asset needs --partition
    external = set(graph.get_all_asset_keys()) - executable  # raw inputs: observed, never materialized
    changed = True
    while changed:  # drop assets whose upstream is outside the subset, to a fixpoint
        changed = False
        for key in list(specs):
            if any(d.asset_key not in specs and d.asset_key not in external for d in specs[key].deps):
                del specs[key]
                changed = True
    return sorted(k.to_user_string() for k in specs)


def run_once(kind: str, selection: list[str]) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix=f"burnqed-bench-{kind}-"))
    try:
        home = work / "dagster_home"
        home.mkdir()
        shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
        env = {**os.environ, "DAGSTER_HOME": str(home), "BURNQED_DATA_ROOT": str(work / "data"),
               "BURNQED_EXECUTOR": kind, "BURNQED_PROFILE": "demo"}
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "burnqed_assets.definitions",
             "--select", ",".join(selection)],
            cwd=REPO, env=env, capture_output=True, text=True,
        )
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"{kind} run failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
        os.environ["DAGSTER_HOME"] = str(home)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            (run,) = instance.get_runs()
            records = instance.get_records_for_run(run.run_id).records
            events = [r.event_log_entry for r in records if r.event_log_entry.dagster_event]
            by_type: dict[str, list] = {}
            for e in events:
                by_type.setdefault(e.dagster_event.event_type.name, []).append(e)
            run_s = by_type["RUN_SUCCESS"][0].timestamp - by_type["RUN_START"][0].timestamp
            starting = {e.step_key: e.timestamp for e in by_type.get("STEP_WORKER_STARTING", [])}
            starts = {e.step_key: e.timestamp for e in by_type.get("STEP_START", [])}
            startup = [starts[k] - t for k, t in starting.items() if k in starts]
            steps = len(starts)
        return {"wall": wall, "run": run_s, "steps": steps,
                "startup_mean": statistics.mean(startup) if startup else 0.0}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--select", help="comma-separated asset keys (default: the data groups)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    selection = args.select.split(",") if args.select else default_selection()
    print(f"selection ({len(selection)} assets): {', '.join(selection)}", flush=True)

    results: dict[str, list[dict[str, float]]] = {"in_process": [], "multiprocess": []}
    for i in range(args.repeats):
        for kind in results:
            r = run_once(kind, selection)
            results[kind].append(r)
            print(f"  repeat {i + 1} {kind:>12}: wall {r['wall']:.1f}s run {r['run']:.1f}s "
                  f"steps {r['steps']:.0f} step startup {r['startup_mean']:.2f}s", flush=True)

    med = {k: {m: statistics.median(r[m] for r in v) for m in ("wall", "run", "steps", "startup_mean")}
           for k, v in results.items()}
    steps = max(med["multiprocess"]["steps"], 1)
    per_step = (med["multiprocess"]["run"] - med["in_process"]["run"]) / steps
    print("\nexecutor       wall_s  run_s  steps  step_startup_s")
    for k, m in med.items():
        print(f"{k:<13} {m['wall']:7.1f} {m['run']:6.1f} {m['steps']:6.0f} {m['startup_mean']:15.2f}")
    print(f"\nmultiprocess overhead per step (run time difference / steps): {per_step:+.2f}s")
    best = min(med, key=lambda k: med[k]["run"])
    print(f"recommended demo executor: {best} (cores: {os.cpu_count()})")


if __name__ == "__main__":
    main()
