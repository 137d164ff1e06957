"""Loops: 1-dimensional persistence pairs of grid landscapes (opt-in, `homology_dimensions`).

The merge tree only sees components (H0). Loops come from gudhi's cubical complex with vertex
values (`CubicalComplex(vertices=...)`: a cell enters at the largest value of its vertices, so its
1-skeleton is the `axis` connectivity). gudhi is imported here, only when loops are asked for, so
the library runs without it otherwise.

Non-finite values keep the project's policy: they are given to gudhi as +inf (above every finite
value, never replaced by a finite number). A loop that is only filled through non-finite vertices
dies at +inf (counted in `n_loops_infinite_death`, left out of the persistence statistics); loops
born at a non-finite vertex have no finite birth and are dropped. A grid is a box (contractible),
so there is no essential 1-dimensional class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from toposweep.sizes import LOOP_MAX_NDIM  # 4: a 41^4 grid's cubical complex has 43 M cells
from toposweep.topology.merge_tree import ordering_key, validate_values

HOMOLOGY_DIMENSIONS = (0, 1)


def validate_homology_dimensions(dimensions: Any) -> tuple[int, ...]:
    """Sorted unique dimensions from {0, 1}, containing 0 (the merge tree is always computed)."""
    dims = tuple(sorted({int(d) for d in dimensions}))
    if not dims or dims[0] != 0 or any(d not in HOMOLOGY_DIMENSIONS for d in dims):
        raise ValueError(f"homology_dimensions must contain 0 and be a subset of {{0, 1}}; "
                         f"got {list(dimensions)}")
    return dims


@dataclass(frozen=True)
class LoopPairs:
    """H1 pairs of a grid: values and flat C-order vertices of birth and death, sorted."""

    shape: tuple[int, ...]
    births: np.ndarray
    deaths: np.ndarray  # +inf where the loop is only filled through non-finite vertices
    birth_vertex: np.ndarray
    death_vertex: np.ndarray

    @property
    def persistence(self) -> np.ndarray:
        return self.deaths - self.births


def loop_pairs(values: Any, threshold: float = 0.0) -> LoopPairs:
    """H1 pairs of the vertex-valued cubical complex with persistence >= threshold and > 0.

    `threshold` is absolute (the stage passes the merge tree's absolute threshold). Grids of 2 to
    4 dimensions have loops; a 1-D grid has none.
    """
    grid = validate_values(values)
    if grid.ndim > LOOP_MAX_NDIM:
        raise ValueError(f"loops are computed for grids of at most {LOOP_MAX_NDIM} dimensions; "
                         f"got shape {grid.shape}")
    key = ordering_key(grid)
    pairs = np.empty((0, 2), dtype=np.int64)
    if grid.ndim >= 2:
        import gudhi  # opt-in dependency: only when loops are asked for

        complex_ = gudhi.CubicalComplex(vertices=key)
        complex_.compute_persistence()
        regular, _ = complex_.vertices_of_persistence_pairs()
        if len(regular) > 1:
            pairs = np.asarray(regular[1], dtype=np.int64).reshape(-1, 2)
    # gudhi numbers vertices with the first axis fastest (Fortran order); ours are C order
    birth_vertex, death_vertex = (
        np.ravel_multi_index(np.unravel_index(pairs[:, k], grid.shape, order="F"), grid.shape)
        for k in (0, 1)
    )
    flat_key = key.reshape(-1)
    births, deaths = flat_key[birth_vertex], flat_key[death_vertex]
    with np.errstate(invalid="ignore"):  # inf - inf for loops born at non-finite vertices
        persistence = deaths - births
        keep = np.isfinite(births) & (persistence > 0) & (persistence >= float(threshold))
    index = np.flatnonzero(keep)
    index = index[np.lexsort((birth_vertex[index], deaths[index], births[index]))]
    return LoopPairs(tuple(grid.shape), births[index], deaths[index], birth_vertex[index],
                     death_vertex[index])


def loop_metrics(loops: LoopPairs) -> dict[str, Any]:
    """Loop counts and persistence statistics (over loops with a finite death; 0.0 if none)."""
    persistence = loops.persistence
    finite = persistence[np.isfinite(persistence)]
    return {
        "n_loops": int(finite.size),
        "n_loops_infinite_death": int(persistence.size - finite.size),
        "total_loop_persistence": float(finite.sum()),
        "max_loop_persistence": float(finite.max()) if finite.size else 0.0,
    }
