"""Merge (join) trees of the sublevel-set filtration of n-D grids (any n); their simplification
by persistence is in `simplify.py`.

Scattered samples use the same sweep on a neighbourhood graph instead (`graph_merge_tree`).

Conventions (documented, deterministic):

* Vertices are swept in (value, flat C-order index) order — simulation of simplicity — so plateaus
  give one deterministic answer. Pairs with zero persistence (ties) never appear as tree nodes.
* NaN, +inf and -inf are ordered above every finite value (among themselves by flat index). They
  are counted in ``n_nonfinite`` and never replaced. A pair whose death vertex is non-finite has
  death ``+inf`` (its basin only merges through non-finite vertices).
* Every grid vertex belongs to exactly one arc: a minimum to the arc leaving it, a saddle to the arc
  leaving it upwards, other vertices to the arc of the component they join when swept, and
  vertices of simplified (absorbed) branches to the elder branch's arc they merged into. When the
  global maximum is itself a merge vertex, that saddle is the root and its vertex belongs to the
  elder child's arc.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from toposweep.topology._kernels import NODE_MINIMUM, NODE_ROOT, NODE_SADDLE, sweep_join_tree
from toposweep.topology.graph import validate_graph

CONNECTIVITIES = ("freudenthal", "axis", "full")
NODE_TYPE_NAMES = {NODE_MINIMUM: "minimum", NODE_SADDLE: "saddle", NODE_ROOT: "root"}
# The sweep kernel stores union-find parents and arc labels as int32: at most 2^31 - 1 vertices.
MAX_VERTICES = 2**31 - 1
# The kernel's (indptr, indices) arguments on a grid: empty, so it uses the stencil.
NO_GRAPH = (np.empty(0, np.int64), np.empty(0, np.int64))


def validate_values(values: Any) -> np.ndarray:
    """Return `values` as a read-only float64 copy after checking it is a real grid (ndim >= 1).

    Any number of dimensions is accepted; the cost is that of the grid (its vertex count times the
    stencil size, 2d, 2^(d+1) - 2 or 3^d - 1 neighbours), so memory is the practical limit.
    """
    array = np.asarray(values)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"values must be a real numeric array; got dtype {array.dtype}")
    if array.ndim < 1:
        raise ValueError(f"values must have at least 1 dimension; got ndim={array.ndim}")
    if array.size < 2:
        raise ValueError(f"values must have at least 2 grid vertices; got shape {array.shape}")
    if array.size > MAX_VERTICES:
        raise ValueError(
            f"values must have at most {MAX_VERTICES} grid vertices (int32 sweep labels); "
            f"got shape {array.shape} ({array.size} vertices)"
        )
    grid = np.array(array, dtype=np.float64, order="C", copy=True)  # owned: later edits by the
    grid.flags.writeable = False  # caller cannot change a tree built from it
    return grid


def validate_connectivity(connectivity: str) -> str:
    """Check the connectivity name; raise a ValueError listing the allowed names otherwise."""
    if connectivity not in CONNECTIVITIES:
        raise ValueError(
            f"connectivity must be one of {', '.join(repr(c) for c in CONNECTIVITIES)}; "
            f"got {connectivity!r}"
        )
    return connectivity


def neighbour_stencil(shape: tuple[int, ...], connectivity: str) -> tuple[np.ndarray, np.ndarray]:
    """Neighbour offsets of a grid vertex: (deltas of shape (m, ndim), flat C-order offsets (m,)).

    freudenthal: ±Σ_{i∈S} e_i for every non-empty axis subset S (2^(n+1) − 2: 2, 6, 14, 30, 62,
    126 in 1-D..6-D; the triangulation TTK uses for regular grids); axis: ±e_i (2n); full: every
    δ ∈ {-1,0,1}ⁿ \\ {0} (3ⁿ − 1: 728 in 6-D, 6560 in 8-D). Any number of dimensions n.
    """
    validate_connectivity(connectivity)
    ndim = len(shape)
    if connectivity == "axis":
        positive = [tuple(int(i == axis) for i in range(ndim)) for axis in range(ndim)]
    elif connectivity == "freudenthal":
        positive = [d for d in itertools.product((0, 1), repeat=ndim) if any(d)]
    else:
        positive = [d for d in itertools.product((-1, 0, 1), repeat=ndim) if d > (0,) * ndim]
    half = np.array(positive, dtype=np.int64).reshape(-1, ndim)
    deltas = np.concatenate([half, -half])
    strides = np.array([int(np.prod(shape[axis + 1 :])) for axis in range(ndim)], dtype=np.int64)
    return deltas, deltas @ strides


def ordering_key(flat_values: np.ndarray) -> np.ndarray:
    """Sweep key: the values, with every non-finite value mapped to +inf (above all finite)."""
    return np.where(np.isfinite(flat_values), flat_values, np.inf)


@dataclass(frozen=True, eq=False)
class MergeTree:
    """Join tree of the sublevel filtration of a grid, with its 0-dimensional persistence pairs.

    Nodes are ordered by sweep rank (so node 0 is the global minimum and the last node the root);
    arcs run child → parent (upwards). `vertex_arc` labels every grid vertex with its arc.
    A tree of a graph (`graph_merge_tree`) has shape (n,) and the graph's name as connectivity;
    its "grid coordinates" are then the sample indices.
    """

    shape: tuple[int, ...]
    connectivity: str
    threshold: float
    values: np.ndarray  # flat float64 values, original (non-finite kept as is)
    order: np.ndarray  # flat indices in sweep order
    node_vertex: np.ndarray
    node_type: np.ndarray  # int8 codes, see NODE_TYPE_NAMES
    arc_child: np.ndarray
    arc_parent: np.ndarray
    arc_size: np.ndarray
    vertex_arc: np.ndarray
    pair_birth_vertex: np.ndarray
    pair_death_vertex: np.ndarray
    # After simplification: the values with every removed basin filled up to the saddle where it
    # was removed (TTK-style flattening); None when nothing was removed (then equal to values).
    flattened_values: np.ndarray | None = None

    # --- sizes and nodes -------------------------------------------------------------------
    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def n_vertices(self) -> int:
        return int(self.values.size)

    @cached_property
    def n_nonfinite(self) -> int:
        return int(np.count_nonzero(~np.isfinite(self.values)))

    @property
    def n_nodes(self) -> int:
        return int(self.node_vertex.size)

    @property
    def n_arcs(self) -> int:
        return int(self.arc_child.size)

    @property
    def root(self) -> int:
        """Node id of the root (the node at the last vertex of the sweep)."""
        return self.n_nodes - 1

    @property
    def n_minima(self) -> int:
        return int(np.count_nonzero(self.node_type == NODE_MINIMUM))

    @property
    def n_saddles(self) -> int:
        """Number of distinct merge vertices (a multi-saddle counts once)."""
        return int(np.count_nonzero(self.node_type == NODE_SADDLE))

    @property
    def node_values(self) -> np.ndarray:
        return self.values[self.node_vertex]

    @property
    def node_type_names(self) -> list[str]:
        return [NODE_TYPE_NAMES[int(t)] for t in self.node_type]

    @property
    def node_coordinates(self) -> np.ndarray:
        """Grid coordinates of the nodes, shape (n_nodes, ndim)."""
        return np.column_stack(np.unravel_index(self.node_vertex, self.shape))

    @property
    def global_minimum_vertex(self) -> int:
        """Flat index of the global minimum: the birth of the essential class (never dies)."""
        return int(self.order[0])

    # --- persistence -----------------------------------------------------------------------
    @property
    def births(self) -> np.ndarray:
        return self.values[self.pair_birth_vertex]

    @property
    def deaths(self) -> np.ndarray:
        """Death values; +inf where the death vertex is non-finite."""
        return ordering_key(self.values[self.pair_death_vertex])

    @property
    def persistence(self) -> np.ndarray:
        return self.deaths - self.births

    @property
    def pairs(self) -> np.ndarray:
        """Finite 0-dimensional (birth, death) pairs, shape (k, 2), sorted by birth then death."""
        return np.column_stack([self.births, self.deaths]).reshape(-1, 2)

    # --- export ----------------------------------------------------------------------------
    @property
    def on_graph(self) -> bool:
        """Built on a neighbourhood graph of scattered samples (vertex = sample), not a grid."""
        return self.connectivity not in CONNECTIVITIES

    def positions(self, vertices: np.ndarray, axes: list[np.ndarray] | None = None,
                  points: np.ndarray | None = None) -> np.ndarray | None:
        """Positions (k, d) of vertices in the landscape's coordinates: the grid's axis values
        (`axes`), the samples' coordinates (`points`, graph trees), or None without either."""
        if points is not None:
            return np.asarray(points, dtype=np.float64)[np.asarray(vertices)].reshape(-1, points.shape[1])
        coordinates = np.column_stack(np.unravel_index(vertices, self.shape)).reshape(-1, self.ndim)
        return grid_positions(coordinates, axes)

    def to_dict(self, axes: list[np.ndarray] | None = None,
                points: np.ndarray | None = None) -> dict[str, Any]:
        """JSON-ready nodes and arcs (non-finite values kept, with a `nonfinite` flag); grid
        coordinates for grid trees, and positions from `axes` or the samples' `points`."""
        coordinates = self.node_coordinates
        positions = self.positions(self.node_vertex, axes, points)
        nodes = []
        for node in range(self.n_nodes):
            value = float(self.values[self.node_vertex[node]])
            entry: dict[str, Any] = {
                "id": node,
                "type": NODE_TYPE_NAMES[int(self.node_type[node])],
                "vertex": int(self.node_vertex[node]),
                "value": value,
                "nonfinite": not np.isfinite(value),
            }
            if not self.on_graph:
                entry["coordinates"] = [int(c) for c in coordinates[node]]
            if positions is not None:
                entry["position"] = [float(p) for p in positions[node]]
            nodes.append(entry)
        arcs = [
            {
                "id": arc,
                "child": int(self.arc_child[arc]),
                "parent": int(self.arc_parent[arc]),
                "size": int(self.arc_size[arc]),
            }
            for arc in range(self.n_arcs)
        ]
        return {
            "shape": list(self.shape),
            "connectivity": self.connectivity,
            "threshold": self.threshold,
            "n_vertices": self.n_vertices,
            "n_nonfinite": self.n_nonfinite,
            "root": self.root,
            "nodes": nodes,
            "arcs": arcs,
        }


def grid_positions(coordinates: np.ndarray, axes: list[np.ndarray] | None) -> np.ndarray | None:
    """Map integer grid coordinates (k, ndim) to axis positions, or None without axes."""
    if axes is None:
        return None
    columns = [np.asarray(axis, dtype=np.float64)[coordinates[:, i]] for i, axis in enumerate(axes)]
    return np.column_stack(columns).reshape(coordinates.shape)


def validate_axes(axes: list[np.ndarray] | None, shape: tuple[int, ...]) -> list[np.ndarray] | None:
    """Check that there is one 1-D coordinate array per grid dimension, of matching length."""
    if axes is None:
        return None
    axes = [np.asarray(axis, dtype=np.float64) for axis in axes]
    if len(axes) != len(shape) or any(a.shape != (n,) for a, n in zip(axes, shape)):
        raise ValueError(
            f"axes must be {len(shape)} 1-D arrays of lengths {list(shape)}; "
            f"got shapes {[a.shape for a in axes]}"
        )
    return axes


def _sorted_pairs(values: np.ndarray, birth_vertex: np.ndarray, death_vertex: np.ndarray):
    """Pairs sorted by (birth, death, birth vertex) so every output is deterministic."""
    deaths = ordering_key(values[death_vertex])
    index = np.lexsort((birth_vertex, deaths, values[birth_vertex]))
    return birth_vertex[index], death_vertex[index]


def build_merge_tree(
    values: Any, connectivity: str = "freudenthal", threshold: float = 0.0
) -> MergeTree:
    """One sweep: the merge tree with every pair of persistence < threshold (and 0) absorbed."""
    validate_connectivity(connectivity)
    grid = validate_values(values)
    stencil = neighbour_stencil(grid.shape, connectivity)
    return _swept_tree(grid.reshape(-1), grid.shape, connectivity, threshold, stencil, NO_GRAPH)


def graph_merge_tree(
    values: Any, indptr: Any, indices: Any, graph_name: str = "graph"
) -> MergeTree:
    """Join tree of the sublevel filtration of a function sampled on the vertices of a graph.

    For scattered samples (Oesterling et al.; Landscaper) the graph replaces the grid stencil:
    vertex v's neighbours are indices[indptr[v]:indptr[v+1]] (CSR), the graph is taken as
    undirected (an edge listed in one direction joins both ways) and must be connected. The
    conventions are the grid's: ties by (value, index), non-finite values above finite ones,
    zero-persistence pairs absent. `graph_name` (e.g. "knn", "gabriel") becomes `connectivity`;
    grid connectivity names are refused so a graph tree is never mistaken for a grid tree.
    """
    if not isinstance(graph_name, str) or not graph_name or graph_name in CONNECTIVITIES:
        raise ValueError(
            f"graph_name must be a non-empty name other than the grid connectivities "
            f"{', '.join(CONNECTIVITIES)}; got {graph_name!r}"
        )
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"values must be 1-D (one per graph vertex); got shape {array.shape}")
    flat = validate_values(array)
    graph = validate_graph(indptr, indices, flat.size)
    no_stencil = (np.empty((0, 1), np.int64), np.empty(0, np.int64))
    return _swept_tree(flat, flat.shape, graph_name, 0.0, no_stencil, graph)


def _swept_tree(flat, shape, connectivity, threshold, stencil, graph) -> MergeTree:
    """Run the sweep kernel (grid stencil or graph CSR) and wrap its output in a MergeTree."""
    key = ordering_key(flat)
    order = np.argsort(key, kind="stable")
    node_vertex, node_type, arc_child, arc_parent, arc_size, vertex_arc, births, deaths = (
        sweep_join_tree(
            key, order, np.array(shape, dtype=np.int64), *stencil, float(threshold), *graph
        )
    )
    del key
    births, deaths = _sorted_pairs(flat, births, deaths)
    return MergeTree(
        shape=tuple(int(n) for n in shape),
        connectivity=connectivity,
        threshold=float(threshold),
        values=flat,
        order=order,
        node_vertex=node_vertex,
        node_type=node_type,
        arc_child=arc_child,
        arc_parent=arc_parent,
        arc_size=arc_size,
        vertex_arc=vertex_arc,
        pair_birth_vertex=births,
        pair_death_vertex=deaths,
    )


def merge_tree(values: Any, connectivity: str = "freudenthal") -> MergeTree:
    """Join tree of the sublevel-set filtration of an array of any dimension (1-D, ..., 8-D, ...).

    `connectivity` is "freudenthal" (default, TTK's triangulation), "axis" (2n neighbours) or
    "full" (3ⁿ−1 neighbours). Ties are broken by (value, flat index); zero-persistence pairs
    are not nodes. NaN/±inf are ordered above every finite value (see module docstring).
    """
    return build_merge_tree(values, connectivity, threshold=0.0)
