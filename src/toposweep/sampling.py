"""Where a landscape's loss is evaluated: a regular grid, or scattered samples of the subspace.

A grid has resolution^dimensions points, which stops being affordable beyond 5 or 6 dimensions;
scattered samples (Sobol, Latin hypercube, uniform) cover a 10-D cube with any number of points,
and the topology stage then works on their neighbourhood graph. Both give the coefficients of
the points one slice at a time (a work unit needs only its own rows).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Sequence

import numpy as np

SAMPLINGS = ("grid", "sobol", "latin_hypercube", "uniform")
SCATTERED = SAMPLINGS[1:]


class GridCoefficients:
    """The (P, d) coefficients of every grid point, in C order of the result array, made one
    slice at a time: a work unit needs only its own rows, so a large grid never holds all P x d
    of them (201^4 points would be 12 GiB)."""

    def __init__(self, axes: Sequence[np.ndarray]):
        self.axes = [np.asarray(a, dtype=np.float64) for a in axes]
        self.shape = tuple(len(a) for a in self.axes)

    def __len__(self) -> int:
        return math.prod(self.shape)

    def __getitem__(self, rows: slice) -> np.ndarray:
        start, stop, _ = rows.indices(len(self))
        index = np.unravel_index(np.arange(start, stop), self.shape)
        return np.stack([axis[i] for axis, i in zip(self.axes, index)], axis=1).reshape(-1, len(self.axes))


def grid_coefficients(axes: Sequence[np.ndarray]) -> np.ndarray:
    """All (P, d) coefficients at once (small grids; the stages use GridCoefficients)."""
    return GridCoefficients(axes)[:]


def grid_axes(dimensions: int, resolution: int, extent: float) -> list[np.ndarray]:
    """`dimensions` copies of `resolution` points over [-extent, extent] (odd: 0 is on the grid)."""
    return [np.linspace(-extent, extent, resolution) for _ in range(dimensions)]


def scattered_samples(sampling: str, n_samples: int, dimensions: int, extent: float,
                      seed: int) -> np.ndarray:
    """(n_samples, dimensions) coefficients in [-extent, extent]^dimensions, seeded.

    Row 0 is the origin (the trained weights), so the landscape always holds the trained loss;
    the other n_samples - 1 rows come from scrambled Sobol, Latin hypercube (both
    scipy.stats.qmc) or uniform sampling. The samples' stream is seeded by (seed, 1): the
    landscape's `seed` also draws its random directions, and the two must not be correlated.
    """
    from scipy.stats import qmc

    if sampling not in SCATTERED:
        raise ValueError(f"sampling must be one of {', '.join(SCATTERED)}; got {sampling!r}")
    if n_samples < 2:
        raise ValueError(f"n_samples must be at least 2 (the origin and one sample); got {n_samples}")
    rng = np.random.default_rng([seed, 1])
    count = n_samples - 1
    if sampling == "sobol":
        engine = qmc.Sobol(dimensions, scramble=True, seed=rng)
        with warnings.catch_warnings():  # the first n of a scrambled sequence are still valid,
            warnings.simplefilter("ignore", UserWarning)  # balanced best at powers of 2
            unit = engine.random(count)
    elif sampling == "latin_hypercube":
        unit = qmc.LatinHypercube(dimensions, seed=rng).random(count)
    else:
        unit = rng.random((count, dimensions))
    points = qmc.scale(unit, -extent, extent) if count else unit
    return np.concatenate([np.zeros((1, dimensions)), points])


def landscape_points(settings: dict[str, Any], extent: float
                     ) -> tuple[list[np.ndarray] | None, Any]:
    """(axes or None, coefficients) of a landscape spec: the grid's axes and its lazy
    coefficients, or None and the scattered samples."""
    if settings["sampling"] == "grid":
        axes = grid_axes(settings["dimensions"], settings["resolution"], extent)
        return axes, GridCoefficients(axes)
    return None, scattered_samples(settings["sampling"], settings["n_samples"],
                                   settings["dimensions"], extent, settings["seed"])
