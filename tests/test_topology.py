"""Correctness of toposweep.topology: merge trees, persistence, simplification, metrics, profiles.

gudhi is the independent reference for persistence pairs (a test dependency only).
"""

from __future__ import annotations

import csv
import itertools
import json
import math

import gudhi
import matplotlib
import numpy as np
import pytest

from toposweep.topology import (
    Profile,
    landscape_profile,
    merge_tree,
    persistence_pairs,
    simplify,
    topology_metrics,
    tree_metrics,
    write_topology_outputs,
)
from toposweep.topology.merge_tree import build_merge_tree

from conftest import TREE_FIELDS

matplotlib.use("Agg")

TIE_SHAPES = {1: (300,), 2: (23, 19), 3: (9, 8, 7), 4: (5, 6, 4, 5), 5: (5,) * 5, 6: (4,) * 6}


# --- independent references ------------------------------------------------------------------
def grid_edges(shape: tuple[int, ...], connectivity: str) -> np.ndarray:
    """All grid edges (2, m) of a connectivity, built directly from coordinate shifts."""
    ndim = len(shape)
    if connectivity == "axis":
        shifts = [tuple(int(i == a) for i in range(ndim)) for a in range(ndim)]
    elif connectivity == "freudenthal":
        shifts = [s for s in itertools.product((0, 1), repeat=ndim) if any(s)]
    else:
        shifts = [s for s in itertools.product((-1, 0, 1), repeat=ndim) if s > (0,) * ndim]
    coords = np.indices(shape).reshape(ndim, -1)
    flat = np.arange(coords.shape[1])
    edges = []
    for shift in shifts:
        moved = coords + np.array(shift)[:, None]
        inside = np.all((moved >= 0) & (moved < np.array(shape)[:, None]), axis=0)
        edges.append(np.stack([flat[inside], np.ravel_multi_index(moved[:, inside], shape)]))
    return np.concatenate(edges, axis=1)


def gudhi_lower_star_pairs(values: np.ndarray, connectivity: str) -> np.ndarray:
    """Finite nonzero 0-dim pairs of the lower-star filtration of the grid graph (gudhi)."""
    flat = values.reshape(-1).astype(np.float64)
    tree = gudhi.SimplexTree()
    tree.insert_batch(np.arange(flat.size)[None, :], flat)
    edges = grid_edges(values.shape, connectivity)
    tree.insert_batch(edges, np.maximum(flat[edges[0]], flat[edges[1]]))
    tree.compute_persistence(persistence_dim_max=False)
    return finite_sorted(tree.persistence_intervals_in_dimension(0))


def gudhi_cubical_vertex_pairs(values: np.ndarray) -> np.ndarray:
    """Finite nonzero 0-dim pairs of gudhi's cubical complex with vertex filtration values."""
    complex_ = gudhi.CubicalComplex(vertices=values.astype(np.float64))
    complex_.compute_persistence()
    return finite_sorted(complex_.persistence_intervals_in_dimension(0))


def finite_sorted(intervals: np.ndarray) -> np.ndarray:
    intervals = np.asarray(intervals, dtype=np.float64).reshape(-1, 2)
    keep = np.isfinite(intervals[:, 1]) & (intervals[:, 1] > intervals[:, 0])
    intervals = intervals[keep]
    return intervals[np.lexsort((intervals[:, 1], intervals[:, 0]))]


def reference_vertex_pairs(values: np.ndarray, connectivity: str) -> set[tuple[int, int]]:
    """(birth vertex, death vertex) pairs by a plain union-find over an explicit edge list."""
    flat = values.reshape(-1)
    key = np.where(np.isfinite(flat), flat, np.inf)
    order = np.lexsort((np.arange(flat.size), key))
    rank = np.empty(flat.size, dtype=np.int64)
    rank[order] = np.arange(flat.size)
    edges = grid_edges(values.shape, connectivity)
    neighbours: list[list[int]] = [[] for _ in range(flat.size)]
    for a, b in edges.T:
        neighbours[a].append(int(b))
        neighbours[b].append(int(a))
    parent = list(range(flat.size))
    birth = {}

    def find(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    pairs = set()
    for v in order:
        roots = {find(u) for u in neighbours[v] if rank[u] < rank[v]}
        if not roots:
            birth[v] = v
            continue
        elder = min(roots, key=lambda r: rank[birth[r]])
        for r in roots:
            if r != elder and key[v] > key[birth[r]]:
                pairs.add((int(birth[r]), int(v)))
            parent[r] = elder
        parent[v] = elder
    return pairs


def tied_field(ndim: int, seed: int, levels: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, levels, size=TIE_SHAPES[ndim]).astype(np.float64)


# --- agreement with gudhi ----------------------------------------------------------------------
@pytest.mark.parametrize("ndim", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("seed", [0, 1])
def test_axis_pairs_equal_gudhi_cubical_on_tied_fields(ndim, seed):
    values = tied_field(ndim, seed)
    ours = persistence_pairs(values, connectivity="axis")
    assert ours.shape[0] > 3
    np.testing.assert_array_equal(ours, gudhi_cubical_vertex_pairs(values))


@pytest.mark.parametrize("ndim", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("seed", [0, 1])
def test_freudenthal_pairs_equal_gudhi_lower_star_on_tied_fields(ndim, seed):
    # 62 and 126 neighbours in 5-D and 6-D: 5 levels leave (almost) one basin, 10 still tie heavily
    values = tied_field(ndim, seed, levels=5 if ndim <= 4 else 10)
    ours = persistence_pairs(values)  # default connectivity: freudenthal
    assert ours.shape[0] >= 3
    np.testing.assert_array_equal(ours, gudhi_lower_star_pairs(values, "freudenthal"))


@pytest.mark.parametrize("ndim", [1, 2, 3, 4, 5])
def test_full_pairs_equal_gudhi_lower_star_on_tied_fields(ndim):
    # 5-D full: 242 neighbours; 50 levels over 3125 vertices (about 62 vertices per value)
    values = tied_field(ndim, seed=2, levels=5 if ndim <= 4 else 50)
    ours = persistence_pairs(values, connectivity="full")
    if ndim == 5:
        assert ours.shape[0] > 3
    np.testing.assert_array_equal(ours, gudhi_lower_star_pairs(values, "full"))


@pytest.mark.parametrize("connectivity", ["axis", "freudenthal", "full"])
def test_pairs_equal_gudhi_on_continuous_random_field(connectivity):
    values = np.random.default_rng(7).normal(size=(12, 11, 10))
    ours = persistence_pairs(values, connectivity=connectivity)
    reference = (
        gudhi_cubical_vertex_pairs(values)
        if connectivity == "axis"
        else gudhi_lower_star_pairs(values, connectivity)
    )
    np.testing.assert_allclose(ours, reference, rtol=0, atol=0)


def test_connectivities_have_expected_neighbour_counts():
    from toposweep.topology.merge_tree import neighbour_stencil

    for ndim, (axis, freudenthal, full) in zip(
        [1, 2, 3, 4], [(2, 2, 2), (4, 6, 8), (6, 14, 26), (8, 30, 80)]
    ):
        shape = (5,) * ndim
        assert neighbour_stencil(shape, "axis")[1].size == axis
        assert neighbour_stencil(shape, "freudenthal")[1].size == freudenthal
        assert neighbour_stencil(shape, "full")[1].size == full
    for ndim in (5, 6, 8):  # 2d, 2^(d+1) - 2, 3^d - 1; distinct offsets, symmetric, in {-1,0,1}^d
        shape = (3,) * ndim
        for connectivity, count in (
            ("axis", 2 * ndim), ("freudenthal", 2 ** (ndim + 1) - 2), ("full", 3**ndim - 1)
        ):
            deltas, offsets = neighbour_stencil(shape, connectivity)
            assert deltas.shape == (count, ndim) and offsets.size == count
            assert len({tuple(d) for d in deltas}) == count and np.abs(deltas).max() == 1
            assert not np.any(np.all(deltas == 0, axis=1))
            assert sorted(offsets.tolist()) == sorted((-offsets).tolist())
            strides = np.array([3 ** (ndim - 1 - a) for a in range(ndim)])
            assert np.array_equal(offsets, deltas @ strides)


@pytest.mark.parametrize("connectivity", ["axis", "freudenthal", "full"])
def test_pair_vertices_equal_plain_union_find_with_ties_in_5d(connectivity):
    # 50 levels over 2000 vertices: 40 vertices per value on average, many equal neighbours
    values = np.random.default_rng(5).integers(0, 50, size=(5, 4, 5, 4, 5)).astype(np.float64)
    tree = merge_tree(values, connectivity)
    ours = set(zip(tree.pair_birth_vertex.tolist(), tree.pair_death_vertex.tolist()))
    assert len(ours) > 3 and ours == reference_vertex_pairs(values, connectivity)


@pytest.mark.parametrize("connectivity", ["axis", "freudenthal", "full"])
def test_pair_vertices_equal_plain_union_find_with_ties(connectivity):
    values = tied_field(3, seed=3, levels=4)
    tree = merge_tree(values, connectivity)
    ours = set(zip(tree.pair_birth_vertex.tolist(), tree.pair_death_vertex.tolist()))
    assert ours == reference_vertex_pairs(values, connectivity)
    assert tree.n_saddles == len({death for _, death in ours})


# --- analytic fields -------------------------------------------------------------------------
def gaussian_wells(shape, centres, depths, width=0.08):
    axes = [np.linspace(0, 1, n) for n in shape]
    grids = np.meshgrid(*axes, indexing="ij")
    field = np.zeros(shape)
    for centre, depth in zip(centres, depths):
        squared = sum((g - c) ** 2 for g, c in zip(grids, centre))
        field -= depth * np.exp(-squared / (2 * width**2))
    return field


@pytest.mark.parametrize(
    "shape, centres, width",
    [  # centres on grid points, wells >= 5 widths apart
        ((201,), [(0.2,), (0.5,), (0.8,)], 0.05),
        ((61, 61), [(0.25, 0.25), (0.75, 0.25), (0.5, 0.75), (0.15, 0.8)], 0.05),
        ((25, 25, 25), [(0.25, 0.25, 0.25), (0.75, 0.75, 0.75), (0.25, 0.75, 0.75)], 0.06),
        ((17, 17, 17, 17), [(0.25, 0.25, 0.25, 0.25), (0.75, 0.75, 0.75, 0.75)], 0.1),
        # 6-D, 7^6 = 117,649 vertices: three wells at grid points 1/6 and 5/6, >= 7 widths apart
        ((7,) * 6, [(1 / 6,) * 6, (5 / 6,) * 6, (1 / 6, 5 / 6) * 3], 0.15),
    ],
)
@pytest.mark.parametrize("connectivity", ["axis", "freudenthal", "full"])
def test_separated_gaussian_wells_give_k_minima_and_k_minus_1_saddles(
    shape, centres, width, connectivity
):
    depths = 1.0 + 0.25 * np.arange(len(centres))
    values = gaussian_wells(shape, centres, depths, width)
    tree = merge_tree(values, connectivity)
    k = len(centres)
    assert tree.n_minima == k
    assert tree.n_saddles == k - 1
    # each shallower well dies near level 0 (between wells), so its persistence ≈ its depth
    np.testing.assert_allclose(np.sort(tree.persistence), np.sort(depths)[:-1], rtol=0.03)


@pytest.mark.parametrize("ndim", [1, 2, 3, 4, 5])
def test_quadratic_bowl_has_one_minimum_and_no_saddles(ndim):
    shape = (11,) * ndim
    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    values = sum((k + 1) * g**2 for k, g in enumerate(grids))
    metrics = topology_metrics(values)
    assert (metrics["n_minima"], metrics["n_saddles"], metrics["n_pairs"]) == (1, 0, 0)
    assert metrics["avg_persistence"] == 0.0
    tree = merge_tree(values)
    assert tree.n_nodes == 2 and tree.n_arcs == 1 and tree.arc_size.tolist() == [values.size]


HAND_1D = np.array([3.0, 1.0, 4.0, 0.0, 5.0, 2.0, 6.0, 2.5, 7.0])


def test_hand_made_1d_profile_has_known_pairs():
    # minima 1 (idx 1), 0 (idx 3), 2 (idx 5), 2.5 (idx 7); saddles 4, 5, 6
    tree = merge_tree(HAND_1D)
    np.testing.assert_array_equal(tree.pairs, [[1.0, 4.0], [2.0, 5.0], [2.5, 6.0]])
    assert tree.pair_birth_vertex.tolist() == [1, 5, 7]
    assert tree.pair_death_vertex.tolist() == [2, 4, 6]
    assert tree.global_minimum_vertex == 3
    assert tree.node_type_names == [
        "minimum",
        "minimum",
        "minimum",
        "minimum",
        "saddle",
        "saddle",
        "saddle",
        "root",
    ]
    metrics = tree_metrics(tree)
    assert metrics["avg_persistence"] == pytest.approx((3 + 3 + 3.5) / 3)
    assert metrics["median_persistence"] == 3.0
    assert metrics["max_persistence"] == 3.5
    assert metrics["total_persistence"] == 9.5


def test_plateaus_are_one_basin():
    # a flat floor and a flat ridge: ties broken by index must not create extra minima
    values = np.array([2.0, 0.0, 0.0, 0.0, 3.0, 3.0, 1.0, 1.0, 4.0])
    tree = merge_tree(values)
    np.testing.assert_array_equal(tree.pairs, [[1.0, 3.0]])
    assert (tree.n_minima, tree.n_saddles) == (2, 1)
    # the ridge vertex swept last (3 at index 5, after index 4) is where the basins meet
    assert tree.node_vertex[tree.node_type == 1].tolist() == [5]


def test_global_maximum_that_merges_is_the_root_saddle():
    tree = merge_tree(np.array([0.0, 5.0, 1.0]))
    assert tree.node_type_names == ["minimum", "minimum", "saddle"]
    assert tree.root == 2 and tree.arc_parent.tolist() == [2, 2]
    assert tree.arc_size.sum() == 3
    profile = landscape_profile(tree)
    assert profile.top_width == 3


def test_avg_persistence_ttk_csv_matches_reference_formula_on_hand_example():
    tree = merge_tree(HAND_1D)
    pairs = [(1.0, 4.0), (2.0, 5.0), (2.5, 6.0), (0.0, 7.0)]  # global (min, max) pair included
    rows = [(b, b) for b, _ in pairs] + pairs  # TTK's CSV: diagonal point + diagram point
    expected = np.mean([abs(y - x) / math.sqrt(2) for x, y in rows])
    assert expected == pytest.approx((3 + 3 + 3.5 + 7) / (2 * math.sqrt(2) * 4))
    assert tree_metrics(tree)["avg_persistence_ttk_csv"] == pytest.approx(expected, rel=1e-15)


# --- invariants on random fields ---------------------------------------------------------------
def assert_merge_tree_invariants(values, tree):
    n = values.size
    assert tree.n_minima == tree.pairs.shape[0] + 1
    assert tree.n_arcs == tree.n_nodes - 1
    assert tree.arc_size.sum() == n
    np.testing.assert_array_equal(
        np.bincount(tree.vertex_arc, minlength=tree.n_arcs), tree.arc_size
    )
    # every node but the root has exactly one arc upwards; arcs go up in value and in sweep rank
    assert sorted(tree.arc_child.tolist()) == list(range(tree.n_nodes - 1))
    assert np.all(tree.arc_parent > tree.arc_child)
    assert np.all(tree.node_values[tree.arc_parent] >= tree.node_values[tree.arc_child])
    # saddles have at least two children, minima none
    n_children = np.bincount(tree.arc_parent, minlength=tree.n_nodes)
    assert np.all(n_children[tree.node_type == 1] >= 2)
    assert np.all(n_children[tree.node_type == 0] == 0)
    # each arc's vertices lie between its end values
    low = tree.node_values[tree.arc_child][tree.vertex_arc]
    high = tree.node_values[tree.arc_parent][tree.vertex_arc]
    assert np.all((tree.values >= low) & (tree.values <= high))
    assert landscape_profile(tree).top_width == n


@pytest.mark.parametrize("ndim", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("connectivity", ["axis", "freudenthal", "full"])
def test_merge_tree_invariants_on_random_fields(ndim, connectivity):
    values = tied_field(ndim, seed=11, levels=7)
    assert_merge_tree_invariants(values, merge_tree(values, connectivity))


@pytest.mark.parametrize("ndim", [7, 8])
@pytest.mark.parametrize("connectivity", ["axis", "freudenthal", "full"])
def test_tiny_7d_and_8d_grids_run_through_tree_simplification_profile_and_export(
    ndim, connectivity
):
    values = np.random.default_rng(ndim).integers(0, 6, size=(3,) * ndim).astype(np.float64)
    tree = merge_tree(values, connectivity)
    assert_merge_tree_invariants(values, tree)
    if ndim == 7 and connectivity != "full":  # the plain union-find reference is slow on 3^7 full
        ours = set(zip(tree.pair_birth_vertex.tolist(), tree.pair_death_vertex.tolist()))
        assert ours == reference_vertex_pairs(values, connectivity)
    simplified = simplify(tree, 2.0)
    assert np.all(simplified.persistence >= 2.0)
    assert simplified.arc_size.sum() == values.size
    assert landscape_profile(simplified).top_width == values.size
    exported = tree.to_dict(axes=[np.linspace(-1, 1, 3)] * ndim)
    for node in exported["nodes"]:
        assert len(node["coordinates"]) == ndim == len(node["position"])
    assert topology_metrics(values, connectivity)["n_minima"] == tree.n_minima


def test_float32_input_gives_same_tree_as_float64():
    values = np.random.default_rng(5).normal(size=(17, 13)).astype(np.float32)
    a, b = merge_tree(values), merge_tree(values.astype(np.float64))
    np.testing.assert_array_equal(a.pairs, b.pairs)
    np.testing.assert_array_equal(a.vertex_arc, b.vertex_arc)


# --- non-finite values -------------------------------------------------------------------------
def test_nonfinite_values_are_ordered_above_finite_and_never_replaced():
    values = np.array([0.0, 1.0, np.nan, 1.0, -1.0, 2.0, np.inf, 0.5, -np.inf, 3.0])
    tree = merge_tree(values)
    assert tree.n_nonfinite == 3
    assert np.isnan(tree.values[2]) and tree.values[8] == -np.inf  # untouched
    # basins {0,1}, {3,4,5}, {7} and {9} are separated by non-finite vertices: they die at +inf,
    # and the non-finite vertices are swept by index (NaN at 2, inf at 6, -inf at 8)
    np.testing.assert_array_equal(tree.pairs, [[0.0, np.inf], [0.5, np.inf], [3.0, np.inf]])
    assert tree.pair_death_vertex.tolist() == [2, 6, 8]
    metrics = tree_metrics(tree)
    assert metrics["n_nonfinite"] == 3
    assert metrics["n_pairs"] == 0 and metrics["n_pairs_infinite_death"] == 3
    assert metrics["n_minima"] == 4
    assert metrics["value_min"] == -1.0 and metrics["value_max"] == 3.0
    assert metrics["avg_persistence_ttk_csv"] == pytest.approx(4.0 / (2 * math.sqrt(2)))


def test_nan_inside_a_basin_does_not_split_it_in_2d():
    values = gaussian_wells((31, 31), [(0.3, 0.3), (0.7, 0.7)], [1.0, 1.5])
    clean = merge_tree(values).pairs
    holed = values.copy()
    holed[5, 25] = np.nan  # an isolated NaN away from the minima
    tree = merge_tree(holed)
    np.testing.assert_array_equal(tree.pairs, clean)
    assert tree.n_nonfinite == 1 and tree.arc_size.sum() == values.size


def test_all_nonfinite_grid_has_one_basin():
    metrics = topology_metrics(np.full((4, 4), np.nan))
    assert metrics["n_minima"] == 1 and metrics["n_pairs"] == 0 and metrics["n_nonfinite"] == 16
    assert math.isnan(metrics["value_min"])


# --- simplification ----------------------------------------------------------------------------
def test_simplify_removes_pairs_below_threshold():
    tree = merge_tree(HAND_1D)  # persistences 3, 3, 3.5
    simplified = simplify(tree, 3.2)
    np.testing.assert_array_equal(simplified.pairs, [[2.5, 6.0]])
    assert (simplified.n_minima, simplified.n_saddles) == (2, 1)
    assert simplified.arc_size.sum() == HAND_1D.size
    # removed basins are filled up to their saddle (TTK-style flattening)
    np.testing.assert_array_equal(
        simplified.flattened_values, [4.0, 4.0, 4.0, 0.0, 5.0, 5.0, 6.0, 2.5, 7.0]
    )
    assert simplify(tree, 3.0).pairs.shape == (3, 2)  # "below": equal persistence is kept
    relative = simplify(HAND_1D, 0.46, relative_threshold=True)  # 0.46 * 7 = 3.22
    np.testing.assert_array_equal(relative.pairs, simplified.pairs)
    metrics = topology_metrics(HAND_1D, threshold=3.2)
    assert (metrics["n_minima"], metrics["n_saddles"], metrics["n_pairs"]) == (2, 1, 1)
    assert metrics["avg_persistence"] == 3.5


@pytest.mark.parametrize("ndim", [2, 3, 4, 5, 6])
@pytest.mark.parametrize("threshold", [0.5, 1.5, 2.5])
def test_simplified_tree_equals_one_pass_sweep_with_threshold(ndim, threshold):
    values = np.random.default_rng(ndim).normal(size=TIE_SHAPES[ndim])
    pruned = simplify(merge_tree(values), threshold)
    swept = build_merge_tree(values, "freudenthal", threshold=threshold)
    for name in TREE_FIELDS:
        np.testing.assert_array_equal(getattr(pruned, name), getattr(swept, name), err_msg=name)
    assert np.all(pruned.persistence >= threshold)
    full = merge_tree(values)
    assert pruned.pairs.shape[0] == np.count_nonzero(full.persistence >= threshold)
    # the flattened field's own merge tree has exactly the surviving pairs
    np.testing.assert_array_equal(
        merge_tree(pruned.flattened_values.reshape(values.shape)).pairs, pruned.pairs
    )


def test_simplify_twice_equals_simplify_once():
    values = np.random.default_rng(9).normal(size=(30, 30))
    once = simplify(values, 1.5)
    twice = simplify(simplify(values, 0.7), 1.5)
    np.testing.assert_array_equal(once.vertex_arc, twice.vertex_arc)
    np.testing.assert_array_equal(once.flattened_values, twice.flattened_values)


# --- landscape profile -------------------------------------------------------------------------
def test_profile_basins_are_nested_mirrored_and_volume_preserving():
    values = gaussian_wells((41, 41), [(0.25, 0.3), (0.7, 0.25), (0.5, 0.75)], [1.0, 1.3, 1.6])
    tree = merge_tree(values)
    profile = landscape_profile(tree)
    assert isinstance(profile, Profile)
    assert profile.top_width == values.size
    assert len(profile.minima) == 3 and len(profile.saddles) == 2
    by_id = {b.id: b for b in profile.basins}
    # each saddle marker sits where two merging basins touch, at the saddle's height
    for node, x, y in profile.saddles:
        merging = [
            b for b in profile.basins if b.parent is not None and by_id[b.parent].node == node
        ]
        edges = sorted(
            [b.centre - b.size / 2 for b in merging] + [b.centre + b.size / 2 for b in merging]
        )
        assert any(abs(x - e) < 1e-9 for e in edges[1:-1])
        assert y == tree.node_values[node]
    for basin in profile.basins:
        polygon = basin.polygon
        # mirrored: left and right sides are reflections about the centre line
        np.testing.assert_allclose(polygon[:, 0] + polygon[::-1, 0], 2 * basin.centre)
        assert basin.widths[-1] == basin.size
        if basin.parent is not None:  # nested: sits within the parent's bottom width
            parent = by_id[basin.parent]
            assert basin.upper == parent.lower
            assert abs(basin.centre - parent.centre) + basin.size / 2 <= parent.widths[0] / 2 + 1e-9
    # the top basin's width at the level of each vertex equals the count of vertices below it
    level = float(np.quantile(values, 0.9))
    top = next(b for b in profile.basins if b.parent is None)
    k = np.searchsorted(top.levels, level)
    if top.levels[k] == level:
        assert top.widths[k] == np.count_nonzero(values <= level)


def test_profile_json_roundtrip_and_plot(tmp_path):
    values = np.random.default_rng(4).normal(size=(20, 20))
    values[0, 0] = np.nan
    profile = landscape_profile(simplify(values, 1.0))
    data = json.loads(profile.to_json())
    assert data["n_vertices"] == 400 and data["n_nonfinite"] == 1
    assert len(data["basins"]) == len(profile.basins)
    assert data["nonfinite_height"] > data["value_max"]
    ax = profile.plot()
    assert len(ax.collections) >= 2
    ax.figure.savefig(tmp_path / "profile.png")
    assert (tmp_path / "profile.png").stat().st_size > 1000


# --- stage outputs -----------------------------------------------------------------------------
def test_write_topology_outputs_writes_all_files_atomically(tmp_path):
    values = gaussian_wells((21, 19), [(0.25, 0.25), (0.75, 0.7)], [1.0, 1.4])
    axes = [np.linspace(-1, 1, 21), np.linspace(-2, 2, 19)]
    summary = write_topology_outputs(values, tmp_path / "run", threshold=0.01, axes=axes)
    files = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert files == ["merge_tree.json", "persistence.csv", "profile.json", "topology.json"]
    topology = json.loads((tmp_path / "run" / "topology.json").read_text())
    assert topology == json.loads(json.dumps(summary))
    assert topology["status"] == "ok"
    assert topology["metrics"]["n_minima"] == 2 and topology["metrics"]["n_saddles"] == 1
    assert topology["settings"]["connectivity"] == "freudenthal"
    assert topology["global_minimum"]["position"] == pytest.approx([0.5, 1.0 + 1 / 9], abs=0.25)
    rows = list(csv.DictReader((tmp_path / "run" / "persistence.csv").open()))
    assert len(rows) == 1
    assert float(rows[0]["persistence"]) == topology["metrics"]["max_persistence"]
    assert 0.9 < float(rows[0]["persistence"]) < 1.0  # the shallower well, depth 1
    assert rows[0]["birth_i0"] == "5" and float(rows[0]["birth_x0"]) == pytest.approx(-0.5)
    tree = json.loads((tmp_path / "run" / "merge_tree.json").read_text())
    assert [n["type"] for n in tree["nodes"]] == ["minimum", "minimum", "saddle", "root"]
    assert sum(a["size"] for a in tree["arcs"]) == values.size
    profile = json.loads((tmp_path / "run" / "profile.json").read_text())
    assert len(profile["basins"]) == 3


@pytest.mark.parametrize("ndim", [8, 62, 63, 64])
def test_length_one_axes_do_not_change_the_tree_up_to_numpys_64_dimensions(ndim):
    # 63 and 64 dimensions take the kernel's per-axis bounds test (its bit masks hold 62 axes)
    values = tied_field(2, seed=4)
    padded = values.reshape(values.shape[:1] + (1,) * (ndim - 2) + values.shape[1:])
    ours, plain = merge_tree(padded, "axis"), merge_tree(values, "axis")
    for name in ["node_vertex", "node_type", "arc_child", "arc_parent", "vertex_arc",
                 "pair_birth_vertex", "pair_death_vertex"]:
        np.testing.assert_array_equal(getattr(ours, name), getattr(plain, name), err_msg=name)
    assert ours.n_minima > 3


def test_write_topology_outputs_of_a_5d_grid_has_a_coordinate_column_per_dimension(tmp_path):
    shape = (9, 7, 7, 7, 9)
    values = gaussian_wells(shape, [(0.25, 0.5, 0.5, 0.5, 0.25), (0.75, 0.5, 0.5, 0.5, 0.75)],
                            [1.0, 1.4], width=0.12)
    axes = [np.linspace(-1, 1, n) for n in shape]
    summary = write_topology_outputs(values, tmp_path / "run", connectivity="axis", axes=axes)
    files = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert files == ["merge_tree.json", "persistence.csv", "profile.json", "topology.json"]
    topology = json.loads((tmp_path / "run" / "topology.json").read_text())
    assert topology == json.loads(json.dumps(summary)) and topology["status"] == "ok"
    assert topology["metrics"]["n_minima"] == 2 and topology["metrics"]["n_saddles"] == 1
    assert topology["metrics"]["n_vertices"] == values.size
    assert topology["global_minimum"]["position"] == pytest.approx([0.5, 0, 0, 0, 0.5])
    with (tmp_path / "run" / "persistence.csv").open() as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert reader.fieldnames == (
        ["birth", "death", "persistence", "birth_vertex", "death_vertex"]
        + [f"{end}_i{k}" for end in ("birth", "death") for k in range(5)]
        + [f"{end}_x{k}" for end in ("birth", "death") for k in range(5)]
        + ["dimension"]  # 0: merge tree pairs; 1: loops when homology_dimensions has 1
    )
    assert len(rows) == 1 and 0.9 < float(rows[0]["persistence"]) < 1.0
    assert [int(rows[0][f"birth_i{k}"]) for k in range(5)] == [2, 3, 3, 3, 2]
    assert float(rows[0]["birth_x4"]) == pytest.approx(-0.5)
    tree = json.loads((tmp_path / "run" / "merge_tree.json").read_text())
    assert tree["shape"] == list(shape)
    assert [n["type"] for n in tree["nodes"]] == ["minimum", "minimum", "saddle", "root"]
    assert all(len(n["coordinates"]) == 5 == len(n["position"]) for n in tree["nodes"])
    assert sum(a["size"] for a in tree["arcs"]) == values.size
    profile = json.loads((tmp_path / "run" / "profile.json").read_text())
    assert len(profile["basins"]) == 3


# --- input validation --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "values, connectivity, message",
    [
        (np.float64(1.0), "freudenthal", "ndim=0"),
        (np.zeros(1), "freudenthal", "at least 2"),
        (np.zeros(4, dtype=complex), "freudenthal", "real numeric"),
        (np.zeros(4), "diagonal", "connectivity must be one of 'freudenthal', 'axis', 'full'"),
    ],
)
def test_bad_input_raises_clear_value_error(values, connectivity, message):
    with pytest.raises(ValueError, match=message):
        merge_tree(values, connectivity)


def test_bad_threshold_and_axes_raise_value_error(tmp_path):
    with pytest.raises(ValueError, match="threshold must be a finite number >= 0"):
        simplify(np.arange(4.0), -1.0)
    with pytest.raises(ValueError, match="axes must be 2 1-D arrays"):
        write_topology_outputs(np.zeros((3, 3)), tmp_path, axes=[np.arange(3)])


def test_library_does_not_import_gudhi_or_matplotlib():
    import subprocess
    import sys

    code = (
        "import sys, numpy as np; from toposweep.topology import merge_tree, landscape_profile; "
        "landscape_profile(merge_tree(np.arange(6.0).reshape(2, 3))); "
        "print('gudhi' in sys.modules, 'matplotlib' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "False"]


@pytest.mark.slow
@pytest.mark.parametrize("connectivity", ["freudenthal", "axis"])
def test_pairs_equal_gudhi_on_larger_smooth_4d_field(connectivity):
    from scipy.ndimage import gaussian_filter

    noise = np.random.default_rng(12).normal(size=(16, 15, 14, 13))
    values = np.round(gaussian_filter(noise, 1.5, mode="wrap"), 2)  # smooth, with ties
    ours = persistence_pairs(values, connectivity)
    reference = (
        gudhi_cubical_vertex_pairs(values)
        if connectivity == "axis"
        else gudhi_lower_star_pairs(values, connectivity)
    )
    assert ours.shape[0] > 20
    np.testing.assert_array_equal(ours, reference)
