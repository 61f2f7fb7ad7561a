"""Run monitoring in the shipped instance configs: a run whose process was killed is marked FAILED."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import time

import dagster as dg
import pytest
from dagster._core.events import DagsterEvent, DagsterEventType, EngineEventData
from dagster._core.test_utils import create_run_for_test
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._daemon.monitoring.run_monitoring import monitor_started_run

from burnqed_assets.run_launcher import LocalHealthCheckRunLauncher
from burnqed_assets.settings import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"


@pytest.mark.parametrize("yaml_name", ["dagster.yaml", "dagster-postgres.yaml"])
def test_shipped_configs_enable_run_monitoring(tmp_path, monkeypatch, yaml_name):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(DEPLOY / yaml_name, home / "dagster.yaml")
    if "postgres" in yaml_name:
        # Only the config is validated here (no server): Dagster connects lazily.
        monkeypatch.setenv("BURNQED_POSTGRES_URL", "postgresql+psycopg2://u:p@127.0.0.1:1/none")
        from dagster._core.instance.config import dagster_instance_config

        config, _ = dagster_instance_config(str(home))
        assert config["run_monitoring"]["enabled"] is True
        return
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.run_monitoring_enabled
        assert isinstance(instance.run_launcher, LocalHealthCheckRunLauncher)
        assert instance.run_launcher.supports_check_run_worker_health


def _started_run_with_pid(instance: dg.DagsterInstance, pid: int):
    run = create_run_for_test(instance, job_name="killed_job", status=dg.DagsterRunStatus.STARTED)
    instance.report_dagster_event(
        DagsterEvent(event_type_value=DagsterEventType.ENGINE_EVENT.value, job_name=run.job_name,
                     message=f"Started process for run (pid: {pid}).",
                     event_specific_data=EngineEventData.in_process(pid)),
        run_id=run.run_id, log_level=logging.INFO)
    return run


def test_killed_run_is_marked_failed_and_a_live_one_is_not(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(DEPLOY / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with dg.DagsterInstance.from_config(str(home)) as instance:
        killed = _started_run_with_pid(instance, victim.pid)
        alive = _started_run_with_pid(instance, victim.pid)
        with WorkspaceProcessContext(instance, None) as ctx:  # type: ignore[arg-type]
            log = logging.getLogger("test_run_monitoring")
            monitor_started_run(instance, ctx.create_request_context(), instance.get_run_record_by_id(alive.run_id), log)
            assert instance.get_run_by_id(alive.run_id).status == dg.DagsterRunStatus.STARTED
            victim.kill()
            victim.wait()
            time.sleep(0.1)
            monitor_started_run(instance, ctx.create_request_context(), instance.get_run_record_by_id(killed.run_id), log)
        run = instance.get_run_by_id(killed.run_id)
        assert run.status == dg.DagsterRunStatus.FAILURE
        failure = instance.all_logs(killed.run_id, of_type=DagsterEventType.RUN_FAILURE)
        assert failure and f"run process {victim.pid} is gone" in (failure[-1].dagster_event.message or "")
