"""Landscape directions: seeded random (filter-, layer- or un-normalised), Hessian eigenvectors,
or the principal components of the optimiser's trajectory.

A direction is a parameter dict shaped like the model's parameters. With `filter` or `layer`
normalisation each filter (or whole tensor) of a direction has the norm of the matching weights
(Li et al. 2018), so a coefficient of 1 moves every filter by its own norm: units relative to the
parameters. With `none` each direction has unit norm overall: absolute units in parameter space.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

# flatten/unflatten live in toposweep.parameters; imported here, they stay importable from this
# module (landscape.py and the landscape benchmark use them from here).
from toposweep.io import load_torch_file
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


@dataclass
class TrajectoryPlane:
    """The optimiser's path in the span of its top principal components: `directions` (unit
    norm, orthogonal), the path's `coordinates` (n_snapshots, d) relative to the final weights,
    the snapshot `steps`, and the share of the path's variance each component explains."""

    directions: list[Direction]
    coordinates: np.ndarray
    steps: np.ndarray
    explained_variance_ratio: np.ndarray


def trajectory_plane(path: str | os.PathLike, params: Direction, n: int,
                     checkpoint_hash: str) -> TrajectoryPlane:
    """PCA of the training snapshots in trajectory.pt minus the final weights (`params`), as in
    Li et al.'s trajectory plots (scikit-learn's PCA, centred); the file must belong to the
    checkpoint (`checkpoint_hash`)."""
    from sklearn.decomposition import PCA

    payload = load_torch_file(path, "trajectory file", remedy="delete it and the checkpoint to retrain the run")
    if payload.get("checkpoint_hash") != checkpoint_hash:
        raise ValueError(f"{path} belongs to another checkpoint (hash "
                         f"{str(payload.get('checkpoint_hash'))[:12]}, expected {checkpoint_hash[:12]})")
    names = list(params)
    if payload["names"] != names:
        raise ValueError(f"{path}: its parameters do not match the model's")
    snapshots = payload["parameters"].double()
    if snapshots.shape[0] < n + 1:
        raise ValueError(f"{path} holds {snapshots.shape[0]} snapshots; a {n}-D trajectory_pca "
                         f"landscape needs at least {n + 1}: take snapshots more often "
                         "(snapshots.every) or train longer")
    final = flatten(params, names).double().cpu()
    offsets = (snapshots - final).numpy()
    pca = PCA(n_components=n).fit(offsets)
    components = torch.from_numpy(pca.components_)
    like = {name: params[name].cpu() for name in names}
    directions = [{name: tensor.to(params[name]) for name, tensor in unflatten(
        row.to(params[names[0]].dtype), like).items()} for row in components]
    return TrajectoryPlane(directions, offsets @ pca.components_.T,
                           payload["steps"].numpy(), pca.explained_variance_ratio_)
