"""One GPU, never double-booked across runs: the run coordinator tags every run with a GPU step.

Dagster limits concurrency across runs only by RUN tags (the run queue's
`tag_concurrency_limits`), while our GPU assets carry an op tag (`GPU_TAG`, which the executor
uses to serialise GPU steps inside one run). Dagster 1.13 never copies op or asset tags onto the
run: a run launched from the UI, a sensor, a schedule, a backfill or the automation sensor has
only the tags its launcher gave it. So `GpuRunCoordinator` (Dagster's `QueuedRunCoordinator`
plus one step) looks at the run's execution plan when the run is submitted and, if any step
to execute carries `GPU_TAG`, adds the run tag `GPU_RUN_TAG` before the run is queued. The
instance config (deploy/dagster.yaml, deploy/dagster-postgres.yaml) then allows one run with
that tag at a time; the queue daemon does the rest.

Enable it in dagster.yaml:

    run_coordinator:
      module: burnqed_assets.run_coordinator
      class: GpuRunCoordinator
      config:
        max_concurrent_runs: 4
        tag_concurrency_limits:
          - {key: burnqed/gpu_run, value: "true", limit: 1}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from dagster._core.run_coordinator import QueuedRunCoordinator, SubmitRunContext
from dagster._core.storage.dagster_run import DagsterRun

from burnqed_assets.settings import GPU_RUN_TAG, GPU_RUN_TAG_KEY, GPU_TAG, GPU_TAG_KEY


def is_gpu_step(tags: Mapping[str, str] | None) -> bool:
    return (tags or {}).get(GPU_TAG_KEY) == GPU_TAG[GPU_TAG_KEY]


def run_gpu_steps(instance: Any, run: DagsterRun) -> list[str]:
    """Keys of the steps this run will execute that carry the GPU op tag."""
    if run.execution_plan_snapshot_id:
        plan = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
        wanted = set(run.step_keys_to_execute or plan.step_keys_to_execute or [s.key for s in plan.steps])
        return sorted(s.key for s in plan.steps if s.key in wanted and is_gpu_step(s.tags))
    if run.job_snapshot_id:  # no plan stored (rare): every node of the job
        job = instance.get_job_snapshot(run.job_snapshot_id)
        nodes: Iterable[Any] = job.node_defs_snapshot.op_def_snaps
        return sorted(n.name for n in nodes if is_gpu_step(n.tags))
    return []


class GpuRunCoordinator(QueuedRunCoordinator):
    """`QueuedRunCoordinator` that adds `GPU_RUN_TAG` to runs with a GPU step before queueing them."""

    def submit_run(self, context: SubmitRunContext) -> DagsterRun:
        run = context.dagster_run
        if run.tags.get(GPU_RUN_TAG_KEY) != GPU_RUN_TAG[GPU_RUN_TAG_KEY]:
            steps = run_gpu_steps(self._instance, run)
            if steps:
                self._instance.add_run_tags(run.run_id, GPU_RUN_TAG)
                self._logger.info(f"run {run.run_id}: GPU steps {steps[:5]} -> tag {GPU_RUN_TAG}")
                refreshed = self._instance.get_run_by_id(run.run_id)
                context = SubmitRunContext(refreshed or run, context.workspace)
        return super().submit_run(context)
