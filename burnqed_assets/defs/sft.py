"""Phase 1.1–1.2: base_model, lora_iter0, merged_iter0 and the SFT checks."""
# No `from __future__ import annotations` in defs/: Dagster inspects the context annotation.

import contextlib
import logging
import math
from dataclasses import asdict, replace

import dagster as dg

from burnqed_assets.data.io import read_json, write_json
from burnqed_assets.defs.checks import gate, metric_check
from burnqed_assets.models.base import prepare_base_model
from burnqed_assets.data.prompt import PROMPT_PREFIX, PROMPT_SUFFIX
from burnqed_assets.reports.plots import png_markdown
from burnqed_assets.resources import BurnqedConfig
from burnqed_assets.settings import GPU_TAG, Settings

GROUP = "phase_1_sft"


class _ToDagsterLog(logging.Handler):
    """Forwards the domain layer's python logging (training progress) to the run's event log."""

    def __init__(self, context: dg.AssetExecutionContext):
        super().__init__(level=logging.INFO)
        self.context = context

    def emit(self, record: logging.LogRecord) -> None:
        msg = self.format(record)
        if record.levelno >= logging.ERROR:
            self.context.log.error(msg)
        elif record.levelno >= logging.WARNING:
            self.context.log.warning(msg)
        else:
            self.context.log.info(msg)


@contextlib.contextmanager
def _domain_logs_to(context: dg.AssetExecutionContext, name: str = "burnqed_assets.models"):
    logger = logging.getLogger(name)
    handler = _ToDagsterLog(context)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@dg.asset(group_name=GROUP, description="Base causal LM as a standard HF directory at "
          "settings.model.base_model_path. Demo: a tiny Llama with a tokenizer trained on the demo "
          "corpus, built deterministically in seconds. Full: DeepSeek-Prover-V2-7B, validated in place.")
def base_model(context: dg.AssetExecutionContext, burnqed: BurnqedConfig) -> dg.MaterializeResult:
    settings = burnqed.settings()
    with _domain_logs_to(context):
        info = prepare_base_model(settings)
    context.log.info(f"base model ready at {info.path}")
    meta = info.metadata()
    meta["path"] = dg.MetadataValue.path(info.path)
    if info.build is not None:
        meta["spec"] = dg.MetadataValue.json(asdict(info.build.spec))
    return dg.MaterializeResult(metadata=meta)


def _run_config(settings: Settings, max_length: int):
    """The profile's SFT config with what this run decides (other sections own seed, dtype, device)."""
    return replace(settings.sft, max_length=max_length, seed=settings.data.seed, dtype=settings.model.dtype,
                   device=settings.model.device)


@dg.asset(group_name=GROUP, deps=["sft_dataset", "token_geometry", "base_model"], op_tags=GPU_TAG,
          description="Iter-0 LoRA (plan Task 1.1): TRL SFTTrainer + PEFT LoRA on data/sft, loss on the "
          "tactic tokens only, padding-free batches, max_length from token_geometry. Checkpoints under "
          "data/checkpoints/lora/iter_0 (resumes from the last one of the same run); adapter in ./adapter.")
def lora_iter0(context: dg.AssetExecutionContext, burnqed: BurnqedConfig) -> dg.MaterializeResult:
    from burnqed_assets.data.token_geometry import recommended_max_length
    from burnqed_assets.models.sft import train_lora

    settings = burnqed.settings()
    paths = settings.paths
    max_length, source = recommended_max_length(paths.token_geometry, "sft", settings.sft.max_length)
    context.log.info(f"SFT max_length={max_length} from {source}")
    with _domain_logs_to(context):
        result = train_lora(settings.model.base_model_path, paths.sft_train, paths.sft_val,
                            paths.lora_checkpoint(0), _run_config(settings, max_length))
    metrics = {**result.metadata(), "max_length_source": source, "profile": settings.profile,
               "history": result.history}
    write_json(paths.sft_metrics, metrics)

    series = {key: [[h["step"], h[key]] for h in result.history if key in h]
              for key in ("loss", "eval_loss", "learning_rate", "grad_norm")}
    meta = {k: v for k, v in result.metadata().items() if v is not None and k != "too_long_examples"}
    meta.update({
        "max_length_source": source,
        "too_long_examples": dg.MetadataValue.json(result.too_long_examples),
        "adapter_dir": dg.MetadataValue.path(result.adapter_dir),
        "val_loss_drop": (result.initial_val_loss - result.final_val_loss)
        if result.initial_val_loss is not None and result.final_val_loss is not None else None,
        "train_loss_series": dg.MetadataValue.json(series["loss"]),
        "val_loss_series": dg.MetadataValue.json(series["eval_loss"]),
        "learning_rate_series": dg.MetadataValue.json(series["learning_rate"]),
        "grad_norm_series": dg.MetadataValue.json(series["grad_norm"]),
    })
    if result.loss_curve:
        meta["loss_curve"] = dg.MetadataValue.md(png_markdown(result.loss_curve, "SFT iter_0 loss"))
    return dg.MaterializeResult(metadata={k: v for k, v in meta.items() if v is not None})


@dg.asset_check(asset=lora_iter0, blocking=True, description="NaN or inf in the SFT train/val loss stops the graph.")
def sft_loss_finite(burnqed: BurnqedConfig) -> dg.AssetCheckResult:
    settings = burnqed.settings()
    path = settings.paths.sft_metrics
    if not path.exists():
        return gate(False, f"no SFT metrics at {path}")
    m = read_json(path)
    values = [h.get(k) for h in m.get("history", []) for k in ("loss", "eval_loss") if k in h]
    values += [m.get("final_val_loss")] if m.get("final_val_loss") is not None else []
    bad = [v for v in values if v is None or not math.isfinite(float(v))]
    finite = not m.get("non_finite_loss") and not bad
    return gate(finite, "SFT losses are finite" if finite else f"non-finite SFT loss ({len(bad)} values)",
                losses_checked=len(values), stopped_early=m.get("stopped_early"))


@dg.asset_check(asset=lora_iter0, description="SFT val loss: target (WARN) and red line (ERROR in full).")
def sft_val_loss(burnqed: BurnqedConfig) -> dg.AssetCheckResult:
    settings = burnqed.settings()
    path = settings.paths.sft_metrics
    value = read_json(path).get("final_val_loss") if path.exists() else None
    t = settings.thresholds
    return metric_check(settings, value, t.sft_val_loss_target, t.sft_val_loss_red_line, "SFT val loss",
                        higher_is_better=False)


def _preview_state(settings: Settings) -> str:
    """A demo state for the smoke generation: the first validation prompt's state."""
    from burnqed_assets.data.io import iter_jsonl

    for path in (settings.paths.sft_val, settings.paths.sft_train):
        if path.exists():
            for _, rec in iter_jsonl(path):
                prompt = rec.get("prompt", "")
                if prompt.startswith(PROMPT_PREFIX) and prompt.endswith(PROMPT_SUFFIX):
                    return prompt[len(PROMPT_PREFIX):-len(PROMPT_SUFFIX)]
    return "x : ℝ\nh₀ : 2 * x + 1 = 5\n⊢ x = 2"


@dg.asset(group_name=GROUP, deps=["lora_iter0", "base_model"], op_tags=GPU_TAG,
          description="Iter-0 LoRA merged into the base (plan Task 1.2): a standard HF directory at "
          "data/models/merged/iter_0 that transformers (and SGLang in full) load without PEFT.")
def merged_iter0(context: dg.AssetExecutionContext, burnqed: BurnqedConfig) -> dg.MaterializeResult:
    from burnqed_assets.models.generation import generate_tactics
    from burnqed_assets.models.loading import load_causal_lm, load_tokenizer
    from burnqed_assets.models.merge import merge_lora

    settings = burnqed.settings()
    dest = settings.paths.merged_model(0)
    with _domain_logs_to(context):
        merged = merge_lora(settings.model.base_model_path, settings.paths.lora_adapter(0),
                          dest, dtype=settings.model.dtype)
    # Smoke test: the saved directory loads with plain transformers and generates a tactic.
    model = load_causal_lm(dest, device=settings.model.device, dtype=settings.model.dtype).eval()
    tokenizer = load_tokenizer(dest)
    state = _preview_state(settings)
    tactics = generate_tactics(model, tokenizer, state, n=4, temperature=1.0, max_new_tokens=48,
                               seed=settings.data.seed)
    greedy = generate_tactics(model, tokenizer, state, n=1, temperature=0.0, max_new_tokens=48)
    context.log.info(f"merged model at {dest}; greedy tactic for preview state: {greedy}")
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(dest)), "parameters": merged.parameters,
        "weights_bytes": merged.weights_bytes, "merge_seconds": merged.seconds,
        "preview_state": dg.MetadataValue.text(state),
        "preview_greedy_tactic": greedy[0][0] if greedy else "",
        "preview_sampled_tactics": dg.MetadataValue.json([[t, round(lp, 3)] for t, lp in tactics]),
    })


defs = dg.Definitions(assets=[base_model, lora_iter0, merged_iter0], asset_checks=[sft_loss_finite, sft_val_loss])
