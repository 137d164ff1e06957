"""Loss landscapes: the loss on a grid, or at scattered samples, of a low-dimensional subspace
around the trained parameters (`sampling` says where the points are).

Evaluation (toposweep.evaluation) is batched over points: a chunk of perturbed parameter sets
is one elementwise mix (theta + sum_i c_i d_i over the flattened parameters) and one vmapped call
of the problem's pure loss, the (method, chunk) of every work unit chosen from timings and
recorded. The workflow entry `sample_landscape` splits the points into work units that MPI ranks
share, persists every finished unit with its (method, chunk), and resumes from them after a kill.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from . import stage
from .schema import stage_settings
from .directions import (Direction, TrajectoryPlane, flatten, normalize_direction, orthogonalize,
                         random_directions, trajectory_plane)
from . import evaluation, scheduling
from .evaluation import PointEvaluator, evaluate_all
from .scheduling import MemoryGauge
from .io import atomic_path, config_hash, file_sha256, read_json, write_json, write_landscape
from .problems.base import LossFunction
from .progress import ProgressLog
from .sampling import GridCoefficients, grid_axes, grid_coefficients, landscape_points  # noqa: F401
from .stage import resolve_device

log = logging.getLogger(__name__)

# --- evaluation (toposweep.evaluation) --------------------------------------------------------
def sample_grid(
    loss_fn: LossFunction,
    params: Direction,
    directions: list[Direction],
    axes: Sequence[np.ndarray],
    method: str = "auto",
    chunk_size: int | None = None,
    memory_budget_mb: float = 4096,
    progress: bool = False,
    record: dict[str, Any] | None = None,
) -> np.ndarray:
    """Loss at every grid point: result[i, j, ...] = loss(theta + axes[0][i] d_0 + axes[1][j] d_1
    + ...), shape (len(axes[0]), ..., len(axes[d-1])), float64. `method` auto probes the loop and
    vmap's chunk sizes on the first points and keeps adapting (toposweep.evaluation); `record`,
    when given, receives which (method, chunk) computed which work units."""
    if len(directions) != len(axes):
        raise ValueError(f"{len(directions)} directions but {len(axes)} axes")
    evaluator = PointEvaluator(loss_fn, params, directions)
    coefficients = GridCoefficients(axes)
    with tqdm(total=len(coefficients), desc="grid points", disable=not progress or None) as bar:
        out, info = evaluate_all(evaluator, coefficients, method, chunk_size, memory_budget_mb,
                                 on_unit=bar.update)
    log.info("evaluation: %s", {k: info[k] for k in ("method", "chunk_size", "units")})
    if record is not None:
        record.update(info)
    return out.reshape([len(a) for a in axes])


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
        plan.attrs["provenance"]["evaluation"] = result["evaluation"]  # (method, chunk) per unit
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
    """Every point's loss, the work units shared by the ranks and persisted one by one in
    `<out_path>.parts/` (resumed from there); the loss array on rank 0, None elsewhere. Rank 0
    runs the probe's units first (method auto), the ranks then share the rest, each choosing
    (method, chunk) per unit from its own timings."""
    coefficients, n_points = plan.coefficients, len(plan.coefficients)
    parts = out_path.with_name(out_path.name + ".parts")
    # Finished units are reused only for the same settings and inputs (not, say, thread count).
    inputs = {key: value for key, value in plan.attrs["provenance"].items()
              if key in ("checkpoint_hash", "config_hash", "eigenvectors_sha256", "trajectory_sha256")}
    key = config_hash({"settings": settings, "inputs": inputs})
    memory = MemoryGauge(plan.evaluator.device, settings["memory_budget_mb"])
    scheduler = scheduling.make_scheduler(settings["method"], settings["chunk_size"], memory)
    started = time.perf_counter()
    progress = _Progress(comm, n_points)
    store = _UnitStore(parts, progress)
    layout = None
    if comm.rank == 0:
        layout = _load_or_make_layout(parts, key, plan.evaluator, coefficients, scheduler, memory,
                                      store, comm.size)
    layout = comm.bcast(layout, root=0)
    units = evaluation.units_of(layout, n_points)
    missing = [i for i in range(len(units)) if not store.done(i)] if comm.rank == 0 else None
    missing = comm.bcast(missing, root=0)
    if comm.rank == 0:
        progress.start(n_points - sum(units[i][1] - units[i][0] for i in missing) - store.points)
    if layout.get("scheduler") and isinstance(scheduler, scheduling.Scheduler):
        scheduler.restore(layout["scheduler"])
    store.share = comm.size  # the other ranks' units alike, approximately
    evaluation.run_units(plan.evaluator, coefficients, units, missing[comm.rank :: comm.size],
                         scheduler, store, memory)
    progress.close()
    seconds = max(comm.allgather(time.perf_counter() - started))  # the slowest rank's time
    computed = comm.allreduce(store.points)
    comm.Barrier()
    result = {"status": "ok", "points_computed": computed, "seconds": seconds, "ranks": comm.size}
    loss = None
    if comm.rank == 0:
        loss = np.concatenate([np.load(store.path(i)) for i in range(len(units))])
        records = [read_json(store.path(i, ".json")) for i in range(len(units))]
        method, chunk = evaluation.main_choice(units, records)
        result.update(method=method, chunk_size=chunk,
                      evaluation=evaluation.summary(layout, records))
        if plan.axes is not None:
            loss = loss.reshape([len(a) for a in plan.axes])
        shutil.rmtree(parts)
    return loss, result


class _Progress:
    """The landscape's tqdm bar and log lines (rank 0's; the other ranks count silently)."""

    def __init__(self, comm, total: int):
        self.rank0, self.total = comm.rank == 0, total
        self.bar = tqdm(total=total, desc="landscape points", unit="pt",
                        disable=(comm.rank != 0) or None)
        self.lines = ProgressLog(log if self.rank0 else None, "landscape", total, "points")

    def start(self, already: int) -> None:
        """Count the units an interrupted run finished (once the layout is known)."""
        self.bar.update(already)
        self.lines.initial = self.lines.done = self.lines.done + already

    def update(self, points: int) -> None:
        self.bar.update(points)
        self.lines.update(points)

    def close(self) -> None:
        self.bar.close()


class _UnitStore:
    """Finished units in `<landscape>.parts/`: unit_00012.json, the (method, chunk) that
    computed it and its timing, written before unit_00012.npy, the losses (its presence marks
    the unit done)."""

    def __init__(self, parts: Path, progress: _Progress):
        self.parts, self.progress, self.points, self.share = parts, progress, 0, 1

    def path(self, index: int, suffix: str = ".npy") -> Path:
        return self.parts / f"unit_{index:05d}{suffix}"

    def done(self, index: int) -> bool:
        return self.path(index).exists()

    def records(self) -> dict[int, dict[str, Any]]:
        """The records of the finished units, by index."""
        return {int(p.stem[5:]): read_json(p.with_suffix(".json"))
                for p in self.parts.glob("unit_*.npy") if p.with_suffix(".json").exists()}

    def __call__(self, index: int, losses: np.ndarray, record: dict[str, Any]) -> None:
        write_json(self.path(index, ".json"), record)
        with atomic_path(self.path(index)) as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, losses)
        self.points += len(losses)
        self.progress.update(len(losses) * self.share)


def _load_or_make_layout(parts: Path, key: str, evaluator: PointEvaluator, coefficients,
                         scheduler, memory: MemoryGauge, store: _UnitStore,
                         ranks: int) -> dict[str, Any]:
    """The work units' layout (plan.json) of an interrupted run with the same inputs, or a new
    one; for method auto, after the probe's units (those an interrupted probe finished are
    replayed from their records, not rerun). Finished units of other inputs are discarded."""
    manifest = parts / "plan.json"
    plan = read_json(manifest) if manifest.exists() else None
    if plan is not None and plan.get("key") != key:
        log.warning("discarding %s: it belongs to other settings or another checkpoint", parts)
        shutil.rmtree(parts)
        plan = None
    if plan is not None and "unit_size" in plan:
        log.info("resuming from %s", parts)
        return plan
    parts.mkdir(parents=True, exist_ok=True)
    if plan is None:
        write_json(manifest, {"key": key})
    done = store.records()
    probe_end = evaluation.probe(evaluator, coefficients, scheduler, store, memory, done)
    plan = {"key": key, **evaluation.layout(scheduler, len(coefficients), probe_end, ranks),
            "scheduler": scheduler.state()}
    log.info("evaluation: %s for %d points after the probe (units of %d; probe s/point: %s)",
             scheduling.choice_key(scheduler.current), len(coefficients), plan["unit_size"],
             {scheduling.choice_key(c): f"{scheduler.rate(c):.3g}" for c in getattr(scheduler, "rates", {})})
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
