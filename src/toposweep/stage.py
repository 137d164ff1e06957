"""The stage protocol shared by the stages after training (Hessian, landscape): load the run's
checkpoint and check that it is that run's own, read the training status, resolve the device,
and the record header (identity and provenance) every stage result starts with.

Every stage result has a `status`: "ok", "diverged" (training), "skipped" (nothing to compute,
with a `message` saying why: an unfinished upstream stage) or "failed".
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
from typing import Any

import lazy_loader

from . import __version__
from .io import config_hash, load_checkpoint, read_json

torch = lazy_loader.load("torch")


# glibc mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_MAX = 32 << 20  # glibc's largest on 64-bit systems (larger values are refused)
TRIM_THRESHOLD = 1 << 30


def configure_process(threads: int) -> bool:
    """What every stage process sets first: `threads` torch intra-op threads (1 per job or MPI
    rank by default: jobs share a node's cores, and two threads on two busy cores made a PINN loss
    10-100x slower, issue 16), and glibc's allocator told to serve blocks up to 32 MiB from its heap
    and keep up to 1 GiB of freed heap for reuse, instead of mapping fresh memory from the system
    for each: a vmapped chunk allocates and frees MiBs per op, and fresh pages cost a page fault
    per 4 KiB. No effect outside glibc. Returns whether the allocator took the settings."""
    torch.set_num_threads(threads)
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError):  # no C library found, or one without mallopt
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and \
        bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


class WrongRun(ValueError):
    """A checkpoint (or other upstream file) that belongs to another run than the one reading it."""


def resolve_device(setting: str, index: int = 0):
    """'auto' -> CUDA when available (GPU `index % n_gpus`), else CPU; 'cuda' without a GPU is
    an error, not a fallback."""
    if setting == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device is 'cuda' but no CUDA device is available")
    if setting == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", index % torch.cuda.device_count())


def device_name(device) -> str:
    return (torch.cuda.get_device_name(device) if device.type == "cuda"
            else platform.processor() or platform.machine())


def load_run_checkpoint(checkpoint_path: str | os.PathLike, run: dict[str, Any] | None) -> dict:
    """The checkpoint, verified (content hash) and checked to be `run`'s own: its stored run
    configuration must hash to the same value as the run the workflow asks for, so a copied-in
    checkpoint of another run (or another problem) is refused instead of silently analysed."""
    checkpoint = load_checkpoint(checkpoint_path)
    if run is not None and checkpoint["config_hash"] != config_hash(run):
        stored = checkpoint["run_config"]
        raise WrongRun(
            f"{checkpoint_path} belongs to another run: it was trained for "
            f"{stored.get('experiment')}/{stored.get('point')}/seed~{stored.get('seed')} "
            f"(problem {stored.get('problem')!r}) with other settings, but this step is for "
            f"{run.get('experiment')}/{run.get('point')}/seed~{run.get('seed')} (problem "
            f"{run.get('problem')!r}); retrain it (delete the file) or point the step at its own")
    return checkpoint


def training_status(metrics_path: str | os.PathLike | None, checkpoint_path: str | os.PathLike,
                    checkpoint: dict) -> tuple[str, str]:
    """(status, message) of the training stage, from its train_metrics.json when given (which
    must record this checkpoint's hash: a checkpoint copied in from elsewhere is refused, both
    files named), else the status stored in the checkpoint."""
    if metrics_path is None:
        return checkpoint.get("status", "ok"), ""
    metrics = read_json(metrics_path)
    if metrics.get("checkpoint_hash") != checkpoint["hash"]:
        raise WrongRun(f"{checkpoint_path} (hash {checkpoint['hash'][:12]}) is not the checkpoint "
                       f"{metrics_path} records (hash {str(metrics.get('checkpoint_hash'))[:12]}): "
                       "the checkpoint was replaced or copied in; retrain the run")
    return metrics.get("status", "ok"), metrics.get("message", "")


def header(run: dict[str, Any], settings: dict[str, Any], device=None,
           checkpoint_path: str | os.PathLike | None = None,
           checkpoint: dict | None = None) -> dict[str, Any]:
    """Identity and provenance every stage record starts with (training's too): the run, the
    stage's settings, the device, torch threads and the code versions, and for the stages
    after training the checkpoint they read (path and content hash) and the run
    configuration's hash."""
    record = {
        "experiment": run.get("experiment"), "point": run.get("point"), "seed": run.get("seed"),
        "problem": run.get("problem"), "settings": settings, "toposweep_version": __version__,
        "torch_version": torch.__version__, "torch_threads": torch.get_num_threads(),
    }
    if device is not None:
        record.update(device=str(device), device_name=device_name(device))
    if checkpoint is not None:
        record.update(checkpoint=str(checkpoint_path), checkpoint_hash=checkpoint["hash"],
                      config_hash=checkpoint["config_hash"])
    return record


def skipped(reason: str, record: dict[str, Any]) -> dict[str, Any]:
    """A stage result with nothing computed: status "skipped", why, and the header."""
    return {"status": "skipped", "message": reason, **record}
