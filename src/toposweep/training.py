"""The training stage for one run: seed, build, train, evaluate, write outputs atomically."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from . import stage
from .io import config_hash, save_checkpoint, save_torch_file, write_csv, write_json, write_npz
from .layout import TrainFiles
from .problems import Diverged, TrainingCurve, get_problem
from .stage import load_run_checkpoint, resolve_device

log = logging.getLogger(__name__)


def train_run(run: dict[str, Any], files: TrainFiles | str | Path) -> dict[str, Any]:
    """Train one run (a `config.Run` as a dict) and write its checkpoint, curve, predictions,
    trajectory and `train_metrics.json` (`files`: their paths, or one folder for all; the
    metrics are written last: their presence means the run is complete).

    A run whose loss turns NaN/inf stops there and is recorded with status "diverged"; the
    weights it reached are saved with that status so later stages can skip it knowingly.
    """
    files = TrainFiles.of(files)
    settings = run["settings"]
    device = resolve_device(settings.get("device", "auto"))
    torch.manual_seed(run["seed"])
    problem = get_problem(run["problem"])(settings, run["seed"], device)
    model = problem.build_model()
    snapshots = run.get("snapshots") or {}
    curve = TrainingCurve(snapshot_every=snapshots.get("every"),
                          snapshot_unit=snapshots.get("unit", "epoch"))
    curve.start(model)
    started = time.perf_counter()
    status, message, metrics = "ok", "", {}
    try:
        metrics.update(problem.train(model, curve, resume_path=Path(files.resume_state)))
    except Diverged as error:
        status, message = "diverged", str(error)
        log.warning("%s: %s", run.get("point"), message)
    train_seconds = time.perf_counter() - started
    if status == "ok":
        metrics.update(problem.evaluate(model))
        write_npz(files.predictions, problem.predictions(model))
    else:
        write_npz(files.predictions, {})
    checkpoint_hash = save_checkpoint(files.checkpoint, model.state_dict(), run,
                                      run["problem"], status)
    save_trajectory(files.trajectory, curve, model, checkpoint_hash)
    write_csv(files.curve, pd.DataFrame(curve.rows))
    result = {
        "status": status, "message": message, **stage.header(run, settings, device),
        "swept": run["swept"], **metrics,
        "initial_train_loss": curve.rows[0].get("loss", float("nan")) if curve.rows else float("nan"),
        "n_steps": len(curve.rows),
        "n_snapshots": len(curve.snapshots), "wall_time_s": train_seconds,
        "checkpoint_hash": checkpoint_hash, "config_hash": config_hash(run),
    }
    write_json(files.metrics, result)
    Path(files.resume_state).unlink(missing_ok=True)
    log.info("%s seed %s: %s in %.1f s", run["point"], run["seed"], status, train_seconds)
    return result


def save_trajectory(path: str | Path, curve: TrainingCurve, model: torch.nn.Module,
                    checkpoint_hash: str) -> None:
    """trajectory.pt: the training snapshots, (n, n_params) float32 rows flattening the
    parameters in `names` order, with their step and epoch; no rows when none were asked for."""
    names = [name for name, _ in model.named_parameters()]
    shapes = [list(p.shape) for _, p in model.named_parameters()]
    n_params = sum(p.numel() for p in model.parameters())
    rows = [snapshot["parameters"] for snapshot in curve.snapshots]
    payload = {
        "parameters": torch.stack(rows) if rows else torch.zeros((0, n_params)),
        "steps": torch.tensor([s["step"] for s in curve.snapshots], dtype=torch.int64),
        "epochs": torch.tensor([s["epoch"] for s in curve.snapshots], dtype=torch.int64),
        "names": names, "shapes": shapes, "checkpoint_hash": checkpoint_hash,
        "unit": curve.snapshot_unit, "every": curve.snapshot_every,
    }
    save_torch_file(path, payload)


def load_trained(
    checkpoint_path: str | Path, device: str | torch.device = "cpu",
    run: dict[str, Any] | None = None,
) -> tuple[Any, torch.nn.Module, dict[str, Any]]:
    """(problem, model, checkpoint) of a trained run, for the stages after training.

    The problem is rebuilt from the run config stored in the checkpoint, so a stage needs only
    the checkpoint file; the model has the trained weights and is in eval mode. With `run`,
    a checkpoint of another run is refused (stage.WrongRun).
    """
    checkpoint = load_run_checkpoint(checkpoint_path, run)
    stored = checkpoint["run_config"]
    problem = get_problem(checkpoint["problem"])(stored["settings"], stored["seed"], device)
    model = problem.build_model()
    model.load_state_dict(checkpoint["state_dict"])
    model.to(device).eval()
    return problem, model, checkpoint
