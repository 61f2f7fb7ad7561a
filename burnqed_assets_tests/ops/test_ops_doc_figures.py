"""docs/demo_figures.md is generated from the last run's asset metadata, and `--check` catches a
page that no longer matches the instance."""

from __future__ import annotations

import dagster as dg

from burnqed_assets import doc_figures


def _materialize(instance: dg.DagsterInstance, steps: int, proved: int) -> None:
    @dg.asset(name="lora_iter0")
    def lora() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"global_step": steps, "initial_val_loss": 3.1,
                                              "final_val_loss": 1.9, "final_train_loss": 0.1})

    @dg.asset(name="trajectories")
    def traj() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"theorems_proved": proved, "theorems_attempted": 30,
                                              "total_records": 129, "profile": "demo"})

    assert dg.materialize([lora, traj], instance=instance).success


def test_page_comes_from_the_latest_materializations_and_check_catches_staleness(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    out = tmp_path / "demo_figures.md"
    with dg.DagsterInstance.get() as instance:
        _materialize(instance, steps=300, proved=23)
    assert doc_figures.main(["--out", str(out)]) == 0
    page = out.read_text()
    assert "| SFT steps | 300 | `lora_iter0` |" in page
    assert "| pool theorems proved by search | 23 of 30 | `trajectories` (demo) |" in page
    assert "| miniF2F-v2s proved, LLM only (iter 0) | not materialized |" in page
    assert doc_figures.main(["--check", "--out", str(out)]) == 0

    with dg.DagsterInstance.get() as instance:  # a newer run with other numbers: the page is stale
        _materialize(instance, steps=300, proved=24)
    assert doc_figures.main(["--check", "--out", str(out)]) == 1
    assert doc_figures.main(["--out", str(out)]) == 0 and "24 of 30" in out.read_text()
