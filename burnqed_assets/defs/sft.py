"""Phase 1.1–1.2: base_model, lora_iter0, merged_iter0."""
# No `from __future__ import annotations` in defs/: Dagster inspects the context annotation.

import dagster as dg

from burnqed_assets.models.base import prepare_base_model
from burnqed_assets.resources import BurnqedConfig

GROUP = "phase_1_sft"


@dg.asset(group_name=GROUP, description="Base causal LM as a standard HF directory at "
          "settings.model.base_model_path. Demo: a tiny Llama with a tokenizer trained on the demo "
          "corpus, built deterministically in seconds. Full: DeepSeek-Prover-V2-7B, validated in place.")
def base_model(context: dg.AssetExecutionContext, burnqed: BurnqedConfig) -> dg.MaterializeResult:
    settings = burnqed.settings()
    info = prepare_base_model(settings)
    context.log.info(f"base model ready at {info['path']}")
    tok = info.pop("tokenizer")
    meta = {k: v for k, v in info.items() if k not in ("corpus_files", "spec")}
    meta.update({f"tokenizer_{k}": v for k, v in tok.items()})
    meta["path"] = dg.MetadataValue.path(info["path"])
    if "spec" in info:
        meta["spec"] = dg.MetadataValue.json(info["spec"])
    return dg.MaterializeResult(metadata=meta)


defs = dg.Definitions(assets=[base_model])
