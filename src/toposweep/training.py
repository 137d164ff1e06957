"""The training stage for one run: seed, build, train, evaluate, write outputs atomically."""

from __future__ import annotations

import logging
import platform
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from . import __version__
from .io import config_hash, load_checkpoint, save_checkpoint, write_csv, write_json, write_npz
from .problems import Diverged, TrainingCurve, get_problem

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
METRICS = "train_metrics.json"
CURVE = "curve.csv"
PREDICTIONS = "predictions.npz"
RESUME_STATE = ".train_state.pt"


def resolve_device(setting: str) -> torch.device:
    """'auto' -> CUDA when available, else CPU; 'cuda' without a GPU is an error, not a fallback."""
    if setting == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("settings.device is 'cuda' but no CUDA device is available")
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)


def train_run(run: dict[str, Any], out_dir: str | Path) -> dict[str, Any]:
    """Train one run (a `config.Run` as a dict) and write its checkpoint, curve, predictions and
    `train_metrics.json` (written last: its presence means the run is complete).

    A run whose loss turns NaN/inf stops there and is recorded with status "diverged"; the
    weights it reached are saved with that status so later stages can skip it knowingly.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = run["settings"]
    device = resolve_device(settings.get("device", "auto"))
    torch.manual_seed(run["seed"])
    problem = get_problem(run["problem"])(settings, run["seed"], device)
    model = problem.build_model()
    curve = TrainingCurve()
    started = time.perf_counter()
    status, message, metrics = "ok", "", {}
    try:
        metrics.update(problem.train(model, curve, resume_path=out_dir / RESUME_STATE))
    except Diverged as error:
        status, message = "diverged", str(error)
        log.warning("%s: %s", run.get("point"), message)
    train_seconds = time.perf_counter() - started
    if status == "ok":
        metrics.update(problem.evaluate(model))
        write_npz(out_dir / PREDICTIONS, problem.predictions(model))
    else:
        write_npz(out_dir / PREDICTIONS, {})
    checkpoint_hash = save_checkpoint(out_dir / CHECKPOINT, model.state_dict(), run,
                                      run["problem"], status)
    write_csv(out_dir / CURVE, pd.DataFrame(curve.rows))
    result = {
        "status": status,
        "message": message,
        "experiment": run["experiment"],
        "problem": run["problem"],
        "point": run["point"],
        "seed": run["seed"],
        "swept": run["swept"],
        **metrics,
        "n_steps": len(curve.rows),
        "wall_time_s": train_seconds,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "checkpoint_hash": checkpoint_hash,
        "config_hash": config_hash(run),
        "toposweep_version": __version__,
        "torch_version": torch.__version__,
        "settings": settings,
    }
    write_json(out_dir / METRICS, result)
    (out_dir / RESUME_STATE).unlink(missing_ok=True)
    log.info("%s seed %s: %s in %.1f s", run["point"], run["seed"], status, train_seconds)
    return result


def load_trained(
    checkpoint_path: str | Path, device: str | torch.device = "cpu"
) -> tuple[Any, torch.nn.Module, dict[str, Any]]:
    """(problem, model, checkpoint) of a trained run, for the stages after training.

    The problem is rebuilt from the run config stored in the checkpoint, so a stage needs only
    the checkpoint file; the model has the trained weights and is in eval mode.
    """
    checkpoint = load_checkpoint(checkpoint_path)
    run = checkpoint["run_config"]
    problem = get_problem(checkpoint["problem"])(run["settings"], run["seed"], device)
    model = problem.build_model()
    model.load_state_dict(checkpoint["state_dict"])
    model.to(device).eval()
    return problem, model, checkpoint
