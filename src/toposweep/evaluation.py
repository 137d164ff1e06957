"""Batched loss evaluation at many points of a parameter subspace, and the adaptive choice of
how (per-point loop, or vmap over chunks of points, and the chunk size).

A point's flattened parameters are theta + sum_i c_i d_i, computed element by element (so a
point's parameters have the same bits whatever batch they are computed in); the loss is then the
problem's pure loss, once per point (`loop`) or `torch.func.vmap`ped over a chunk (`vmap`).

The points are split into work units (`auto_units`, `fixed_units`). Every unit is evaluated
with one (method, chunk), and its chunks start at multiples of the chunk size, so its losses are
bit-identical to those of a run with that (method, chunk) fixed for the whole landscape.
toposweep.scheduling picks the (method, chunk) of each unit from timings of the units before it;
every unit's (method, chunk) is recorded.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.func import vmap

from .parameters import flatten, unflatten
from .scheduling import MAX_CHUNK, Choice, FixedChoice, MemoryGauge, make_scheduler

MAX_WORK_UNITS = 1000
FIRST_UNIT = 8  # the first auto unit: 8 per-point timings of the loop
LOOP_BLOCK = 64  # rows mixed at once by the loop (mixing is elementwise: no effect on the bits)


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
        return [self._single(point, timings) for point in self.mix(rows)]

    def _batched(self, rows: np.ndarray, timings: list | None) -> np.ndarray:
        start = time.perf_counter()
        losses = self.batched_loss(unflatten(self.mix(rows), self.like)).double().cpu().numpy()
        if timings is not None:
            synchronize(self.device)
            timings.append((time.perf_counter() - start, len(rows)))
        return losses

    def _single(self, flat: torch.Tensor, timings: list | None) -> float:
        start = time.perf_counter()
        loss = float(self.loss_fn(unflatten(flat, self.like)))
        if timings is not None:
            timings.append((time.perf_counter() - start, 1))
        return loss


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
