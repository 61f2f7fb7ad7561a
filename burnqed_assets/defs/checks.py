"""Shared helpers for asset checks: gates are blocking ERROR; success metrics are WARN.

Every threshold comes from settings. A red line is ERROR (blocking) where the profile says
`red_lines_block` (full) and WARN in the demo, whose small data cannot carry research numbers.
"""

from __future__ import annotations

import dagster as dg

from burnqed_assets.settings import Settings


def red_line_severity(settings: Settings) -> dg.AssetCheckSeverity:
    return dg.AssetCheckSeverity.ERROR if settings.thresholds.red_lines_block else dg.AssetCheckSeverity.WARN


def gate(passed: bool, description: str, **metadata: object) -> dg.AssetCheckResult:
    """A blocking gate's result (declare the check with blocking=True)."""
    return dg.AssetCheckResult(passed=bool(passed), severity=dg.AssetCheckSeverity.ERROR,
                               description=description, metadata=dict(metadata))


def target(passed: bool, description: str, **metadata: object) -> dg.AssetCheckResult:
    """A success-metric target (WARN when missed)."""
    return dg.AssetCheckResult(passed=bool(passed), severity=dg.AssetCheckSeverity.WARN,
                               description=description, metadata=dict(metadata))


def metric_check(settings: Settings, value: float | None, target_value: float, red_line: float,
                 name: str, higher_is_better: bool = True) -> dg.AssetCheckResult:
    """Success-metric check: ERROR/WARN below the red line per profile, WARN below target."""
    if value is None:
        return target(False, f"{name} not available", value=None)
    ok_target = value >= target_value if higher_is_better else value <= target_value
    past_red = value < red_line if higher_is_better else value > red_line
    meta = {"value": float(value), "target": target_value, "red_line": red_line, "profile": settings.profile}
    if past_red:
        return dg.AssetCheckResult(passed=False, severity=red_line_severity(settings),
                                   description=f"{name}={value:.4g} is past the red line {red_line}",
                                   metadata=meta)
    return dg.AssetCheckResult(passed=ok_target, severity=dg.AssetCheckSeverity.WARN,
                               description=f"{name}={value:.4g} (target {target_value})", metadata=meta)
