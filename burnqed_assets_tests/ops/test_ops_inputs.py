"""Raw inputs as external assets: lineage from the files, observations, code versions, staleness."""

from dataclasses import replace
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.loader import LoadingContextForTest

from burnqed_assets.data.inputs import fingerprint_path, observe_input
from burnqed_assets.defs import code_versions, inputs, migration
from burnqed_assets.resources import BurnqedConfig
from burnqed_assets.settings import InputSpec, get_settings, with_overrides

K = dg.AssetKey


@pytest.fixture(scope="module")
def real_defs() -> dg.Definitions:
    from burnqed_assets.definitions import defs

    return defs


def test_every_raw_input_is_an_observable_external_asset_with_readers(real_defs):
    graph = real_defs.resolve_asset_graph()
    for name in get_settings().inputs.all():
        node = graph.get(inputs.raw_input(name))
        assert node.group_name == inputs.GROUP and node.is_observable and not node.is_materializable, name
        assert node.child_keys, f"no asset declares it reads {name}"
    # Lineage starts at the files, including reads inside domain code the old source scan missed:
    # the v2s port takes its split labels from v1 and applies the rename table.
    assert {K("raw_minif2f_v2s"), K("raw_minif2f_v1"), K("raw_rename_table")} <= graph.get(K("minif2f_v2s_427")).parent_keys
    assert K("raw_goedel_proofs") in graph.get(K("goedel_source_proofs")).parent_keys
    assert K("raw_lean_github") in graph.get(K("lean_github_pairs")).parent_keys


def test_observation_records_fingerprint_bytes_and_rows(tmp_path: Path):
    proofs = get_settings("demo").inputs.goedel_proofs.path
    job = dg.define_asset_job("observe_inputs", selection=inputs.RAW_INPUTS_SELECTION)
    defs = dg.Definitions(assets=[inputs.observe_raw_inputs], jobs=[job],
                          resources={"burnqed": BurnqedConfig(data_root=str(tmp_path), profile="demo")})
    instance = dg.DagsterInstance.ephemeral()
    assert defs.resolve_job_def("observe_inputs").execute_in_process(instance=instance).success
    records = instance.fetch_observations(K("raw_goedel_proofs"), limit=1).records
    obs = records[0].asset_observation
    rows = sum(1 for line in proofs.read_text(encoding="utf-8").splitlines() if line.strip())
    assert obs.metadata["rows"].value == rows and obs.metadata["bytes"].value == proofs.stat().st_size
    assert obs.tags["dagster/data_version"] == fingerprint_path(proofs)


def test_changed_input_makes_its_reader_stale_and_code_version_is_recorded(tmp_path: Path, monkeypatch):
    """An observation with a new fingerprint makes the asset built from the old one stale."""
    src = tmp_path / "goedel.jsonl"
    src.write_bytes(get_settings("demo").inputs.goedel_proofs.path.read_bytes())
    demo = get_settings("demo", tmp_path / "data")
    settings = with_overrides(demo, inputs=replace(demo.inputs, goedel_proofs=InputSpec(src, "a test copy")))
    monkeypatch.setattr(BurnqedConfig, "settings", lambda self: settings)
    resources = {"burnqed": BurnqedConfig(data_root=str(tmp_path / "data"))}
    defs = code_versions.with_code_versions(dg.Definitions(
        assets=[inputs.observe_raw_inputs, migration.goedel_source_proofs], resources=resources))
    instance = dg.DagsterInstance.ephemeral()
    instance.report_runless_asset_event(inputs.observation_event("goedel_proofs", observe_input(src)))
    versioned = defs.resolve_assets_def(K("goedel_source_proofs"))
    result = dg.materialize([versioned], instance=instance)  # resources come bound from defs
    assert result.success
    tags = instance.get_latest_materialization_event(K("goedel_source_proofs")).asset_materialization.tags
    assert tags["dagster/input_data_version/raw_goedel_proofs"] == fingerprint_path(src)
    graph = defs.resolve_asset_graph()
    assert tags["dagster/code_version"] == graph.get(K("goedel_source_proofs")).code_version

    def status() -> StaleStatus:
        resolver = CachingStaleStatusResolver(instance, graph, LoadingContextForTest(instance))
        return resolver.get_status(K("goedel_source_proofs"))

    assert status() == StaleStatus.FRESH
    with open(src, "a", encoding="utf-8") as fh:  # a data fix lands in the input
        fh.write('{"problem_id": "extra", "full_proof": "theorem extra : True := by trivial"}\n')
    instance.report_runless_asset_event(inputs.observation_event("goedel_proofs", observe_input(src)))
    assert status() == StaleStatus.STALE


def test_code_version_covers_the_domain_code_an_asset_runs(real_defs, monkeypatch):
    graph = real_defs.resolve_asset_graph()
    materializable = [k for k in graph.get_all_asset_keys() if graph.get(k).is_materializable]
    assert all(graph.get(k).code_version for k in materializable)
    closure = code_versions.module_closure({"burnqed_assets.defs.exploration"})
    assert {"burnqed_assets.data.integrity", "burnqed_assets.paths", "burnqed_assets.settings"} <= set(closure)
    from burnqed_assets.defs import exploration, sft_data

    clean_fn = exploration.clean_pool.op.compute_fn.decorated_fn
    github_fn = sft_data.lean_github_pairs.op.compute_fn.decorated_fn
    before = code_versions.code_version_of(clean_fn), code_versions.code_version_of(github_fn)
    assert before == (code_versions.code_version_of(clean_fn), code_versions.code_version_of(github_fn))
    # A fix in the integrity sweep changes clean_pool's version, not the LEAN-GitHub filter's.
    real = code_versions._module_info
    monkeypatch.setattr(code_versions, "_module_info", lambda name: ("edited", real(name)[1])
                        if name == "burnqed_assets.data.integrity" else real(name))
    assert code_versions.code_version_of(clean_fn) != before[0]
    assert code_versions.code_version_of(github_fn) == before[1]
