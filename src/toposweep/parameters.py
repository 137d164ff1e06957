"""Parameter dicts as flat vectors and back: the one place that defines the flat layout.

A flat vector concatenates the tensors in a given name order, each flattened row-major. The
landscape (theta + A @ D), the directions (Gram-Schmidt) and the Hessian (Lanczos, eigenvector
files) all use this layout, so a direction, an eigenvector and a grid point are interchangeable.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch

Parameters = dict[str, torch.Tensor]


def flatten(
    tensors: Mapping[str, torch.Tensor], names: Sequence[str], dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Concatenate `tensors[name]` for each of `names`, each flattened row-major, into one
    vector (each tensor converted to `dtype` first when given)."""
    pieces = [tensors[name].reshape(-1) for name in names]
    if dtype is not None:
        pieces = [piece.to(dtype) for piece in pieces]
    return torch.cat(pieces)


def unflatten(flat: torch.Tensor, like: Mapping[str, torch.Tensor]) -> Parameters:
    """Split a flat vector (or a (..., n) batch of them) into tensors named and shaped like
    `like` (in its order), as views into `flat`."""
    return unflatten_shapes(flat, list(like), [tuple(tensor.shape) for tensor in like.values()])


def unflatten_shapes(
    flat: torch.Tensor, names: Sequence[str], shapes: Sequence[Sequence[int]]
) -> Parameters:
    """Split a flat vector (or a (..., n) batch of them) into tensors of the given names and
    shapes (in that order), as views into `flat`: for callers that hold no parameter dict, such
    as eigenvector files, which store names and shapes only."""
    out, offset = {}, 0
    lead = flat.shape[:-1]
    for name, shape in zip(names, shapes):
        size = math.prod(shape)
        out[name] = flat[..., offset : offset + size].reshape((*lead, *shape))
        offset += size
    if offset != flat.shape[-1]:
        raise ValueError(f"flat vector has {flat.shape[-1]} entries, parameters have {offset}")
    return out
