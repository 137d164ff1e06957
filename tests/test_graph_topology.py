"""Merge trees of scattered samples on neighbourhood graphs (toposweep.topology.graph).

References: the grid merge tree itself (a grid's axis edges as a graph must give the same tree),
brute-force Gabriel / relative neighbourhood graphs, and analytic fields with known wells.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import qmc
from sklearn.neighbors import KDTree

from toposweep.topology import (
    graph_merge_tree,
    graph_topology,
    landscape_profile,
    merge_tree,
    neighbourhood_graph,
    simplify,
    tree_metrics,
)
from toposweep.topology.graph import count_components, prune_graph, symmetric_csr

from conftest import TREE_FIELDS


# --- references ------------------------------------------------------------------------------
def axis_graph(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """CSR of a grid's axis edges (each vertex joined to its 2d axis neighbours)."""
    coords = np.indices(shape).reshape(len(shape), -1)
    flat = np.arange(coords.shape[1])
    rows, cols = [], []
    for axis in range(len(shape)):
        moved = coords.copy()
        moved[axis] += 1
        inside = moved[axis] < shape[axis]
        rows.append(flat[inside])
        cols.append(np.ravel_multi_index(moved[:, inside], shape))
    return symmetric_csr(np.concatenate(rows), np.concatenate(cols), flat.size)


def edge_set(indptr: np.ndarray, indices: np.ndarray) -> set[tuple[int, int]]:
    rows = np.repeat(np.arange(indptr.size - 1), np.diff(indptr))
    return {(int(a), int(b)) for a, b in zip(rows, indices) if a < b}


def brute_force_empty_region(points: np.ndarray, gabriel: bool) -> set[tuple[int, int]]:
    """Exact Gabriel / relative neighbourhood edges: every pair against every third point."""
    d2 = ((points[:, None, :] - points[None, :, :]) ** 2).sum(axis=-1)
    n = len(points)
    edges = set()
    for p in range(n):
        for q in range(p + 1, n):
            others = np.ones(n, bool)
            others[[p, q]] = False
            a, b = d2[p, others], d2[q, others]
            blocked = (a + b < d2[p, q]) if gabriel else (np.maximum(a, b) < d2[p, q])
            if not blocked.any():
                edges.add((p, q))
    return edges


def wells(points: np.ndarray, centres, depths, width: float) -> np.ndarray:
    """Sum of Gaussian wells exp(-|x - c|^2 / (2 width^2)) of the given depths."""
    values = np.zeros(len(points))
    for centre, depth in zip(centres, depths):
        squared = ((points - np.asarray(centre)) ** 2).sum(axis=1)
        values -= depth * np.exp(-squared / (2 * width**2))
    return values


def sobol(n_log2: int, ndim: int, seed: int = 0) -> np.ndarray:
    return qmc.Sobol(ndim, scramble=True, seed=seed).random_base2(n_log2)


# --- a grid's axis graph gives the grid's axis tree, exactly -----------------------------------
@pytest.mark.parametrize("shape", [(23, 19), (9, 8, 7), (5,) * 5])
@pytest.mark.parametrize("seed", [0, 1])
def test_axis_grid_as_graph_equals_axis_grid_tree_exactly(shape, seed):
    values = np.random.default_rng(seed).integers(0, 5, size=shape).astype(np.float64)
    indptr, indices = axis_graph(shape)
    grid_tree = merge_tree(values, "axis")
    graph_tree = graph_merge_tree(values.reshape(-1), indptr, indices, "axis_graph")
    assert graph_tree.shape == (values.size,) and graph_tree.connectivity == "axis_graph"
    for threshold in (0.0, 1.0, 2.5):
        grid_simple, graph_simple = simplify(grid_tree, threshold), simplify(graph_tree, threshold)
        for name in TREE_FIELDS:
            np.testing.assert_array_equal(
                getattr(graph_simple, name), getattr(grid_simple, name), err_msg=name
            )
        np.testing.assert_array_equal(graph_simple.pairs, grid_simple.pairs)
        assert landscape_profile(graph_simple).to_dict() == landscape_profile(grid_simple).to_dict()
        assert tree_metrics(graph_simple) == tree_metrics(grid_simple)
    assert grid_tree.n_minima > 10  # tie-heavy fields with many branches, not a trivial check
    exported = graph_tree.to_dict()
    assert exported["connectivity"] == "axis_graph" and exported["shape"] == [values.size]


def test_graph_tree_orders_nonfinite_above_finite_like_the_grid():
    values = np.random.default_rng(3).normal(size=(12, 11))
    values[2, 3], values[7, 7], values[0, 0] = np.nan, np.inf, -np.inf
    graph_tree = graph_merge_tree(values.reshape(-1), *axis_graph(values.shape))
    grid_tree = merge_tree(values, "axis")
    for name in TREE_FIELDS:
        np.testing.assert_array_equal(getattr(graph_tree, name), getattr(grid_tree, name))
    assert graph_tree.n_nonfinite == 3


def test_one_directional_csr_is_symmetrised():
    values = np.array([0.0, 3.0, 1.0, 4.0, 2.0])
    indptr = np.array([0, 1, 2, 3, 4, 4])  # path 0-1-2-3-4, each edge listed once
    indices = np.array([1, 2, 3, 4])
    tree = graph_merge_tree(values, indptr, indices)
    np.testing.assert_array_equal(tree.pairs, [[1.0, 3.0], [2.0, 4.0]])
    np.testing.assert_array_equal(merge_tree(values, "axis").pairs, tree.pairs)


# --- dense samples agree with the grid ---------------------------------------------------------
@pytest.mark.parametrize(
    "ndim, n_log2, grid_size, centres",
    [
        (2, 12, 201, [(0.25, 0.25), (0.75, 0.3), (0.45, 0.75)]),
        (3, 13, 41, [(0.25, 0.25, 0.3), (0.75, 0.7, 0.25), (0.3, 0.7, 0.75)]),
    ],
)
def test_dense_sobol_samples_give_the_grid_pairs_of_gaussian_wells(
    ndim, n_log2, grid_size, centres
):
    depths, width = [1.0, 1.4, 1.8], 0.12
    points = sobol(n_log2, ndim)
    graph_tree = graph_topology(points, wells(points, centres, depths, width), k=12)
    axes = np.meshgrid(*[np.linspace(0, 1, grid_size)] * ndim, indexing="ij")
    grid_points = np.column_stack([a.reshape(-1) for a in axes])
    grid_values = wells(grid_points, centres, depths, width).reshape((grid_size,) * ndim)
    grid_tree = merge_tree(grid_values)
    threshold = 0.05 * max(depths)  # the plateau between the wells has tiny sampling artefacts
    graph_pairs = simplify(graph_tree, threshold).pairs
    grid_pairs = simplify(grid_tree, threshold).pairs
    assert graph_pairs.shape == grid_pairs.shape == (len(depths) - 1, 2)
    # Tolerance: both sample the same smooth f. Near a critical point x*, f(y) - f(x*) is at most
    # 1/2 kappa |y - x*|^2, kappa = sum(depth) / width^2 bounding the Hessian of the wells, so
    # each critical value is found within 1/2 kappa r^2, r = distance from the grid tree's
    # critical vertices (which the grid holds exactly: centres lie on the grid) to the nearest
    # sample.
    critical = grid_points[simplify(grid_tree, threshold).node_vertex[:-1]]  # all but the root
    r = KDTree(points).query(critical, k=1)[0].max()
    tolerance = 0.5 * sum(depths) / width**2 * r**2
    np.testing.assert_allclose(graph_pairs, grid_pairs, atol=tolerance)
    assert tolerance < 0.2 * np.min(grid_pairs[:, 1] - grid_pairs[:, 0])  # still a sharp check


# --- known numbers of wells in 6-D, 8-D, 10-D --------------------------------------------------
@pytest.mark.parametrize("ndim, n_log2, n_wells", [(6, 12, 3), (8, 13, 3), (10, 14, 2)])
def test_separated_wells_in_high_dimensions_give_one_minimum_per_well(ndim, n_log2, n_wells):
    # Wells at corners of [0.15, 0.85]^d (all-low, all-high, alternating), width = 1/5 of their
    # smallest distance, so the saddles between them lie near 0 (exp(-25/8) ~ 0.04 of a depth).
    # The samples are sparse — the kNN edge length is ~0.3-0.45 of the cube side — so a well's
    # lowest sample lies about one width from its centre: measured over 8 Sobol seeds per case,
    # the real wells' persistence is >= 0.41 and the spurious minima of the sparse sampling have
    # <= 0.13, and the threshold 0.25 sits in that gap. In 10-D three wells are only 1.57-1.71
    # apart and 2^14 samples do not resolve them (a well splits, persistence 0.39 against 0.51):
    # two wells, 2.2 apart, are what 2^14 samples can resolve there.
    lo, hi = 0.15, 0.85
    centres = [np.full(ndim, lo), np.full(ndim, hi), np.where(np.arange(ndim) % 2, hi, lo)]
    centres = centres[:n_wells]
    width = min(np.linalg.norm(a - b) for i, a in enumerate(centres) for b in centres[i + 1 :]) / 5
    points = sobol(n_log2, ndim, seed=100 * ndim)
    values = wells(points, centres, [1.0, 1.5, 2.0][:n_wells], width)
    knn = neighbourhood_graph(points, k=15)
    for prune in ("none", "gabriel"):
        tree = graph_merge_tree(values, *prune_graph(points, *knn, prune), prune)
        simplified = simplify(tree, 0.25)
        assert (simplified.n_minima, simplified.n_saddles) == (n_wells, n_wells - 1)
        # each surviving minimum lies in a different well (within two widths of its centre)
        minima = points[simplified.node_vertex[simplified.node_type == 0]]
        nearest = [np.argmin([np.linalg.norm(m - c) for c in centres]) for m in minima]
        assert sorted(nearest) == list(range(n_wells))
        assert all(np.linalg.norm(m - centres[i]) < 2 * width for m, i in zip(minima, nearest))


# --- Gabriel and relative neighbourhood graphs -------------------------------------------------
@pytest.mark.parametrize("ndim", [2, 4])
def test_pruned_graphs_equal_brute_force_when_k_is_n_minus_1(ndim):
    points = np.random.default_rng(ndim).random((200, ndim))
    for prune, gabriel in (("gabriel", True), ("relative_neighbourhood", False)):
        ours = edge_set(*neighbourhood_graph(points, k=199, prune=prune))
        assert ours == brute_force_empty_region(points, gabriel)


def test_pruned_graphs_are_nested_subgraphs_that_keep_the_knn_components():
    points = np.random.default_rng(7).random((200, 3))
    knn = neighbourhood_graph(points, k=8)
    gabriel = prune_graph(points, *knn, "gabriel")
    relative = prune_graph(points, *knn, "relative_neighbourhood")
    knn_edges, gabriel_edges = edge_set(*knn), edge_set(*gabriel)
    relative_edges = edge_set(*relative)
    assert relative_edges < gabriel_edges < knn_edges
    # witnesses are restricted to common kNN neighbours: every exact Gabriel / RNG edge that is a
    # kNN edge survives (the approximation only keeps extra edges)
    assert brute_force_empty_region(points, True) & knn_edges <= gabriel_edges
    assert brute_force_empty_region(points, False) & knn_edges <= relative_edges
    assert count_components(*knn) == count_components(*gabriel) == count_components(*relative) == 1
    assert edge_set(*neighbourhood_graph(points, k=8, prune="gabriel")) == gabriel_edges
    for indptr, indices in (knn, gabriel, relative):  # symmetric, sorted lists
        rows = np.repeat(np.arange(200), np.diff(indptr))
        assert {(a, b) for a, b in zip(rows, indices)} == {(b, a) for a, b in zip(rows, indices)}
        assert all(np.all(np.diff(indices[s:e]) > 0) for s, e in zip(indptr[:-1], indptr[1:]))


def test_one_dimensional_points_give_the_path_and_duplicates_are_joined():
    points = np.sort(np.random.default_rng(2).random(50))[:, None]
    path = {(i, i + 1) for i in range(49)}
    assert edge_set(*neighbourhood_graph(points, k=4, prune="relative_neighbourhood")) == path
    assert edge_set(*neighbourhood_graph(points, k=4, prune="gabriel")) == path
    doubled = np.concatenate([points, points[:5]])  # points 50..54 repeat points 0..4
    edges = edge_set(*neighbourhood_graph(doubled, k=4, prune="gabriel"))
    assert {(i, 50 + i) for i in range(5)} <= edges
    tree = graph_topology(doubled, doubled[:, 0] ** 2, k=4)
    assert tree.n_minima == 1 and tree.node_vertex[0] == 0  # tie 0 vs 50 broken by index


# --- bad input -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "values, indptr, indices, name, message",
    [
        (np.zeros(3), [0, 1, 2], [1, 0], "g", "indptr must have n \\+ 1"),
        (np.zeros(3), [0, 2, 1, 2], [1, 2], "g", "never decrease"),
        (np.zeros(3), [0, 1, 2, 3], [1, 2], "g", "end at len"),
        (np.zeros(3), [0, 1, 2, 2], [1, 3], "g", "indices must lie in"),
        (np.zeros(3), [0, 1, 2, 2], [1.0, 2.0], "g", "1-D integer array"),
        (np.zeros(4), [0, 1, 1, 2, 2], [1, 3], "g", "2 connected components"),
        (np.zeros((2, 2)), [0, 1, 2], [1, 0], "g", "values must be 1-D"),
        (np.zeros(1), [0, 0], [], "g", "at least 2"),
        (np.zeros(2), [0, 1, 2], [1, 0], "axis", "graph_name"),
        (np.zeros(2), [0, 1, 2], [1, 0], "", "graph_name"),
    ],
)
def test_bad_graph_input_raises_clear_value_error(values, indptr, indices, name, message):
    with pytest.raises(ValueError, match=message):
        graph_merge_tree(values, np.array(indptr), np.array(indices), name)


@pytest.mark.parametrize(
    "points, k, prune, message",
    [
        (np.zeros((5, 2)), 5, "none", "k must be an integer in \\[1, n - 1\\]"),
        (np.zeros((5, 2)), 0, "none", "k must be"),
        (np.zeros((5, 2)), True, "none", "k must be"),
        (np.zeros((5, 2)), 2.0, "none", "k must be"),
        (np.array([[0.0, 1.0], [np.nan, 0.0], [1.0, 1.0]]), 1, "none", "1 rows hold NaN"),
        (np.zeros(5), 1, "none", "2-D \\(n, d\\)"),
        (np.zeros((1, 3)), 1, "none", "at least 2 samples"),
        (np.array([["a", "b"]]), 1, "none", "real numeric"),
        (np.zeros((5, 2)), 2, "delaunay", "prune must be one of"),
    ],
)
def test_bad_points_raise_clear_value_error(points, k, prune, message):
    with pytest.raises(ValueError, match=message):
        neighbourhood_graph(points, k=k, prune=prune)


def test_graph_topology_checks_one_value_per_point():
    with pytest.raises(ValueError, match="one entry per point"):
        graph_topology(np.zeros((5, 2)), np.zeros(4), k=2)
