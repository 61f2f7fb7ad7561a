"""Quiet by default: a line per step and check, no framework DEBUG events, no warnings we cause,
and a missing input fails its step with a dagster.Failure carrying the actionable text."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import dagster as dg
import pytest

from burnqed_assets.resources import BurnqedConfig
from burnqed_assets.settings import REPO_ROOT
from burnqed_assets_tests.ops.readme_path import fresh_copy, materialize_command, run_in_copy


def test_missing_input_fails_with_a_dagster_failure_naming_the_fix(tmp_path):
    import burnqed_assets.definitions  # noqa: F401  (wraps every asset's compute function)
    from burnqed_assets.defs.migration import goedel_source_proofs as asset

    result = dg.materialize([asset], raise_on_error=False,
                            resources={"burnqed": BurnqedConfig(profile="full", data_root=str(tmp_path))})
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data
    assert failure.user_failure_data is not None, "a dagster.Failure, not a crash with a stack trace"
    text = failure.user_failure_data.description
    assert "missing input" in text and "Lean-workbook-proofs" in text and "obtain it" in text
    assert failure.user_failure_data.metadata["error"].value == "MissingInputError"


def _launch(tmp_path, selection: str, data_root, *extra: str) -> subprocess.CompletedProcess:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    shutil.copy(REPO_ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "BURNQED_DATA_ROOT": str(data_root),
           "PYTHONPATH": str(REPO_ROOT), "BURNQED_PROFILE": "demo"}
    env.pop("BURNQED_EXECUTOR", None)
    dg_cli = shutil.which("dg") or pytest.skip("dg (dagster-dg-cli) is not installed: pip install -e .")
    return subprocess.run([dg_cli, "launch", "--assets", selection, *extra], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)


@pytest.mark.timeout(900)
def test_dg_launch_prints_a_line_per_step_and_check_and_no_debug_or_warnings(tmp_path):
    # Two unpartitioned assets with checks (the chunked Phase M assets need --partition-range).
    run = _launch(tmp_path, "goedel_source_proofs,minif2f_v1", tmp_path / "data")
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    steps = re.findall(r"^\[\s*(\d+)/(\d+)\] (\S+)$", out, flags=re.M)  # one line per step, numbered
    total = steps[0][1] if steps else "?"
    assert [(int(i), t) for i, t, _ in steps] == [(i, total) for i in range(1, int(total) + 1)], out
    assert {"goedel_source_proofs", "minif2f_v1"} <= {name for *_, name in steps}, out
    assert f"finished {total} steps" in out
    assert "check goedel_source_rows_readable passed" in out
    assert " - DEBUG - " not in out and "STEP_START" not in out  # framework events stay in the event log
    assert "Warning" not in out, out  # SupersessionWarning, BetaWarning, FutureWarning: none
    assert len(out.splitlines()) < 20


@pytest.mark.timeout(900)
def test_failed_step_shows_the_actionable_text_and_not_the_domain_traceback(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    (root / ".burnqed_profile.json").write_text('{"profile": "full"}\n')
    # No run config: the run's console is burnqed_console all the same (run_log.use_quiet_console).
    run = _launch(tmp_path, "goedel_source_proofs", root)
    out = run.stdout + run.stderr
    assert run.returncode != 0
    assert out.count("profiles never share a data root") == 1, out  # once, not per STEP/RUN_FAILURE
    assert "goedel_source_proofs: FAILED" in out
    assert "Stack Trace" not in out and "Traceback" not in out and "ProfileMismatchError" not in out, out


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_readme_command_prints_each_failure_once_without_a_stack(tmp_path):
    """README command 1 in a fresh copy (DAGSTER_HOME unset, ./dagster.yaml), on the `full` profile
    with none of its inputs: no Lean project, model or data set. That is the range-partitioned
    `materialize_all` run on the multiprocess executor, whose run config Dagster leaves empty."""
    repo = fresh_copy(tmp_path / "repo")
    log = tmp_path / "readme_full.log"
    code, _ = run_in_copy(materialize_command(), repo, log, 600, BURNQED_PROFILE="full")
    out = log.read_text()
    assert code != 0, out
    failures = re.findall(r"^    (\S+): FAILED\n((?:      .*\n)+)", out, flags=re.M)
    failed = {step for step, _ in failures}
    assert {"goedel_source_proofs", "base_model", "lean_github_pairs"} <= failed, out
    for step, text in failures:
        # The actionable text, once: not again on the run's failure, not with a stack.
        assert "obtain it" in text or "does not exist" in text, (step, text)
        distinctive = max((line.strip() for line in text.splitlines()), key=len)  # path or fix
        assert out.count(distinctive) == 1, (step, distinctive, out)
    assert "Lean-workbook-proofs" in out and "obtain it" in out
    assert "Stack Trace" not in out and "Traceback" not in out and 'File "' not in out, out
    # Dagster's ERROR per left-out downstream step becomes one count on the run's line.
    assert "Not executing" not in out
    run_line = re.search(r"^run failed: .*Steps failed: .*\((\d+) downstream steps? not run\)$", out, flags=re.M)
    assert run_line and int(run_line.group(1)) > 20, out
    assert "Warning" not in out, out  # e.g. a beta warning from each step process
    assert len(out.splitlines()) < 20 + 4 * len(failures), out


def test_progress_meter_prints_tqdm_lines_at_most_every_interval():
    from burnqed_assets.progress import ProgressMeter

    now = [0.0]
    said: list[str] = []
    meter = ProgressMeter(said.append, 300, "sft", unit="step", min_interval_s=10.0, clock=lambda: now[0])
    for step in range(1, 301):
        now[0] = step * 0.5  # 2 steps/s: 150 s in all
        meter.update(step, loss=1.0 / step)
    assert 14 <= len(said) <= 17  # first, then one per 10 s, then the last
    assert said[0].startswith("sft:") and "1/300" in said[0]
    assert "300/300" in said[-1] and "100%" in said[-1] and "step/s" in said[-1] and "loss=" in said[-1]
    assert meter.update(300, force=True)  # forced (an eval line) always prints
