"""Hessian stage: top eigenpairs, trace and spectral density of any pure loss (the Problem seam)."""

from .engine import (
    Eigenpairs,
    HessianOperator,
    LanczosRun,
    NonFiniteLoss,
    SpectralDensity,
    broadened_density,
    default_batch_size,
    hutchinson_trace,
    hvp,
    lanczos,
    spectral_density,
    top_eigenpairs,
    trace_samples,
    unflatten,
)
from .stage import (
    SkippedHessian,
    hessian_of_checkpoint,
    load_eigenvectors,
    save_eigenvectors,
)

__all__ = [
    "Eigenpairs", "HessianOperator", "LanczosRun", "NonFiniteLoss", "SpectralDensity",
    "broadened_density", "default_batch_size", "hutchinson_trace", "hvp",
    "lanczos", "SkippedHessian", "hessian_of_checkpoint",
    "load_eigenvectors", "save_eigenvectors", "spectral_density", "top_eigenpairs", "trace_samples", "unflatten",
]
