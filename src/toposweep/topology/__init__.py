"""Topology stage: merge trees, persistence and topological landscape profiles of loss grids."""

from toposweep.topology.merge_tree import CONNECTIVITIES, MergeTree, merge_tree, simplify
from toposweep.topology.loops import loop_metrics, loop_pairs
from toposweep.topology.metrics import persistence_pairs, smad, topology_metrics, tree_metrics
from toposweep.topology.profile import Profile, landscape_profile
from toposweep.topology.outputs import topology_of_landscape_file, write_topology_outputs

__all__ = [
    "CONNECTIVITIES",
    "MergeTree",
    "Profile",
    "landscape_profile",
    "loop_metrics",
    "loop_pairs",
    "merge_tree",
    "persistence_pairs",
    "simplify",
    "smad",
    "topology_metrics",
    "topology_of_landscape_file",
    "tree_metrics",
    "write_topology_outputs",
]
