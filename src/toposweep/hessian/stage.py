"""The Hessian stage for one trained run: hessian.json, eigenvectors.pt and density.csv.

`eigenvectors.pt` (read by the landscape stage as its `hessian` directions) is a `torch.save` of
{"status": "ok" | "skipped", "eigenvalues": float64 (k,), "vectors": (k, n_params) unit rows,
"names": parameter names in `model.named_parameters()` order, "shapes": list of shapes,
"checkpoint_hash": str}; the rows flatten the parameters in `names` order, each with its
largest-magnitude entry positive.
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .. import stage
from ..schema import stage_settings
from ..io import load_torch_file, save_torch_file, write_csv, write_json
from ..layout import HessianFiles
from ..parameters import unflatten_shapes
from ..stage import resolve_device
from ..training import load_trained
from .engine import (
    Eigenpairs,
    HessianOperator,
    NonFiniteLoss,
    broadened_density,
    hutchinson_trace,
    spectral_density,
    top_eigenpairs,
)

log = logging.getLogger(__name__)

PYHESSIAN_TRACE_TOL = 1e-3  # PyHessian 0.1's default relative-change stop of trace()


class SkippedHessian(ValueError):
    """An eigenvectors file of a run the Hessian stage skipped (diverged or non-finite loss)."""


def hessian_of_checkpoint(checkpoint_path: str | os.PathLike, files: HessianFiles | str | Path,
                          run: dict[str, Any] | None = None,
                          train_metrics: str | os.PathLike | None = None,
                          **settings: Any) -> dict[str, Any]:
    """The workflow's Hessian step: top-k eigenpairs, trace and spectral density of a trained
    run's loss (the problem's `loss_function` at the checkpoint's parameters), written to
    `files` (or one folder) as density.csv, eigenvectors.pt and hessian.json (last; each
    atomically). With `run`, a checkpoint of another run is refused; `settings` are the
    config's `hessian` section (the schema's defaults fill the rest).

    A run whose training status is not "ok", or whose loss or gradient is not finite at the
    trained parameters, gets the three files with status "skipped" and a message, no numbers.
    Returns hessian.json's content.
    """
    started = time.perf_counter()
    settings = stage_settings("hessian", settings)
    files = HessianFiles.of(files)
    device = resolve_device(settings["device"])
    problem, model, checkpoint = load_trained(checkpoint_path, device, run)
    names = [name for name, _ in model.named_parameters()]
    shapes = [list(p.shape) for _, p in model.named_parameters()]
    record = {**stage.header(checkpoint["run_config"], settings, device, checkpoint_path, checkpoint),
              "n_params": sum(p.numel() for p in model.parameters()),
              "dtype": str(next(model.parameters()).dtype)}
    skip = dict(names=names, shapes=shapes, checkpoint_hash=checkpoint["hash"], record=record,
                files=files)
    status, message = stage.training_status(train_metrics, checkpoint_path, checkpoint)
    if status != "ok":
        return write_skipped(f"training status is {status!r}: {message}".rstrip(": "), **skip)
    loss_fn, params = problem.loss_function(model)
    try:
        operator = HessianOperator(loss_fn, params, batch_size=settings["probe_batch"])
    except NonFiniteLoss as error:
        return write_skipped(f"{error} (the trained parameters)", **skip)
    if settings["backend"] == "pyhessian":
        result = _pyhessian_metrics(problem, model, loss_fn, settings)
    else:
        result = _native_metrics(operator, settings)
    eigenpairs: Eigenpairs = result.pop("eigenpairs")
    density = result.pop("density_table")
    result["wall_time_s"]["total"] = time.perf_counter() - started
    summary = {
        "status": "ok", "message": "", **record,
        "loss": operator.loss, "gradient_norm": float(torch.linalg.vector_norm(operator.gradient)),
        "unused_parameters": operator.unused, **result,
    }
    write_csv(files.density, density)
    save_eigenvectors(files.eigenvectors, "ok", eigenpairs.eigenvalues,
                      eigenpairs.eigenvectors.detach().cpu(), names, shapes, checkpoint["hash"])
    write_json(files.hessian, summary)
    log.info("%s: top eigenvalues %s, trace %.4g ± %.2g in %.1f s", checkpoint_path,
             summary["eigenvalues"], summary["trace"], summary["trace_standard_error"],
             result["wall_time_s"]["total"])
    return summary


def _native_metrics(operator: HessianOperator, s: dict[str, Any]) -> dict[str, Any]:
    timer = time.perf_counter()
    eigenpairs = top_eigenpairs(None, None, s["k"], s["which"], s["tol"], s["max_iter"], s["seed"],
                                operator=operator)
    eigen_seconds = time.perf_counter() - timer
    if not eigenpairs.converged:
        log.warning("Lanczos did not reach tol=%g within max_iter=%d (residuals %s)", s["tol"],
                    s["max_iter"], eigenpairs.residuals.tolist())
    timer, before = time.perf_counter(), operator.n_products
    trace, trace_error = hutchinson_trace(None, None, s["trace_probes"], s["seed"] + 1,
                                          deflation=eigenpairs if s["trace_deflation"] else None,
                                          operator=operator)
    trace_seconds, trace_hvp = time.perf_counter() - timer, operator.n_products - before
    timer, before = time.perf_counter(), operator.n_products
    density = spectral_density(None, None, s["density_runs"], s["density_steps"],
                               sigma=s["density_sigma"], seed=s["seed"] + 2,
                               n_points=s["density_points"], operator=operator)
    density_seconds, density_hvp = time.perf_counter() - timer, operator.n_products - before
    return {
        **_eigen_summary(eigenpairs),
        "trace": trace, "trace_standard_error": trace_error, "trace_probes": s["trace_probes"],
        "trace_deflation_rank": (eigenpairs.krylov_basis.shape[0] if s["trace_deflation"] else 0),
        **_density_summary(density.nodes, density.weights, density.sigma),
        "n_hvp": {"eigenpairs": eigenpairs.n_hvp, "trace": trace_hvp, "density": density_hvp},
        "wall_time_s": {"eigenpairs": eigen_seconds, "trace": trace_seconds,
                        "density": density_seconds},
        "hvp_batch_size": operator.batch_size,
        "eigenpairs": eigenpairs,
        "density_table": pd.DataFrame({"eigenvalue": density.grid, "density": density.density}),
    }


def _pyhessian_metrics(problem: Any, model: torch.nn.Module, loss_fn: Any, s: dict[str, Any]
                       ) -> dict[str, Any]:
    from .pyhessian_backend import PyHessianBackend

    if s["which"] != "LM":
        log.warning("backend pyhessian computes the largest-magnitude eigenvalues (power "
                    "iteration): which=%s is reported as LM", s["which"])
    with PyHessianBackend(*problem.pyhessian_inputs(model, loss_fn)) as backend:
        timer, before = time.perf_counter(), backend.hvp_count
        eigenpairs = backend.eigenpairs(s["k"], s["max_iter"], s["tol"], s["seed"])
        eigen_seconds, eigen_hvp = time.perf_counter() - timer, backend.hvp_count - before
        timer, before = time.perf_counter(), backend.hvp_count
        trace, trace_error, samples = backend.trace(s["trace_probes"], PYHESSIAN_TRACE_TOL,
                                                    s["seed"] + 1)
        trace_seconds, trace_hvp = time.perf_counter() - timer, backend.hvp_count - before
        timer, before = time.perf_counter(), backend.hvp_count
        nodes, weights = backend.density(s["density_steps"], s["density_runs"], s["seed"] + 2)
        density_seconds, density_hvp = time.perf_counter() - timer, backend.hvp_count - before
        frozen = list(backend.frozen)
    grid, values, sigma = broadened_density(nodes, weights, sigma=s["density_sigma"],
                                            n_points=s["density_points"])
    return {
        **_eigen_summary(eigenpairs),
        "trace": trace, "trace_standard_error": trace_error, "trace_probes": len(samples),
        "trace_deflation_rank": 0, "pyhessian_trace_tol": PYHESSIAN_TRACE_TOL,
        "pyhessian_frozen_parameters": frozen,
        **_density_summary(nodes, weights, sigma),
        "n_hvp": {"eigenpairs": eigen_hvp, "trace": trace_hvp, "density": density_hvp},
        "wall_time_s": {"eigenpairs": eigen_seconds, "trace": trace_seconds,
                        "density": density_seconds},
        "eigenpairs": eigenpairs,
        "density_table": pd.DataFrame({"eigenvalue": grid, "density": values}),
    }


def _eigen_summary(eigenpairs: Eigenpairs) -> dict[str, Any]:
    values = eigenpairs.eigenvalues.tolist()
    return {"eigenvalues": values, "top_eigenvalue": values[0], "which": eigenpairs.which,
            "eigen_residuals": eigenpairs.residuals.tolist(), "eigen_converged": eigenpairs.converged}


def _density_summary(nodes: np.ndarray, weights: np.ndarray, sigma: float) -> dict[str, Any]:
    return {"density": {"file": HessianFiles.density, "sigma": sigma, "ritz_values": nodes.tolist(),
                        "weights": weights.tolist()}}


def write_skipped(reason: str, names: list[str], shapes: list[list[int]], checkpoint_hash: str,
                  record: dict[str, Any], files: HessianFiles) -> dict[str, Any]:
    """The three files for a run without a Hessian: status "skipped" and why, no numbers."""
    log.warning("skipped: %s", reason)
    summary = stage.skipped(reason, record)
    write_csv(files.density, pd.DataFrame({"eigenvalue": [], "density": []}))
    save_eigenvectors(files.eigenvectors, "skipped", torch.zeros(0, dtype=torch.float64),
                      torch.zeros((0, sum(math.prod(s) for s in shapes))), names, shapes,
                      checkpoint_hash)
    write_json(files.hessian, summary)
    return summary


def save_eigenvectors(path: str | os.PathLike, status: str, eigenvalues: torch.Tensor,
                      vectors: torch.Tensor, names: list[str], shapes: list[list[int]],
                      checkpoint_hash: str) -> None:
    """Write eigenvectors.pt atomically (the format in this module's docstring)."""
    payload = {"status": status, "eigenvalues": eigenvalues.to(torch.float64).cpu(),
               "vectors": vectors.cpu(), "names": list(names),
               "shapes": [list(shape) for shape in shapes], "checkpoint_hash": checkpoint_hash}
    save_torch_file(path, payload)


def load_eigenvectors(path: str | os.PathLike, checkpoint_hash: str | None = None
                      ) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """(eigenvalues, one parameter dict per eigenvector) from eigenvectors.pt; raises
    SkippedHessian for a skipped run and ValueError for a file that is not in the format or,
    with `checkpoint_hash`, was computed from another checkpoint."""
    payload = load_torch_file(path, "eigenvectors file", remedy="delete it to recompute the run's Hessian")
    required = ("status", "eigenvalues", "vectors", "names", "shapes", "checkpoint_hash")
    missing = [key for key in required if key not in payload]
    if missing:
        raise ValueError(f"{path}: not a toposweep eigenvectors file (missing keys {missing})")
    if checkpoint_hash is not None and payload["checkpoint_hash"] != checkpoint_hash:
        raise ValueError(f"{path} was computed from another checkpoint (hash "
                         f"{payload['checkpoint_hash'][:12]}, expected {checkpoint_hash[:12]})")
    if payload["status"] != "ok":
        raise SkippedHessian(f"{path}: the Hessian stage skipped this run (status "
                             f"{payload['status']!r}); it has no eigenvectors")
    n_params = sum(math.prod(shape) for shape in payload["shapes"])
    vectors = payload["vectors"]
    if vectors.ndim != 2 or vectors.shape != (len(payload["eigenvalues"]), n_params):
        raise ValueError(f"{path}: vectors of shape {tuple(vectors.shape)} do not match "
                         f"{len(payload['eigenvalues'])} eigenvalues and {n_params} parameters")
    dicts = [unflatten_shapes(row, payload["names"], payload["shapes"]) for row in vectors]
    return payload["eigenvalues"], dicts
