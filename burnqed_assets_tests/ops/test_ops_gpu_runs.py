"""One GPU, never double-booked: two runs with GPU steps, launched through the shipped queued
run coordinator and run by the real daemon, never overlap; a CPU run is not held back.

The instance is deploy/dagster-postgres.yaml's run coordinator (max 4 concurrent runs, one run
tagged burnqed/gpu_run=true at a time) on SQLite storage in a temporary DAGSTER_HOME; runs are
submitted with `dagster job launch` (the same submission path as the UI and sensors) and
dequeued by `dagster-daemon run`. ~1 min here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

from burnqed_assets.run_coordinator import GpuRunCoordinator, run_gpu_steps
from burnqed_assets.settings import GPU_RUN_TAG_KEY, REPO_ROOT

DEFS = Path(__file__).with_name("gpu_runs_defs.py")
DAGSTER_BIN = Path(sys.executable).parent


def _home(tmp_path: Path) -> Path:
    """deploy/dagster-postgres.yaml with SQLite storage in place of Postgres (no server here)."""
    config = yaml.safe_load((REPO_ROOT / "deploy" / "dagster-postgres.yaml").read_text())
    config["storage"] = {"sqlite": {"base_dir": {"env": "DAGSTER_HOME"}}}
    config["run_coordinator"]["config"]["dequeue_interval_seconds"] = 1
    config.pop("run_launcher", None)
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return home


@pytest.mark.parametrize("yaml_path", ["deploy/dagster.yaml", "deploy/dagster-postgres.yaml", "dagster.yaml"])
def test_shipped_configs_limit_gpu_runs_to_one(yaml_path):
    config = yaml.safe_load((REPO_ROOT / yaml_path).read_text())
    rc = config["run_coordinator"]
    assert (rc["module"], rc["class"]) == ("burnqed_assets.run_coordinator", "GpuRunCoordinator")
    assert {"key": GPU_RUN_TAG_KEY, "value": "true", "limit": 1} in rc["config"]["tag_concurrency_limits"]
    assert "run_queue" not in config  # Dagster refuses run_queue next to run_coordinator


def test_two_gpu_runs_through_the_queue_do_not_overlap(tmp_path, monkeypatch):
    home = _home(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    intervals = tmp_path / "intervals.jsonl"
    env = {**os.environ, "DAGSTER_HOME": str(home), "BURNQED_TEST_INTERVALS": str(intervals),
           "BURNQED_TEST_HOLD_S": "4", "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    for job in ("gpu_a_job", "gpu_b_job", "cpu_c_job"):  # in this order: the queue is FIFO
        subprocess.run([str(DAGSTER_BIN / "dagster"), "job", "launch", "-f", str(DEFS), "-j", job],
                       env=env, check=True, capture_output=True, timeout=120)

    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_coordinator, GpuRunCoordinator)
        runs = {r.job_name: r for r in instance.get_runs()}
        assert all(r.status == dg.DagsterRunStatus.QUEUED for r in runs.values())
        # the coordinator tagged the runs with GPU steps at submission, and only those
        assert runs["gpu_a_job"].tags.get(GPU_RUN_TAG_KEY) == "true"
        assert runs["gpu_b_job"].tags.get(GPU_RUN_TAG_KEY) == "true"
        assert GPU_RUN_TAG_KEY not in runs["cpu_c_job"].tags
        assert run_gpu_steps(instance, runs["gpu_a_job"]) == ["gpu_a"]

        daemon = subprocess.Popen([str(DAGSTER_BIN / "dagster-daemon"), "run", "-f", str(DEFS)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        try:
            deadline = time.monotonic() + 150
            while time.monotonic() < deadline:
                statuses = {r.job_name: r.status for r in instance.get_runs()}
                if all(s in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE) for s in statuses.values()):
                    break
                time.sleep(1)
        finally:
            os.killpg(daemon.pid, signal.SIGTERM)
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait()
        statuses = {r.job_name: r.status for r in instance.get_runs()}
    assert statuses == {j: dg.DagsterRunStatus.SUCCESS for j in ("gpu_a_job", "gpu_b_job", "cpu_c_job")}, statuses

    spans = {d["asset"]: d for d in map(json.loads, intervals.read_text().splitlines())}
    first, second = sorted((spans["gpu_a"], spans["gpu_b"]), key=lambda d: d["start"])
    assert first["end"] <= second["start"], f"GPU runs overlapped: {first} {second}"
    # The limit is on the GPU tag, not on runs: the CPU run did not wait for the GPU queue.
    assert spans["cpu_c"]["start"] < second["start"]
