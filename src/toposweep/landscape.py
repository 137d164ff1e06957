"""Loss landscapes: the loss on a grid, or at scattered samples, of a low-dimensional subspace
around the trained parameters (`sampling` says where the points are).

Evaluation is batched over points: a chunk of perturbed parameter sets is one matmul
(theta + A @ D over the flattened parameters) and one vmapped call of the problem's pure loss.
The workflow entry `sample_landscape` splits the grid into fixed work units that MPI ranks share,
persists every finished unit, and resumes from them after a kill.
"""

from __future__ import annotations

import logging
import math
import resource
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.func import vmap
from tqdm.auto import tqdm

from . import stage
from .schema import stage_settings
from .directions import (Direction, TrajectoryPlane, flatten, normalize_direction, orthogonalize,
                         random_directions, trajectory_plane, unflatten)
from .io import atomic_path, config_hash, file_sha256, read_json, write_json, write_landscape
from .problems.base import LossFunction
from .progress import ProgressLog
from .sampling import GridCoefficients, grid_axes, grid_coefficients, landscape_points  # noqa: F401
from .stage import resolve_device

log = logging.getLogger(__name__)

METHODS = ("auto", "vmap", "loop")
MAX_WORK_UNITS = 1000


# --- evaluation -------------------------------------------------------------------------------
class PointEvaluator:
    """Evaluates loss(theta + sum_i c_i d_i) for batches of coefficient rows c."""

    def __init__(self, loss_fn: LossFunction, params: Direction, directions: list[Direction]):
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

    def __call__(self, coefficients: np.ndarray, method: str, chunk_size: int) -> np.ndarray:
        """Losses (float64) of the rows of `coefficients`, `chunk_size` points per call."""
        out = np.empty(len(coefficients), dtype=np.float64)
        with torch.no_grad():
            for begin in range(0, len(coefficients), chunk_size):
                rows = torch.as_tensor(coefficients[begin : begin + chunk_size]).to(self.theta)
                flat = self.theta + rows @ self.matrix
                if method == "vmap":
                    losses = self.batched_loss(unflatten(flat, self.like))
                else:
                    losses = torch.stack([self.loss_fn(unflatten(row, self.like)) for row in flat])
                out[begin : begin + len(rows)] = losses.double().cpu().numpy()
        return out


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def choose_evaluation(
    evaluator: PointEvaluator,
    coefficients: np.ndarray,
    memory_budget_mb: float,
    max_chunk: int = 4096,
) -> tuple[str, int, dict[str, float], np.ndarray]:
    """Time the per-point loop, then vmap at chunks 2, 8, 32, ... on the grid's first points;
    return the fastest (method, chunk), the measured ms/point, and the losses of the points
    probed. Each candidate evaluates the next, unused points, so no probe work is wasted (the
    probed points come from different methods, equal to ~1e-6; fix `method` for bit-exact runs).

    Growth stops at a chunk clearly slower (>= 1.2x) than the best so far or at the second in a
    row that is not faster (timings on a busy machine are noisy), when a chunk would exceed a
    tenth of the grid, or when the memory high-water mark passes the budget.
    """
    device = evaluator.theta.device
    n_points = len(coefficients)
    done: list[np.ndarray] = []
    position = 0

    def timed(method: str, chunk: int, count: int) -> float:
        nonlocal position
        rows = coefficients[position : position + count]
        start = time.perf_counter()
        done.append(evaluator(rows, method, chunk))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        position += len(rows)
        return (time.perf_counter() - start) / len(rows) * 1e3

    timed("loop", 1, 1)  # warm-up: a process's first evaluation runs slow
    timings = {"loop": timed("loop", 1, 3)}
    best = ("loop", 1, timings["loop"])
    chunk, misses = 2, 0
    while chunk <= max_chunk and position + chunk <= n_points and chunk <= max(0.1 * n_points, 2):
        ms = timed("vmap", chunk, chunk)
        timings[f"vmap_{chunk}"] = ms
        if ms >= 1.2 * best[2]:  # clearly slower: batching does not pay here
            break
        if ms >= best[2]:  # within timing noise: one more chance
            misses += 1
            if misses == 2:
                break
        else:
            best, misses = ("vmap", chunk, ms), 0
        if _peak_memory_mb(device) > memory_budget_mb:
            break
        chunk *= 4
    return best[0], best[1], timings, np.concatenate(done)


def sample_grid(
    loss_fn: LossFunction,
    params: Direction,
    directions: list[Direction],
    axes: Sequence[np.ndarray],
    method: str = "auto",
    chunk_size: int | None = None,
    memory_budget_mb: float = 4096,
    progress: bool = False,
) -> np.ndarray:
    """Loss at every grid point: result[i, j, ...] = loss(theta + axes[0][i] d_0 + axes[1][j] d_1
    + ...), shape (len(axes[0]), ..., len(axes[d-1])), float64."""
    if len(directions) != len(axes):
        raise ValueError(f"{len(directions)} directions but {len(axes)} axes")
    evaluator = PointEvaluator(loss_fn, params, directions)
    coefficients = GridCoefficients(axes)
    method, chunk_size, done = resolve_method(evaluator, coefficients, method, chunk_size,
                                              memory_budget_mb)
    out = np.empty(len(coefficients))
    out[: len(done)] = done
    step = max(chunk_size, 1) * 16
    with tqdm(total=len(coefficients), initial=len(done), desc="grid points",
              disable=not progress or None) as bar:
        for begin in range(len(done), len(coefficients), step):
            rows = coefficients[begin : begin + step]
            out[begin : begin + len(rows)] = evaluator(rows, method, chunk_size)
            bar.update(len(rows))
    return out.reshape([len(a) for a in axes])


def resolve_method(
    evaluator: PointEvaluator,
    coefficients: np.ndarray,
    method: str,
    chunk_size: int | None,
    memory_budget_mb: float,
) -> tuple[str, int, np.ndarray]:
    """(method, chunk size, losses already computed for the first grid points)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    nothing = np.empty(0)
    if method == "loop":
        return "loop", chunk_size or 1, nothing
    if method == "vmap" and chunk_size:
        return "vmap", chunk_size, nothing
    chosen, chunk, timings, done = choose_evaluation(evaluator, coefficients, memory_budget_mb)
    if method == "vmap" and chosen == "loop":  # vmap asked for: its best chunk, from scratch
        vmap_timings = {k: v for k, v in timings.items() if k.startswith("vmap_")} or {"vmap_2": 0}
        chosen, chunk, done = "vmap", int(min(vmap_timings, key=vmap_timings.get)[5:]), nothing
    log.info("evaluation: %s, chunk %d (probe ms/point: %s)", chosen, chunk,
             {k: round(v, 3) for k, v in timings.items()})
    return chosen, chunk, done


# --- grids and directions from settings --------------------------------------------------------
def build_directions(
    settings: dict[str, Any],
    params: Direction,
    eigenvectors: list[Direction] | None = None,
    trajectory: TrajectoryPlane | None = None,
) -> list[Direction]:
    """The landscape's directions from its settings: random, the top Hessian eigenvectors, or
    the trajectory's principal components (unit norm, orthogonal: absolute units)."""
    dims = settings["dimensions"]
    normalization = settings["normalization"]
    ignore = settings["ignore_bias_and_norm"]
    if settings["directions"] == "random":
        normalization = "filter" if normalization == "auto" else normalization
        return random_directions(params, dims, settings["seed"], normalization, ignore)
    if settings["directions"] == "trajectory_pca":
        if trajectory is None:
            raise ValueError("landscape.directions is 'trajectory_pca' but no trajectory was given")
        if normalization not in ("auto", "none"):
            raise ValueError("trajectory_pca directions keep the components' unit norm (the "
                             "path is projected on them): use normalization auto or none")
        return trajectory.directions
    if eigenvectors is None:
        raise ValueError("landscape.directions is 'hessian' but no eigenvectors were given")
    if len(eigenvectors) < dims:
        raise ValueError(f"landscape.dimensions is {dims} but the Hessian stage computed only "
                         f"{len(eigenvectors)} eigenvectors (raise hessian.k)")
    normalization = "none" if normalization == "auto" else normalization
    chosen = []
    for index, vector in enumerate(eigenvectors[:dims]):
        if set(vector) != set(params) or any(vector[n].shape != params[n].shape for n in params):
            raise ValueError(f"eigenvector {index} does not match the model's parameters")
        chosen.append(normalize_direction({n: vector[n].to(params[n]) for n in params}, params,
                                          normalization, ignore))
    return orthogonalize(chosen)


# --- the workflow's resumable, MPI-shared sampling ---------------------------------------------
class SerialComm:
    """The few mpi4py communicator calls used here, for a single process without MPI."""

    rank, size = 0, 1

    def bcast(self, value, root=0):
        return value

    def Barrier(self):
        return None

    def allreduce(self, value):
        return value

    def allgather(self, value):
        return [value]


def rank_device(comm, setting: str) -> torch.device:
    """CPU, or the GPU `local_rank % n_gpus` of this rank's node when CUDA is present."""
    local_rank = comm.rank
    if hasattr(comm, "Split_type") and setting != "cpu" and torch.cuda.is_available():
        from mpi4py import MPI

        local_rank = comm.Split_type(MPI.COMM_TYPE_SHARED).rank
    return resolve_device(setting, local_rank)


def work_units(n_points: int, chunk_size: int) -> list[tuple[int, int]]:
    """Fixed [begin, end) ranges of at most MAX_WORK_UNITS units, each a multiple of the chunk,
    so results do not depend on how many ranks share them."""
    unit = max(chunk_size, math.ceil(n_points / MAX_WORK_UNITS))
    unit = math.ceil(unit / chunk_size) * chunk_size
    return [(b, min(b + unit, n_points)) for b in range(0, n_points, unit)]


@dataclass
class Plan:
    """What the ranks evaluate: the evaluator, the points (a grid's axes and coefficients, or
    scattered samples with axes None), and what goes into the file."""

    evaluator: PointEvaluator
    axes: list[np.ndarray] | None
    coefficients: Any
    directions: list[Direction]
    names: list[str]
    attrs: dict[str, Any]
    datasets: dict[str, np.ndarray]


def sample_landscape(
    checkpoint_path: str | Path,
    out_path: str | Path,
    settings: dict[str, Any],
    eigenvectors_path: str | Path | None = None,
    trajectory_path: str | Path | None = None,
    comm=None,
    progress: bool = True,
    run: dict[str, Any] | None = None,
    train_metrics: str | Path | None = None,
) -> dict[str, Any]:
    """Sample one run's landscape into `out_path` (HDF5), sharing work units across the ranks of
    `comm` (mpi4py) and resuming from `<out_path>.parts/` after an interruption. `settings` is
    one entry of the config's `landscapes` (the schema's defaults fill the rest); with `run` and
    `train_metrics`, a checkpoint of another run (or not the one training recorded) is refused.

    Runs that did not train (status other than ok) get a landscape file with status "skipped".
    """
    from .training import load_trained  # training imports the problems; keep this module light

    comm = comm or SerialComm()
    out_path = Path(out_path)
    settings = stage_settings("landscape", settings)
    device = rank_device(comm, settings["device"])
    problem, model, checkpoint = load_trained(checkpoint_path, device, run)
    provenance = stage.header(checkpoint["run_config"], settings, device, checkpoint_path, checkpoint)
    provenance.pop("settings")  # the file's own `settings` attribute holds them
    provenance["run"] = checkpoint["run_config"]
    status, message = stage.training_status(train_metrics, checkpoint_path, checkpoint)
    plan = (f"training status is {status!r}: {message}".rstrip(": ") if status != "ok" else
            _plan(problem, model, checkpoint, settings, provenance, eigenvectors_path,
                  trajectory_path))
    if isinstance(plan, str):
        if comm.rank == 0:
            dimensions, attrs = settings["dimensions"], {"settings": settings, "provenance": provenance}
            if settings["sampling"] == "grid":
                write_landscape(out_path, np.zeros((0,) * dimensions),
                                [np.zeros(0) for _ in range(dimensions)], stage.skipped(plan, attrs))
            else:
                write_landscape(out_path, np.zeros(0), None, stage.skipped(plan, attrs),
                                samples=np.zeros((0, dimensions)))
        comm.Barrier()
        return {"status": "skipped", "message": plan}
    loss, result = _evaluate_shared(plan, out_path, settings, comm)
    if comm.rank == 0:
        direction_arrays = {f"d{i}": flatten(d, plan.names).cpu().numpy()
                            for i, d in enumerate(plan.directions)}
        samples = None if plan.axes is not None else plan.coefficients
        write_landscape(out_path, loss, plan.axes,
                        {**plan.attrs, "status": "ok", "method": result["method"],
                         "chunk_size": result["chunk_size"], "parameter_names": plan.names},
                        directions=direction_arrays, datasets=plan.datasets, samples=samples)
        result["n_nonfinite"] = int(np.count_nonzero(~np.isfinite(loss)))
        log.info("landscape %s: %d points (%d computed now) in %.1f s on %d rank(s), %s",
                 out_path, loss.size, result["points_computed"], result["seconds"], comm.size,
                 {k: result[k] for k in ("method", "chunk_size")})
    comm.Barrier()
    return result


def _plan(problem, model, checkpoint: dict, settings: dict[str, Any], provenance: dict[str, Any],
          eigenvectors_path, trajectory_path) -> Plan | str:
    """The evaluation plan of one landscape, or the reason it is skipped (a skipped Hessian)."""
    loss_fn, params = problem.loss_function(model)
    eigenvectors, trajectory, datasets = None, None, {}
    extra_attrs: dict[str, Any] = {}
    if settings["directions"] == "hessian":
        from .hessian import SkippedHessian, load_eigenvectors

        if eigenvectors_path is None:
            raise ValueError("landscape.directions is 'hessian': an eigenvectors file is needed")
        try:
            _, eigenvectors = load_eigenvectors(eigenvectors_path, checkpoint["hash"])
        except SkippedHessian as skipped:
            return str(skipped)
        provenance.update(eigenvectors=str(eigenvectors_path),
                          eigenvectors_sha256=file_sha256(eigenvectors_path))
    elif settings["directions"] == "trajectory_pca":
        if trajectory_path is None:
            raise ValueError("landscape.directions is 'trajectory_pca': a trajectory file is needed")
        trajectory = trajectory_plane(trajectory_path, params, settings["dimensions"],
                                      checkpoint["hash"])
        provenance.update(trajectory=str(trajectory_path),
                          trajectory_sha256=file_sha256(trajectory_path))
        datasets = {"trajectory": trajectory.coordinates,
                    "trajectory_steps": trajectory.steps}
        extra_attrs["explained_variance_ratio"] = trajectory.explained_variance_ratio.tolist()
    directions = build_directions(settings, params, eigenvectors, trajectory)
    extent = settings["extent"]
    if extent == "auto":
        extent = 1.2 * float(np.abs(trajectory.coordinates).max())
        extra_attrs["extent"] = extent
    axes, coefficients = landscape_points(settings, extent)
    attrs = {"settings": settings, "provenance": provenance, "sampling": settings["sampling"],
             **extra_attrs}
    return Plan(PointEvaluator(loss_fn, params, directions), axes, coefficients, directions,
                list(params), attrs, datasets)


def _evaluate_shared(plan: Plan, out_path: Path, settings: dict[str, Any], comm
                     ) -> tuple[np.ndarray | None, dict[str, Any]]:
    """Every grid point's loss, the work units shared by the ranks and persisted one by one in
    `<out_path>.parts/` (resumed from there); the loss array on rank 0, None elsewhere."""
    coefficients = plan.coefficients
    parts = out_path.with_name(out_path.name + ".parts")
    # Finished units are reused only for the same settings and inputs (not, say, thread count).
    inputs = {key: value for key, value in plan.attrs["provenance"].items()
              if key in ("checkpoint_hash", "config_hash", "eigenvectors_sha256", "trajectory_sha256")}
    key = config_hash({"settings": settings, "inputs": inputs})
    evaluation = None
    if comm.rank == 0:
        evaluation = _load_or_make_plan(parts, key, plan.evaluator, coefficients, settings)
    evaluation = comm.bcast(evaluation, root=0)
    units = work_units(len(coefficients), evaluation["chunk_size"])
    missing = [i for i, _ in enumerate(units) if not (parts / f"unit_{i:05d}.npy").exists()]
    missing = comm.bcast(missing if comm.rank == 0 else None, root=0)
    mine = missing[comm.rank :: comm.size]
    started = time.perf_counter()
    already = min(len(coefficients), (len(units) - len(missing)) * (units[0][1] - units[0][0]))
    lines = ProgressLog(log if comm.rank == 0 else None, "landscape", len(coefficients), "points",
                        initial=already)
    with tqdm(total=len(coefficients), desc="landscape points", unit="pt",
              disable=(comm.rank != 0) or None, initial=already) as bar:
        for index in mine:
            begin, end = units[index]
            losses = plan.evaluator(coefficients[begin:end], evaluation["method"],
                                    evaluation["chunk_size"])
            with atomic_path(parts / f"unit_{index:05d}.npy") as tmp:
                with open(tmp, "wb") as handle:
                    np.save(handle, losses)
            bar.update((end - begin) * comm.size)
            lines.update((end - begin) * comm.size)  # the other ranks' alike, approximately
    seconds = max(comm.allgather(time.perf_counter() - started))  # the slowest rank's time
    computed = comm.allreduce(sum(units[i][1] - units[i][0] for i in mine))
    comm.Barrier()
    result = {"status": "ok", "points_computed": computed, "seconds": seconds,
              "method": evaluation["method"], "chunk_size": evaluation["chunk_size"],
              "ranks": comm.size}
    loss = None
    if comm.rank == 0:
        loss = np.concatenate([np.load(parts / f"unit_{i:05d}.npy") for i in range(len(units))])
        if plan.axes is not None:
            loss = loss.reshape([len(a) for a in plan.axes])
        shutil.rmtree(parts)
    return loss, result


def _load_or_make_plan(parts: Path, key: str, evaluator: PointEvaluator,
                       coefficients: np.ndarray, settings: dict[str, Any]) -> dict[str, Any]:
    """The evaluation plan (method, chunk) of an interrupted run with the same inputs, or a new
    one; finished units of a run with other inputs are discarded."""
    manifest = parts / "plan.json"
    if manifest.exists():
        plan = read_json(manifest)
        if plan["key"] == key:
            log.info("resuming from %s", parts)
            return plan
        log.warning("discarding %s: it belongs to other settings or another checkpoint", parts)
        shutil.rmtree(parts)
    method, chunk, _ = resolve_method(evaluator, coefficients, settings["method"],
                                      settings["chunk_size"], settings["memory_budget_mb"])
    plan = {"key": key, "method": method, "chunk_size": chunk}
    parts.mkdir(parents=True, exist_ok=True)
    write_json(manifest, plan)
    return plan


# --- VTK export --------------------------------------------------------------------------------
def write_vti(path: str | Path, loss: np.ndarray, axes: Sequence[np.ndarray]) -> None:
    """VTK XML image data (ASCII) of a 2-D or 3-D landscape, for ParaView/TTK: point data `loss`
    on a regular grid with the axes' origin and spacing (x = axis 0 varies fastest)."""
    if loss.ndim not in (2, 3):
        raise ValueError(f"VTK export takes 2-D or 3-D landscapes, got {loss.ndim}-D")
    shape = list(loss.shape) + [1] * (3 - loss.ndim)
    origin = [float(a[0]) for a in axes] + [0.0] * (3 - loss.ndim)
    spacing = [float(a[1] - a[0]) if len(a) > 1 else 1.0 for a in axes] + [1.0] * (3 - loss.ndim)
    extent = " ".join(f"0 {n - 1}" for n in shape)
    values = loss.reshape(shape).ravel(order="F")
    text = "\n".join(" ".join(repr(float(v)) for v in values[i : i + 8])
                     for i in range(0, len(values), 8))
    xml = (
        '<?xml version="1.0"?>\n'
        '<VTKFile type="ImageData" version="1.0" byte_order="LittleEndian">\n'
        f'  <ImageData WholeExtent="{extent}" Origin="{" ".join(map(repr, origin))}" '
        f'Spacing="{" ".join(map(repr, spacing))}">\n'
        f'    <Piece Extent="{extent}">\n'
        '      <PointData Scalars="loss">\n'
        '        <DataArray type="Float64" Name="loss" format="ascii">\n'
        f"{text}\n"
        "        </DataArray>\n"
        "      </PointData>\n"
        "    </Piece>\n"
        "  </ImageData>\n"
        "</VTKFile>\n"
    )
    with atomic_path(path) as tmp:
        tmp.write_text(xml)
