"""`backend: pyhessian`: PyPI PyHessian 0.1 itself, so its numbers can be reproduced.

PyHessian 0.1 calls `torch.eig`, removed in torch 2: `pyhessian_shim()` supplies it (through
`torch.linalg.eigh`: PyHessian only decomposes symmetric tridiagonal matrices) and counts HVPs.
Its API is `criterion(model(inputs), targets)`: problems that have that form say so in
`Problem.pyhessian_inputs` (the classifiers); any other loss (the PINN's differentiates the network with
respect to its inputs) goes through `LossAsModule`, whose forward returns the seam's loss.
Parameters that get no gradient crash PyHessian's HVP; they are frozen while it runs (their
Hessian rows are zero) and get zeros in the eigenvectors. What PyHessian does differently:
`eigenvalues()` is power iteration, i.e. largest *magnitude*; `trace()` stops as soon as the
relative change of its running mean is below tol, which a negative mean always is.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import warnings
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from .engine import Eigenpairs, LossFunction, fix_signs


class LossAsModule(nn.Module):
    """A module whose forward returns `loss_fn(model's parameters)`: any seam loss in the
    `criterion(model(inputs), targets)` form PyHessian takes (criterion = `output_is_loss`)."""

    def __init__(self, model: nn.Module, loss_fn: LossFunction):
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(dict(self.model.named_parameters()))


def output_is_loss(output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return output


class HVPCounter:
    count = 0


@contextlib.contextmanager
def pyhessian_shim() -> Iterator[HVPCounter]:
    """Provide `torch.eig` (removed in torch 2) while PyHessian runs, and count its HVPs."""
    module = importlib.import_module("pyhessian.hessian")  # the package re-exports the class under this name

    def eig(matrix: torch.Tensor, eigenvectors: bool = False):
        values, vectors = torch.linalg.eigh(matrix)
        as_complex_pairs = torch.stack([values, torch.zeros_like(values)], dim=1)
        return as_complex_pairs, (vectors if eigenvectors else matrix.new_empty(0))

    counter = HVPCounter()
    original_product = module.hessian_vector_product

    def counted_product(gradsH, params, v):
        counter.count += 1
        return original_product(gradsH, params, v)

    had_eig = hasattr(torch, "eig")
    previous = getattr(torch, "eig", None)
    torch.eig = eig
    module.hessian_vector_product = counted_product
    try:
        yield counter
    finally:
        module.hessian_vector_product = original_product
        if had_eig:
            torch.eig = previous
        else:
            del torch.eig


def loss_as_pyhessian_inputs(model: nn.Module, loss_fn: LossFunction
                             ) -> tuple[nn.Module, Callable, tuple[torch.Tensor, torch.Tensor]]:
    """(module, criterion, data) for PyHessian from any seam loss: the loss wrapped as a module
    whose output is the loss (Problem.pyhessian_inputs' default; classifiers give their batch)."""
    device = next(model.parameters()).device
    placeholder = torch.zeros(1, device=device)
    return LossAsModule(model, loss_fn), output_is_loss, (placeholder, placeholder)


class PyHessianBackend:
    """PyHessian 0.1's `hessian` class on one batch, with the shim, seeded, unused parameters
    frozen. Use as a context manager: it clears the gradient graph PyHessian leaves in `.grad`."""

    def __init__(self, model: nn.Module, criterion: Callable,
                 data: tuple[torch.Tensor, torch.Tensor]):
        from pyhessian import hessian as PyHessian

        self.model = model
        self.named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        self.device = self.named[0][1].device
        inputs, targets = data
        with torch.enable_grad():
            loss = criterion(model.eval()(inputs), targets)
            grads = torch.autograd.grad(loss, [p for _, p in self.named], allow_unused=True)
        self.frozen = [name for (name, _), g in zip(self.named, grads) if g is None]
        for name, p in self.named:
            if name in self.frozen:
                p.requires_grad_(False)
        model.zero_grad(set_to_none=True)
        self.hvp_count = 0
        with pyhessian_shim() as counter, warnings.catch_warnings():
            # its loss.backward(create_graph=True) cycle is broken in close()
            warnings.filterwarnings("ignore", "Using backward\\(\\) with create_graph=True")
            self.engine = PyHessian(model, criterion, data=data, cuda=self.device.type == "cuda")
        self.hvp_count += counter.count

    def __enter__(self) -> "PyHessianBackend":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Drop PyHessian's gradient graph and unfreeze the frozen parameters."""
        self.engine.gradsH = None
        self.model.zero_grad(set_to_none=True)
        for name, p in self.named:
            if name in self.frozen:
                p.requires_grad_(True)

    def _flat(self, vector: list[torch.Tensor]) -> torch.Tensor:
        """PyHessian's per-parameter list as one flat vector, zeros for frozen parameters."""
        pieces, used = [], iter(vector)
        for name, p in self.named:
            pieces.append(torch.zeros(p.numel(), dtype=p.dtype, device=p.device)
                          if name in self.frozen else next(used).detach().reshape(-1).to(p.dtype))
        return torch.cat(pieces)

    def _run(self, method: str, seed: int, **kwargs: Any) -> Any:
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(seed)
            with pyhessian_shim() as counter:
                result = getattr(self.engine, method)(**kwargs)
        self.hvp_count += counter.count
        return result

    def eigenpairs(self, k: int, max_iter: int = 100, tol: float = 1e-3, seed: int = 0
                   ) -> Eigenpairs:
        """PyHessian's `eigenvalues(maxIter, tol, top_n=k)` (power iteration with deflation:
        largest magnitude), sorted by descending magnitude; residuals from one more HVP each."""
        before = self.hvp_count
        values, vectors = self._run("eigenvalues", seed, maxIter=max_iter, tol=tol, top_n=k)
        flat = fix_signs(torch.stack([self._flat(v) for v in vectors]))
        order = np.argsort(-np.abs(np.asarray(values)), kind="stable")
        values = torch.as_tensor(np.asarray(values, dtype=np.float64)[order])
        flat = flat[torch.as_tensor(order.copy())]
        residuals = torch.as_tensor([float(torch.linalg.vector_norm(self.product(row) - value * row))
                                     for value, row in zip(values.tolist(), flat)],
                                    dtype=torch.float64)
        return Eigenpairs(eigenvalues=values, eigenvectors=flat, names=[n for n, _ in self.named],
                          shapes=[tuple(p.shape) for _, p in self.named], residuals=residuals,
                          # the native criterion, for comparison (PyHessian's tol is on the change)
                          converged=bool(np.all(residuals.numpy() <= tol * np.abs(values.numpy()))),
                          n_hvp=self.hvp_count - before, which="LM")

    def product(self, flat: torch.Tensor) -> torch.Tensor:
        """H v with PyHessian's own (cached double-backward) HVP; v flat, in `named` order."""
        module = importlib.import_module("pyhessian.hessian")

        pieces, offset = [], 0
        for name, p in self.named:
            if name not in self.frozen:
                pieces.append(flat[offset:offset + p.numel()].view_as(p))
            offset += p.numel()
        with pyhessian_shim() as counter:
            result = module.hessian_vector_product(self.engine.gradsH, self.engine.params, pieces)
        self.hvp_count += counter.count
        return self._flat(list(result))

    def trace(self, max_iter: int = 100, tol: float = 1e-3, seed: int = 0
              ) -> tuple[float, float, np.ndarray]:
        """PyHessian's `trace(maxIter, tol)`: (mean, standard error, the samples it drew)."""
        samples = np.asarray(self._run("trace", seed, maxIter=max_iter, tol=tol), dtype=np.float64)
        error = float(samples.std(ddof=1) / math.sqrt(len(samples))) if len(samples) > 1 else math.nan
        return float(samples.mean()), error, samples

    def density(self, n_iter: int = 100, n_runs: int = 1, seed: int = 0
                ) -> tuple[np.ndarray, np.ndarray]:
        """PyHessian's `density(iter, n_v)` (with the torch.eig shim): Ritz values and weights,
        each (n_runs, n_iter)."""
        nodes, weights = self._run("density", seed, iter=n_iter, n_v=n_runs)
        return np.asarray(nodes, dtype=np.float64), np.asarray(weights, dtype=np.float64)
