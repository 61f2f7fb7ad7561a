"""Phase M.1–M.5: Goedel migration, miniF2F port, tracing (goedel_traced_pairs)."""
# No `from __future__ import annotations` in defs/: Dagster inspects the context annotation.


import shutil

import dagster as dg

from burnqed_assets.data.io import atomic_path
from burnqed_assets.resources import BurnqedConfig

GROUP = "phase_m_migration"


@dg.asset(group_name=GROUP, description="Traced (state, tactic) pairs of the migrated Goedel proofs "
          "(plan Task M.5). Placeholder: copies the shipped recorded traces; the Lean layer replaces it.")
def goedel_traced_pairs(context: dg.AssetExecutionContext, burnqed: BurnqedConfig) -> dg.MaterializeResult:
    settings = burnqed.settings()
    settings.require_inputs("goedel_recorded_traces")
    src = settings.inputs.goedel_recorded_traces.path
    dest = settings.paths.goedel_traced_pairs
    files = sorted(src.glob("*_traces.jsonl")) if src.is_dir() else [src]
    with atomic_path(dest) as tmp, open(tmp, "wb") as out:
        for f in files:
            with open(f, "rb") as fh:
                shutil.copyfileobj(fh, out)
    return dg.MaterializeResult(metadata={"path": str(dest), "sources": [str(f) for f in files]})


defs = dg.Definitions(assets=[goedel_traced_pairs])
