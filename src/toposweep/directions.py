"""Landscape directions: seeded random (filter-, layer- or un-normalised) or Hessian eigenvectors.

A direction is a parameter dict shaped like the model's parameters. With `filter` or `layer`
normalisation each filter (or whole tensor) of a direction has the norm of the matching weights
(Li et al. 2018), so a coefficient of 1 moves every filter by its own norm: units relative to the
parameters. With `none` each direction has unit norm overall: absolute units in parameter space.
"""

from __future__ import annotations

import torch

# flatten/unflatten live in toposweep.parameters; imported here, they stay importable from this
# module (landscape.py and the landscape benchmark use them from here).
from toposweep.parameters import flatten, unflatten

Direction = dict[str, torch.Tensor]
NORMALIZATIONS = ("filter", "layer", "none")


def normalize_direction(
    direction: Direction, params: Direction, normalization: str, ignore_bias_and_norm: bool = True
) -> Direction:
    """Scale a direction per filter (rows of dim 0), per tensor, or to unit norm overall.

    One-dimensional parameters (biases, normalisation-layer weights) are zeroed when
    `ignore_bias_and_norm` (the convention of Li et al.), else set to the parameter itself.
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    out = {}
    for name, d in direction.items():
        w = params[name]
        if normalization != "none" and w.dim() <= 1:
            out[name] = torch.zeros_like(w) if ignore_bias_and_norm else w.clone()
        elif normalization == "filter":
            d_rows, w_rows = d.reshape(d.shape[0], -1), w.reshape(w.shape[0], -1)
            scale = w_rows.norm(dim=1, keepdim=True) / (d_rows.norm(dim=1, keepdim=True) + 1e-10)
            out[name] = (d_rows * scale).reshape(w.shape)
        elif normalization == "layer":
            out[name] = d * (w.norm() / (d.norm() + 1e-10))
        else:
            out[name] = d.clone()
    if normalization == "none":
        names = list(out)
        norm = flatten(out, names).norm()
        out = {name: t / norm for name, t in out.items()}
    return out


def orthogonalize(directions: list[Direction]) -> list[Direction]:
    """Gram-Schmidt in the flattened parameter space, keeping each direction's norm, so the
    axes of the landscape are orthogonal (cosines ~1e-7) and keep their scale."""
    if not directions:
        return []
    names = list(directions[0])
    basis: list[torch.Tensor] = []
    out = []
    for direction in directions:
        flat = flatten(direction, names).double()
        norm = flat.norm()
        for unit in basis:
            flat = flat - (flat @ unit) * unit
        if flat.norm() < 1e-8 * max(float(norm), 1e-30):
            raise ValueError("directions are linearly dependent; cannot orthogonalize them")
        unit = flat / flat.norm()
        basis.append(unit)
        dtype = direction[names[0]].dtype
        out.append(unflatten((unit * norm).to(dtype), direction))
    return out


def random_directions(
    params: Direction,
    n: int,
    seed: int,
    normalization: str = "filter",
    ignore_bias_and_norm: bool = True,
) -> list[Direction]:
    """`n` Gaussian directions from `seed`, normalised, then orthogonalised."""
    generator = torch.Generator().manual_seed(seed)
    directions = []
    for _ in range(n):
        raw = {name: torch.randn(p.shape, generator=generator, dtype=torch.float64).to(p)
               for name, p in params.items()}
        directions.append(normalize_direction(raw, params, normalization, ignore_bias_and_norm))
    return orthogonalize(directions)


def cosine(a: Direction, b: Direction) -> float:
    names = list(a)
    fa, fb = flatten(a, names).double(), flatten(b, names).double()
    return float(fa @ fb / (fa.norm() * fb.norm()))
