"""lora_iter0 -> merged_iter0 through Dagster, with the SFT checks (tiny budgets)."""

from __future__ import annotations

import json
import shutil

import dagster as dg
import pytest
from sft_fixtures import write_sft_split

import burnqed_assets.defs.sft as sft_defs
from burnqed_assets.models.sft import SftResult
from burnqed_assets.resources import BurnqedConfig
from burnqed_assets.settings import get_settings


@pytest.fixture
def data_root(tmp_path, demo_base_model_dir):
    settings = get_settings("demo", tmp_path)
    shutil.copytree(demo_base_model_dir, settings.model.base_model_path)
    write_sft_split(settings.paths.sft, n_train=16, n_val=4)
    settings.paths.traced.mkdir(parents=True, exist_ok=True)
    settings.paths.token_geometry.write_text(json.dumps({"recommended_sft_max_length": 1024}))
    return tmp_path


def _tiny_run_config(monkeypatch):
    original = sft_defs._run_config

    def tiny(settings, max_length):
        from dataclasses import replace

        return replace(original(settings, max_length), max_steps=2, eval_steps=2, save_steps=2, lora_r=4,
                       lora_alpha=8, batch_size=4)

    monkeypatch.setattr(sft_defs, "_run_config", tiny)


def _checks(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


@pytest.mark.slow
def test_lora_then_merged_materialize_with_checks(data_root, monkeypatch):
    _tiny_run_config(monkeypatch)
    result = dg.materialize([sft_defs.lora_iter0, sft_defs.merged_iter0, sft_defs.sft_loss_finite,
                             sft_defs.sft_val_loss],
                            resources={"burnqed": BurnqedConfig(data_root=str(data_root))}, raise_on_error=False)
    assert result.success
    meta = result.asset_materializations_for_node("lora_iter0")[0].metadata
    assert meta["max_length"].value == 1024 and "token_geometry" in meta["max_length_source"].value
    assert meta["train_examples"].value == 16 and meta["global_step"].value == 2
    assert "data:image/png;base64" in meta["loss_curve"].value
    assert meta["train_loss_series"].value and meta["grad_norm_series"].value
    checks = _checks(result)
    assert checks["sft_loss_finite"].passed
    val_check = checks["sft_val_loss"]
    settings = get_settings("demo", data_root)
    value = val_check.metadata["value"].value
    assert val_check.passed == (value <= settings.thresholds.sft_val_loss_target)
    merged_meta = result.asset_materializations_for_node("merged_iter0")[0].metadata
    assert (settings.paths.merged_model(0) / "config.json").exists()
    assert merged_meta["preview_state"].value


def test_non_finite_loss_blocks_the_merge(data_root, monkeypatch):
    import burnqed_assets.models.sft as sft_module

    def nan_training(base, train, val, out, config, **kwargs):
        out.mkdir(parents=True, exist_ok=True)
        return SftResult(adapter_dir=str(out / "adapter"), output_dir=str(out), device="cpu", max_length=1024,
                         train_examples=16, val_examples=4, too_long_train=0, too_long_val=0,
                         too_long_examples=[], global_step=1, resumed_from=None, initial_val_loss=3.0,
                         final_val_loss=None, final_train_loss=float("nan"), non_finite_loss=True, seconds=0.1,
                         trainable_parameters=1, total_parameters=2, history=[{"step": 1.0, "loss": float("nan")}],
                         stopped_early="non-finite loss")

    monkeypatch.setattr(sft_module, "train_lora", nan_training)
    result = dg.materialize([sft_defs.lora_iter0, sft_defs.merged_iter0, sft_defs.sft_loss_finite,
                             sft_defs.sft_val_loss],
                            resources={"burnqed": BurnqedConfig(data_root=str(data_root))}, raise_on_error=False)
    checks = _checks(result)
    assert not checks["sft_loss_finite"].passed
    assert checks["sft_loss_finite"].severity == dg.AssetCheckSeverity.ERROR
    assert not checks["sft_val_loss"].passed  # no value at all
    assert not result.asset_materializations_for_node("merged_iter0")  # blocked


def test_val_loss_past_red_line_is_error_in_full(tmp_path):
    from burnqed_assets.defs.checks import metric_check

    full = get_settings("full", tmp_path)
    t = full.thresholds
    past = metric_check(full, t.sft_val_loss_red_line + 0.1, t.sft_val_loss_target, t.sft_val_loss_red_line,
                        "SFT val loss", higher_is_better=False)
    assert not past.passed and past.severity == dg.AssetCheckSeverity.ERROR
    ok = metric_check(full, t.sft_val_loss_target - 0.1, t.sft_val_loss_target, t.sft_val_loss_red_line,
                      "SFT val loss", higher_is_better=False)
    assert ok.passed
