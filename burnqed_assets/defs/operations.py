"""Operations: re-materialization after data fixes, automation conditions, executors.

`definitions.py` merges every phase module first, then calls the builders here on the
merged graph, so nothing in this module names another module's asset (the graph grows
while other phases are written):

- `with_automation(defs)`: every asset with upstream deps gets
  `eager() & all_deps_blocking_checks_passed()` (unless its owner set a condition), so a
  downstream asset follows an upstream update only once the upstream blocking gates passed.
- `build_operations(defs, settings)`: the raw-input sensor (content fingerprints of
  `settings.inputs`, recorded as observations of the `raw_<name>` external assets → the
  assets that depend on the changed input, found in the graph, and everything downstream),
  the data-refresh job + schedule (Phase M / 0 groups) and the automation-condition sensor.
- `executor_kind` / `k8s_executor_config`: the executor override (`BURNQED_EXECUTOR`) and
  the Kubernetes scale-out config with one `nvidia.com/gpu` per GPU-tagged step.

No `from __future__ import annotations` in defs modules (Dagster inspects annotations).
"""

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Optional

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from burnqed_assets.data.inputs import HASH_LIMIT_BYTES, fingerprint_path, observe_input  # noqa: F401
from burnqed_assets.defs.inputs import (
    INPUT_NAMES,
    RAW_INPUT_KEYS,
    RAW_INPUTS_SELECTION,
    observation_event,
    raw_input,
)
from burnqed_assets.paths import K8S_EXECUTOR_CONFIG
from burnqed_assets.settings import GPU_TAG, GPU_TAG_KEY, Settings, get_settings

EXECUTOR_ENV = "BURNQED_EXECUTOR"
EXECUTOR_KINDS = ("in_process", "multiprocess", "k8s")
K8S_CONFIG_PATH = K8S_EXECUTOR_CONFIG

# Groups whose assets are "data" (Phase M and Phase 0): the periodic refresh re-builds them.
DATA_GROUP_PREFIXES = ("phase_m", "phase_0")
DATA_REFRESH_CRON = "0 3 * * 1"  # Mondays 03:00 UTC: after upstream dataset drops, before the week's runs
INPUT_SENSOR_NAME = "raw_input_change_sensor"
# README command 1: the whole graph, every partition of the chunked assets, in one run.
MATERIALIZE_ALL_JOB = "materialize_all"
INPUT_SENSOR_INTERVAL_S = 60

AUTOMATION_LABEL = "eager_after_blocking_checks"


def follow_upstream_condition() -> dg.AutomationCondition:
    """Eager, but only once every upstream blocking check has passed. The raw inputs are left out:
    an input that was never observed is not "missing", and input changes are the raw-input
    sensor's job (it knows the fingerprints)."""
    condition = dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()
    return condition.ignore(RAW_INPUTS_SELECTION).with_label(AUTOMATION_LABEL)


# ---------------------------------------------------------------------------- graph helpers


def iter_specs(defs: dg.Definitions) -> Iterable[dg.AssetSpec]:
    """Every asset spec in `defs` (AssetsDefinitions and bare specs)."""
    for item in defs.assets or []:
        if isinstance(item, dg.AssetSpec):
            yield item
        elif isinstance(item, dg.AssetsDefinition):
            yield from item.specs


def _materializable(defs: dg.Definitions) -> list[dg.AssetsDefinition]:
    return [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition) and a.is_materializable]


def downstream_closure(defs: dg.Definitions, roots: Iterable[dg.AssetKey]) -> list[dg.AssetKey]:
    """`roots` and every asset that depends on them, transitively (like `key+` selection)."""
    children: dict[dg.AssetKey, set[dg.AssetKey]] = {}
    for spec in iter_specs(defs):
        for dep in spec.deps:
            children.setdefault(dep.asset_key, set()).add(spec.key)
    known = {s.key for s in iter_specs(defs)}
    seen: set[dg.AssetKey] = set()
    stack = [k for k in roots if k in known]
    while stack:
        key = stack.pop()
        if key in seen:
            continue
        seen.add(key)
        stack.extend(children.get(key, ()))
    return sorted(seen, key=lambda k: k.to_user_string())


def input_consumers(defs: dg.Definitions, input_names: Iterable[str]) -> dict[str, list[dg.AssetKey]]:
    """For each raw input, the assets that read it: the children of its external asset."""
    names = list(input_names)
    found: dict[str, set[dg.AssetKey]] = {n: set() for n in names}
    raw_keys = {raw_input(n): n for n in names}
    for spec in iter_specs(defs):
        for dep in spec.deps:
            if dep.asset_key in raw_keys:
                found[raw_keys[dep.asset_key]].add(spec.key)
    return {n: sorted(keys, key=lambda k: k.to_user_string()) for n, keys in sorted(found.items())}


def affected_assets(defs: dg.Definitions, input_names: Iterable[str]) -> dict[str, list[dg.AssetKey]]:
    """Input name → the assets to re-materialize when it changes (its readers and downstream)."""
    return {name: downstream_closure(defs, roots) for name, roots in input_consumers(defs, input_names).items()}


def gpu_step_keys(defs: dg.Definitions) -> list[str]:
    """Step keys (op names) of the GPU-tagged assets: they get a GPU in scale-out configs."""
    steps = set()
    for assets_def in _materializable(defs):
        tags = assets_def.op.tags or {}
        if tags.get(GPU_TAG_KEY) == GPU_TAG[GPU_TAG_KEY]:
            steps.add(assets_def.op.name)
    return sorted(steps)


def data_groups(defs: dg.Definitions) -> list[str]:
    return sorted({s.group_name for s in iter_specs(defs) if s.group_name and s.group_name.startswith(DATA_GROUP_PREFIXES)})


# ---------------------------------------------------------------------------- fingerprints


def settings_input_paths(settings: Optional[Settings] = None) -> dict[str, Path]:
    settings = settings or get_settings()
    return {name: spec.path for name, spec in settings.inputs.all().items()}


# ---------------------------------------------------------------------------- sensor / schedule


def build_input_change_sensor(
    affected: Mapping[str, list[dg.AssetKey]],
    watched_inputs: Callable[[], Mapping[str, Path]] = settings_input_paths,
    name: str = INPUT_SENSOR_NAME,
    minimum_interval_seconds: int = INPUT_SENSOR_INTERVAL_S,
    range_tags: Callable[[Iterable[dg.AssetKey]], dict[str, str]] = lambda keys: {},
) -> dg.SensorDefinition:
    """A sensor whose cursor holds each raw input's fingerprint; a change requests the
    input's readers and everything downstream, in one run (union over changed inputs).

    The first tick only records the baseline. A fixed file that is later reverted
    triggers again (its fingerprint changed twice), which is what a data fix wants.
    """
    affected = {k: list(v) for k, v in affected.items()}

    @dg.sensor(
        name=name,
        target=dg.AssetSelection.all(),
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Watches the profile's raw inputs (settings.inputs) by content fingerprint, records "
        "each change as an observation of the input's raw_<name> asset, and re-materializes the assets "
        "that depend on a changed input, plus everything downstream.",
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        observed = {n: observe_input(p) for n, p in sorted(watched_inputs().items())}
        current = {n: o.fingerprint for n, o in observed.items()}
        cursor = json.dumps(current, sort_keys=True)
        if not context.cursor:
            # the baseline is recorded as observations too, so staleness has a version to compare
            events = [observation_event(n, o) for n, o in observed.items() if n in INPUT_NAMES]
            return dg.SensorResult(skip_reason=dg.SkipReason(f"recorded baseline fingerprints of {len(current)} inputs"),
                                   cursor=cursor, asset_events=events)
        previous = json.loads(context.cursor)
        changed = [n for n in current if n in previous and previous[n] != current[n]]
        keys = sorted({k for n in changed for k in affected.get(n, [])}, key=lambda k: k.to_user_string())
        events = [observation_event(n, observed[n]) for n in changed if n in INPUT_NAMES]
        if not changed:
            return dg.SensorResult(skip_reason=dg.SkipReason("no raw input changed"), cursor=cursor)
        if not keys:
            context.log.warning(f"inputs changed but no asset reads them: {changed}")
            return dg.SensorResult(skip_reason=dg.SkipReason(f"changed inputs {changed} have no readers"), cursor=cursor,
                                   asset_events=events)
        run_key = hashlib.sha256(json.dumps({n: current[n] for n in changed}, sort_keys=True).encode()).hexdigest()[:16]
        request = dg.RunRequest(
            run_key=f"inputs-{run_key}",
            asset_selection=keys,
            tags={"burnqed/trigger": "raw_input_change", "burnqed/changed_inputs": ",".join(changed),
                  **range_tags(keys)},
        )
        context.log.info(f"inputs changed: {changed}; requesting {len(keys)} assets")
        return dg.SensorResult(run_requests=[request], cursor=cursor, asset_events=events)

    return _sensor


def partition_range_tags(defs: dg.Definitions, keys: Iterable[dg.AssetKey]) -> dict[str, str]:
    """Run tags covering every partition of the partitioned assets among `keys` (one run; their
    single-run backfill policy lets one step take the whole range). Empty when none is partitioned."""
    wanted = set(keys)
    parts = {spec.partitions_def for spec in iter_specs(defs) if spec.key in wanted} - {None}
    if not parts:
        return {}
    if len(parts) > 1:
        raise ValueError("assets selected for one run have different PartitionsDefinitions: "
                         + ", ".join(sorted(str(p) for p in parts)))
    names = next(iter(parts)).get_partition_keys()
    return {ASSET_PARTITION_RANGE_START_TAG: names[0], ASSET_PARTITION_RANGE_END_TAG: names[-1]}


def build_materialize_all(defs: dg.Definitions) -> Any:
    """The whole graph, every chunk partition included, in one run (README command 1):
    `dagster job execute -m burnqed_assets.definitions -j materialize_all`."""
    keys = [k for a in _materializable(defs) for k in a.keys]
    return dg.define_asset_job(
        MATERIALIZE_ALL_JOB,
        selection=dg.AssetSelection.assets(*keys),
        description="Every asset and check of the graph in one run, all partitions of the chunked Phase M "
        "assets included (README command 1). Re-runs skip finished work (chunks, checkpoints).",
        tags={"burnqed/trigger": "materialize_all", **partition_range_tags(defs, keys)},
    )


def build_data_refresh(defs: dg.Definitions) -> tuple[list[Any], list[dg.ScheduleDefinition]]:
    """The Phase M / 0 data assets as a job, and a weekly schedule for it (stopped by default)."""
    groups = data_groups(defs)
    if not groups:
        return [], []
    selection = dg.AssetSelection.groups(*groups)
    job = dg.define_asset_job(
        "data_refresh_job",
        selection=selection,
        description=f"Re-materializes the data assets (groups {', '.join(groups)}) with their checks.",
        tags={"burnqed/trigger": "data_refresh",
              **partition_range_tags(defs, [s.key for s in iter_specs(defs) if s.group_name in groups])},
    )
    schedule = dg.ScheduleDefinition(
        name="weekly_data_refresh",
        job=job,
        cron_schedule=DATA_REFRESH_CRON,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Periodic re-materialization of the Phase M / 0 data assets; downstream "
        "phases follow through their automation conditions once the data gates passed.",
    )
    return [job], [schedule]


def with_automation(defs: dg.Definitions) -> dg.Definitions:
    """Give every asset with upstream asset deps the follow-upstream condition (owner's choice
    wins). Raw inputs do not count: an asset that reads only raw inputs stays manual."""

    def apply(spec: dg.AssetSpec) -> dg.AssetSpec:
        upstream = [d for d in spec.deps if d.asset_key not in RAW_INPUT_KEYS]
        if spec.automation_condition is not None or not upstream:
            return spec
        return spec.replace_attributes(automation_condition=follow_upstream_condition())

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return defs.map_asset_specs(func=apply)


def build_operations(defs: dg.Definitions, settings: Optional[Settings] = None) -> dg.Definitions:
    """Jobs, schedules and sensors for the merged asset graph `defs`."""
    settings = settings or get_settings()
    names = list(settings.inputs.all())
    affected = affected_assets(defs, names)
    jobs, schedules = build_data_refresh(defs)
    jobs.append(build_materialize_all(defs))
    sensors: list[dg.SensorDefinition] = [
        build_input_change_sensor(affected, range_tags=lambda keys: partition_range_tags(defs, keys)),
        dg.AutomationConditionSensorDefinition(
            "default_automation_condition_sensor",
            target=dg.AssetSelection.all(),
            default_status=dg.DefaultSensorStatus.STOPPED,
            minimum_interval_seconds=60,
            description="Evaluates the assets' automation conditions: downstream assets follow an "
            "upstream update once the upstream blocking checks passed. Turn on under Automation.",
        ),
    ]
    return dg.Definitions(jobs=jobs, schedules=schedules, sensors=sensors)


# ---------------------------------------------------------------------------- executors


def executor_kind(settings: Settings) -> str:
    """The profile's executor kind, overridden by `BURNQED_EXECUTOR` when set."""
    kind = (os.environ.get(EXECUTOR_ENV) or settings.executor.kind).strip().lower()
    if kind not in EXECUTOR_KINDS:
        raise ValueError(f"{EXECUTOR_ENV}={kind!r}: choose one of {', '.join(EXECUTOR_KINDS)}")
    return kind


def _gpu_limits() -> dict[str, Any]:
    return {"container_config": {"resources": {"limits": {"nvidia.com/gpu": 1}, "requests": {"nvidia.com/gpu": 1}}}}


def k8s_executor_config(settings: Settings, gpu_steps: Iterable[str], base: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
    """Config for `dagster_k8s.k8s_job_executor`: one pod per step, the GPU tag limited to
    `gpu_concurrency` steps at a time, and one `nvidia.com/gpu` for each GPU step.

    `base` (default: deploy/k8s/executor.yaml) holds the site part: namespace, image,
    shared data volume, env vars.
    """
    if base is None:
        import yaml  # dagster depends on PyYAML

        base = yaml.safe_load(K8S_CONFIG_PATH.read_text()) if K8S_CONFIG_PATH.exists() else {}
    config: dict[str, Any] = dict(base or {})
    config["max_concurrent"] = settings.executor.max_concurrent
    config["tag_concurrency_limits"] = [
        {"key": GPU_TAG_KEY, "value": GPU_TAG[GPU_TAG_KEY], "limit": settings.executor.gpu_concurrency}
    ]
    per_step = dict(config.get("per_step_k8s_config") or {})
    for step in gpu_steps:
        per_step.setdefault(step, _gpu_limits())
    config["per_step_k8s_config"] = per_step
    return config


def k8s_executor(settings: Settings, gpu_steps: Iterable[str]) -> dg.ExecutorDefinition:
    """The Kubernetes scale-out executor (needs `pip install -e '.[k8s]'`)."""
    try:
        from dagster_k8s import k8s_job_executor
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(f"{EXECUTOR_ENV}=k8s needs dagster-k8s: pip install -e '.[k8s]'") from exc
    return k8s_job_executor.configured(k8s_executor_config(settings, gpu_steps), name="burnqed_k8s_executor")


# The merged graph's jobs, schedules and sensors are built in definitions.py.
defs = dg.Definitions()
