"""Hessian-vector products, Lanczos eigenpairs, Hutchinson trace and SLQ spectral density for any
pure loss `loss_fn(params: dict[str, Tensor]) -> scalar Tensor` (the Problem seam).

Everything runs in the parameters' own dtype and device; only the small tridiagonal matrices
are solved in float64 on the CPU.

HVP: double backward through a gradient graph built once (`HessianOperator`) and reused for
every product, several vectors at a time with `is_grads_batched` where that pays. Measured on the
2-core CPU machine (ms per vector): PINN (7,851 parameters) forward-over-reverse 16, double
backward with the gradient graph rebuilt each time 8.0, cached 4.0, cached and batched 16 at a
time 1.3; ResNet-20 w = 16 (269,722 parameters, batch 128) forward-over-reverse 714, rebuilt 788,
cached 534, cached and batched 4 at a time 631 (batching does not pay for large models).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import torch
from scipy.linalg import eigh_tridiagonal
from tqdm.auto import tqdm

from ..parameters import flatten, unflatten_shapes
from ..problems.base import LossFunction
from ..progress import ProgressLog

log = logging.getLogger(__name__)


# Batched HVPs (vmap over the backward pass) pay off for small models only (measured above).
SMALL_MODEL_PARAMETERS = 50_000
SMALL_MODEL_BATCH = 16
WHICH = ("LA", "LM")


class NonFiniteLoss(ValueError):
    """The loss (or its gradient) is NaN or infinite at the given parameters: no Hessian."""


class HessianOperator:
    """The Hessian of `loss_fn` at `params` as a linear operator on flat vectors.

    The gradient graph is built once; each product is one backward pass through it. Flat
    vectors concatenate the parameters in the dict's order (`names`), each flattened row-major.
    """

    def __init__(self, loss_fn: LossFunction, params: dict[str, torch.Tensor],
                 batch_size: int | None = None):
        if not isinstance(params, dict) or not params:
            raise ValueError("params must be a non-empty dict of parameter name -> Tensor")
        tensors = list(params.values())
        self.dtype, self.device = tensors[0].dtype, tensors[0].device
        for name, tensor in params.items():
            if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
                raise ValueError(f"params[{name!r}] must be a floating-point Tensor")
            if tensor.dtype != self.dtype or tensor.device != self.device:
                raise ValueError(f"params[{name!r}] is {tensor.dtype} on {tensor.device}; every "
                                 f"parameter must share one dtype and device ({self.dtype} on "
                                 f"{self.device})")
        self.names = list(params)
        self.shapes = [tuple(t.shape) for t in tensors]
        self.numels = [t.numel() for t in tensors]
        self.n_params = sum(self.numels)
        self.batch_size = default_batch_size(self.n_params) if batch_size is None else batch_size
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        self.n_products = 0
        self._leaves = [t.detach().requires_grad_(True) for t in tensors]
        with torch.enable_grad():
            loss = loss_fn(dict(zip(self.names, self._leaves)))
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                raise ValueError("loss_fn must return a scalar Tensor")
            self.loss = float(loss.detach())
            if not math.isfinite(self.loss):
                raise NonFiniteLoss(f"the loss is {self.loss} at the given parameters")
            grads = torch.autograd.grad(loss.reshape(()), self._leaves, create_graph=True,
                                        allow_unused=True)
        # Parameters the loss does not use, or uses only linearly, give no graph to go through:
        # their rows of the Hessian are zero (or come from the others' graphs by symmetry).
        self._graph = [(index, g) for index, g in enumerate(grads)
                       if g is not None and g.requires_grad]
        self.unused = [self.names[i] for i, g in enumerate(grads) if g is None]
        self.gradient = torch.cat([
            (torch.zeros(n, dtype=self.dtype, device=self.device) if g is None
             else g.detach().reshape(-1)) for g, n in zip(grads, self.numels)])
        if not bool(torch.isfinite(self.gradient).all()):
            raise NonFiniteLoss("the gradient is not finite at the given parameters")

    # --- flat <-> dict ---------------------------------------------------------------------
    def flatten(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """Concatenate a parameter-shaped dict (same names) into one flat vector."""
        missing = [name for name in self.names if name not in tensors]
        if missing:
            raise ValueError(f"vector dict lacks parameters {missing}")
        return flatten(tensors, self.names, self.dtype)

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split a flat vector into a dict of parameter-shaped views."""
        return unflatten(flat, self.names, self.shapes)

    # --- products --------------------------------------------------------------------------
    def matvec(self, vector: torch.Tensor) -> torch.Tensor:
        """H v for one flat vector."""
        return self.matmat(vector.reshape(1, -1)).reshape(-1)

    def matmat(self, vectors: torch.Tensor) -> torch.Tensor:
        """H v for each row of `vectors` (b, n), `batch_size` rows per backward pass."""
        if vectors.ndim != 2 or vectors.shape[1] != self.n_params:
            raise ValueError(f"vectors must have shape (b, {self.n_params}), got {tuple(vectors.shape)}")
        vectors = vectors.to(device=self.device, dtype=self.dtype)
        chunks = [self._products(chunk) for chunk in torch.split(vectors, self.batch_size)]
        return torch.cat(chunks) if chunks else vectors.clone()

    def _products(self, vectors: torch.Tensor) -> torch.Tensor:
        count = vectors.shape[0]
        self.n_products += count
        out = torch.zeros_like(vectors)
        if not self._graph:  # the loss is at most linear in the parameters
            return out
        batched = count > 1
        as_dict = unflatten_shapes(vectors if batched else vectors[0], self.names, self.shapes)
        grad_outputs = [as_dict[self.names[index]] for index, _ in self._graph]
        products = torch.autograd.grad([g for _, g in self._graph], self._leaves, grad_outputs,
                                       retain_graph=True, allow_unused=True,
                                       is_grads_batched=batched)
        offset = 0
        for product, numel in zip(products, self.numels):
            if product is not None:
                out[:, offset:offset + numel] = product.reshape(count, numel)
            offset += numel
        return out


def default_batch_size(n_params: int) -> int:
    """Vectors per batched HVP: 16 for models up to 50,000 parameters, else 1 (measured)."""
    return SMALL_MODEL_BATCH if n_params <= SMALL_MODEL_PARAMETERS else 1


def hvp(loss_fn: LossFunction, params: dict[str, torch.Tensor],
        v: dict[str, torch.Tensor] | torch.Tensor) -> dict[str, torch.Tensor] | torch.Tensor:
    """Hessian-vector product H v at `params`; `v` a parameter-shaped dict (returns a dict) or
    a flat vector in `params` order (returns a flat vector). For many products build a
    `HessianOperator` once and use its `matvec`/`matmat`."""
    operator = HessianOperator(loss_fn, params, batch_size=1)
    if isinstance(v, dict):
        return operator.unflatten(operator.matvec(operator.flatten(v)))
    if not isinstance(v, torch.Tensor):
        raise ValueError("v must be a dict of Tensors or a flat Tensor")
    return operator.matvec(v.reshape(-1)).reshape(v.shape)


# --- Lanczos ---------------------------------------------------------------------------------
@dataclass
class LanczosRun:
    """Output of (batched) Lanczos with full reorthogonalisation: `runs` independent Krylov
    bases in lockstep. T_r = tridiag(beta[r, :m-1], alpha[r, :m], beta[r, :m-1])."""

    alpha: np.ndarray  # (runs, m) float64
    beta: np.ndarray  # (runs, m): beta[:, m-1] is the residual norm after the last step
    basis: torch.Tensor  # (runs, m, n) orthonormal rows

    @property
    def steps(self) -> int:
        return self.alpha.shape[1]

    def ritz(self, run: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Ritz values (ascending) and the eigenvectors of T for one run."""
        m = self.steps
        if m == 1:
            return self.alpha[run].copy(), np.ones((1, 1))
        return eigh_tridiagonal(self.alpha[run], self.beta[run, : m - 1])


def rademacher(count: int, n: int, generator: torch.Generator, dtype: torch.dtype,
               device: torch.device) -> torch.Tensor:
    """`count` Rademacher (±1) vectors, drawn on the CPU (same numbers on every device)."""
    signs = torch.randint(0, 2, (count, n), generator=generator, dtype=torch.int8)
    return (signs.to(dtype) * 2 - 1).to(device)


def _orthogonalise(vectors: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """Remove the span of `basis` (runs, j, n) from `vectors` (runs, n): classical Gram-Schmidt
    twice, which keeps orthogonality to working precision."""
    if basis.shape[1] == 0:
        return vectors
    for _ in range(2):
        coefficients = torch.einsum("rjn,rn->rj", basis, vectors)
        vectors = vectors - torch.einsum("rj,rjn->rn", coefficients, basis)
    return vectors


def lanczos(operator: HessianOperator, start: torch.Tensor, max_steps: int,
            generator: torch.Generator, stop: Callable[[LanczosRun], bool] | None = None,
            description: str = "Lanczos") -> LanczosRun:
    """Lanczos with full reorthogonalisation from each row of `start` (runs, n), all runs in
    lockstep so their HVPs are batched. After each step `stop(run_so_far)` may end it early.
    On breakdown (an invariant subspace found) a run continues from a random vector orthogonal
    to its basis with beta = 0, which keeps T exact (block diagonal)."""
    runs, n = start.shape
    max_steps = min(max_steps, n)
    eps = torch.finfo(operator.dtype).eps
    # grown by doubling: a run that converges early never holds max_steps vectors
    basis = torch.zeros((runs, min(max_steps, 32), n), dtype=operator.dtype, device=operator.device)
    alpha = np.zeros((runs, max_steps))
    beta = np.zeros((runs, max_steps))
    q = start.to(device=operator.device, dtype=operator.dtype)
    q = q / torch.linalg.vector_norm(q, dim=1, keepdim=True)
    scale = np.zeros(runs)
    steps = 0
    lines = ProgressLog(log, description, max_steps, "Hessian-vector products" if runs == 1
                        else f"steps of {runs} runs", fraction=0.1)  # at most: it may converge
    with tqdm(total=max_steps, desc=description, disable=None, leave=False) as progress:
        for j in range(max_steps):
            if j == basis.shape[1]:
                grown = torch.zeros((runs, min(2 * j, max_steps), n), dtype=operator.dtype,
                                    device=operator.device)
                grown[:, :j] = basis
                basis = grown
            basis[:, j] = q
            w = operator.matmat(q)
            alpha[:, j] = torch.einsum("rn,rn->r", w, q).double().cpu().numpy()
            w = _orthogonalise(w, basis[:, : j + 1])
            norms = torch.linalg.vector_norm(w, dim=1)
            beta[:, j] = norms.double().cpu().numpy()
            scale = np.maximum(scale, np.abs(alpha[:, j]) + beta[:, j])
            steps = j + 1
            progress.update()
            lines.update()
            if stop is not None and stop(LanczosRun(alpha[:, :steps], beta[:, :steps],
                                                    basis[:, :steps])):
                break
            if j + 1 == max_steps:
                break
            broken = beta[:, j] <= math.sqrt(n) * eps * np.maximum(scale, np.finfo(float).tiny)
            if broken.any():
                fresh = torch.randn((runs, n), generator=generator, dtype=torch.float64)
                fresh = _orthogonalise(fresh.to(device=operator.device, dtype=operator.dtype),
                                       basis[:, : j + 1])
                index = torch.as_tensor(np.flatnonzero(broken), device=operator.device)
                w[index] = fresh[index]
                norms = torch.linalg.vector_norm(w, dim=1)
                beta[broken, j] = 0.0
            q = w / norms[:, None]
        lines.finish()  # converged before max_steps: say where it stopped
    return LanczosRun(alpha[:, :steps], beta[:, :steps], basis[:, :steps])


# --- top eigenpairs --------------------------------------------------------------------------
@dataclass
class Eigenpairs:
    """Top-k eigenpairs. Unpacks as `(eigenvalues, eigenvectors)`.

    eigenvalues: float64 (k,), descending for "LA", by descending magnitude for "LM";
    eigenvectors: (k, n) unit rows in the parameters' dtype, parameters flattened in `names`
    order, sign fixed (largest-magnitude entry positive); residuals: ||H x - lambda x|| of
    each pair (float64); `krylov_basis`/`krylov_trace`: the whole Lanczos subspace and
    tr(Q^T H Q), used to deflate the trace estimator.
    """

    eigenvalues: torch.Tensor
    eigenvectors: torch.Tensor
    names: list[str]
    shapes: list[tuple[int, ...]]
    residuals: torch.Tensor
    converged: bool
    n_hvp: int
    which: str
    krylov_basis: torch.Tensor | None = field(default=None, repr=False)
    krylov_trace: float | None = None

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter((self.eigenvalues, self.eigenvectors))

    def vector_dicts(self) -> list[dict[str, torch.Tensor]]:
        """Each eigenvector as a parameter-shaped dict (views into `eigenvectors`)."""
        return [unflatten(row, self.names, self.shapes) for row in self.eigenvectors]


def unflatten(flat: torch.Tensor, names: list[str], shapes: list) -> dict[str, torch.Tensor]:
    """One flat vector (not a batch: operators and eigenvectors work on (n,) vectors) as a dict
    of parameter-shaped views, parameters in `names` order; see `toposweep.parameters`."""
    n_params = sum(math.prod(shape) for shape in shapes)
    if flat.shape != (n_params,):
        raise ValueError(f"flat vector has shape {tuple(flat.shape)}, expected ({n_params},)")
    return unflatten_shapes(flat, names, shapes)


def fix_signs(vectors: torch.Tensor) -> torch.Tensor:
    """Unit rows with the sign fixed (largest-magnitude entry positive), so eigenvectors from
    different runs, start vectors or backends compare directly."""
    vectors = vectors / torch.linalg.vector_norm(vectors, dim=1, keepdim=True)
    peaks = vectors.gather(1, vectors.abs().argmax(dim=1, keepdim=True))
    return vectors * torch.where(peaks < 0, -1.0, 1.0).to(vectors.dtype)


def _wanted(values: np.ndarray, k: int, which: str) -> np.ndarray:
    """Indices of the k wanted Ritz values, in output order."""
    if which == "LA":
        return np.argsort(-values, kind="stable")[:k]
    return np.argsort(-np.abs(values), kind="stable")[:k]


def _check_positive_int(name: str, value: int, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def top_eigenpairs(loss_fn: LossFunction | None, params: dict[str, torch.Tensor] | None, k: int,
                   which: str = "LA", tol: float = 1e-4, max_iter: int = 100, seed: int = 0,
                   operator: HessianOperator | None = None,
                   callback: Callable[[LanczosRun], None] | None = None) -> Eigenpairs:
    """Top-k Hessian eigenpairs by Lanczos with full reorthogonalisation.

    `which="LA"`: largest algebraic (the default: the sharpest directions); `"LM"`: largest
    magnitude (PyHessian's power iteration). Stops once every wanted pair has
    ||H x - lambda x|| <= tol * |lambda| (ARPACK's criterion; the eigenvalue error is then of
    order tol^2 lambda^2 / gap), or after `max_iter` HVPs (then `converged` is False).
    Pass `operator` to reuse a gradient graph (loss_fn and params are then ignored);
    `callback(run_so_far)` is called after every Lanczos step (monitoring, benchmarks).
    """
    _check_positive_int("k", k)
    _check_positive_int("max_iter", max_iter)
    if which not in WHICH:
        raise ValueError(f"which must be one of {WHICH}, got {which!r}")
    if not (isinstance(tol, (int, float)) and tol > 0):
        raise ValueError(f"tol must be a number > 0, got {tol!r}")
    operator = operator or HessianOperator(loss_fn, params)
    n = operator.n_params
    if k > n:
        raise ValueError(f"k={k} exceeds the number of parameters ({n})")
    max_steps = min(max(max_iter, k), n)
    generator = torch.Generator().manual_seed(seed)
    start = torch.randn((1, n), generator=generator, dtype=torch.float64)
    products_before = operator.n_products

    def converged(run: LanczosRun) -> bool:
        if callback is not None:
            callback(run)
        if run.steps < k:
            return False
        values, vectors = run.ritz()
        chosen = _wanted(values, k, which)
        residuals = np.abs(run.beta[0, -1] * vectors[-1, chosen])
        return bool(np.all(residuals <= tol * np.abs(values[chosen])))

    run = lanczos(operator, start, max_steps, generator, stop=converged,
                  description=f"Lanczos (top {k})")
    values, vectors = run.ritz()
    chosen = _wanted(values, k, which)
    basis = run.basis[0]
    coefficients = torch.as_tensor(vectors[:, chosen].T.copy(), dtype=operator.dtype,
                                   device=operator.device)
    eigenvectors = fix_signs(coefficients @ basis)
    residuals = np.abs(run.beta[0, -1] * vectors[-1, chosen])
    done = run.steps == n or bool(np.all(residuals <= tol * np.abs(values[chosen])))
    return Eigenpairs(
        eigenvalues=torch.as_tensor(values[chosen], dtype=torch.float64),
        eigenvectors=eigenvectors, names=list(operator.names), shapes=list(operator.shapes),
        residuals=torch.as_tensor(residuals, dtype=torch.float64), converged=done,
        n_hvp=operator.n_products - products_before, which=which, krylov_basis=basis,
        krylov_trace=float(run.alpha[0].sum()),
    )


# --- trace -----------------------------------------------------------------------------------
def trace_samples(operator: HessianOperator, n_samples: int, seed: int = 0,
                  deflation: torch.Tensor | None = None) -> Iterator[np.ndarray]:
    """Hutchinson samples z^T P H P z (Rademacher z; P = I - U U^T projects out the orthonormal
    rows U of `deflation`), one batch of `operator.batch_size` probes at a time. Probes are drawn
    one by one from `seed`, so they do not depend on the batch size."""
    generator = torch.Generator().manual_seed(seed)
    remaining = n_samples
    while remaining > 0:
        count = min(operator.batch_size, remaining)
        probes = torch.cat([rademacher(1, operator.n_params, generator, operator.dtype,
                                       operator.device) for _ in range(count)])
        if deflation is not None and deflation.shape[0]:
            probes = probes - (probes @ deflation.T) @ deflation
        products = operator.matmat(probes)
        yield torch.einsum("bn,bn->b", probes, products).double().cpu().numpy()
        remaining -= count


def hutchinson_trace(loss_fn: LossFunction | None, params: dict[str, torch.Tensor] | None,
                     n_samples: int, seed: int = 0,
                     deflation: Eigenpairs | torch.Tensor | None = None,
                     operator: HessianOperator | None = None) -> tuple[float, float]:
    """Hutchinson estimate of tr(H) with Rademacher probes: (mean, standard error).

    A fixed number of probes, no early stop (PyHessian 0.1 stops on a relative change that a
    negative running mean always satisfies). With `deflation` (an `Eigenpairs` from
    `top_eigenpairs`: its whole Lanczos subspace; or orthonormal rows U) the trace is split
    exactly into tr(U^T H U) plus a Hutchinson estimate on the complement, which removes the
    dominant eigenvalues from the estimator's variance and stays unbiased.
    """
    _check_positive_int("n_samples", n_samples, 2)
    operator = operator or HessianOperator(loss_fn, params)
    basis, exact_part = None, 0.0
    if isinstance(deflation, Eigenpairs):
        if deflation.krylov_basis is None:
            raise ValueError("deflation Eigenpairs carry no Lanczos subspace (krylov_basis)")
        basis, exact_part = deflation.krylov_basis, float(deflation.krylov_trace)
    elif deflation is not None:
        basis = deflation.to(device=operator.device, dtype=operator.dtype)
        if basis.ndim != 2 or basis.shape[1] != operator.n_params:
            raise ValueError(f"deflation must have shape (r, {operator.n_params})")
        gram = basis @ basis.T
        if not torch.allclose(gram, torch.eye(len(basis), dtype=gram.dtype, device=gram.device),
                              atol=1e-4 if operator.dtype == torch.float32 else 1e-8):
            raise ValueError("deflation rows must be orthonormal")
        exact_part = float(torch.einsum("rn,rn->", basis, operator.matmat(basis)))
    samples = np.concatenate(list(tqdm(
        trace_samples(operator, n_samples, seed, basis), desc="Hutchinson probes", disable=None,
        leave=False, total=math.ceil(n_samples / operator.batch_size))))
    mean = exact_part + float(samples.mean())
    standard_error = float(samples.std(ddof=1) / math.sqrt(len(samples)))
    return mean, standard_error


# --- spectral density ------------------------------------------------------------------------
@dataclass
class SpectralDensity:
    """SLQ density on a grid; unpacks as `(grid, density)`. `nodes`/`weights` (runs, m): Ritz
    values and squared first components of the Ritz vectors of every run (PyHessian's output)."""

    grid: np.ndarray
    density: np.ndarray
    nodes: np.ndarray
    weights: np.ndarray
    sigma: float

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter((self.grid, self.density))


def broadened_density(nodes: np.ndarray, weights: np.ndarray, grid: np.ndarray | None = None,
                      sigma: float | None = None, n_points: int = 1000
                      ) -> tuple[np.ndarray, np.ndarray, float]:
    """Average over runs of sum_j w_j N(x; node_j, sigma^2) on `grid`. Defaults: sigma = 1 % of
    the Ritz values' range (1 % of their magnitude if they coincide); grid = `n_points` points
    from min - 6 sigma to max + 6 sigma, so the density integrates to 1 on it."""
    nodes, weights = np.atleast_2d(nodes), np.atleast_2d(weights)
    low, high = float(nodes.min()), float(nodes.max())
    if sigma is None:
        span = high - low
        sigma = 0.01 * (span if span > 0 else max(abs(high), 1.0))
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma!r}")
    if grid is None:
        _check_positive_int("n_points", n_points, 2)
        grid = np.linspace(low - 6 * sigma, high + 6 * sigma, n_points)
    grid = np.asarray(grid, dtype=np.float64)
    if grid.ndim != 1:
        raise ValueError("grid must be one-dimensional")
    density = np.zeros_like(grid)
    for run_nodes, run_weights in zip(nodes, weights):
        gaussians = np.exp(-0.5 * ((grid[:, None] - run_nodes[None, :]) / sigma) ** 2)
        density += gaussians @ run_weights / (sigma * math.sqrt(2 * math.pi))
    return grid, density / len(nodes), float(sigma)


def spectral_density(loss_fn: LossFunction | None, params: dict[str, torch.Tensor] | None,
                     n_runs: int, n_iter: int, grid: np.ndarray | None = None,
                     sigma: float | None = None, seed: int = 0, n_points: int = 1000,
                     operator: HessianOperator | None = None) -> SpectralDensity:
    """Stochastic Lanczos quadrature: `n_runs` Lanczos runs of `n_iter` steps (full
    reorthogonalisation) from normalised Rademacher vectors, batched together; Gaussian
    broadening with weights = squared first components of the Ritz vectors (PyHessian's
    definition); `grid`, `sigma` and `n_points` as in `broadened_density`. Returns a `SpectralDensity` (unpacks as `(grid, density)`)."""
    _check_positive_int("n_runs", n_runs)
    _check_positive_int("n_iter", n_iter)
    operator = operator or HessianOperator(loss_fn, params)
    generator = torch.Generator().manual_seed(seed)
    start = rademacher(n_runs, operator.n_params, generator, operator.dtype, operator.device)
    nodes, weights = [], []
    # runs in lockstep only as many at a time as one batched HVP takes (memory: runs x steps x n)
    for group in torch.split(start, operator.batch_size):
        run = lanczos(operator, group, n_iter, generator, description="SLQ")
        for index in range(len(group)):
            values, vectors = run.ritz(index)
            nodes.append(values)
            weights.append(vectors[0] ** 2)
    nodes, weights = np.array(nodes), np.array(weights)
    grid, density, sigma = broadened_density(nodes, weights, grid, sigma, n_points)
    return SpectralDensity(grid, density, nodes, weights, sigma)
