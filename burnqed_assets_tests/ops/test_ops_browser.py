"""A new user's first hour, in a real browser. In a fresh copy of the repository (tracked and
new files, no data, no instance, DAGSTER_HOME unset) it runs exactly the README's commands:
command 1 without its `pip install -e .` (the copy is imported through PYTHONPATH), twice (the
second must reuse every asset), then the UI command the README names, on a free port. Headless
Debian Chromium via Playwright then checks, in the UI:
  0. the README run's page and the Automation page (sensors, schedule);
  1. lineage: the global asset graph filtered to the plot asset and its upstream draws their
     nodes with the README run's materializations, and the plot asset's Lineage tab draws its
     upstream in its plan-phase group;
  2. a materialization launched from that filtered graph (*Materialize all*) succeeds;
  3. the check-bearing asset's checks ran in that UI-launched run and show on its Checks tab;
  4. the plot asset's PNG plot opens from its metadata table and decodes;
  5. the chunked tracing asset's partition view lists every chunk, each materialized, with the
     run that materialized it.
Screenshots and the README runs' wall times go to test-output/browser/.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import dagster as dg
import pytest

from burnqed_assets.paths import default_data_root
from burnqed_assets.settings import REPO_ROOT
from burnqed_assets_tests.ops.readme_path import (
    fresh_copy,
    materialize_command,
    readme_commands,
    run_in_copy,
    user_env,
)

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
SHOTS = REPO_ROOT / "test-output" / "browser"
# The asset whose plots we look for, and the check-bearing asset whose checks we look for.
PLOT_ASSET_CANDIDATES = ("exploration_report", "token_geometry")
CHECK_ASSET = "clean_pool"
# The chunked (partitioned) tracing asset: the README run materializes every chunk.
PARTITIONED_ASSET = "goedel_traced_pairs"
RUN_TIMEOUT_S = 420
# CI hook: keep the README run's data root (see keep_readme_run); the demo profile's default root.
KEEP_README_RUN_ENV = "BURNQED_KEEP_README_RUN"
README_DATA_ROOT = default_data_root("demo").relative_to(REPO_ROOT)
README_RUN_TIMEOUT_S = 2400  # the whole demo graph: ~6 min on an idle 2-core box, ~20 min under load

RUNS_QUERY = "{ runsOrError(limit: 50) { ... on Runs { results { runId status stepKeysToExecute } } } }"
ASSETS_QUERY = "{ assetNodes { assetKey { path } } }"
CHECKS_QUERY = """query($path: [String!]!) { assetNodeOrError(assetKey: {path: $path}) { ... on AssetNode {
  assetChecksOrError { ... on AssetChecks { checks { name blocking
    executionForLatestMaterialization { runId status } } } } } } }"""
PARTITIONS_QUERY = """query($path: [String!]!) { assetNodeOrError(assetKey: {path: $path}) { ... on AssetNode {
  partitionKeys partitionStats { numMaterialized numPartitions numFailed numMaterializing } } } }"""
PARTITION_RUN_QUERY = """query($path: [String!]!, $partition: String!) {
  assetNodeOrError(assetKey: {path: $path}) { ... on AssetNode {
    assetMaterializations(partitions: [$partition], limit: 1) { runId partition } } } }"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(base: str, query: str, variables: dict | None = None) -> dict:
    import httpx

    response = httpx.post(f"{base}/graphql", json={"query": query, "variables": variables or {}}, timeout=30)
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


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


def ui_selection(target: str) -> list[str]:
    """What the UI run materializes: the plot asset and its upstream, short of the chunked tracing
    asset and what feeds it (a partitioned asset in the selection turns *Materialize all* into a
    partition dialog)."""
    done = set(_upstream_closure(PARTITIONED_ASSET))
    selection = [k for k in _upstream_closure(target) if k not in done]
    assert CHECK_ASSET in selection and target in selection, selection
    return selection


def _materialize_readme(repo: Path, log_path: Path) -> float:
    command = materialize_command()
    code, took = run_in_copy(command, repo, log_path, README_RUN_TIMEOUT_S)
    assert code == 0, f"`{command}` exited {code}:\n{log_path.read_text()[-4000:]}"
    return took


@pytest.fixture(scope="module")
def dagster_ui(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: `apt-get install -y chromium` (.ci/run installs it)")
    pytest.importorskip("playwright.sync_api")
    work = tmp_path_factory.mktemp("ui")
    repo = fresh_copy(work / "repo")
    _, ui_command = readme_commands()

    # README command 1, twice: the second run must reuse every asset's output.
    SHOTS.mkdir(parents=True, exist_ok=True)
    first_s = _materialize_readme(repo, work / "readme_run_1.log")
    second_s = _materialize_readme(repo, work / "readme_run_2.log")
    second_log = (work / "readme_run_2.log").read_text()
    reused = second_log.count("reused its previous output")
    computed = re.findall(r"^    (\S+): done in", second_log, flags=re.M)
    (SHOTS / "readme_runs.json").write_text(json.dumps(
        {"command": materialize_command(), "first_s": round(first_s, 1), "second_s": round(second_s, 1),
         "second_reused_assets": reused, "second_computed_assets": computed}, indent=2))
    assert reused > 30 and not computed, f"second run recomputed {computed}:\n{second_log[-3000:]}"
    assert (repo / ".dagster_home").is_dir(), "README command 1 left no project-local instance"
    keep_readme_run(repo)

    port = _free_port()
    log_path = work / "ui.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            ["bash", "-c", f"exec {ui_command} -p {port}"], cwd=repo, env=user_env(repo),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # own process group: the teardown ends the webserver, daemon and code server
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 240
        while True:
            if proc.poll() is not None:
                pytest.fail(f"{ui_command} exited {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                if _graphql(base, ASSETS_QUERY)["assetNodes"]:
                    break
            except Exception:
                pass
            if time.time() > deadline:
                pytest.fail(f"{ui_command} did not serve the asset graph in 240 s:\n{log_path.read_text()[-4000:]}")
            time.sleep(2)
        yield base, log_path
    finally:
        _stop_group(proc)


def keep_readme_run(repo: Path) -> None:
    """Where CI asks for it ($KEEP_README_RUN_ENV), a copy of the README run's data root and the
    copy's checkout path: `.ci/run` compares its own whole-graph run with this one (same inputs,
    same numbers) instead of running the graph a third time. Copied before the UI launches more."""
    keep = os.environ.get(KEEP_README_RUN_ENV)
    if not keep:
        return
    dest = Path(keep)
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    shutil.copytree(repo / README_DATA_ROOT, dest / "data", symlinks=True)
    (dest / "checkout").write_text(str(repo), encoding="utf-8")
    (dest / "data_root").write_text(str(repo / README_DATA_ROOT), encoding="utf-8")  # where its files point


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


def _checks(base: str, asset: str) -> list[dict]:
    node = _graphql(base, CHECKS_QUERY, {"path": [asset]})["assetNodeOrError"]
    return node["assetChecksOrError"]["checks"]


def _graph_node(page, key: str):
    """An asset's node in a drawn asset graph (its title carries the key as a tooltip)."""
    return page.locator(f'[data-tooltip="{key}"]')


@pytest.mark.slow
@pytest.mark.timeout(2 * README_RUN_TIMEOUT_S + 1200)
def test_readme_run_lineage_ui_run_checks_plot_and_partitions_in_the_ui(dagster_ui):
    from playwright.sync_api import expect, sync_playwright

    base, log_path = dagster_ui
    target = _plot_asset()
    selection = ui_selection(target)
    # The README's two runs are in the instance the UI reads, both succeeded, with their checks.
    readme_runs = _graphql(base, RUNS_QUERY)["runsOrError"]["results"]
    assert len(readme_runs) == 2 and all(r["status"] == "SUCCESS" for r in readme_runs), readme_runs
    readme_ids = {r["runId"] for r in readme_runs}
    latest_readme = readme_runs[0]["runId"]  # newest first: the reusing second run
    checks = _checks(base, CHECK_ASSET)
    assert checks and all((c["executionForLatestMaterialization"] or {}).get("runId") in readme_ids
                          for c in checks), checks
    # Every chunk of the tracing asset was materialized by the README run, none failed.
    parts = _graphql(base, PARTITIONS_QUERY, {"path": [PARTITIONED_ASSET]})["assetNodeOrError"]
    chunk_keys = parts["partitionKeys"]
    assert len(chunk_keys) >= 2, parts
    assert parts["partitionStats"] == {"numMaterialized": len(chunk_keys), "numPartitions": len(chunk_keys),
                                       "numFailed": 0, "numMaterializing": 0}, parts
    chunk_runs = {key: _graphql(base, PARTITION_RUN_QUERY, {"path": [PARTITIONED_ASSET], "partition": key})
                  ["assetNodeOrError"]["assetMaterializations"][0]["runId"] for key in chunk_keys}
    assert set(chunk_runs.values()) <= readme_ids, chunk_runs
    SHOTS.mkdir(parents=True, exist_ok=True)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(60_000)
            # `expect` has its own 5 s default: the UI answers slowly on a loaded 2-core machine.
            expect.set_options(timeout=90_000)

            # 0. The README run's page, and the operations: the raw-input sensor, the automation
            # sensor and the data schedule.
            page.goto(f"{base}/runs/{latest_readme}", wait_until="domcontentloaded")
            _dismiss_dialogs(page)
            expect(page.get_by_text("Success").first).to_be_visible()
            page.screenshot(path=str(SHOTS / "0_readme_run.png"))
            page.goto(f"{base}/automation", wait_until="domcontentloaded")
            for name in ("raw_input_change_sensor", "default_automation_condition_sensor", "weekly_data_refresh"):
                expect(page.get_by_text(name, exact=True).first).to_be_visible()
            page.screenshot(path=str(SHOTS / "0_automation.png"))

            # 1. Lineage. The global graph, filtered as a user types it: every selected asset is
            # drawn as a node whose materialization links to the README run. (A selection from one
            # group draws no group box, so the node titles are what to look for.)
            page.goto(f"{base}/asset-groups", wait_until="domcontentloaded")
            expect(page.get_by_text("Global asset lineage")).to_be_visible()
            _dismiss_dialogs(page)
            page.locator(".CodeMirror").first.click()
            page.get_by_label("Search and filter assets").fill(" or ".join(f'key:"{k}"' for k in selection))
            page.keyboard.press("Enter")
            expect(page).to_have_url(re.compile(r"/asset-groups~.*" + re.escape(quote(f'key:"{target}"'))))
            for key in selection:
                expect(_graph_node(page, key)).to_have_count(1)
            expect(page.locator(f'a[href^="/runs/{latest_readme}"]').first).to_be_visible()
            page.screenshot(path=str(SHOTS / "1_asset_graph.png"))
            # The plot asset's Lineage tab: its upstream, drawn inside its plan-phase group.
            page.goto(f"{base}/assets/{target}?view=lineage&lineageScope=upstream", wait_until="domcontentloaded")
            expect(page.get_by_text("phase_m_exploration").first).to_be_visible()
            expect(_graph_node(page, CHECK_ASSET)).to_have_count(1)
            page.screenshot(path=str(SHOTS / "1_lineage_upstream.png"))

            # 2. Launch the filtered graph's materialization from the UI and wait for the run.
            page.go_back(wait_until="domcontentloaded")
            for key in selection:
                expect(_graph_node(page, key)).to_have_count(1)
            known = {r["runId"] for r in _graphql(base, RUNS_QUERY)["runsOrError"]["results"]}
            page.locator("button").filter(has_text=re.compile(r"^\s*Materialize all\s*$")).first.click()
            run = _wait_for_new_run(base, known, RUN_TIMEOUT_S)
            page.goto(f"{base}/runs/{run['runId']}", wait_until="domcontentloaded")
            expect(page.get_by_text(re.compile("Success|Failure")).first).to_be_visible()
            page.screenshot(path=str(SHOTS / "2_ui_run.png"))
            assert run["status"] == "SUCCESS", f"run {run['runId']} ended {run['status']}:\n{log_path.read_text()[-4000:]}"
            assert set(selection) <= set(run["stepKeysToExecute"] or []), run

            # 3. The check-bearing asset's checks ran in the UI-launched run and show in the UI.
            checks = _checks(base, CHECK_ASSET)
            assert checks, f"{CHECK_ASSET} has no checks"
            for check in checks:
                execution = check["executionForLatestMaterialization"] or {}
                assert execution.get("runId") == run["runId"], check
                # Blocking gates must pass; a success-metric target may WARN on demo data but must have run.
                expected = ("SUCCEEDED",) if check["blocking"] else ("SUCCEEDED", "FAILED")
                assert execution.get("status") in expected, check
            page.goto(f"{base}/assets/{CHECK_ASSET}?view=checks", wait_until="domcontentloaded")
            for check in checks:
                expect(page.get_by_text(check["name"]).first).to_be_visible()
            passed = sum(c["executionForLatestMaterialization"]["status"] == "SUCCEEDED" for c in checks)
            expect(page.get_by_text("Succeeded", exact=True)).to_have_count(passed)
            page.screenshot(path=str(SHOTS / "3_checks.png"), full_page=True)

            # 4. The plot asset's latest materialization: its PNG plots open from the metadata table.
            page.goto(f"{base}/assets/{target}", wait_until="domcontentloaded")
            row = page.locator("tr").filter(has_text="[Show Markdown]").first
            row.scroll_into_view_if_needed()
            row.get_by_text("[Show Markdown]").click()
            plot = page.locator("img[src^='data:image/png']").first
            expect(plot).to_be_visible()
            assert plot.evaluate("img => img.complete && img.naturalWidth > 100"), "the plot PNG did not decode"
            page.wait_for_timeout(500)  # the dialog fades in
            page.screenshot(path=str(SHOTS / "4_plot.png"))

            # 5. The chunked tracing asset: every chunk listed, each materialized, with its run.
            page.goto(f"{base}/assets/{PARTITIONED_ASSET}?view=partitions", wait_until="domcontentloaded")
            n = len(chunk_keys)
            for status, count in (("Materialized", n), ("Failed", 0), ("Missing", 0), ("Materializing", 0)):
                expect(page.get_by_text(f"{status} ({count})", exact=True)).to_be_visible()
            for key in chunk_keys:
                page.get_by_text(key, exact=True).first.click()
                expect(page).to_have_url(re.compile(rf"[?&]partition={re.escape(key)}(&|$)"))
                # The partition's panel: its status and a link to the run that materialized it.
                expect(page.get_by_text("Materialized", exact=True)).to_have_count(1)
                run_link = page.locator(f'a[href^="/runs/{chunk_runs[key]}"]')
                expect(run_link.get_by_text(chunk_runs[key][:8], exact=True)).to_be_visible()
                page.screenshot(path=str(SHOTS / f"5_partition_{key}.png"), full_page=True)
        finally:
            browser.close()
