"""Progress lines for a job's log: tqdm draws only on a terminal, and a workflow job's stderr is
its log file, where a bar is silent. `ProgressLog` writes through `logging` instead, about every
`fraction` of the work (and at the end), with the rate and the time left."""

from __future__ import annotations

import logging
import math
import time
from typing import Any


def duration_text(seconds: float) -> str:
    """3 s, 4 min 05 s, 2 h 03 min."""
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class ProgressLog:
    """'<what>: 1,200/16,384 points (7 %), 2,345 points/s, 6 s left[, key value ...]' lines; with
    `total` None (an optimiser that stops on its own tolerances), a line every `every` units
    without the share and the time left."""

    def __init__(self, logger: logging.Logger | None, what: str, total: int | None, unit: str = "points",
                 fraction: float = 0.05, initial: int = 0, every: int | None = None):
        self.logger, self.what, self.unit = logger, what, unit
        self.total = None if total is None else max(int(total), 1)
        self.step = every or max(1, math.ceil((self.total or 1) * fraction))
        self.initial = self.done = int(initial)
        self.next_line = self.done + self.step
        self.logged = self.done
        self.started = time.perf_counter()

    def update(self, count: int = 1, **extra: Any) -> None:
        """Count `count` more units done; log a line when a step is passed or all are done
        (never with logger None: e.g. the ranks other than 0)."""
        self.done += int(count)
        if self.total is not None:  # counts estimated from one rank's share can overshoot
            self.done = min(self.done, self.total)
        if self.logger is None:
            return
        finished = self.total is not None and self.done >= self.total
        if self.done < self.next_line and not finished:
            return
        self._line(extra)

    def finish(self, **extra: Any) -> None:
        """The last line, unless the last update wrote it (an optimiser that stopped early)."""
        if self.logger is not None and self.done != self.logged:
            self._line(extra)

    def _line(self, extra: dict[str, Any]) -> None:
        self.logged = self.done
        self.next_line = (self.done // self.step + 1) * self.step
        elapsed = time.perf_counter() - self.started
        rate = (self.done - self.initial) / elapsed if elapsed > 0 else math.inf
        details = "".join(f", {key} {_value_text(value)}" for key, value in extra.items())
        if self.total is None:
            self.logger.info("%s: %s %s, %s %s/s, %s%s", self.what, f"{self.done:,}", self.unit,
                             _value_text(rate), self.unit, duration_text(elapsed), details)
            return
        left = (self.total - self.done) / rate if rate > 0 else math.inf
        self.logger.info("%s: %s/%s %s (%d %%), %s %s/s, %s left%s", self.what, f"{self.done:,}",
                         f"{self.total:,}", self.unit, 100 * self.done // self.total,
                         _value_text(rate), self.unit, duration_text(left), details)


def _value_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.4g}"
    return str(value)
