"""Chunk partitions through the command line, as a user runs and re-runs chunks: the migration's
chunks as one `--partition-range`, one tracing chunk with `--partition` (its completeness gate
fails and names the missing chunks, so the command exits 1), the other two tracing chunks as a
range (now the gate passes), then the downstream asset that reads every partition. Same pairs as
the one-run materialization."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import dagster as dg
import pytest

from burnqed_assets.defs import migration as m
from burnqed_assets.settings import REPO_ROOT, get_settings
from burnqed_assets_tests.lean.test_migration_assets import _run


def _materialize(env: dict[str, str], *args: str, returncode: int = 0) -> str:
    proc = subprocess.run([sys.executable, "-m", "dagster", "asset", "materialize", "-m", "burnqed_assets.definitions",
                           *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == returncode, f"materialize {args} exited {proc.returncode}:\n{out[-4000:]}"
    return out


@pytest.mark.timeout(900)
def test_chunks_by_partition_then_downstream_through_the_cli(tmp_path, monkeypatch):
    assert _run(tmp_path / "whole").success
    expected = get_settings("demo", tmp_path / "whole").paths.goedel_traced_pairs.read_bytes()

    home, root = tmp_path / "home", tmp_path / "data"
    home.mkdir()
    shutil.copy(REPO_ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "BURNQED_DATA_ROOT": str(root), "BURNQED_PROFILE": "demo"}
    monkeypatch.setenv("DAGSTER_HOME", str(home))  # the instance config reads it
    keys = m.TRACE_CHUNKS.get_partition_keys()
    assert len(keys) == 3, keys  # the demo's 143 theorems in chunks of 50

    _materialize(env, "--select", "goedel_source_proofs")
    _materialize(env, "--select", "goedel_427_proofs", "--partition-range", f"{keys[0]}...{keys[-1]}")
    out = _materialize(env, "--select", "goedel_traced_pairs", "--partition", keys[0], returncode=1)
    assert "tracing_chunks_complete" in out, out[-3000:]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_materialized_partitions(m.goedel_traced_pairs.key) == {keys[0]}
    _materialize(env, "--select", "goedel_traced_pairs", "--partition-range", f"{keys[1]}...{keys[-1]}")
    _materialize(env, "--select", "clean_pool")

    with dg.DagsterInstance.from_config(str(home)) as instance:
        for key in (m.goedel_427_proofs.key, m.goedel_traced_pairs.key):
            assert instance.get_materialized_partitions(key) == set(keys)
        assert instance.get_latest_materialization_event(dg.AssetKey("clean_pool")) is not None
        gate = dg.AssetCheckKey(m.goedel_traced_pairs.key, "tracing_chunks_complete")
        latest = instance.event_log_storage.get_latest_asset_check_execution_by_key([gate])[gate]
        assert latest.status.value == "SUCCEEDED", latest  # the last range completed the set
    assert get_settings("demo", root).paths.goedel_traced_pairs.read_bytes() == expected
