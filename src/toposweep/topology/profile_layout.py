"""Where a topological landscape profile places its basins horizontally: the basins merging at
a node sit side by side, largest first, centred under the band above (toposweep.topology.profile
draws them)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from toposweep.topology.merge_tree import MergeTree


@dataclass(frozen=True)
class Layout:
    """Horizontal placement of the basins (see `side_by_side_layout`)."""

    centre: np.ndarray  # per arc
    node_centre: np.ndarray  # per node: centre of the basin band above it
    sorted_parent: np.ndarray  # upper node of each arc, arcs grouped by it, largest first
    group_first: np.ndarray  # the arc is the first (largest) of its group
    group_total: np.ndarray  # per node: width of all basins merging there
    before: np.ndarray  # width of the basins left of each arc within its group


def side_by_side_layout(tree: MergeTree, subtree_size: np.ndarray) -> Layout:
    """Basins merging at a node sit side by side, largest first, centred under the band above.

    Offsets within each group are computed vectorised; centres are then resolved top-down
    (arcs in reverse id order: parents before children), each relative to its parent band.
    """
    n_arcs = tree.n_arcs
    by_parent = np.lexsort((np.arange(n_arcs), -subtree_size, tree.arc_parent))
    sorted_parent = tree.arc_parent[by_parent]
    cumulative = np.cumsum(subtree_size[by_parent])
    group_first = np.ones(n_arcs, dtype=bool)
    group_first[1:] = sorted_parent[1:] != sorted_parent[:-1]
    group_start = np.maximum.accumulate(np.where(group_first, np.arange(n_arcs), 0))
    before = (
        cumulative - subtree_size[by_parent] - (cumulative - subtree_size[by_parent])[group_start]
    )
    group_total = np.zeros(tree.n_nodes, dtype=np.int64)
    np.add.at(group_total, tree.arc_parent, subtree_size)
    offset = np.empty(n_arcs, dtype=np.float64)
    offset[by_parent] = before + subtree_size[by_parent] / 2 - group_total[sorted_parent] / 2
    node_centre = [0.0] * tree.n_nodes
    node_centre[tree.root] = tree.n_vertices / 2
    centre_list = [0.0] * n_arcs
    offset_list, child_list, parent_list = (
        offset.tolist(),
        tree.arc_child.tolist(),
        tree.arc_parent.tolist(),
    )
    for arc in range(n_arcs - 1, -1, -1):  # parents before children
        centre_list[arc] = node_centre[parent_list[arc]] + offset_list[arc]
        node_centre[child_list[arc]] = centre_list[arc]
    return Layout(
        centre=np.array(centre_list, dtype=np.float64),
        node_centre=np.array(node_centre),
        sorted_parent=sorted_parent,
        group_first=group_first,
        group_total=group_total,
        before=before,
    )
