"""The one `Definitions`: every phase module's assets and checks, resources and the executor."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

# First: its warning filters must be in place before the phase modules are imported.
from burnqed_assets.run_log import burnqed_console, fail_actionably, use_quiet_console  # isort: skip
from burnqed_assets.defs import (
    code_versions,
    ebm,
    embeddings,
    exploration,
    inputs,
    joint,
    migration,
    operations,
    reports,
    search,
    sft,
    sft_data,
)
from burnqed_assets.resources import default_resources
from burnqed_assets.reuse import with_reuse
from burnqed_assets.settings import GPU_TAG_KEY, Settings, get_settings

PHASE_MODULES = (inputs, migration, exploration, sft_data, sft, search, embeddings, ebm, joint, reports, operations)


def executor_for(settings: Settings, gpu_steps: Sequence[str] = ()) -> dg.ExecutorDefinition:
    """Multiprocess with the GPU tag limited to one concurrent step, in-process, or Kubernetes.

    The kind comes from the profile, overridden by `BURNQED_EXECUTOR` (docs/operations.md).
    """
    ex = settings.executor
    kind = operations.executor_kind(settings)
    if kind == "in_process":
        return dg.in_process_executor
    if kind == "k8s":
        return operations.k8s_executor(settings, gpu_steps)
    return dg.multiprocess_executor.configured(
        {
            "max_concurrent": ex.max_concurrent,
            "tag_concurrency_limits": [{"key": GPU_TAG_KEY, "value": "gpu", "limit": ex.gpu_concurrency}],
        }
    )


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or get_settings()
    # Every run's console prints a line per step and check and a failure's text once (run_log.py).
    use_quiet_console()
    # Code versions, automation conditions, sensors and schedules are derived from the merged graph.
    merged = dg.Definitions.merge(*(m.defs for m in PHASE_MODULES))
    assets = operations.with_automation(code_versions.with_code_versions(merged))
    # A missing input / model / Lean project fails its step with a dagster.Failure naming the fix.
    fail_actionably([*(assets.assets or ()), *(assets.asset_checks or ())])
    # An asset whose inputs, settings and code are unchanged reuses its previous output.
    with_reuse(assets.assets or ())
    base = dg.Definitions(
        resources=default_resources(),
        executor=executor_for(settings, operations.gpu_step_keys(assets)),
        # The console of every run (use_quiet_console); a run's config may set its level:
        # `loggers: {console: {config: {log_level: DEBUG}}}`.
        loggers={"console": burnqed_console},
    )
    return dg.Definitions.merge(base, assets, operations.build_operations(assets, settings))


defs = build_definitions()
