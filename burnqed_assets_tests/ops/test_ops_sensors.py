"""Raw-input sensor: a changed input requests its readers and everything downstream."""

import os
from pathlib import Path

import dagster as dg
import pytest

from burnqed_assets.defs import operations
from burnqed_assets.resources import BurnqedConfig

from burnqed_assets.data import inputs as input_files
from burnqed_assets.defs.inputs import raw_input, raw_inputs

# A small graph shaped like the real one: two readers of raw inputs (they name the input's
# external asset in their deps), a shared downstream asset, and an unrelated asset.


@dg.asset(deps=raw_inputs("goedel_proofs"))
def proofs_reader(burnqed: BurnqedConfig) -> None:
    _ = burnqed.settings().inputs.goedel_proofs.path


@dg.asset(deps=raw_inputs("lean_github"))
def github_reader(burnqed: BurnqedConfig) -> None:
    _ = burnqed.settings().inputs.lean_github.path


@dg.asset(deps=[proofs_reader, github_reader])
def merged_data() -> None:
    return None


@dg.asset(deps=[merged_data])
def trained_model() -> None:
    return None


@dg.asset
def unrelated() -> None:
    return None


RAW = [dg.AssetSpec(raw_input(n), group_name="raw_inputs") for n in ("goedel_proofs", "lean_github", "minif2f_v1")]
GRAPH = dg.Definitions(assets=[*RAW, proofs_reader, github_reader, merged_data, trained_model, unrelated])
K = dg.AssetKey


def keys(*names: str) -> set[dg.AssetKey]:
    return {K(n) for n in names}


def test_input_consumers_are_the_children_of_the_input_asset():
    consumers = operations.input_consumers(GRAPH, ["goedel_proofs", "lean_github", "minif2f_v1"])
    assert set(consumers["goedel_proofs"]) == keys("proofs_reader")
    assert set(consumers["lean_github"]) == keys("github_reader")
    assert consumers["minif2f_v1"] == []


def test_reading_an_input_without_the_dep_is_not_guessed_from_source():
    """The graph is the one source of truth: a reader that does not declare the dep is not a reader
    (the real graph's test below checks every reader declares it)."""

    @dg.asset
    def undeclared(burnqed: BurnqedConfig) -> None:
        _ = burnqed.settings().inputs.minif2f_v1.path

    consumers = operations.input_consumers(dg.Definitions(assets=[*RAW, undeclared]), ["minif2f_v1"])
    assert consumers["minif2f_v1"] == []


def test_affected_assets_are_readers_plus_downstream():
    affected = operations.affected_assets(GRAPH, ["goedel_proofs", "lean_github"])
    assert set(affected["goedel_proofs"]) == keys("proofs_reader", "merged_data", "trained_model")
    assert set(affected["lean_github"]) == keys("github_reader", "merged_data", "trained_model")


def test_fingerprint_tracks_content_not_mtime(tmp_path: Path):
    f = tmp_path / "proofs.jsonl"
    f.write_text('{"a": 1}\n')
    before = operations.fingerprint_path(f)
    os.utime(f, (1_000_000, 1_000_000))
    assert operations.fingerprint_path(f) == before, "a touch alone must not count as a change"
    f.write_text('{"a": 2}\n')
    assert operations.fingerprint_path(f) != before
    assert operations.fingerprint_path(tmp_path / "absent") == "missing"


def test_fingerprint_of_large_file_uses_size_and_mtime(tmp_path: Path):
    f = tmp_path / "big.bin"
    f.write_bytes(b"x" * 100)
    before = operations.fingerprint_path(f, hash_limit_bytes=10)
    os.utime(f, (2_000_000, 2_000_000))
    assert operations.fingerprint_path(f, hash_limit_bytes=10) != before


def test_fingerprint_of_directory_sees_new_file_and_ignores_hidden(tmp_path: Path):
    d = tmp_path / "drop"
    d.mkdir()
    (d / "part-0.jsonl").write_text("{}\n")
    before = operations.fingerprint_path(d)
    (d / ".git").mkdir()
    (d / ".git" / "index").write_text("noise")
    assert operations.fingerprint_path(d) == before
    (d / "part-1.jsonl").write_text("{}\n")
    assert operations.fingerprint_path(d) != before


@pytest.fixture()
def raw_inputs(tmp_path: Path) -> dict[str, Path]:
    proofs = tmp_path / "goedel_proofs.jsonl"
    proofs.write_text('{"name": "t1", "proof": "by simp"}\n')
    github = tmp_path / "lean_github"
    github.mkdir()
    (github / "rows-0.jsonl").write_text('{"full_name": "a"}\n')
    bench = tmp_path / "minif2f_v1.jsonl"
    bench.write_text('{"name": "mathd_1"}\n')
    return {"goedel_proofs": proofs, "lean_github": github, "minif2f_v1": bench}


def _tick(sensor: dg.SensorDefinition, cursor: str | None):
    return sensor.evaluate_tick(dg.build_sensor_context(cursor=cursor))


def _sensor(paths: dict[str, Path]) -> dg.SensorDefinition:
    affected = operations.affected_assets(GRAPH, list(paths))
    return operations.build_input_change_sensor(affected, watched_inputs=lambda: paths)


def test_sensor_first_tick_records_baseline_then_unchanged_yields_nothing(raw_inputs):
    sensor = _sensor(raw_inputs)
    first = _tick(sensor, None)
    assert first.run_requests == []
    assert first.cursor
    # the baseline is recorded as an observation of every input (the data version staleness compares)
    assert {e.asset_key for e in first.asset_events} == {raw_input(n) for n in raw_inputs}
    second = _tick(sensor, first.cursor)
    assert second.run_requests == []
    assert "no raw input changed" in (second.skip_message or "")


def test_sensor_fixed_proof_file_requests_its_downstream(raw_inputs):
    sensor = _sensor(raw_inputs)
    baseline = _tick(sensor, None).cursor
    raw_inputs["goedel_proofs"].write_text('{"name": "t1", "proof": "by norm_num"}\n')  # a data fix
    result = _tick(sensor, baseline)
    assert len(result.run_requests) == 1
    request = result.run_requests[0]
    assert set(request.asset_selection) == keys("proofs_reader", "merged_data", "trained_model")
    assert request.tags["burnqed/changed_inputs"] == "goedel_proofs"
    (event,) = result.asset_events  # the UI shows the change on raw_goedel_proofs
    assert event.asset_key == raw_input("goedel_proofs")
    assert event.tags["dagster/data_version"] == operations.fingerprint_path(raw_inputs["goedel_proofs"])
    assert event.metadata["rows"].value == 1
    # The new cursor holds the new fingerprint: the next tick sees no change.
    assert _tick(sensor, result.cursor).run_requests == []


def test_sensor_new_lean_github_drop_requests_github_branch(raw_inputs):
    sensor = _sensor(raw_inputs)
    baseline = _tick(sensor, None).cursor
    (raw_inputs["lean_github"] / "rows-1.jsonl").write_text('{"full_name": "b"}\n')
    request = _tick(sensor, baseline).run_requests[0]
    assert set(request.asset_selection) == keys("github_reader", "merged_data", "trained_model")
    assert K("proofs_reader") not in request.asset_selection
    assert K("unrelated") not in request.asset_selection


def test_sensor_two_changes_give_one_run_with_the_union(raw_inputs):
    sensor = _sensor(raw_inputs)
    baseline = _tick(sensor, None).cursor
    raw_inputs["goedel_proofs"].write_text("{}\n")
    (raw_inputs["lean_github"] / "rows-0.jsonl").write_text("{}\n")
    result = _tick(sensor, baseline)
    assert len(result.run_requests) == 1
    assert set(result.run_requests[0].asset_selection) == keys(
        "proofs_reader", "github_reader", "merged_data", "trained_model"
    )
    # The run key names the new content, so a re-evaluated tick does not launch twice.
    again = _tick(sensor, baseline)
    assert again.run_requests[0].run_key == result.run_requests[0].run_key


def test_sensor_change_of_input_nobody_reads_requests_nothing(raw_inputs):
    sensor = _sensor(raw_inputs)
    baseline = _tick(sensor, None).cursor
    raw_inputs["minif2f_v1"].write_text('{"name": "mathd_1", "fixed": true}\n')
    result = _tick(sensor, baseline)
    assert result.run_requests == []
    assert "no readers" in (result.skip_message or "")


def test_sensor_deleted_input_counts_as_change(raw_inputs):
    sensor = _sensor(raw_inputs)
    baseline = _tick(sensor, None).cursor
    raw_inputs["goedel_proofs"].unlink()
    assert len(_tick(sensor, baseline).run_requests) == 1


# ------------------------------------------------------------------ the real Definitions


def test_real_graph_sensor_selection_is_downstream_closed_and_loadable():
    from burnqed_assets.definitions import defs
    from burnqed_assets.settings import get_settings

    names = list(get_settings().inputs.all())
    affected = operations.affected_assets(defs, names)
    assert K("goedel_traced_pairs") in affected["goedel_recorded_traces"]
    # A corrected benchmark re-runs its port and the SFT set's decontamination.
    for bench in ("minif2f_v2s", "minif2f_v2c", "minif2f_v1"):
        assert affected[bench], f"nobody reads {bench}"
    children: dict[dg.AssetKey, set[dg.AssetKey]] = {}
    for spec in operations.iter_specs(defs):
        for dep in spec.deps:
            children.setdefault(dep.asset_key, set()).add(spec.key)
    for name, selection in affected.items():
        for key in selection:
            assert children.get(key, set()) <= set(selection), f"{name}: downstream of {key} missing"
    # Each requested selection is a valid run of the asset job (no unsubsettable multi-asset split).
    job = defs.resolve_implicit_global_asset_job_def()
    for name, selection in affected.items():
        if selection:
            subset = job.get_subset(asset_selection=set(selection))
            assert subset.asset_layer.executable_asset_keys >= set(selection), name
    sensor = defs.get_sensor_def(operations.INPUT_SENSOR_NAME)
    first = sensor.evaluate_tick(dg.build_sensor_context(cursor=None))
    assert first.run_requests == [] and first.cursor
    # Nothing changed between two ticks over the shipped demo inputs.
    assert sensor.evaluate_tick(dg.build_sensor_context(cursor=first.cursor)).run_requests == []
    dg.Definitions.validate_loadable(defs)


def test_fingerprint_cache_hashes_an_old_unchanged_file_once(tmp_path: Path, monkeypatch):
    f = tmp_path / "old.jsonl"
    f.write_text("{}\n")
    os.utime(f, (1_000_000, 1_000_000))  # long ago: outside the racy window, cacheable
    calls = []
    real = input_files.file_sha256
    monkeypatch.setattr(input_files, "file_sha256", lambda p: calls.append(p) or real(p))
    first = operations.fingerprint_path(f)
    assert operations.fingerprint_path(f) == first
    assert len(calls) == 1
    f.write_text("{}\n{}\n")  # fresh mtime: hashed again, and the change is seen
    assert operations.fingerprint_path(f) != first
