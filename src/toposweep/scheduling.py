"""Choosing how each work unit of a landscape is evaluated: the per-point loop, or vmap over
chunks of points, and the chunk size (toposweep.evaluation runs the units).

`Scheduler` picks the (method, chunk) of each unit from timings of the units before it: a probe
on the first units (the per-point loop, then vmap at chunks 2, 4, 8, ... while it gets faster and
memory allows; medians of several timings each), then, during the sweep, occasional units with
the alternatives (the other method, half and double the chunk), switching when one is faster
over a window of units. `MemoryGauge` measures what a chunk costs in memory.
"""

from __future__ import annotations

import math
import resource
import statistics
from collections import deque
from typing import Any, Sequence

import torch

METHODS = ("auto", "vmap", "loop")
MAX_CHUNK = 16384  # the largest chunk (and auto work unit) tried; memory usually caps it first

Choice = tuple[str, int]  # ("loop", 1) or ("vmap", chunk)
LOOP: Choice = ("loop", 1)


def choice_key(choice: Choice) -> str:
    return "loop" if choice[0] == "loop" else f"vmap/{choice[1]}"


def aligned_chunk(begin: int, end: int, n_points: int, want: int) -> int:
    """The largest chunk <= `want` whose chunks of [begin, end) start at multiples of it (and
    that ends at a multiple of it or at the last point), so the unit's losses equal a run's with
    that chunk fixed; at most the unit's length rounded up to a power of two."""
    chunk = min(want, 1 << max(end - begin - 1, 0).bit_length())
    while chunk > 1 and (begin % chunk or (end % chunk and end != n_points)):
        chunk //= 2
    return max(chunk, 1)


# --- memory -----------------------------------------------------------------------------------
def _status_mb(field: str) -> float | None:
    """A memory line of /proc/self/status (VmRSS, VmHWM) in MiB; None where there is none."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset the process's peak resident size (Linux >= 4.0), so the next peak is a chunk's."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


class MemoryGauge:
    """The memory high-water mark of a unit's chunks, measured (CUDA: peak allocated; CPU: the
    peak resident size, reset before the unit where Linux allows, else the process's: an upper
    bound), and whether a larger chunk fits `budget_mb` (linear in the chunk)."""

    def __init__(self, device: torch.device, budget_mb: float):
        self.device, self.budget_mb = device, budget_mb
        self.base_mb, self.per_point_mb, self.measured_chunk = 0.0, 0.0, 0

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base_mb = torch.cuda.memory_allocated(self.device) / 2**20
        else:
            _reset_peak_rss()
            self.base_mb = _status_mb("VmRSS") or 0.0

    def stop(self, chunk: int) -> None:
        """After a unit of `chunk`-point calls: the memory per point of the largest chunk."""
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            peak = _status_mb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if chunk >= self.measured_chunk:
            self.per_point_mb = max(peak - self.base_mb, 0.0) / chunk
            self.measured_chunk = chunk

    def allows(self, chunk: int) -> bool:
        """Whether `chunk` points fit the budget, extrapolated linearly from the largest
        measured chunk (an upper bound on CPU, where the peak may be older than the chunk)."""
        return self.base_mb + chunk * self.per_point_mb <= self.budget_mb

    def largest(self, limit: int) -> int:
        """The largest power-of-two chunk <= limit that fits the budget (at least 1)."""
        chunk = 1 << max(limit, 1).bit_length() - 1
        while chunk > 1 and not self.allows(chunk):
            chunk //= 2
        return chunk


# --- choosing (method, chunk) per unit --------------------------------------------------------
class Scheduler:
    """The (method, chunk) of each work unit, from the timings of the units before it.

    Probe (`growing`): the loop on the first unit (median of its per-point timings), then vmap at
    chunks 2, 4, 8, ..., one unit each (the unit four chunks long: a median of four timings), while
    a chunk beats the best so far or is still clearly faster than the chunk before (`_grow`), up
    to what the memory budget allows; where a doubling still gains 25 %, the grid's last unit is
    one chunk. Then (`steady`) the best choice runs, and an alternative (the other method, half
    or double the chunk) gets a unit whenever that keeps the time spent on alternatives under
    `explore` of the total; the scheduler switches to an alternative whose median rate over its
    last `window` units is `hysteresis` below the current one's (so noise does not flip it).
    """

    def __init__(self, methods: Sequence[str] = ("loop", "vmap"), memory: MemoryGauge | None = None,
                 max_chunk: int = MAX_CHUNK, explore: float = 0.1, window: int = 5,
                 hysteresis: float = 0.1):
        self.methods, self.memory, self.max_chunk = tuple(methods), memory, max_chunk
        self.explore, self.window, self.hysteresis = explore, window, hysteresis
        self.rates: dict[Choice, deque] = {}
        self.spent: dict[Choice, float] = {}
        self.total = 0.0
        self.growing = "vmap" in self.methods
        self.next_chunk, self.misses, self.limit = 2, 0, max_chunk
        self.previous_rate, self.gain = math.inf, 1.0  # the last probe unit's rate, and its ratio
        self.n_points, self.probed = 0, 0  # the landscape's points, and the probe's so far
        self.current: Choice | None = None if "loop" in self.methods else ("vmap", 2)
        self.last: Choice | None = None

    @property
    def probing(self) -> bool:
        """Still on the first units: measuring the loop, or growing the vmap chunk."""
        return self.growing or ("loop" in self.methods and LOOP not in self.rates)

    def rate(self, choice: Choice) -> float:
        """Median seconds per point over the choice's last units (inf when never run)."""
        samples = self.rates.get(choice)
        return statistics.median(samples) if samples else math.inf

    def next(self, begin: int, end: int, n_points: int) -> Choice:
        """The (method, chunk) for unit [begin, end) of n_points."""
        self.n_points = n_points
        if "loop" in self.methods and LOOP not in self.rates:
            choice = LOOP
        elif self.growing:
            # the grid's last unit, the chunk still paying off (a call's overhead dominates):
            # the rest in one chunk, as far as memory allows
            last = self.limit if self.memory is None else self.memory.largest(self.limit)
            want = last if end == n_points and self.gain <= 0.75 else self.next_chunk
            choice = ("vmap", want)
        else:
            choice = self._steady_choice(end - begin)
        if choice[0] == "vmap":
            choice = ("vmap", aligned_chunk(begin, end, n_points, min(choice[1], self.limit)))
        return choice

    def _steady_choice(self, points: int) -> Choice:
        current = self.current or LOOP
        spent = sum(self.spent.values())
        for other in sorted(self.alternatives(), key=lambda c: self.spent.get(c, 0.0)):
            rate = self.rate(other) if other in self.rates else self.rate(current)
            cost = points * rate
            if other != self.last and spent + cost <= self.explore * (self.total + cost):
                return other
        return current

    def alternatives(self) -> list[Choice]:
        """The choices worth trying against the current one."""
        current, out = self.current or LOOP, []
        if current[0] == "vmap":
            if "loop" in self.methods:
                out.append(LOOP)
            if current[1] >= 4:
                out.append(("vmap", current[1] // 2))
            double = current[1] * 2
            if double <= self.limit and (self.memory is None or self.memory.allows(double)):
                out.append(("vmap", double))
        elif "vmap" in self.methods:  # the best vmap chunk so far, and double it (the probe
            tried = [c for c in self.rates if c[0] == "vmap"]  # may have stopped on noise)
            best = min(tried, key=self.rate) if tried else ("vmap", 2)
            out.append(best)
            double = 2 * best[1]
            if tried and double <= self.limit and (self.memory is None or self.memory.allows(double)):
                out.append(("vmap", double))
        return out

    def record(self, choice: Choice, points: int, seconds: float, rate: float) -> None:
        """A finished unit: its choice, points, seconds and median seconds per point."""
        self.total += seconds
        self.rates.setdefault(choice, deque(maxlen=self.window)).append(rate)
        if self.growing and choice[0] == "vmap" or choice == LOOP and self.current is None:
            self._grow(choice, points, rate)
            return
        if choice != self.current:
            self.spent[choice] = self.spent.get(choice, 0.0) + seconds
        self.last = choice
        self._maybe_switch()

    def _grow(self, choice: Choice, points: int, rate: float) -> None:
        """After a probe unit: keep growing the chunk while vmap beats the best so far, or is
        still getting clearly faster with the chunk (small chunks can be slower than the loop);
        stop at a chunk that is neither, twice in a row within the noise, or once when it is
        clearly slower than the best, or when double the chunk would not fit in memory."""
        best = self.current
        previous = self.previous_rate
        self.probed += points
        # a chunk slower than the best is followed up only where the next unit (twice as long)
        # is at most 1/16 of the points left: on a small grid the probe costs little
        room = 32 * points <= self.n_points - self.probed
        if best is None or rate < self.rate(best) * 0.98:
            self.current, self.misses, best = choice, 0, choice
        elif not (rate < 0.9 * previous and rate < 3 * self.rate(best) and room):
            self.misses += 1 if rate <= 1.05 * self.rate(best) and room else 2
        self.last = choice
        if choice[0] != "vmap":
            return
        self.gain = rate / previous if math.isfinite(previous) else 1.0
        self.previous_rate = rate
        double = 2 * max(choice[1], self.next_chunk)
        if self.memory is not None and not self.memory.allows(double):
            self.limit, self.growing = max(choice[1], self.next_chunk), False
        if self.misses >= 2 or double > self.max_chunk:
            self.growing = False
        self.next_chunk = double

    def _maybe_switch(self) -> None:
        current = self.current
        if current is None or len(self.rates.get(current, ())) < 2:
            return
        for other in self.alternatives():
            if len(self.rates.get(other, ())) >= 2 and \
                    self.rate(other) < self.rate(current) * (1 - self.hysteresis):
                self.current = other
                return

    def state(self) -> dict[str, Any]:
        """What another rank (or a resumed run) needs to go on from here (JSON)."""
        return {"rates": [[list(c), list(r)] for c, r in self.rates.items()],
                "current": list(self.current) if self.current else None,
                "growing": self.growing, "next_chunk": self.next_chunk, "misses": self.misses,
                "limit": self.limit, "previous_rate": self.previous_rate, "gain": self.gain,
                "probed": self.probed, "methods": list(self.methods),
                "memory": [self.memory.per_point_mb, self.memory.measured_chunk] if self.memory else None}

    def restore(self, state: dict[str, Any]) -> "Scheduler":
        self.rates = {tuple(c): deque(r, maxlen=self.window) for c, r in state["rates"]}
        self.current = tuple(state["current"]) if state["current"] else None
        self.growing, self.next_chunk = state["growing"], state["next_chunk"]
        self.misses, self.limit = state["misses"], state["limit"]
        self.previous_rate, self.gain = state.get("previous_rate", math.inf), state.get("gain", 1.0)
        self.probed = state.get("probed", 0)
        if self.memory is not None and state.get("memory"):
            self.memory.per_point_mb, self.memory.measured_chunk = state["memory"]
        return self


class FixedChoice:
    """A scheduler that always gives one (method, chunk): `method: loop`, or vmap with a chunk."""

    probing = growing = False

    def __init__(self, choice: Choice):
        self.current = choice

    def next(self, begin: int, end: int, n_points: int) -> Choice:
        return self.current

    def record(self, *args) -> None:
        return None

    def state(self) -> dict[str, Any]:
        return {"current": list(self.current)}


def make_scheduler(method: str, chunk_size: int | None, memory: MemoryGauge | None):
    """FixedChoice for `loop` or vmap with a chunk, else an adaptive Scheduler (auto: both
    methods; vmap without a chunk: vmap's chunk only)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "loop":
        return FixedChoice(LOOP)
    if method == "vmap" and chunk_size:
        return FixedChoice(("vmap", int(chunk_size)))
    return Scheduler(("loop", "vmap") if method == "auto" else ("vmap",), memory)
