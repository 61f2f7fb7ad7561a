"""tqdm-style progress lines for long loops inside a step (training, search), as log lines.

Steps report progress through logging (Dagster captures it into the run's event log and the
console), so a live tqdm bar would garble both. `ProgressMeter` keeps tqdm's format
(`sft  40%|####      | 120/300 [01:02<01:33, 1.92it/s, loss=1.17]`) and emits a line at most
every `min_interval_s` seconds, plus the first and the last.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tqdm import tqdm


class ProgressMeter:
    def __init__(self, say: Callable[[str], None], total: int | None, desc: str, unit: str = "it",
                 min_interval_s: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.say, self.total, self.desc, self.unit = say, total, desc, unit
        self.min_interval_s, self.clock = min_interval_s, clock
        self.started = clock()
        self.last_said: float | None = None

    def line(self, n: int, **postfix: object) -> str:
        post = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in postfix.items())
        return tqdm.format_meter(n, self.total, self.clock() - self.started, prefix=self.desc, unit=self.unit,
                                 postfix=post or None, ascii=True, ncols=100)

    def update(self, n: int, force: bool = False, **postfix: object) -> bool:
        """Say the line for `n` done when due (first call, interval passed, last item, or forced)."""
        now = self.clock()
        last = self.total is not None and n >= self.total
        if not (force or last or self.last_said is None or now - self.last_said >= self.min_interval_s):
            return False
        self.last_said = now
        self.say(self.line(n, **postfix))
        return True
