""".ci/run stays in sync with the README and fails on 'no tests' (pytest exit 5)."""

import re
import subprocess

from burnqed_assets.settings import REPO_ROOT

CI = REPO_ROOT / ".ci" / "run"
README = REPO_ROOT / "README.md"


def _readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip().startswith("pip install")]


def test_ci_runs_the_readme_test_command_and_demo_materialization():
    script = CI.read_text()
    commands = _readme_commands()
    test_commands = [c for c in commands if "pytest" in c]
    assert test_commands, "README has no `pip install ... && python -m pytest` command"
    for command in test_commands:
        assert re.search(rf"^{re.escape(command)}$", script, flags=re.M), f".ci/run does not run `{command}`"
    materialize = [c.split("&&", 1)[1].strip() for c in commands if "pytest" not in c and "&&" in c]
    assert materialize, "README has no `pip install -e . && <materialize the demo graph>` command"
    for command in materialize:
        assert re.search(rf"^{re.escape(command)}$", script, flags=re.M), f".ci/run does not run `{command}`"


def test_ci_runs_the_tests_against_a_local_ray_head_and_stops_it():
    script = CI.read_text()
    start = re.search(r"^.*ray start --head --block --node-ip-address=127\.0\.0\.1.*$", script, flags=re.M)
    assert start and "--num-cpus=2" in start.group(0)
    assert 'export RAY_ADDRESS="127.0.0.1:$ray_port"' in script
    assert script.index("export RAY_ADDRESS") < script.index("python -m pytest")
    cleanup = script[script.index("cleanup() {"):script.index("trap cleanup EXIT")]
    assert 'kill "$ray_pid"' in cleanup


def test_ci_script_is_strict_and_treats_no_tests_as_failure():
    script = CI.read_text()
    assert script.startswith("#!/usr/bin/env bash")
    assert "set -euo pipefail" in script
    assert "export CI=true" in script
    assert re.search(r'"\$rc" -eq 5 \]; then.*?exit 1', script, flags=re.S), "pytest exit 5 must fail CI"
    assert subprocess.run(["bash", "-n", str(CI)], capture_output=True).returncode == 0


def test_ci_compares_its_run_with_the_browser_tests_readme_run():
    """The re-run comparison reuses the browser test's README run: CI must name the same hook the
    test reads, before the tests run, and compare against what the test leaves there."""
    from burnqed_assets_tests.ops.test_ops_browser import KEEP_README_RUN_ENV

    script = CI.read_text()
    export = f'export {KEEP_README_RUN_ENV}="$work/readme_run"'
    assert export in script and script.index(export) < script.index("python -m pytest")
    compare = script[script.index(f'if [ -d "${KEEP_README_RUN_ENV}/data" ]'):]
    assert f'rerun_compare "${KEEP_README_RUN_ENV}/data" "$BURNQED_DATA_ROOT"' in compare
    assert f'--alias "$(cat "${KEEP_README_RUN_ENV}/data_root")=$BURNQED_DATA_ROOT"' in compare
    assert f'--alias "$(cat "${KEEP_README_RUN_ENV}/checkout")=$PWD"' in compare


def test_browser_test_keeps_the_readme_run_where_ci_asks(tmp_path, monkeypatch):
    from burnqed_assets_tests.ops import test_ops_browser as browser

    repo = tmp_path / "copy"
    (repo / browser.README_DATA_ROOT / "evals").mkdir(parents=True)
    (repo / browser.README_DATA_ROOT / "evals" / "m.json").write_text("{}")
    monkeypatch.setenv(browser.KEEP_README_RUN_ENV, str(tmp_path / "kept"))
    browser.keep_readme_run(repo)
    assert (tmp_path / "kept" / "data" / "evals" / "m.json").read_text() == "{}"
    assert (tmp_path / "kept" / "checkout").read_text() == str(repo)
    assert (tmp_path / "kept" / "data_root").read_text() == str(repo / browser.README_DATA_ROOT)
    monkeypatch.delenv(browser.KEEP_README_RUN_ENV)
    browser.keep_readme_run(tmp_path / "elsewhere")  # without the hook it does nothing
