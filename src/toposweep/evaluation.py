"""Batched loss evaluation at many points of a parameter subspace, and the adaptive choice of
how (per-point loop, or vmap over chunks of points, and the chunk size).

A point's flattened parameters are theta + sum_i c_i d_i, computed element by element (so a
point's parameters have the same bits whatever batch they are computed in); the loss is then the
problem's pure loss, once per point (`loop`) or `torch.func.vmap`ped over a chunk (`vmap`).

The points are split into work units (`auto_units`, `fixed_units`). Every unit is evaluated
with one (method, chunk), and its chunks start at multiples of the chunk size, so its losses are
bit-identical to those of a run with that (method, chunk) fixed for the whole landscape.
`Scheduler` picks the (method, chunk) of each unit from timings of the units before it:
a probe on the first units (the per-point loop, then vmap at chunks 2, 4, 8, ... while it gets
faster and memory allows; medians of several timings each), then, during the sweep, occasional
units with the alternatives (the other method, half and double the chunk), switching when one
is faster over a window of units. Every unit's (method, chunk) is recorded.
"""

from __future__ import annotations

import math
import resource
import statistics
import time
from collections import deque
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.func import vmap

from .parameters import flatten, unflatten

METHODS = ("auto", "vmap", "loop")
MAX_WORK_UNITS = 1000
MAX_CHUNK = 16384  # the largest chunk (and auto work unit) tried; memory usually caps it first
FIRST_UNIT = 8  # the first auto unit: 8 per-point timings of the loop
LOOP_BLOCK = 64  # rows mixed at once by the loop (mixing is elementwise: no effect on the bits)

Choice = tuple[str, int]  # ("loop", 1) or ("vmap", chunk)
LOOP: Choice = ("loop", 1)


def choice_key(choice: Choice) -> str:
    return "loop" if choice[0] == "loop" else f"vmap/{choice[1]}"


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a clock read after it times the work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --- evaluation -------------------------------------------------------------------------------
class PointEvaluator:
    """Evaluates loss(theta + sum_i c_i d_i) for batches of coefficient rows c."""

    def __init__(self, loss_fn, params: dict[str, torch.Tensor], directions: list[dict]):
        self.loss_fn = loss_fn
        self.like = params
        names = list(params)
        for index, direction in enumerate(directions):
            for name in names:
                if direction[name].shape != params[name].shape:
                    raise ValueError(
                        f"direction {index}: {name} has shape {tuple(direction[name].shape)}, "
                        f"the model's is {tuple(params[name].shape)}"
                    )
        self.theta = flatten(params, names)
        self.matrix = torch.stack([flatten(d, names).to(self.theta) for d in directions])
        self.batched_loss = vmap(loss_fn)
        self.mode = torch.inference_mode  # no autograd bookkeeping at all (8 % on a small MLP)

    @property
    def device(self) -> torch.device:
        return self.theta.device

    def mix(self, rows: np.ndarray) -> torch.Tensor:
        """theta + sum_i rows[:, i] d_i, one elementwise product and sum after another, so each
        point's parameters have the same bits in any batch (a matmul's blocking would not)."""
        coefficients = torch.as_tensor(rows).to(self.theta)
        flat = self.theta + coefficients[:, :1] * self.matrix[0]
        for index in range(1, len(self.matrix)):
            flat += coefficients[:, index : index + 1] * self.matrix[index]
        return flat

    def __call__(self, coefficients: np.ndarray, method: str, chunk_size: int,
                 timings: list[tuple[float, int]] | None = None) -> np.ndarray:
        """Losses (float64) of the rows of `coefficients`, `chunk_size` points per vmap call
        (the loop evaluates one point at a time; its chunk size does not matter). With
        `timings`, appends (seconds, points) of every chunk (loop: every point), timed after the
        device finished."""
        if method not in ("vmap", "loop"):
            raise ValueError(f"method must be 'vmap' or 'loop', got {method!r}")
        out = np.empty(len(coefficients), dtype=np.float64)
        step = chunk_size if method == "vmap" else LOOP_BLOCK
        for begin in range(0, len(coefficients), step):
            rows = coefficients[begin : begin + step]
            try:
                with self.mode():
                    values = self._evaluate(rows, method, timings)
            except RuntimeError as error:  # a loss that cannot run under inference mode
                if self.mode is torch.no_grad or "nference" not in str(error):
                    raise
                self.mode = torch.no_grad  # the same kernels: the same bits
                with self.mode():
                    values = self._evaluate(rows, method, timings)
            out[begin : begin + len(rows)] = values
        return out

    def _evaluate(self, rows: np.ndarray, method: str, timings: list | None):
        if method == "vmap":
            return self._batched(rows, timings)
        return [self._single(row, timings) for row in rows]

    def _batched(self, rows: np.ndarray, timings: list | None) -> np.ndarray:
        start = time.perf_counter()
        losses = self.batched_loss(unflatten(self.mix(rows), self.like)).double().cpu().numpy()
        if timings is not None:
            synchronize(self.device)
            timings.append((time.perf_counter() - start, len(rows)))
        return losses

    def _single(self, row: np.ndarray, timings: list | None) -> float:
        start = time.perf_counter()
        loss = float(self.loss_fn(unflatten(self.mix(row[None])[0], self.like)))
        if timings is not None:
            timings.append((time.perf_counter() - start, 1))
        return loss


def aligned_chunk(begin: int, end: int, n_points: int, want: int) -> int:
    """The largest chunk <= `want` whose chunks of [begin, end) start at multiples of it (and
    that ends at a multiple of it or at the last point), so the unit's losses equal a run's with
    that chunk fixed; at most the unit's length rounded up to a power of two."""
    chunk = min(want, 1 << max(end - begin - 1, 0).bit_length())
    while chunk > 1 and (begin % chunk or (end % chunk and end != n_points)):
        chunk //= 2
    return max(chunk, 1)


# --- work units -------------------------------------------------------------------------------
def fixed_units(n_points: int, chunk_size: int) -> list[tuple[int, int]]:
    """Fixed [begin, end) ranges of at most MAX_WORK_UNITS units, each a multiple of the chunk,
    so results do not depend on how many ranks share them."""
    unit = max(chunk_size, math.ceil(n_points / MAX_WORK_UNITS))
    unit = math.ceil(unit / chunk_size) * chunk_size
    return [(b, min(b + unit, n_points)) for b in range(0, n_points, unit)]


def doubling_unit(index: int, n_points: int) -> tuple[int, int]:
    """Unit `index` of the auto layout's doubling start: [0, 8), [8, 16), [16, 32), ..."""
    begin = 0 if index == 0 else FIRST_UNIT << (index - 1)
    return begin, min(max(2 * begin, FIRST_UNIT), n_points)


def auto_units(n_points: int, probe_end: int, unit: int) -> list[tuple[int, int]]:
    """The auto layout: doubling units [0, 8), [8, 16), ... up to max(probe_end, unit) (the
    probe's units; each starts at a multiple of its length), then units of `unit` points (a
    power of two). Every unit starts at a multiple of any chunk it may use."""
    units, index = [], 0
    while not units or (units[-1][1] < n_points and units[-1][1] < max(probe_end, unit)):
        units.append(doubling_unit(index, n_points))
        index += 1
    start = units[-1][1]
    return units + [(b, min(b + unit, n_points)) for b in range(start, n_points, unit)]


def bulk_unit_size(n_points: int, probe_end: int, chunk: int, ranks: int = 1) -> int:
    """Points per unit after the probe: room for four chunks (so that double the chunk can be
    tried), at most MAX_WORK_UNITS units, and, with several ranks, at least four units each."""
    rest = max(n_points - probe_end, 1)
    floor = 1 << max(math.ceil(rest / MAX_WORK_UNITS) - 1, 0).bit_length()
    want = max(4 * chunk, 256)
    if ranks > 1:
        want = min(want, 1 << max(rest // (4 * ranks), 1).bit_length() - 1)
    return max(floor, min(want, MAX_CHUNK))


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


# --- running units ----------------------------------------------------------------------------
Store = Callable[[int, np.ndarray, dict], None]


def evaluate_unit(evaluator: PointEvaluator, rows: np.ndarray, choice: Choice,
                  memory: MemoryGauge | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """One unit's losses and its record: method, chunk, seconds, rate (the median seconds per
    point of its chunks, or of its points for the loop) and, for vmap, the memory per point."""
    timings: list[tuple[float, int]] = []
    measure = memory is not None and choice[0] == "vmap"
    if measure:
        memory.start()
    start = time.perf_counter()
    losses = evaluator(rows, choice[0], choice[1], timings)
    synchronize(evaluator.device)
    record = {"method": choice[0], "chunk": choice[1], "seconds": time.perf_counter() - start,
              "rate": statistics.median(seconds / points for seconds, points in timings)}
    if measure:
        memory.stop(choice[1])
        record["memory"] = [memory.per_point_mb, memory.measured_chunk]
    return losses, record


def replay(scheduler, record: dict[str, Any], points: int, memory: MemoryGauge | None) -> None:
    """Feed a finished unit's record (an interrupted run's) to the scheduler as if just run."""
    if memory is not None and record.get("memory"):
        memory.per_point_mb, memory.measured_chunk = record["memory"]
    scheduler.record((record["method"], record["chunk"]), points, record["seconds"], record["rate"])


def run_units(evaluator: PointEvaluator, coefficients, units: Sequence[tuple[int, int]],
              indices: Sequence[int], scheduler, store: Store,
              memory: MemoryGauge | None = None) -> None:
    """Evaluate the units `indices`, each with the scheduler's (method, chunk); `store` gets
    (index, losses, record) of each."""
    n_points = len(coefficients)
    for index in indices:
        begin, end = units[index]
        choice = scheduler.next(begin, end, n_points)
        losses, record = evaluate_unit(evaluator, coefficients[begin:end], choice, memory)
        scheduler.record(choice, end - begin, record["seconds"], record["rate"])
        store(index, losses, record)


def probe(evaluator: PointEvaluator, coefficients, scheduler, store: Store,
          memory: MemoryGauge | None = None, done: dict[int, dict] | None = None) -> int:
    """Run the doubling units [0, 8), [8, 16), ... while the scheduler probes; return the end of
    the last. Units in `done` (index -> record of an interrupted run) are replayed, not rerun."""
    n_points, index, end = len(coefficients), 0, 0
    scheduler.n_points = n_points  # (for replayed units, which do not ask `next`)
    while end < n_points and scheduler.probing:
        begin, end = doubling_unit(index, n_points)
        if done and index in done:
            replay(scheduler, done[index], end - begin, memory)
        else:
            run_units(evaluator, coefficients, {index: (begin, end)}, [index], scheduler, store, memory)
        index += 1
    return end


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


def layout(scheduler, n_points: int, probe_end: int, ranks: int = 1) -> dict[str, Any]:
    """The work units' layout after the probe (JSON): fixed units of a multiple of the chunk, or
    the auto layout (doubling units, then units of a power of two)."""
    if isinstance(scheduler, FixedChoice):
        return {"mode": "fixed", "unit_size": max(fixed_units(n_points, scheduler.current[1])[0][1], 1),
                "probe_end": 0}
    chunk = scheduler.current[1] if scheduler.current else 1
    return {"mode": "auto", "probe_end": probe_end,
            "unit_size": bulk_unit_size(n_points, probe_end, chunk, ranks)}


def units_of(plan: dict[str, Any], n_points: int) -> list[tuple[int, int]]:
    if plan["mode"] == "fixed":
        return [(b, min(b + plan["unit_size"], n_points)) for b in range(0, n_points, plan["unit_size"])]
    return auto_units(n_points, plan["probe_end"], plan["unit_size"])


def summary(plan: dict[str, Any], records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Which (method, chunk) computed which units (run-length: [first, last, method, chunk]) and
    how many points each choice computed; no timings (so equal runs write equal files)."""
    runs: list[list] = []
    for index, record in enumerate(records):
        if runs and runs[-1][2:] == [record["method"], record["chunk"]]:
            runs[-1][1] = index
        else:
            runs.append([index, index, record["method"], record["chunk"]])
    return {"mode": plan["mode"], "unit_size": plan["unit_size"], "probe_end": plan["probe_end"],
            "n_units": len(records), "units": runs}


def main_choice(units: Sequence[tuple[int, int]], records: Sequence[dict]) -> Choice:
    """The (method, chunk) that computed the most points."""
    points: dict[Choice, int] = {}
    for (begin, end), record in zip(units, records):
        choice = (record["method"], record["chunk"])
        points[choice] = points.get(choice, 0) + end - begin
    return max(points, key=points.get)


def evaluate_all(evaluator: PointEvaluator, coefficients, method: str = "auto",
                 chunk_size: int | None = None, memory_budget_mb: float = 4096,
                 on_unit: Callable[[int], None] | None = None) -> tuple[np.ndarray, dict]:
    """Every point's loss in one process (probe, then the rest), and the evaluation summary."""
    memory = MemoryGauge(evaluator.device, memory_budget_mb)
    scheduler = make_scheduler(method, chunk_size, memory)
    out = np.empty(len(coefficients))
    records: dict[int, dict] = {}
    units: list[tuple[int, int]] = []

    def store(index: int, losses: np.ndarray, record: dict) -> None:
        begin = units[index][0] if units else doubling_unit(index, len(coefficients))[0]
        out[begin : begin + len(losses)] = losses
        records[index] = record
        if on_unit:
            on_unit(len(losses))

    probe_end = probe(evaluator, coefficients, scheduler, store, memory)
    plan = layout(scheduler, len(coefficients), probe_end)
    units = units_of(plan, len(coefficients))
    run_units(evaluator, coefficients, units, [i for i in range(len(units)) if i not in records],
              scheduler, store, memory)
    ordered = [records[i] for i in range(len(units))]
    return out, {**summary(plan, ordered), "method": main_choice(units, ordered)[0],
                 "chunk_size": main_choice(units, ordered)[1],
                 "seconds": sum(r["seconds"] for r in ordered)}
