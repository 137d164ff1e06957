"""Persistence pairs and scalar topology metrics of a landscape grid."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from toposweep.topology._kernels import NODE_MINIMUM
from toposweep.topology.merge_tree import MergeTree, merge_tree, ordering_key
from toposweep.topology.simplify import simplify


def persistence_pairs(values: Any, connectivity: str = "freudenthal") -> np.ndarray:
    """Finite 0-dimensional (birth, death) pairs of the sublevel filtration, shape (k, 2).

    Sorted by birth then death; zero-persistence pairs (from ties) are excluded. The essential
    class (born at the global minimum, never dies) is not included: see
    `MergeTree.global_minimum_vertex`. Deaths at non-finite vertices are +inf.
    """
    return merge_tree(values, connectivity).pairs


def smad(tree: MergeTree, normalize: bool = False, weighted: bool = False) -> float:
    """Saddle–minimum average distance (Landscaper's `LossLandscape.smad`) on a merge tree.

    The mean of |f(upper) − f(minimum)| over the arcs that join a minimum to a branch node (a
    node in more than one arc): arcs, not elder-rule pairs, so the global minimum's arc counts.
    `normalize` divides each gap by the finite value range; `weighted` multiplies it by the
    minimum's basin size over the vertex count, the basin being the leaf arc's region (the
    minimum's sublevel component just below its saddle). Arcs whose saddle is non-finite are left
    out, as pairs dying at +inf are from the persistence statistics. 0.0 without a branch node.
    """
    degree = np.bincount(tree.arc_child, minlength=tree.n_nodes) + np.bincount(
        tree.arc_parent, minlength=tree.n_nodes
    )
    upper_key = ordering_key(tree.values[tree.node_vertex[tree.arc_parent]])
    leaf = (
        (tree.node_type[tree.arc_child] == NODE_MINIMUM)
        & (degree[tree.arc_parent] > 1)
        & np.isfinite(upper_key)
    )
    if not leaf.any():
        return 0.0
    gaps = np.abs(upper_key[leaf] - tree.values[tree.node_vertex[tree.arc_child[leaf]]])
    if normalize:
        finite = tree.values[np.isfinite(tree.values)]
        gaps = gaps / float(finite.max() - finite.min())  # > 0: the field has a saddle
    if weighted:
        gaps = gaps * tree.arc_size[leaf] / tree.n_vertices
    return float(gaps.mean())


def tree_metrics(tree: MergeTree) -> dict[str, Any]:
    """Metrics of a (possibly simplified) merge tree; see `topology_metrics`."""
    values = tree.values
    finite_values = values[np.isfinite(values)]
    persistence = tree.persistence
    finite_persistence = persistence[np.isfinite(persistence)]
    n_pairs = int(finite_persistence.size)
    if finite_values.size:
        value_min, value_max = float(finite_values.min()), float(finite_values.max())
        # The papers' pipeline: TTK's diagram as CSV (diagonal point + (birth, death) point per
        # pair, the global (min, max) pair included), mean of |y - x| / sqrt(2) over all rows.
        global_pair = value_max - value_min
        ttk_csv = (float(finite_persistence.sum()) + global_pair) / (
            2 * math.sqrt(2) * (n_pairs + 1)
        )
    else:
        value_min = value_max = ttk_csv = math.nan
    has_pairs = n_pairs > 0
    return {
        "n_vertices": tree.n_vertices,
        "n_nonfinite": tree.n_nonfinite,
        "n_minima": tree.n_minima,
        "n_saddles": tree.n_saddles,
        "n_pairs": n_pairs,
        "n_pairs_infinite_death": int(persistence.size - n_pairs),
        "avg_persistence": float(finite_persistence.mean()) if has_pairs else 0.0,
        "max_persistence": float(finite_persistence.max()) if has_pairs else 0.0,
        "total_persistence": float(finite_persistence.sum()),
        "median_persistence": float(np.median(finite_persistence)) if has_pairs else 0.0,
        "avg_persistence_ttk_csv": ttk_csv,
        "smad": smad(tree),
        "smad_normalized": smad(tree, normalize=True),
        "smad_weighted": smad(tree, weighted=True),
        "value_min": value_min,
        "value_max": value_max,
        "threshold_absolute": tree.threshold,
    }


def topology_metrics(
    values: Any,
    connectivity: str = "freudenthal",
    threshold: float = 0.0,
    relative_threshold: bool = False,
) -> dict[str, Any]:
    """Topological summary of a landscape: minima, saddles and persistence statistics.

    Pairs with persistence below `threshold` (absolute, or a fraction of the finite value range
    when `relative_threshold`) are simplified away first. Persistence statistics are over pairs
    with a finite death (0.0 when there is none); pairs dying at non-finite vertices are counted in
    `n_pairs_infinite_death`. `avg_persistence_ttk_csv` reproduces the papers' CSV-based average;
    `smad`, `smad_normalized`, `smad_weighted` are Landscaper's saddle–minimum gaps (see `smad`).
    """
    return tree_metrics(simplify(values, threshold, relative_threshold, connectivity))
