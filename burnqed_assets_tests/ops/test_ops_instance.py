"""Instance storage: SQLite (deploy/dagster.yaml) and Postgres (deploy/dagster-postgres.yaml).

The Postgres test runs when BURNQED_TEST_POSTGRES_URL points at a server whose user may
create databases (.ci/run starts one with deploy/postgres/start_local_postgres.sh).
"""

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import dagster as dg
import pytest

from burnqed_assets.settings import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
POSTGRES_URL_ENV = "BURNQED_TEST_POSTGRES_URL"
# Cheap, independent demo data assets (with their upstream, if any): two branches, so the
# multiprocess executor runs steps side by side.
DEMO_TARGETS = ("lean_github_pairs", "minif2f_v1")


def _home(tmp_path: Path, yaml_name: str) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY / yaml_name, home / "dagster.yaml")
    return home


@dg.asset
def tiny() -> int:
    return 1


def test_sqlite_instance_yaml_stores_runs(tmp_path, monkeypatch):
    home = _home(tmp_path, "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert "Sqlite" in type(instance.run_storage).__name__
        result = dg.materialize([tiny], instance=instance)
        assert result.success
        assert len(instance.get_runs()) == 1
        assert instance.get_latest_materialization_event(dg.AssetKey("tiny")) is not None
    assert any(home.rglob("*.db")), "SQLite files are written under DAGSTER_HOME"


def _subset() -> list[str]:
    """DEMO_TARGETS that exist, plus their upstream closure (runs on a fresh data root)."""
    from burnqed_assets.definitions import defs
    from burnqed_assets.defs import operations

    specs = {s.key: s for s in operations.iter_specs(defs)}
    graph = defs.resolve_asset_graph()
    # Materializable only: the raw inputs are observable source assets (observed, never materialized).
    executable = {k for k in graph.get_all_asset_keys() if graph.get(k).is_materializable}
    seen: set[dg.AssetKey] = set()
    stack = [dg.AssetKey(k) for k in DEMO_TARGETS if dg.AssetKey(k) in executable]
    while stack:
        key = stack.pop()
        if key not in seen and key in specs:
            seen.add(key)
            stack.extend(d.asset_key for d in specs[key].deps)
    return sorted(k.to_user_string() for k in seen if k in executable)


def _plain(url: str) -> str:
    """psycopg2 wants `postgresql://`; SQLAlchemy (Dagster) wants `postgresql+psycopg2://`."""
    return url.replace("postgresql+psycopg2://", "postgresql://", 1)


def _dagster_url(url: str, database: str) -> str:
    parts = urlsplit(_plain(url))
    return urlunsplit(parts._replace(scheme="postgresql+psycopg2", path=f"/{database}"))


@pytest.mark.postgres
@pytest.mark.timeout(600)
def test_postgres_instance_multiprocess_materialization(tmp_path):
    url = os.environ.get(POSTGRES_URL_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_URL_ENV} is not set (.ci/run starts a local PostgreSQL and sets it)")
    psycopg2 = pytest.importorskip("psycopg2")
    try:
        admin = psycopg2.connect(_plain(url), connect_timeout=5)
    except psycopg2.OperationalError as exc:
        pytest.fail(f"{POSTGRES_URL_ENV} is set but the server is unreachable: {exc}")
    admin.autocommit = True
    db = f"burnqed_test_{uuid.uuid4().hex[:10]}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{db}"')
    try:
        home = _home(tmp_path, "dagster-postgres.yaml")
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "BURNQED_POSTGRES_URL": _dagster_url(url, db),
            "BURNQED_DATA_ROOT": str(tmp_path / "data"),
            "BURNQED_EXECUTOR": "multiprocess",
            "BURNQED_PROFILE": "demo",
        }
        keys = _subset()
        assert keys, "no demo data asset to materialize"
        proc = subprocess.run(
            [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "burnqed_assets.definitions",
             "--select", ",".join(keys)],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=540,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

        old = {k: os.environ.get(k) for k in ("DAGSTER_HOME", "BURNQED_POSTGRES_URL")}
        os.environ.update({"DAGSTER_HOME": env["DAGSTER_HOME"], "BURNQED_POSTGRES_URL": env["BURNQED_POSTGRES_URL"]})
        try:
            with dg.DagsterInstance.from_config(str(home)) as instance:
                assert "Postgres" in type(instance.run_storage).__name__
                assert "Postgres" in type(instance.event_log_storage).__name__
                runs = instance.get_runs()
                assert len(runs) == 1 and runs[0].status == dg.DagsterRunStatus.SUCCESS
                for key in keys:
                    event = instance.get_latest_materialization_event(dg.AssetKey(key))
                    assert event is not None and event.run_id == runs[0].run_id, key
                # The multiprocess executor started one worker process per step.
                workers = instance.get_records_for_run(
                    runs[0].run_id, of_type=dg.DagsterEventType.STEP_WORKER_STARTED
                ).records
                assert len(workers) >= len(keys)
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        admin.close()
