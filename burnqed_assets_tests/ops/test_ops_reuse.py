"""Re-runs reuse: unchanged inputs, settings and code give the previous output back (metadata
says `reused`); a changed setting, upstream or deleted output recomputes."""

from __future__ import annotations

import dataclasses
import json

import dagster as dg
import pytest

import burnqed_assets.definitions  # noqa: F401  (wraps the assets' compute functions)
from burnqed_assets import settings as settings_module
from burnqed_assets.defs.migration import all_trace_chunks_tags, goedel_427_proofs, goedel_source_proofs
from burnqed_assets.resources import BurnqedConfig
from burnqed_assets.settings import get_settings


@pytest.fixture(autouse=True)
def _reuse_on(monkeypatch):
    monkeypatch.setenv("BURNQED_REUSE", "1")


def _run(root) -> dict[str, dict]:
    # every migration chunk in one run: a partitioned asset is reused only by a run over all of them
    result = dg.materialize([goedel_source_proofs, goedel_427_proofs], tags=all_trace_chunks_tags(),
                            resources={"burnqed": BurnqedConfig(profile="demo", data_root=str(root))})
    assert result.success
    return {e.asset_key.to_user_string(): {k: v.value for k, v in e.materialization.metadata.items()}
            for e in result.get_asset_materialization_events()}


def test_unchanged_rerun_reuses_and_changes_recompute(tmp_path, monkeypatch):
    first = _run(tmp_path)
    assert first["goedel_427_proofs"]["reused"] is False
    fp_file = get_settings("demo", tmp_path).paths.fingerprint_file("goedel_427_proofs")
    stored = json.loads(fp_file.read_text())
    assert stored["outputs"], "the output files named in the metadata are recorded"

    second = _run(tmp_path)
    for key in ("goedel_source_proofs", "goedel_427_proofs"):
        assert second[key]["reused"] is True, key
        assert second[key]["fingerprint"] == first[key]["fingerprint"]
        # the same metadata as the computed materialization, plus where it came from
        assert {k: v for k, v in second[key].items() if k not in ("reused", "reused_from_run")} == \
               {k: v for k, v in first[key].items() if k != "reused"}

    # A deleted output file: recomputed.
    victim = next(p for p, size in stored["outputs"].items() if size is not None)
    __import__("os").remove(victim)
    third = _run(tmp_path)
    assert third["goedel_427_proofs"]["reused"] is False and third["goedel_source_proofs"]["reused"] is True

    # A changed setting: every asset recomputes (new fingerprint).
    demo = settings_module.PROFILES["demo"]
    monkeypatch.setitem(settings_module.PROFILES, "demo",
                        lambda root: dataclasses.replace(demo(root), data=dataclasses.replace(demo(root).data, seed=7)))
    changed = _run(tmp_path)
    for key in ("goedel_source_proofs", "goedel_427_proofs"):
        assert changed[key]["reused"] is False and changed[key]["fingerprint"] != first[key]["fingerprint"], key


def test_reuse_off_always_computes(tmp_path, monkeypatch):
    _run(tmp_path)
    monkeypatch.setenv("BURNQED_REUSE", "0")
    assert _run(tmp_path)["goedel_427_proofs"].get("reused") is None  # not even looked at


def test_partitioned_asset_is_reused_only_by_a_run_over_all_partitions(tmp_path):
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    from burnqed_assets.reuse import with_reuse

    calls = []

    @dg.asset(partitions_def=dg.StaticPartitionsDefinition(["c0", "c1", "c2"]),
              backfill_policy=dg.BackfillPolicy.single_run())
    def chunked(context, burnqed: BurnqedConfig) -> dg.MaterializeResult:
        calls.append(tuple(context.partition_keys))
        return dg.MaterializeResult(metadata={"chunks": len(context.partition_keys)})

    with_reuse([chunked])
    resources = {"burnqed": BurnqedConfig(profile="demo", data_root=str(tmp_path))}
    everything = {ASSET_PARTITION_RANGE_START_TAG: "c0", ASSET_PARTITION_RANGE_END_TAG: "c2"}
    fp_file = get_settings("demo", tmp_path).paths.fingerprint_file("chunked")

    def run(**kw):
        result = dg.materialize([chunked], resources=resources, **kw)
        metadata = result.get_asset_materialization_events()[0].materialization.metadata
        return metadata["reused"].value if "reused" in metadata else None

    assert run(tags=everything) is False and fp_file.exists()
    assert run(tags=everything) is True and len(calls) == 1  # all chunks, nothing changed: reused
    assert run(partition_key="c1") is None and not fp_file.exists()  # one chunk: computed, vouches for nothing
    assert run(tags=everything) is False and len(calls) == 3  # recomputed after the partial run
