"""The web UI in a real browser: `dagster dev` on 127.0.0.1, headless Debian Chromium via
Playwright. Materializes the chunked tracing asset per partition through the CLI, opens the
asset graph, launches a materialization of a demo asset and the rest of its upstream, and
checks that the run succeeds, the check results and a plot appear, and the tracing asset's
partition view shows every chunk. Screenshots go to test-output/browser/.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from burnqed_assets.settings import REPO_ROOT

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
SHOTS = REPO_ROOT / "test-output" / "browser"
# The asset whose plots we look for, and the check-bearing asset whose checks we look for.
PLOT_ASSET_CANDIDATES = ("exploration_report", "token_geometry")
CHECK_ASSET = "clean_pool"
# The chunked (partitioned) tracing asset: materialized per chunk through the CLI before the UI run.
PARTITIONED_ASSET = "goedel_traced_pairs"
PARTITION_STATS_QUERY = """query($path: [String!]!) { assetNodeOrError(assetKey: {path: $path}) { ... on AssetNode {
  partitionKeys partitionStats { numMaterialized numPartitions numFailed } } } }"""
RUN_TIMEOUT_S = 420

RUNS_QUERY = "{ runsOrError(limit: 50) { ... on Runs { results { runId status } } } }"
ASSETS_QUERY = "{ assetNodes { assetKey { path } } }"
CHECKS_QUERY = """query($path: [String!]!) { assetNodeOrError(assetKey: {path: $path}) { ... on AssetNode {
  assetChecksOrError { ... on AssetChecks { checks { name blocking executionForLatestMaterialization { status } } } } } } }"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(base: str, query: str, variables: dict | None = None) -> dict:
    import httpx

    response = httpx.post(f"{base}/graphql", json={"query": query, "variables": variables or {}}, timeout=30)
    response.raise_for_status()
    return response.json()["data"]


def _upstream_closure(target: str) -> list[str]:
    from burnqed_assets.definitions import defs
    from burnqed_assets.defs import operations

    specs = {s.key: s for s in operations.iter_specs(defs)}
    seen, stack = set(), [dg.AssetKey(target)]
    while stack:
        key = stack.pop()
        if key in seen or key not in specs:
            continue
        seen.add(key)
        stack.extend(d.asset_key for d in specs[key].deps)
    return sorted(k.to_user_string() for k in seen)


def _plot_asset() -> str:
    from burnqed_assets.definitions import defs

    present = {k.to_user_string() for k in defs.resolve_asset_graph().executable_asset_keys}
    for key in PLOT_ASSET_CANDIDATES:
        if key in present and CHECK_ASSET in _upstream_closure(key):
            return key
    pytest.skip(f"none of {PLOT_ASSET_CANDIDATES} (downstream of {CHECK_ASSET}) is defined yet")


@pytest.fixture(scope="module")
def dagster_ui(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: `apt-get install -y chromium` (.ci/run installs it)")
    pytest.importorskip("playwright.sync_api")
    work = tmp_path_factory.mktemp("ui")
    home = work / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "BURNQED_DATA_ROOT": str(work / "data"), "BURNQED_PROFILE": "demo"}
    env.pop("BURNQED_EXECUTOR", None)
    log_path = work / "dagster_dev.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dagster", "dev", "-m", "burnqed_assets.definitions", "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # own process group: the teardown ends the webserver, daemon and code server
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 240
        while True:
            if proc.poll() is not None:
                pytest.fail(f"dagster dev exited {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                if _graphql(base, ASSETS_QUERY)["assetNodes"]:
                    break
            except Exception:
                pass
            if time.time() > deadline:
                pytest.fail(f"dagster dev did not serve the asset graph in 240 s:\n{log_path.read_text()[-4000:]}")
            time.sleep(2)
        yield base, log_path, env
    finally:
        _stop_group(proc)


def _cli_materialize(env: dict, *args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "dagster", "asset", "materialize", "-m", "burnqed_assets.definitions",
                           *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"dagster asset materialize {' '.join(args)}:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"


def _materialize_tracing_chunks(env: dict) -> list[str]:
    """The tracing asset's upstream, then its chunks: one partition alone, then the rest as a
    range (one run, single-run backfill policy). Returns the partition keys."""
    from burnqed_assets.definitions import defs
    from burnqed_assets.defs import migration

    keys = migration.TRACE_CHUNKS.get_partition_keys()
    assert len(keys) >= 2, "the demo must have at least two tracing chunks"
    executable = {k.to_user_string() for k in defs.resolve_asset_graph().executable_asset_keys}
    upstream = [k for k in _upstream_closure(PARTITIONED_ASSET) if k != PARTITIONED_ASSET and k in executable]
    _cli_materialize(env, "--select", ",".join(upstream))
    _cli_materialize(env, "--select", PARTITIONED_ASSET, "--partition", keys[0])
    _cli_materialize(env, "--select", PARTITIONED_ASSET, "--partition-range", f"{keys[1]}...{keys[-1]}")
    return keys


def _stop_group(proc: subprocess.Popen) -> None:
    """Interrupt dagster dev's process group, then kill what is left of it."""
    for sig, wait_s in ((signal.SIGINT, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            # The group can outlive its leader (code server, daemon): kill the rest.
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def _dismiss_dialogs(page) -> None:
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.click(timeout=2500)
    except Exception:
        pass  # the community dialog does not always show


def _wait_for_new_run(base: str, known: set[str], timeout_s: float) -> dict:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        runs = _graphql(base, RUNS_QUERY)["runsOrError"]["results"]
        new = [r for r in runs if r["runId"] not in known]
        if new and new[0]["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            return new[0]
        time.sleep(2)
    pytest.fail(f"no launched run finished within {timeout_s} s")


def test_materialize_from_asset_graph_shows_checks_and_plots(dagster_ui):
    from playwright.sync_api import expect, sync_playwright

    base, log_path, env = dagster_ui
    target = _plot_asset()
    chunk_keys = _materialize_tracing_chunks(env)
    done = set(_upstream_closure(PARTITIONED_ASSET))
    selection = [k for k in _upstream_closure(target) if k not in done]
    query = " or ".join(f'key:"{k}"' for k in selection)
    SHOTS.mkdir(parents=True, exist_ok=True)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(30_000)

            # 0. The operations: the raw-input sensor, the automation sensor and the data schedule.
            page.goto(f"{base}/automation", wait_until="domcontentloaded")
            _dismiss_dialogs(page)
            for name in ("raw_input_change_sensor", "default_automation_condition_sensor", "weekly_data_refresh"):
                expect(page.get_by_text(name, exact=True).first).to_be_visible()
            page.screenshot(path=str(SHOTS / "0_automation.png"))

            # 1. The asset graph, filtered to the target and its upstream.
            page.goto(f"{base}/asset-groups", wait_until="domcontentloaded")
            expect(page.get_by_text("Global asset lineage")).to_be_visible()
            _dismiss_dialogs(page)
            page.locator(".CodeMirror").first.click()
            page.get_by_label("Search and filter assets").fill(query)
            page.keyboard.press("Enter")
            expect(page.get_by_text("phase_m_exploration").first).to_be_visible()
            page.screenshot(path=str(SHOTS / "1_asset_graph.png"))

            # 2. Launch the materialization from the UI and wait for the run.
            known = {r["runId"] for r in _graphql(base, RUNS_QUERY)["runsOrError"]["results"]}
            page.locator("button").filter(has_text=re.compile(r"^\s*Materialize all\s*$")).first.click()
            run = _wait_for_new_run(base, known, RUN_TIMEOUT_S)
            page.goto(f"{base}/runs/{run['runId']}", wait_until="domcontentloaded")
            expect(page.get_by_text(re.compile("Success|Failure")).first).to_be_visible()
            page.screenshot(path=str(SHOTS / "2_run.png"))
            assert run["status"] == "SUCCESS", f"run {run['runId']} ended {run['status']}:\n{log_path.read_text()[-4000:]}"

            # 3. The check-bearing asset's checks ran and show in the UI.
            checks = _graphql(base, CHECKS_QUERY, {"path": [CHECK_ASSET]})["assetNodeOrError"]["assetChecksOrError"]["checks"]
            assert checks, f"{CHECK_ASSET} has no checks"
            for check in checks:
                status = (check["executionForLatestMaterialization"] or {}).get("status")
                # Blocking gates must pass; a success-metric target may WARN on demo data but must have run.
                expected = ("SUCCEEDED",) if check["blocking"] else ("SUCCEEDED", "FAILED")
                assert status in expected, check
            page.goto(f"{base}/assets/{CHECK_ASSET}?view=checks", wait_until="domcontentloaded")
            for check in checks:
                expect(page.get_by_text(check["name"]).first).to_be_visible()
            passed = sum((c["executionForLatestMaterialization"] or {}).get("status") == "SUCCEEDED" for c in checks)
            expect(page.get_by_text("Succeeded", exact=True)).to_have_count(passed)
            page.screenshot(path=str(SHOTS / "3_checks.png"), full_page=True)

            # 4. The plot asset's latest materialization: its PNG plots open from the metadata table.
            page.goto(f"{base}/assets/{target}", wait_until="domcontentloaded")
            _dismiss_dialogs(page)
            row = page.locator("tr").filter(has_text="[Show Markdown]").first
            row.scroll_into_view_if_needed()
            row.get_by_text("[Show Markdown]").click()
            plot = page.locator("img[src^='data:image/png']").first
            expect(plot).to_be_visible()
            assert plot.evaluate("img => img.complete && img.naturalWidth > 0"), "the plot PNG did not decode"
            page.screenshot(path=str(SHOTS / "4_plot.png"))

            # 5. The chunked tracing asset: every chunk partition materialized, shown per partition.
            stats = _graphql(base, PARTITION_STATS_QUERY, {"path": [PARTITIONED_ASSET]})["assetNodeOrError"]
            assert stats["partitionKeys"] == chunk_keys
            assert stats["partitionStats"]["numMaterialized"] == len(chunk_keys), stats
            assert stats["partitionStats"]["numFailed"] == 0, stats
            page.goto(f"{base}/assets/{PARTITIONED_ASSET}?view=partitions", wait_until="domcontentloaded")
            _dismiss_dialogs(page)
            for key in chunk_keys:
                expect(page.get_by_text(key, exact=True).first).to_be_visible()
            page.screenshot(path=str(SHOTS / "5_partitions.png"), full_page=True)
        finally:
            browser.close()
