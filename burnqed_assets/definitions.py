"""The one `Definitions`: every phase module's assets and checks, resources and the executor."""

from __future__ import annotations

import dagster as dg

from burnqed_assets.defs import (
    ebm,
    embeddings,
    exploration,
    joint,
    migration,
    operations,
    reports,
    search,
    sft,
    sft_data,
)
from burnqed_assets.resources import default_resources
from burnqed_assets.settings import GPU_TAG_KEY, Settings, get_settings

PHASE_MODULES = (migration, exploration, sft_data, sft, search, embeddings, ebm, joint, reports, operations)


def executor_for(settings: Settings) -> dg.ExecutorDefinition:
    """Multiprocess with the GPU tag limited to one concurrent step, or in-process (demo)."""
    ex = settings.executor
    if ex.kind == "in_process":
        return dg.in_process_executor
    return dg.multiprocess_executor.configured(
        {
            "max_concurrent": ex.max_concurrent,
            "tag_concurrency_limits": [{"key": GPU_TAG_KEY, "value": "gpu", "limit": ex.gpu_concurrency}],
        }
    )


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or get_settings()
    base = dg.Definitions(resources=default_resources(), executor=executor_for(settings))
    return dg.Definitions.merge(base, *(m.defs for m in PHASE_MODULES))


defs = build_definitions()
