"""Shared helpers for asset checks: gates are blocking ERROR; success metrics are WARN.

Every threshold comes from settings. A red line is ERROR (blocking) where the profile says
`red_lines_block` (full) and WARN in the demo, whose small data cannot carry research numbers.

A check that could not run (no Lean in this profile, a metric that was not computed) is never a
pass: `not_run` gives a failed WARN result whose description starts with "not run: <reason>" and
whose metadata carries `not_run=True`, so the UI and the run log say why it was not evaluated
(WARN does not block downstream assets, even on a blocking check). `gate`/`target` take
`passed=None` for the same case.
"""

from __future__ import annotations

import dagster as dg

from burnqed_assets.settings import Settings


def red_line_severity(settings: Settings) -> dg.AssetCheckSeverity:
    return dg.AssetCheckSeverity.ERROR if settings.thresholds.red_lines_block else dg.AssetCheckSeverity.WARN


NOT_RUN_PREFIX = "not run: "


def not_run(reason: str, **metadata: object) -> dg.AssetCheckResult:
    """The result of a check that could not be evaluated: failed WARN, "not run: <reason>"."""
    reason = str(reason).strip()
    if reason.lower().startswith(NOT_RUN_PREFIX):
        reason = reason[len(NOT_RUN_PREFIX):].strip()
    meta = {k: v for k, v in metadata.items() if v is not None}
    return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN,
                               description=f"{NOT_RUN_PREFIX}{reason}",
                               metadata={"not_run": True, "not_run_reason": reason, **meta})


def is_not_run(result: dg.AssetCheckResult) -> bool:
    return bool(result.description and result.description.lower().startswith(NOT_RUN_PREFIX))


def _result(passed: bool | None, severity: dg.AssetCheckSeverity, description: str,
            metadata: dict[str, object]) -> dg.AssetCheckResult:
    # A description that admits the check did not run can never come out as a pass.
    if passed is None or description.lower().startswith(NOT_RUN_PREFIX):
        return not_run(description, **metadata)
    return dg.AssetCheckResult(passed=bool(passed), severity=severity, description=description,
                               metadata=dict(metadata))


def gate(passed: bool | None, description: str, **metadata: object) -> dg.AssetCheckResult:
    """A blocking gate's result (declare the check with blocking=True); None = not run (WARN)."""
    return _result(passed, dg.AssetCheckSeverity.ERROR, description, metadata)


def target(passed: bool | None, description: str, **metadata: object) -> dg.AssetCheckResult:
    """A success-metric target (WARN when missed); None = not run."""
    return _result(passed, dg.AssetCheckSeverity.WARN, description, metadata)


def metric_check(settings: Settings, value: float | None, target_value: float, red_line: float,
                 name: str, higher_is_better: bool = True) -> dg.AssetCheckResult:
    """Success-metric check: ERROR/WARN below the red line per profile, WARN below target."""
    if value is None:
        return not_run(f"{name} was not computed (see the asset's metadata for why)")
    ok_target = value >= target_value if higher_is_better else value <= target_value
    past_red = value < red_line if higher_is_better else value > red_line
    meta = {"value": float(value), "target": target_value, "red_line": red_line, "profile": settings.profile}
    if past_red:
        return dg.AssetCheckResult(passed=False, severity=red_line_severity(settings),
                                   description=f"{name}={value:.4g} is past the red line {red_line}",
                                   metadata=meta)
    return dg.AssetCheckResult(passed=ok_target, severity=dg.AssetCheckSeverity.WARN,
                               description=f"{name}={value:.4g} (target {target_value})", metadata=meta)
