"""Numba kernels for the sublevel-set sweep on regular grids and on neighbourhood graphs.

The sweep visits vertices in (key, index) order — simulation of simplicity — and maintains a
union-find over the processed vertices. On a grid, neighbours are generated on the fly from
per-connectivity offset tables, so no per-vertex adjacency list is ever materialised; on a graph
(scattered samples) they are read from a CSR adjacency. Only the neighbour loop differs.
"""

from __future__ import annotations

import numpy as np
from numba import njit

NODE_MINIMUM = 0
NODE_SADDLE = 1
NODE_ROOT = 2


@njit(cache=True, nogil=True)
def _find(parent: np.ndarray, x: int) -> int:
    """Union-find root of x with path halving."""
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


@njit(cache=True, nogil=True)
def _grow(buffer: np.ndarray, used: int) -> np.ndarray:
    """Return buffer, doubled in length when it is full."""
    if used < buffer.size:
        return buffer
    bigger = np.empty(max(16, 2 * buffer.size), dtype=buffer.dtype)
    bigger[: buffer.size] = buffer
    return bigger


@njit(cache=True, nogil=True)
def _add_root(parent, neighbour, roots, n_roots):
    """Add the union-find root of a swept `neighbour` to `roots` if new; return the new count."""
    up = parent[neighbour]
    if up < 0:  # not swept yet
        return n_roots
    # Fast path (no unions happen during a vertex's scan, so the roots found stay roots): a
    # neighbour whose parent is a root already found adds nothing; skip its find.
    for k in range(n_roots):
        if roots[k] == up:
            return n_roots
    r = _find(parent, neighbour)
    for k in range(n_roots):
        if roots[k] == r:
            return n_roots
    roots[n_roots] = r
    return n_roots + 1


@njit(cache=True, nogil=True)
def sweep_join_tree(key, order, shape, deltas, flat_offsets, threshold, indptr, indices):
    """Join tree of the sublevel filtration of `key` (flat float64, non-finite already +inf).

    `order` is the vertex order (argsort of key, ties by index). Neighbours come from the grid
    stencil — `deltas` (m × ndim) and `flat_offsets` (m) on a grid of `shape` — when `indptr`
    is empty, and otherwise from the symmetric CSR adjacency (`indptr`, `indices`) of a graph on
    the `key.size` vertices (then `shape` is (n,) and the stencil empty). Pairs whose
    persistence is zero or below `threshold` are absorbed into the elder component without
    creating tree nodes. A graph must be connected (one root).

    Returns (node_vertex, node_type, arc_child, arc_parent, arc_size, vertex_arc,
    pair_birth, pair_death), with nodes and arcs compacted and ordered by sweep rank.
    """
    n = key.size
    ndim = shape.size
    n_offsets = flat_offsets.size

    # parent < 0 marks a vertex not yet swept, so one read both tests and starts the find
    parent = np.full(n, -1, np.int32)
    comp_birth = np.empty(n, np.int32)  # valid at union-find roots
    comp_arc = np.empty(n, np.int32)  # valid at union-find roots: the arc currently growing
    vertex_arc = np.empty(n, np.int32)

    node_vertex = np.empty(64, np.int64)
    node_type = np.empty(64, np.int8)
    n_nodes = 0
    arc_lower = np.empty(64, np.int64)
    arc_upper = np.empty(64, np.int64)
    arc_redirect = np.empty(64, np.int64)
    n_arcs = 0
    pair_birth = np.empty(64, np.int64)
    pair_death = np.empty(64, np.int64)
    n_pairs = 0

    use_graph = indptr.size > 0
    max_neighbours = n_offsets
    if use_graph:
        for v in range(n):
            max_neighbours = max(max_neighbours, indptr[v + 1] - indptr[v])
    coords = np.empty(ndim, np.int64)
    roots = np.empty(max_neighbours, np.int64)
    kept = np.empty(max_neighbours, np.int64)
    # Boundary test in O(1) per offset (the stencil has 3^d - 1 offsets for "full"): bit `axis`
    # of down_mask[j] / up_mask[j] is set when offset j steps -1 / +1 along that axis, and a
    # vertex's at_low / at_high bits mark the axes where it is on the first / last layer.
    use_masks = ndim <= 62
    down_mask = np.zeros(n_offsets, np.int64)
    up_mask = np.zeros(n_offsets, np.int64)
    if use_masks:
        for j in range(n_offsets):
            for axis in range(ndim):
                if deltas[j, axis] < 0:
                    down_mask[j] |= np.int64(1) << axis
                elif deltas[j, axis] > 0:
                    up_mask[j] |= np.int64(1) << axis

    for i in range(n):
        v = order[i]
        n_roots = 0
        if use_graph:
            for e in range(indptr[v], indptr[v + 1]):
                n_roots = _add_root(parent, indices[e], roots, n_roots)
        else:
            rest = v
            interior = True  # every neighbour exists: skip the per-offset bounds checks
            at_low = np.int64(0)
            at_high = np.int64(0)
            for axis in range(ndim - 1, -1, -1):
                coords[axis] = rest % shape[axis]
                rest //= shape[axis]
                if coords[axis] == 0 or coords[axis] == shape[axis] - 1:
                    interior = False
                    if use_masks:
                        if coords[axis] == 0:
                            at_low |= np.int64(1) << axis
                        if coords[axis] == shape[axis] - 1:
                            at_high |= np.int64(1) << axis
            for j in range(n_offsets):
                if not interior:
                    if use_masks:
                        if (down_mask[j] & at_low) != 0 or (up_mask[j] & at_high) != 0:
                            continue
                    else:
                        inside = True
                        for axis in range(ndim):
                            c = coords[axis] + deltas[j, axis]
                            if c < 0 or c >= shape[axis]:
                                inside = False
                                break
                        if not inside:
                            continue
                n_roots = _add_root(parent, v + flat_offsets[j], roots, n_roots)

        if n_roots == 0:  # a new local minimum (under simulation of simplicity)
            node_vertex = _grow(node_vertex, n_nodes)
            node_type = _grow(node_type, n_nodes)
            node_vertex[n_nodes] = v
            node_type[n_nodes] = NODE_MINIMUM
            arc_lower = _grow(arc_lower, n_arcs)
            arc_upper = _grow(arc_upper, n_arcs)
            arc_redirect = _grow(arc_redirect, n_arcs)
            arc_lower[n_arcs] = n_nodes
            arc_upper[n_arcs] = -1
            arc_redirect[n_arcs] = -1
            parent[v] = v
            comp_birth[v] = v
            comp_arc[v] = n_arcs
            vertex_arc[v] = n_arcs
            n_nodes += 1
            n_arcs += 1
            continue

        elder = roots[0]
        for k in range(1, n_roots):  # the elder component has the earliest-swept minimum
            b, e = comp_birth[roots[k]], comp_birth[elder]
            if key[b] < key[e] or (key[b] == key[e] and b < e):
                elder = roots[k]
        elder_arc = comp_arc[elder]

        n_kept = 0
        for k in range(n_roots):
            r = roots[k]
            if r == elder:
                continue
            birth = comp_birth[r]
            if key[v] > key[birth] and key[v] - key[birth] >= threshold:
                kept[n_kept] = r
                n_kept += 1
            else:  # zero or sub-threshold persistence: the branch is absorbed by the elder
                arc_redirect[comp_arc[r]] = elder_arc
            parent[r] = elder
        parent[v] = elder

        is_last = i == n - 1
        if n_kept > 0:  # v is a saddle: close the elder's and the surviving children's arcs
            node_vertex = _grow(node_vertex, n_nodes)
            node_type = _grow(node_type, n_nodes)
            node_vertex[n_nodes] = v
            node_type[n_nodes] = NODE_SADDLE
            saddle_node = n_nodes
            n_nodes += 1
            arc_upper[elder_arc] = saddle_node
            for k in range(n_kept):
                arc_upper[comp_arc[kept[k]]] = saddle_node
                pair_birth = _grow(pair_birth, n_pairs)
                pair_death = _grow(pair_death, n_pairs)
                pair_birth[n_pairs] = comp_birth[kept[k]]
                pair_death[n_pairs] = v
                n_pairs += 1
            if is_last:  # the global maximum is itself a merge: the saddle is the root
                vertex_arc[v] = elder_arc
            else:
                arc_lower = _grow(arc_lower, n_arcs)
                arc_upper = _grow(arc_upper, n_arcs)
                arc_redirect = _grow(arc_redirect, n_arcs)
                arc_lower[n_arcs] = saddle_node
                arc_upper[n_arcs] = -1
                arc_redirect[n_arcs] = -1
                comp_arc[elder] = n_arcs
                vertex_arc[v] = n_arcs
                n_arcs += 1
        else:
            vertex_arc[v] = elder_arc
            if is_last:
                node_vertex = _grow(node_vertex, n_nodes)
                node_type = _grow(node_type, n_nodes)
                node_vertex[n_nodes] = v
                node_type[n_nodes] = NODE_ROOT
                arc_upper[elder_arc] = n_nodes
                n_nodes += 1

    # Resolve absorbed arcs to the arc that finally holds their vertices, then compact ids.
    arc_new_id = np.full(n_arcs, -1, np.int64)
    n_kept_arcs = 0
    for a in range(n_arcs):
        if arc_redirect[a] < 0:
            arc_new_id[a] = n_kept_arcs
            n_kept_arcs += 1
    for a in range(n_arcs):
        target = a
        while arc_redirect[target] >= 0:
            target = arc_redirect[target]
        walk = a  # path compression, so chains are followed once
        while arc_redirect[walk] >= 0:
            following = arc_redirect[walk]
            arc_redirect[walk] = target
            walk = following
        arc_new_id[a] = arc_new_id[target]

    node_used = np.zeros(n_nodes, np.bool_)
    for a in range(n_arcs):
        if arc_redirect[a] < 0:
            node_used[arc_lower[a]] = True
            node_used[arc_upper[a]] = True
    node_used[n_nodes - 1] = True  # the root is the node created at the last vertex
    node_new_id = np.full(n_nodes, -1, np.int64)
    n_kept_nodes = 0
    for k in range(n_nodes):
        if node_used[k]:
            node_new_id[k] = n_kept_nodes
            n_kept_nodes += 1

    out_node_vertex = np.empty(n_kept_nodes, np.int64)
    out_node_type = np.empty(n_kept_nodes, np.int8)
    for k in range(n_nodes):
        if node_used[k]:
            out_node_vertex[node_new_id[k]] = node_vertex[k]
            out_node_type[node_new_id[k]] = node_type[k]
    out_arc_child = np.empty(n_kept_arcs, np.int64)
    out_arc_parent = np.empty(n_kept_arcs, np.int64)
    for a in range(n_arcs):
        if arc_redirect[a] < 0:
            out_arc_child[arc_new_id[a]] = node_new_id[arc_lower[a]]
            out_arc_parent[arc_new_id[a]] = node_new_id[arc_upper[a]]

    out_vertex_arc = np.empty(n, np.int32)
    arc_size = np.zeros(n_kept_arcs, np.int64)
    for v in range(n):
        a = arc_new_id[vertex_arc[v]]
        out_vertex_arc[v] = a
        arc_size[a] += 1

    return (
        out_node_vertex,
        out_node_type,
        out_arc_child,
        out_arc_parent,
        arc_size,
        out_vertex_arc,
        pair_birth[:n_pairs].copy(),
        pair_death[:n_pairs].copy(),
    )
