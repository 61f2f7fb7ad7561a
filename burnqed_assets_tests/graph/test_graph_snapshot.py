"""Snapshot of the asset graph: keys, groups, dependencies, checks (blocking or not), GPU tags.

A change to the graph's shape must be deliberate: regenerate the snapshot with
`BURNQED_UPDATE_SNAPSHOT=1 python -m pytest burnqed_assets_tests/graph` and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg

from burnqed_assets.definitions import defs
from burnqed_assets.settings import GPU_TAG_KEY

SNAPSHOT = Path(__file__).with_name("asset_graph_snapshot.json")

# The plan's deliverables named in the mission; each must stay an asset.
PLAN_DELIVERABLES = {
    "goedel_427_proofs", "minif2f_v2s_427", "minif2f_v2c_427", "minif2f_v1", "goedel_traced_pairs",
    "clean_pool", "token_geometry", "exploration_report", "lean_github_pairs", "sft_dataset",
    "contrastive_pool", "release_bundle", "base_model", "lora_iter0", "merged_iter0", "contrastive_pool_2k",
    "trajectories", "minif2f_v2s_iter0", "minif2f_v1_iter0", "embeddings", "embedding_metrics", "ebm_iter0",
    "ebm_metrics_iter0", "minif2f_v2s_iter0_ebm", "baseline_report", "joint_iter1", "comparison_report",
}


def graph_shape() -> dict:
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "deps": sorted(p.to_user_string() for p in node.parent_keys),
            "gpu": node.assets_def.op.tags.get(GPU_TAG_KEY) == "gpu",
        }
    checks = {}
    for check_key in sorted(graph.asset_check_keys, key=lambda c: (c.asset_key.to_user_string(), c.name)):
        spec = graph.get_check_spec(check_key)
        checks[f"{check_key.asset_key.to_user_string()}:{check_key.name}"] = {"blocking": bool(spec.blocking)}
    return {"assets": assets, "checks": checks}


def test_graph_matches_snapshot():
    shape = graph_shape()
    if os.environ.get("BURNQED_UPDATE_SNAPSHOT") == "1":
        SNAPSHOT.write_text(json.dumps(shape, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    expected = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    assert shape["assets"] == expected["assets"]
    assert shape["checks"] == expected["checks"]


def test_every_plan_deliverable_is_an_asset_with_lineage():
    shape = graph_shape()["assets"]
    assert PLAN_DELIVERABLES <= set(shape)
    # lineage reaches back from the final report to the raw migration step
    graph = defs.resolve_asset_graph()
    upstream, frontier = set(), [dg.AssetKey("comparison_report")]
    while frontier:
        for parent in graph.get(frontier.pop()).parent_keys:
            if parent not in upstream:
                upstream.add(parent)
                frontier.append(parent)
    assert {dg.AssetKey("goedel_traced_pairs"), dg.AssetKey("sft_dataset"), dg.AssetKey("trajectories"),
            dg.AssetKey("ebm_iter0"), dg.AssetKey("joint_iter1")} <= upstream


def test_gates_are_blocking_and_training_is_gpu_tagged():
    shape = graph_shape()
    blocking = {name for name, c in shape["checks"].items() if c["blocking"]}
    for gate in ("clean_pool:clean_pool_contamination", "sft_dataset:sft_no_theorem_leak",
                 "sft_dataset:sft_prompt_format", "sft_dataset:sft_size_and_sources",
                 "lora_iter0:sft_loss_finite", "joint_iter1:joint_training_abort_conditions"):
        assert gate in blocking, gate
    for asset in ("lora_iter0", "merged_iter0", "trajectories", "embeddings", "ebm_iter0", "joint_iter1"):
        assert shape["assets"][asset]["gpu"], asset
    assert not shape["assets"]["clean_pool"]["gpu"]
