"""Topology stage: merge trees, persistence and topological landscape profiles of loss grids.

Scattered samples (no grid) go through a neighbourhood graph: `neighbourhood_graph`, then
`graph_merge_tree` (or both at once with `graph_topology`).
"""

from toposweep.topology.merge_tree import (
    CONNECTIVITIES,
    MergeTree,
    graph_merge_tree,
    merge_tree,
)
from toposweep.topology.simplify import simplify
from toposweep.topology.graph import PRUNE_RULES, graph_topology, neighbourhood_graph
from toposweep.topology.loops import loop_metrics, loop_pairs
from toposweep.topology.metrics import persistence_pairs, smad, topology_metrics, tree_metrics
from toposweep.topology.profile import Profile, landscape_profile
from toposweep.topology.outputs import topology_of_landscape_file, write_topology_outputs

__all__ = [
    "CONNECTIVITIES",
    "MergeTree",
    "PRUNE_RULES",
    "Profile",
    "graph_merge_tree",
    "graph_topology",
    "landscape_profile",
    "loop_metrics",
    "loop_pairs",
    "merge_tree",
    "neighbourhood_graph",
    "persistence_pairs",
    "simplify",
    "smad",
    "topology_metrics",
    "topology_of_landscape_file",
    "tree_metrics",
    "write_topology_outputs",
]
