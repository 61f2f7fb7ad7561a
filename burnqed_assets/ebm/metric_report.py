"""`MetricReport`: metric values under the plan's names, with the reason for each missing one.

Its own module so that the plots (reports/embedding_plots.py) can take a report without
importing the metric computations that call them (no import circle).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class MetricReport:
    """Values under the plan's names (None when not available, with the reason)."""

    values: dict[str, float | int | None] = field(default_factory=dict)
    not_available: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    details: dict[str, object] = field(default_factory=dict)  # arrays for plots, not serialised

    def set(self, name: str, value: float | None, reason: str = "") -> None:
        if value is None or (isinstance(value, float) and not np.isfinite(value)):
            self.values[name] = None
            self.not_available[name] = reason or "not computable"
        else:
            self.values[name] = float(value) if isinstance(value, (float, np.floating)) else int(value)

    def to_json(self, **extra: object) -> dict[str, object]:
        return {**self.values, "not_available": dict(self.not_available), "counts": dict(self.counts), **extra}
