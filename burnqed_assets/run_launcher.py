"""A run launcher whose run workers Dagster's run monitoring can health-check on one machine.

Dagster's `DefaultRunLauncher` cannot report whether a run's process is alive, so with it run
monitoring only enforces start/cancel timeouts, and a run whose process was killed (`kill -9`
of `dagster asset materialize`, a crashed `dagster dev`) stays STARTED for ever. This launcher
launches exactly like the default one and adds the health check: the run's process id is the
first `pid` Dagster itself records in the run's engine events (the run worker, or the CLI process
for `dagster asset materialize`); when that process is gone, monitoring marks the run failed.

It assumes the monitoring daemon and the runs share one machine (deploy/dagster.yaml and the
project-local instance). Several hosts sharing one instance need their platform's launcher
(K8sRunLauncher health-checks pods), as deploy/dagster-postgres.yaml says.
"""

from __future__ import annotations

import psutil
from dagster import DagsterEventType, DagsterInstance, DagsterRun, DefaultRunLauncher
from dagster._core.launcher.base import CheckRunHealthResult, WorkerStatus


def run_process(instance: DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """(pid, event timestamp) of the run's own process, from its first pid-bearing engine event."""
    for record in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        event = record.dagster_event
        data = getattr(event, "event_specific_data", None) if event else None
        pid = (getattr(data, "metadata", None) or {}).get("pid")
        if pid is not None:
            try:
                return int(getattr(pid, "value", pid)), float(record.timestamp)
            except (TypeError, ValueError):
                return None
    return None


def process_alive(pid: int, started_before: float) -> bool:
    """The process exists, is not a zombie, and is the one that existed at `started_before`
    (a newer process with a recycled pid is not ours)."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return proc.create_time() <= started_before + 1.0
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # someone else's live process: not ours to judge


class LocalHealthCheckRunLauncher(DefaultRunLauncher):
    """`DefaultRunLauncher` plus a process-liveness health check for run monitoring."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        found = run_process(self._instance, run.run_id)
        if found is None:
            # No process recorded yet (the worker is still starting): nothing to judge.
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no run process recorded yet")
        pid, seen_at = found
        if process_alive(pid, seen_at):
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"run process {pid} is alive")
        return CheckRunHealthResult(
            WorkerStatus.FAILED, f"run process {pid} is gone (killed or crashed) while the run was STARTED")
