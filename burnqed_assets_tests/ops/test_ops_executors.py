"""Executor selection and the scale-out (Kubernetes) config: validated, no cluster needed."""

from dataclasses import replace

import dagster as dg
import pytest
import yaml

from burnqed_assets.definitions import build_definitions, executor_for
from burnqed_assets.defs import operations
from burnqed_assets.settings import GPU_TAG, GPU_TAG_KEY, ExecutorSettings, get_settings


@dg.asset(op_tags=GPU_TAG)
def gpu_training() -> None:
    return None


@dg.asset(deps=[gpu_training])
def cpu_report() -> None:
    return None


def _execution_config(executor: dg.ExecutorDefinition) -> dict:
    """The executor config as Dagster resolves it for a run (raises on invalid config)."""
    job = dg.Definitions(assets=[gpu_training, cpu_report], executor=executor).resolve_implicit_global_asset_job_def()
    execution = dg.validate_run_config(job, {})["execution"]
    (config,) = execution.values()
    return config.get("config", config)


def _settings(kind: str):
    return replace(get_settings("demo"), executor=ExecutorSettings(kind=kind, max_concurrent=3, gpu_concurrency=1))


def test_multiprocess_executor_limits_gpu_tag(monkeypatch):
    monkeypatch.delenv(operations.EXECUTOR_ENV, raising=False)
    config = _execution_config(executor_for(_settings("multiprocess")))
    assert config["max_concurrent"] == 3
    assert config["tag_concurrency_limits"] == [{"key": GPU_TAG_KEY, "value": "gpu", "limit": 1}]


def test_in_process_and_env_override(monkeypatch):
    monkeypatch.delenv(operations.EXECUTOR_ENV, raising=False)
    assert executor_for(_settings("in_process")) is dg.in_process_executor
    monkeypatch.setenv(operations.EXECUTOR_ENV, "in_process")
    assert executor_for(_settings("multiprocess")) is dg.in_process_executor
    monkeypatch.setenv(operations.EXECUTOR_ENV, "threads")
    with pytest.raises(ValueError, match="BURNQED_EXECUTOR"):
        executor_for(_settings("multiprocess"))


def test_gpu_step_keys_finds_tagged_ops():
    defs = dg.Definitions(assets=[gpu_training, cpu_report])
    assert operations.gpu_step_keys(defs) == ["gpu_training"]


def test_k8s_config_from_deploy_yaml_validates_and_requests_gpu_per_step():
    pytest.importorskip("dagster_k8s")
    from dagster_k8s import k8s_job_executor

    site = yaml.safe_load(operations.K8S_CONFIG_PATH.read_text())
    config = operations.k8s_executor_config(_settings("k8s"), ["gpu_training"], base=site)
    resolved = _execution_config(k8s_job_executor.configured(config, name="k8s_under_test"))
    assert resolved["job_namespace"] == site["job_namespace"]
    assert resolved["tag_concurrency_limits"] == [{"key": GPU_TAG_KEY, "value": "gpu", "limit": 1}]
    gpu = resolved["per_step_k8s_config"]["gpu_training"]["container_config"]["resources"]
    assert gpu["limits"]["nvidia.com/gpu"] == 1
    assert "cpu_report" not in resolved["per_step_k8s_config"]
    assert any(m["mountPath"] == "/data" for m in resolved["volume_mounts"])


def test_k8s_config_with_a_typo_is_rejected():
    pytest.importorskip("dagster_k8s")
    from dagster_k8s import k8s_job_executor

    config = operations.k8s_executor_config(_settings("k8s"), [], base={"job_namespace": "x", "max_concurent": 2})
    with pytest.raises(dg.DagsterInvalidConfigError, match="max_concurent"):
        _execution_config(k8s_job_executor.configured(config, name="k8s_typo"))


def test_real_definitions_load_with_each_executor(monkeypatch):
    kinds = ["in_process", "multiprocess"]
    try:
        import dagster_k8s  # noqa: F401

        kinds.append("k8s")
    except ImportError:
        pass
    for kind in kinds:
        monkeypatch.setenv(operations.EXECUTOR_ENV, kind)
        defs = build_definitions(get_settings("demo"))
        job = defs.resolve_implicit_global_asset_job_def()
        assert dg.validate_run_config(job, {}) is not None, kind
