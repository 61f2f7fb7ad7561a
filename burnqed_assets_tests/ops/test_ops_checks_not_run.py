"""A check that could not run says so: failed WARN with "not run: <reason>", never a pass."""

from __future__ import annotations

import dagster as dg
import pytest

from burnqed_assets.defs.checks import gate, is_not_run, metric_check, not_run, target
from burnqed_assets.settings import get_settings


def _assert_not_run(result: dg.AssetCheckResult, reason_part: str) -> None:
    assert result.passed is False
    assert result.severity == dg.AssetCheckSeverity.WARN  # never blocks, never ERROR
    assert result.description.startswith("not run: ") and reason_part in result.description
    assert result.metadata["not_run"].value is True and is_not_run(result)


def test_not_run_is_a_failed_warning_with_the_reason():
    r = not_run("not run: replay backend (no Lean)", backend="replay")
    _assert_not_run(r, "replay backend")
    assert r.description.count("not run") == 1  # the prefix is not doubled
    assert r.metadata["backend"].value == "replay"


@pytest.mark.parametrize("helper", [gate, target])
def test_gate_and_target_cannot_pass_a_check_that_did_not_run(helper):
    _assert_not_run(helper(None, "no data for this metric"), "no data")
    # Even a caller that says passed=True cannot turn "not run" into a pass.
    _assert_not_run(helper(True, "Not run: backend offline"), "backend offline")
    ran = helper(True, "3/3 statements compile")
    assert ran.passed and not is_not_run(ran)


def test_metric_missing_is_not_run_not_a_miss():
    s = get_settings("demo")
    _assert_not_run(metric_check(s, None, 0.5, 0.0, "centroid_l2"), "centroid_l2")
    assert metric_check(s, 0.7, 0.5, 0.0, "centroid_l2").passed
