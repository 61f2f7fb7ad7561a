"""docs/catalogue.md: rendering rules, and the committed file matches the Definitions."""

import difflib

import pytest

from burnqed_assets.tools import catalogue as catalogue_cli
from burnqed_assets.reports.catalogue import (
    REGENERATE,
    AssetEntry,
    CheckEntry,
    data_paths,
    plan_tasks,
    render_catalogue,
    topo_order,
)


def test_plan_tasks_forms():
    assert plan_tasks("Task M.5: traced pairs") == ["M.5"]
    assert plan_tasks("Tasks M.1–M.3: compile, fix") == ["M.1–M.3"]
    assert plan_tasks("plan Task 1.3 selection; see Task 1.3 again") == ["1.3"]
    assert plan_tasks("Task M.10/0.6: pool") == ["M.10/0.6"]
    assert plan_tasks("no task here, 1.3 alone is a number") == []


def test_data_paths_keep_outputs_and_skip_shipped_inputs():
    text = ("writes data/sft/{train,val}.jsonl and data/traced/x.jsonl; rename table "
            "(data/demo/migration/rename_table.json). Plots under data/traced/plots.")
    assert data_paths(text) == ["data/sft/{train,val}.jsonl", "data/traced/x.jsonl", "data/traced/plots"]
    # Paths named as what an asset reads are not outputs.
    assert data_paths("LoRA trained on data/sft; checkpoints under data/checkpoints/lora") == ["data/checkpoints/lora"]


def test_topo_order_puts_upstream_first():
    a = AssetEntry("a_last_by_name_z", "g")
    b = AssetEntry("b", "g", deps=("a_last_by_name_z",))
    order = [e.key for e in topo_order([b, a])]
    assert order.index("a_last_by_name_z") < order.index("b")


def test_render_lists_assets_checks_and_plan_order():
    entries = [
        AssetEntry("report", "phase_2_x", "Task 2.7: the report → data/evals/r.md", deps=("pool",)),
        AssetEntry("pool", "phase_m_y", "Task M.6 pool", checks=(
            CheckEntry("pool_gate", True, "Gate: zero | contamination."),
            CheckEntry("pool_share", False, "Target: share."),
        ), gpu=True, automation="eager_after_blocking_checks", files=("data/traced/pool.jsonl",)),
    ]
    text = render_catalogue(entries)
    assert text.index("## phase_m_y") < text.index("## phase_2_x")
    assert "2 assets in 2 groups, 2 checks (1 blocking gates)" in text
    assert "| `pool_gate` | blocking gate (ERROR) | Gate: zero \\| contamination. |" in text
    assert "[`pool`](#pool) (GPU) | M.6 | `data/traced/pool.jsonl` | 2 (1) |" in text
    assert REGENERATE in text


def test_catalogue_covers_every_asset_and_check():
    from burnqed_assets.definitions import defs

    entries = catalogue_cli.catalogue_entries(defs)
    text = render_catalogue(entries)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().executable_asset_keys}
    assert {e.key for e in entries} == keys
    for key in keys:
        assert f"### {key}\n" in text
    for checks_def in defs.asset_checks or []:
        for spec in checks_def.check_specs:
            assert f"`{spec.name}`" in text


def test_committed_catalogue_is_up_to_date():
    expected = catalogue_cli.render()
    current = catalogue_cli.CATALOGUE_PATH.read_text() if catalogue_cli.CATALOGUE_PATH.exists() else ""
    if current != expected:
        diff = difflib.unified_diff(current.splitlines(), expected.splitlines(), "docs/catalogue.md", "Definitions", n=0, lineterm="")
        shown = "\n".join(list(diff)[:30])
        pytest.fail(f"docs/catalogue.md is stale: run `{REGENERATE}` and commit it\n{shown}", pytrace=False)


def test_check_mode_detects_stale_file(tmp_path, capsys):
    stale = tmp_path / "catalogue.md"
    stale.write_text("# old\n")
    assert catalogue_cli.main(["--check", "--output", str(stale)]) == 1
    assert catalogue_cli.main(["--output", str(stale)]) == 0
    assert catalogue_cli.main(["--check", "--output", str(stale)]) == 0
