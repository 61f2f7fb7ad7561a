"""The Phase M.1–M.5 assets materialize in the demo profile; gates evaluate on real numbers."""

from __future__ import annotations

import json

import dagster as dg

from burnqed_assets.data.io import write_json
from burnqed_assets.defs import migration as m
from burnqed_assets.resources import BurnqedConfig
from burnqed_assets.settings import get_settings

ASSETS = [m.goedel_source_proofs, m.goedel_427_proofs, *m.BENCHMARK_ASSETS, m.goedel_traced_pairs]
CHECKS = [m.migration_survival_red_line, m.migration_survival_target, m.migration_chunks_complete,
          *m.BENCHMARK_CHECKS, m.tracing_failure_rate, m.tracing_chunks_complete]


def _run(tmp_path, selection=None, partition_key=None):
    # Every Phase M chunk (migration and tracing) in one run (single-run backfill policy), unless
    # one partition is asked for.
    tags = {} if partition_key else m.all_trace_chunks_tags()
    return dg.materialize(ASSETS + CHECKS, resources={"burnqed": BurnqedConfig(data_root=str(tmp_path))},
                          raise_on_error=False, selection=selection, tags=tags, partition_key=partition_key)


def test_demo_materializes_with_checks(tmp_path):
    result = _run(tmp_path)
    assert result.success
    keys = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert keys == {"goedel_source_proofs", "goedel_427_proofs", "minif2f_v2s_427", "minif2f_v2c_427",
                    "minif2f_v1", "goedel_traced_pairs"}
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["migration_survival_red_line"].passed and checks["migration_chunks_complete"].passed
    assert checks["tracing_failure_rate"].passed and checks["tracing_chunks_complete"].passed
    for key in ("minif2f_v2s_427", "minif2f_v2c_427", "minif2f_v1"):
        c = checks[f"{key}_statements_compile"]
        # No Lean in the demo: the gate says it did not run, and is not a pass.
        assert not c.passed and c.severity == dg.AssetCheckSeverity.WARN
        assert c.description.startswith("not run: ") and c.metadata["not_run"].value is True
    settings = get_settings("demo", tmp_path)
    summary = json.loads(settings.paths.migration.summary.read_text(encoding="utf-8"))
    assert summary["verdict_source"].startswith("REPL stand-in: recorded")
    assert summary["lake_project"]["modules"] == summary["survivors"] and summary["lake_project"]["commit"]
    assert summary["missing_chunks"] == [] and summary["chunks"] == 2
    migration = next(e.materialization.metadata for e in result.get_asset_materialization_events()
                     if e.asset_key == m.goedel_427_proofs.key)
    lean_stats = migration["lean_stats"].value  # pool counters: run metadata, not the deliverable
    assert lean_stats["imports"] >= 1 and "stand-in" in lean_stats["repl"]
    assert lean_stats["theorems"] == summary["total"] == 100
    survival = checks["migration_survival_target"]
    assert survival.passed == (summary["survival_rate"] >= settings.thresholds.migration_survival_target)
    pairs = [json.loads(x) for x in settings.paths.goedel_traced_pairs.read_text(encoding="utf-8").splitlines()]
    assert pairs and all({"theorem", "state", "tactic", "depth"} <= set(p) for p in pairs)
    assert all(p["theorem"].startswith("goedel::") for p in pairs)
    dropped = {json.loads(x)["problem_id"] for x in
               settings.paths.migration.dropped.read_text(encoding="utf-8").splitlines()}
    assert not {p["theorem"].split("::")[1] for p in pairs} & dropped  # dropped proofs are not traced

    # Re-run: same rows, no duplicates, finished chunks skipped.
    again = _run(tmp_path, selection=[m.goedel_traced_pairs])
    assert again.success
    mat = again.get_asset_materialization_events()[0].materialization.metadata
    assert mat["chunks_skipped_resumed"].value == mat["chunks"].value
    assert [json.loads(x) for x in settings.paths.goedel_traced_pairs.read_text(encoding="utf-8").splitlines()] == pairs


def test_survival_gate_blocks_below_red_line(tmp_path):
    settings = get_settings("demo", tmp_path)
    write_json(settings.paths.migration.summary,
               {"survival_rate": 0.85, "dropped": 15, "verdict_source": "test"})
    result = dg.materialize([m.goedel_427_proofs, m.migration_survival_red_line, m.migration_survival_target],
                            resources={"burnqed": BurnqedConfig(data_root=str(tmp_path))}, raise_on_error=False,
                            selection=dg.AssetSelection.checks(m.migration_survival_red_line,
                                                               m.migration_survival_target))
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks["migration_survival_red_line"].passed
    assert checks["migration_survival_red_line"].severity == dg.AssetCheckSeverity.ERROR
    assert not checks["migration_survival_target"].passed
    assert checks["migration_survival_target"].severity == dg.AssetCheckSeverity.WARN


def test_tracing_gate_blocks_above_limit(tmp_path):
    settings = get_settings("demo", tmp_path)
    from burnqed_assets.lean.phase_m import TracingReport

    report = TracingReport(theorems=20, traced_ok=13, failed=7, timeouts=0, rejected_banned=0, rows=50, chunks=1,
                           chunks_skipped_resumed=0, zombies_killed=0, failure_rate=0.35, missing_chunks=(),
                           chunk_errors=(), tracer="test", workers=1, chunk_size=50, partitions=3,
                           chunks_with_theorems=1, chunks_this_run=(0,), timeout_s=20.0, failures=(), profile="demo",
                           lean_backend="standin", lean_pool={}, lake_project={})
    write_json(settings.paths.tracing.report, report.as_json())
    result = dg.materialize([m.goedel_traced_pairs, m.tracing_failure_rate],
                            resources={"burnqed": BurnqedConfig(data_root=str(tmp_path))}, raise_on_error=False,
                            selection=dg.AssetSelection.checks(m.tracing_failure_rate))
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR


def test_benchmark_compile_gate_blocks_on_failures(tmp_path):
    settings = get_settings("demo", tmp_path)
    report = settings.paths.benchmark("minif2f_v2s").compile_report
    write_json(report, {"checked": True, "backend": "repl", "total": 4, "compiled": 3,
                        "failures": [{"name": "p1", "split": "test", "errors": ["unexpected token 'in'"]}]})
    check = next(c for c in m.BENCHMARK_CHECKS if "minif2f_v2s_427" in str(c.check_keys))
    result = dg.materialize([m.minif2f_v2s_427, check], resources={"burnqed": BurnqedConfig(data_root=str(tmp_path))},
                            raise_on_error=False, selection=dg.AssetSelection.checks(check))
    (ev,) = result.get_asset_check_evaluations()
    assert not ev.passed and ev.severity == dg.AssetCheckSeverity.ERROR and "3/4" in ev.description


def test_full_profile_without_lean_fails_clearly(tmp_path):
    import pytest

    from burnqed_assets.lean import make_lean_env
    from burnqed_assets.lean.repl_env import LeanSetupError

    with pytest.raises(LeanSetupError, match="docs/lean.md"):
        make_lean_env(get_settings("full", tmp_path))


def test_a_tracing_chunk_partition_runs_alone_and_the_rest_completes_the_same_pairs(tmp_path):
    """Partition = chunk: one chunk re-runs alone (the others untouched), the completeness gate
    blocks until every chunk is traced, and the pairs equal those of a one-run materialization."""
    whole = tmp_path / "whole"
    assert _run(whole).success
    expected = get_settings("demo", whole).paths.goedel_traced_pairs.read_bytes()

    root = tmp_path / "chunked"
    resources = {"burnqed": BurnqedConfig(data_root=str(root))}
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize([m.goedel_source_proofs, m.goedel_427_proofs], resources=resources,
                          instance=instance, tags=m.all_trace_chunks_tags()).success
    keys = m.TRACE_CHUNKS.get_partition_keys()
    one = dg.materialize([m.goedel_traced_pairs, m.tracing_chunks_complete], resources=resources, instance=instance,
                         partition_key=keys[1], raise_on_error=False)
    assert instance.get_materialized_partitions(m.goedel_traced_pairs.key) == {keys[1]}
    settings = get_settings("demo", root)
    done = sorted(p.name for p in settings.paths.tracing.checkpoints.glob("*.done.json"))
    assert done == ["chunk_00001.done.json"]
    gate = {e.check_name: e for e in one.get_asset_check_evaluations()}["tracing_chunks_complete"]
    assert not gate.passed and gate.metadata["missing_chunks"].value == [keys[0], *keys[2:]]

    rest = dg.materialize([m.goedel_traced_pairs, m.tracing_chunks_complete], resources=resources, instance=instance,
                          tags=m.all_trace_chunks_tags())
    assert rest.success
    mat = rest.get_asset_materialization_events()[0].materialization.metadata
    assert mat["chunks_skipped_resumed"].value == 1  # the finished chunk was not redone
    assert instance.get_materialized_partitions(m.goedel_traced_pairs.key) == set(keys)
    assert settings.paths.goedel_traced_pairs.read_bytes() == expected


def test_a_migration_chunk_partition_runs_alone_and_the_rest_completes_the_same_outputs(tmp_path):
    """Partition = chunk of the source proofs: one migration chunk runs alone, the blocking
    completeness check holds tracing back, tracing refuses a partial project, and the rest of the
    chunks complete outputs equal to those of a one-run materialization."""
    whole = tmp_path / "whole"
    resources = {"burnqed": BurnqedConfig(data_root=str(whole))}
    assert dg.materialize([m.goedel_source_proofs, m.goedel_427_proofs], resources=resources,
                          tags=m.all_trace_chunks_tags()).success
    paths = get_settings("demo", whole).paths.migration
    expected = {p.name: p.read_bytes() for p in (paths.proofs, paths.changelog, paths.dropped)}

    root = tmp_path / "chunked"
    resources = {"burnqed": BurnqedConfig(data_root=str(root))}
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize([m.goedel_source_proofs], resources=resources, instance=instance).success
    keys = m.TRACE_CHUNKS.get_partition_keys()
    one = dg.materialize([m.goedel_427_proofs, m.migration_chunks_complete, m.goedel_traced_pairs],
                         resources=resources, instance=instance, partition_key=keys[1], raise_on_error=False)
    assert instance.get_materialized_partitions(m.goedel_427_proofs.key) == {keys[1]}
    gate = {e.check_name: e for e in one.get_asset_check_evaluations()}["migration_chunks_complete"]
    assert not gate.passed and gate.severity == dg.AssetCheckSeverity.ERROR
    assert gate.metadata["missing_chunks"].value == [keys[0]]
    # the blocking check stopped tracing in the same run
    assert not instance.get_materialized_partitions(m.goedel_traced_pairs.key)

    rest = dg.materialize([m.goedel_427_proofs, m.migration_chunks_complete], resources=resources,
                          instance=instance, tags=m.all_trace_chunks_tags())
    assert rest.success
    mat = rest.get_asset_materialization_events()[0].materialization.metadata
    assert mat["chunks_skipped_resumed"].value == 1 and mat["missing_chunks"].value == []  # chunk 1 not redone
    assert instance.get_materialized_partitions(m.goedel_427_proofs.key) == set(keys)
    paths = get_settings("demo", root).paths.migration
    assert {p.name: p.read_bytes() for p in (paths.proofs, paths.changelog, paths.dropped)} == expected
