"""The phase_1_search assets end to end through the real replay backend and verifier.

The policy is a fake (a table of the recorded miniF2F search tactics plus wrong ones), so the
test checks the asset wiring, outputs, resume and checks without depending on a trained model.
"""

from __future__ import annotations

import dagster as dg
import pyarrow.parquet as pq
import pytest

from burnqed_assets.data.io import read_json, write_json
from burnqed_assets.defs import search as search_defs
from burnqed_assets.defs.migration import all_trace_chunks_tags
from burnqed_assets.resources import BurnqedConfig, SGLangServerResource
from burnqed_assets.search import pipeline
from burnqed_assets.settings import get_settings
from search_fakes import RECORDED_HEADER, oracle_policy, recorded_theorems

HEADER = RECORDED_HEADER


@pytest.fixture()
def data_root(tmp_path):
    rows, by_name = recorded_theorems()
    names = sorted(by_name, key=lambda n: (-len(by_name[n]), n))[:8]
    pool = []
    for n in names + ["goedel::lean_workbook_unknown"]:
        steps = by_name.get(n, [])
        stmt = steps[0]["_context"]["statement"] + " := by" if steps else None
        pool.append({"theorem": n, "max_depth": max(3, len(steps)), "num_pairs": len(steps), "root_state": "",
                     "source": "test", "formal_statement": stmt, "header": HEADER})
    pool.append({"theorem": "shallow", "max_depth": 1, "num_pairs": 1, "root_state": "", "source": "test",
                 "formal_statement": "theorem shallow : True := by", "header": HEADER})
    settings = get_settings("demo", tmp_path)
    write_json(settings.paths.sft / "contrastive_pool.json", pool)
    bench = [{"name": n, "header": HEADER, "formal_statement": by_name[n][0]["_context"]["statement"] + " := by",
              "split": "test", "source": "minif2f_v2s", "goal": None} for n in names[:5]]
    bench.append({"name": "not_recorded_p1", "header": HEADER,
                  "formal_statement": "theorem not_recorded_p1 : 1 = 1 := by",
                  "split": "test", "source": "minif2f_v2s", "goal": None})
    write_json(settings.paths.benchmarks / "minif2f_v2s_test_427.json", bench)
    write_json(settings.paths.benchmarks / "minif2f_v1_test.json", bench[:3])
    return tmp_path


ALL_CHUNKS = all_trace_chunks_tags()  # every chunk partition in one run (single-run backfill policy)


def test_search_assets_materialize_with_checks(data_root, monkeypatch):
    monkeypatch.setattr(pipeline, "make_policy", lambda settings, model_dir=None: oracle_policy())
    resources = {"burnqed": BurnqedConfig(data_root=str(data_root)), "sglang": SGLangServerResource()}
    result = dg.materialize([*search_defs.defs.assets, *search_defs.defs.asset_checks], resources=resources,
                            raise_on_error=False, tags=ALL_CHUNKS)
    assert result.success
    settings = get_settings("demo", data_root)

    selected = read_json(settings.paths.sft / "contrastive_pool_2k.json")
    assert "shallow" not in [e["theorem"] for e in selected]
    assert "goedel::lean_workbook_unknown" not in [e["theorem"] for e in selected]
    assert len(selected) == 8

    table = pq.read_table(settings.paths.search_trajectories(0))
    stats = read_json(settings.paths.trajectory_stats)
    assert stats["theorems_attempted"] == 8 and stats["theorems_proved"] >= 1
    assert stats["label_counts"]["positive"] > 0 and stats["label_counts"]["negative"] > 0
    assert stats["total_records"] == table.num_rows
    keys = list(zip(table.column("theorem").to_pylist(), table.column("state_id").to_pylist()))
    assert len(keys) == len(set(keys))

    v2s = read_json(settings.paths.search_eval("minif2f_v2s").summary)
    # the replay backend cannot answer `not_recorded_p1`: the demo evaluates the 5 it can, and says so
    assert v2s["benchmark_size"] == 6 and v2s["selectable_problems"] == 5
    assert v2s["attempted"] == 5 and 1 <= v2s["proved"] <= 5 and "stand-in" in v2s["selection"]
    res = pq.read_table(v2s["results_path"]).to_pylist()
    assert "not_recorded_p1" not in {r["theorem"] for r in res}
    assert read_json(settings.paths.search_eval("minif2f_v1").summary)["attempted"] == 3

    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(checks) == {"trajectories_deep_state_share", "trajectories_have_both_labels",
                           "trajectory_chunks_complete", "minif2f_v2s_llm_rate"}
    assert checks["trajectories_have_both_labels"].passed and checks["trajectory_chunks_complete"].passed
    rate_check = checks["minif2f_v2s_llm_rate"]
    assert rate_check.passed == (v2s["rate"] >= settings.thresholds.minif2f_llm_target)
    mats = {m.asset_key.to_user_string(): m for m in result.get_asset_materialization_events()}
    assert mats["minif2f_v2s_iter0"].materialization.metadata["proved"].value == v2s["proved"]
    # Every search ran on the warm Lean pool: one header import per worker, reused by the others.
    for key, theorems in (("trajectories", 8), ("minif2f_v2s_iter0", 5), ("minif2f_v1_iter0", 3)):
        pool = mats[key].materialization.metadata["lean_pool"].value
        assert pool["pool"] == "local" and pool["theorems"] == theorems, (key, pool)
        assert 1 <= pool["imports"] <= settings.search.concurrency and pool["imports"] + pool["reuses"] == theorems
        assert pool["crashes"] == pool["recycles"] == 0 and pool["peak_rss_mb"] > 0


def _chunked(monkeypatch, chunk_size: int) -> None:
    """The demo settings with smaller trajectory chunks (8 theorems in chunks of 3: 3 partitions)."""
    import dataclasses

    from burnqed_assets.settings import with_overrides

    original = BurnqedConfig.settings

    def settings(self):
        s = original(self)
        return with_overrides(s, search=dataclasses.replace(s.search, trajectory_chunk_size=chunk_size))

    monkeypatch.setattr(BurnqedConfig, "settings", settings)


def test_a_trajectory_chunk_runs_alone_and_the_rest_completes_the_same_trees(data_root, monkeypatch, tmp_path):
    """One partition alone: the blocking check names the missing chunks; the other partitions
    then complete it without searching the finished chunk again, and the merged deliverable holds
    the trees an all-chunks run gives."""
    from burnqed_assets.defs.migration import TRACE_CHUNKS

    monkeypatch.setattr(pipeline, "make_policy", lambda settings, model_dir=None: oracle_policy())
    _chunked(monkeypatch, 3)
    resources = {"burnqed": BurnqedConfig(data_root=str(data_root)), "sglang": SGLangServerResource()}
    instance = dg.DagsterInstance.ephemeral()
    pool_asset = dg.materialize([search_defs.contrastive_pool_2k], resources=resources, instance=instance)
    assert pool_asset.success
    keys = TRACE_CHUNKS.get_partition_keys()
    traj = [search_defs.trajectories, search_defs.trajectory_chunks_complete]
    first = dg.materialize(traj, resources=resources, instance=instance, partition_key=keys[1], raise_on_error=False)
    assert not first.success  # the blocking check failed: downstream assets would not run
    assert instance.get_materialized_partitions(search_defs.trajectories.key) == {keys[1]}
    (check,) = first.get_asset_check_evaluations()
    assert not check.passed and "chunk_000" in check.description and "chunk_002" in check.description
    settings = BurnqedConfig(data_root=str(data_root)).settings()
    done = settings.paths.search_chunk(0, 1).done
    stamp = done.stat().st_mtime_ns
    assert pq.read_table(settings.paths.search_trajectories(0)).num_rows > 0  # chunk 1 only, so far

    rest = dg.materialize(traj, resources=resources, instance=instance, raise_on_error=False, tags=ALL_CHUNKS)
    assert rest.success
    (check,) = rest.get_asset_check_evaluations()
    assert check.passed and check.metadata["chunks"].value == 3
    assert done.stat().st_mtime_ns == stamp  # the finished chunk was not searched again
    meta = rest.asset_materializations_for_node("trajectories")[0].metadata
    assert meta["chunks_searched"].value == "chunk_000, chunk_002"
    assert instance.get_materialized_partitions(search_defs.trajectories.key) == set(keys)
    merged = pq.read_table(settings.paths.search_trajectories(0)).drop_columns(["elapsed_s"])

    # The same 8 theorems in one chunk, from scratch: the same trees, in the same order.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    import shutil

    shutil.copytree(settings.paths.sft, fresh / settings.paths.sft.relative_to(settings.paths.root))
    _chunked(monkeypatch, 10)
    resources = {"burnqed": BurnqedConfig(data_root=str(fresh)), "sglang": SGLangServerResource()}
    assert dg.materialize(traj, resources=resources, raise_on_error=False, tags=ALL_CHUNKS).success
    whole = pq.read_table(get_settings("demo", fresh).paths.search_trajectories(0)).drop_columns(["elapsed_s"])
    assert merged.num_rows > 0 and merged.equals(whole)


def test_missing_pool_is_a_clear_failure(tmp_path):
    result = dg.materialize([search_defs.contrastive_pool_2k],
                            resources={"burnqed": BurnqedConfig(data_root=str(tmp_path))}, raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0]
    assert "contrastive_pool.json is missing" in str(failure.event_specific_data.error)


def _served_settings(monkeypatch):
    """The demo settings with the sglang backend: the graph manages a policy server per step."""
    import dataclasses

    from burnqed_assets.settings import with_overrides

    original = BurnqedConfig.settings

    def settings(self):
        s = original(self)
        return with_overrides(s, search=dataclasses.replace(s.search, policy_backend="sglang", sglang_port=0,
                                                            sglang_startup_timeout_s=60.0))

    monkeypatch.setattr(BurnqedConfig, "settings", settings)


def test_eval_asset_runs_against_a_server_the_graph_starts_and_stops(data_root, monkeypatch):
    """The sglang backend through the `sglang` resource: the asset launches the serving stand-in
    with the merged model it evaluates, searches through it, and stops it when the step ends."""
    from burnqed_assets.search.serving import STANDIN_LAUNCHER

    _served_settings(monkeypatch)
    settings = get_settings("demo", data_root)
    settings.paths.merged_model(0).mkdir(parents=True, exist_ok=True)
    resources = {"burnqed": BurnqedConfig(data_root=str(data_root)),
                 "sglang": SGLangServerResource(launcher=list(STANDIN_LAUNCHER))}
    result = dg.materialize([search_defs.minif2f_v1_iter0], resources=resources, raise_on_error=False)
    assert result.success
    summary = read_json(settings.paths.search_eval("minif2f_v1", 0, "llm").summary)
    assert summary["policy_backend"] == "sglang" and summary["attempted"] == 3 and summary["errors"] == 0
    (log_file,) = settings.paths.server_logs.glob("*.log")
    text = log_file.read_text()
    assert f"serving {settings.paths.merged_model(0)}" in text and "POST /generate" in text
    port = int(log_file.stem.split("_")[-1])
    import socket

    with socket.socket() as s:  # stopped: nothing listens on its port any more
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_eval_asset_refuses_a_server_holding_another_model(data_root, monkeypatch):
    from burnqed_assets.search.serving import STANDIN_LAUNCHER

    _served_settings(monkeypatch)
    settings = get_settings("demo", data_root)
    resources = {"burnqed": BurnqedConfig(data_root=str(data_root)),
                 "sglang": SGLangServerResource(launcher=[*STANDIN_LAUNCHER, "--report-model",
                                                          str(settings.paths.merged_model(1))])}
    result = dg.materialize([search_defs.minif2f_v1_iter0], resources=resources, raise_on_error=False)
    assert not result.success
    error = str(result.get_step_failure_events()[0].event_specific_data.error)
    assert "not the model this step evaluates" in error and "iter_0" in error
    assert not settings.paths.search_eval("minif2f_v1", 0, "llm").summary.exists()
