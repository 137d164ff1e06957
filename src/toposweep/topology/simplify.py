"""Simplification of merge trees by persistence (TTK's topological simplification followed by a
new merge tree): short branches absorbed by the elder branch at their saddle, removed basins
filled to their saddle, survivors renumbered. Works on arcs, never on the grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from toposweep.topology._kernels import NODE_MINIMUM, NODE_ROOT, NODE_SADDLE
from toposweep.topology.merge_tree import MergeTree, build_merge_tree, ordering_key, validate_values


def absolute_threshold(values: np.ndarray, threshold: float, relative_threshold: bool) -> float:
    """Threshold in value units: `threshold` itself, or times the finite value range if relative."""
    threshold = float(threshold)
    if not np.isfinite(threshold) or threshold < 0:
        raise ValueError(f"threshold must be a finite number >= 0; got {threshold}")
    if not relative_threshold:
        return threshold
    finite = values[np.isfinite(values)]
    value_range = float(finite.max() - finite.min()) if finite.size else 0.0
    return threshold * value_range


def simplify(
    values_or_tree: Any,
    threshold: float,
    relative_threshold: bool = False,
    connectivity: str = "freudenthal",
) -> MergeTree:
    """Merge tree with every pair of persistence below `threshold` removed.

    Like TTK's topological simplification by persistence followed by a new merge tree: removed
    branches are absorbed by the elder branch at their saddle, saddles left with one child become
    regular, and `flattened_values` holds the values with removed basins filled to their saddle.
    `threshold` is absolute, or a fraction of the finite value range when `relative_threshold`
    is true. Accepts a grid (then `connectivity` applies) or a MergeTree.
    """
    if isinstance(values_or_tree, MergeTree):
        tree = values_or_tree
        threshold_abs = absolute_threshold(tree.values, threshold, relative_threshold)
        return _prune(tree, threshold_abs)
    grid = validate_values(values_or_tree)
    threshold_abs = absolute_threshold(grid.reshape(-1), threshold, relative_threshold)
    return _prune(build_merge_tree(grid, connectivity), threshold_abs)


def _prune(tree: MergeTree, threshold: float) -> MergeTree:
    """Remove every branch of persistence < threshold from an existing tree (arc-level work).

    Three passes over arcs, never over the grid: absorb the short branches bottom-up, fill the
    removed basins up to their saddle, then renumber what survives.
    """
    if threshold <= tree.threshold:
        return tree
    absorbed = _absorb_short_branches(tree, threshold)
    flattened = _flattened_values(tree, absorbed.redirect, absorbed.removal_level)
    return _renumbered_tree(tree, threshold, absorbed, flattened)


@dataclass(frozen=True)
class _Absorption:
    """What `_absorb_short_branches` decided, per arc and per node of the unsimplified tree."""

    redirect: np.ndarray  # arc it was absorbed into (-1: the arc survives)
    upper: np.ndarray  # upper node of each arc after regular saddles were merged away
    node_alive: np.ndarray
    node_type: np.ndarray
    removal_level: np.ndarray  # level a removed arc was flattened to (-inf: not removed)


def _surviving_arc(redirect: np.ndarray, arc: int) -> int:
    """Follow an arc's redirect chain to the arc it now belongs to (itself if it survives)."""
    while redirect[arc] >= 0:
        arc = redirect[arc]
    return arc


def _arc_links(tree: MergeTree) -> tuple[np.ndarray, list[list[int]], np.ndarray]:
    """(arc above each node, child arcs of each node, minimum each arc starts at or -1).

    The arc lists of the tree only go child → parent; the bottom-up sweep needs both ways.
    """
    up_arc = np.full(tree.n_nodes, -1, dtype=np.int64)
    children: list[list[int]] = [[] for _ in range(tree.n_nodes)]
    birth_node = np.full(tree.n_arcs, -1, dtype=np.int64)
    for arc in range(tree.n_arcs):
        up_arc[tree.arc_child[arc]] = arc
        children[tree.arc_parent[arc]].append(arc)
        if tree.node_type[tree.arc_child[arc]] == NODE_MINIMUM:
            birth_node[arc] = tree.arc_child[arc]
    return up_arc, children, birth_node


def _absorb_short_branches(tree: MergeTree, threshold: float) -> _Absorption:
    """At each saddle, bottom-up, absorb every younger child branch shorter than `threshold`.

    Bottom-up (node ids follow the sweep rank) so that each branch's persistence is measured
    from the elder minimum of its already simplified subtree (the elder rule). A saddle left
    with one child becomes regular: the arcs below and above it join.
    """
    key_of = ordering_key(tree.values[tree.node_vertex])  # per node
    redirect = np.full(tree.n_arcs, -1, dtype=np.int64)
    upper = tree.arc_parent.copy()
    node_alive = np.ones(tree.n_nodes, dtype=bool)
    node_type = tree.node_type.copy()
    removal_level = np.full(tree.n_arcs, -np.inf)
    # birth_node: the elder minimum of each arc's subtree, updated as the sweep goes up
    up_arc, children, birth_node = _arc_links(tree)
    for node in range(tree.n_nodes):  # children before parents
        if tree.node_type[node] != NODE_SADDLE:
            continue
        child_arcs = [_surviving_arc(redirect, arc) for arc in children[node]]
        # elder: the child whose branch minimum comes first in the sweep (lowest node id)
        elder = min(child_arcs, key=lambda arc: birth_node[arc])
        n_kept = 0
        for arc in child_arcs:
            if arc == elder:
                continue
            if key_of[node] - key_of[birth_node[arc]] >= threshold:
                n_kept += 1
            else:
                redirect[arc] = elder
                removal_level[arc] = key_of[node]
                node_alive[tree.arc_child[arc]] = False
        if n_kept > 0:
            if up_arc[node] >= 0:
                birth_node[up_arc[node]] = birth_node[elder]
        elif up_arc[node] >= 0:  # the saddle became regular: join the elder arc and the arc above
            redirect[up_arc[node]] = elder
            upper[elder] = upper[up_arc[node]]
            node_alive[node] = False
        else:  # the saddle was the root (global maximum); now it is a plain root
            node_type[node] = NODE_ROOT
    return _Absorption(redirect, upper, node_alive, node_type, removal_level)


def _flattened_values(
    tree: MergeTree, redirect: np.ndarray, removal_level: np.ndarray
) -> np.ndarray:
    """The values with removed basins filled up to their saddle (TTK-style flattening).

    A vertex is raised to the highest removal level on its arc's redirect chain (a basin absorbed
    into one that was absorbed in turn fills to the higher saddle), on top of the flattening of
    an earlier simplification, so simplifying in two steps gives the values of one step.
    """
    flatten_level = np.full(tree.n_arcs, np.nan)
    for arc in range(tree.n_arcs):
        chain = []
        walk = arc
        while redirect[walk] >= 0 and np.isnan(flatten_level[walk]):
            chain.append(walk)
            walk = redirect[walk]
        level = -np.inf if redirect[walk] < 0 else flatten_level[walk]
        for member in reversed(chain):
            level = max(level, removal_level[member])
            flatten_level[member] = level
        if redirect[arc] < 0:
            flatten_level[arc] = -np.inf
    previous = tree.flattened_values if tree.flattened_values is not None else tree.values
    return np.maximum(previous, flatten_level[tree.vertex_arc])


def _renumbered_tree(
    tree: MergeTree, threshold: float, absorbed: _Absorption, flattened: np.ndarray
) -> MergeTree:
    """The simplified tree: surviving nodes and arcs renumbered in order, vertices relabelled.

    Survivors keep their relative order, so node ids stay in sweep rank and arcs children-first:
    the order `_absorb_short_branches` (on a later simplification) and the profile layout rely on.
    """
    redirect, node_alive = absorbed.redirect, absorbed.node_alive
    n_arcs = tree.n_arcs
    kept_arcs = redirect < 0
    arc_new_id = np.cumsum(kept_arcs) - 1
    final = np.array([_surviving_arc(redirect, arc) for arc in range(n_arcs)], dtype=np.int64)
    arc_map = arc_new_id[final] if n_arcs else final
    node_new_id = np.cumsum(node_alive) - 1
    vertex_arc = arc_map[tree.vertex_arc]
    n_new_arcs = int(kept_arcs.sum())
    arc_child = node_new_id[tree.arc_child[kept_arcs]]
    arc_parent = node_new_id[absorbed.upper[kept_arcs]]
    pers = tree.persistence
    keep_pair = pers >= threshold
    return MergeTree(
        shape=tree.shape,
        connectivity=tree.connectivity,
        threshold=float(threshold),
        values=tree.values,
        order=tree.order,
        node_vertex=tree.node_vertex[node_alive],
        node_type=absorbed.node_type[node_alive],
        arc_child=arc_child,
        arc_parent=arc_parent,
        arc_size=np.bincount(vertex_arc, minlength=n_new_arcs).astype(np.int64),
        vertex_arc=vertex_arc,
        pair_birth_vertex=tree.pair_birth_vertex[keep_pair],
        pair_death_vertex=tree.pair_death_vertex[keep_pair],
        flattened_values=flattened,
    )
