"""Topological landscape profiles (Oesterling et al. 2013, as used for loss landscapes).

Every arc of the merge tree is a basin: the sublevel-set component below the arc's upper node.
Its region in the profile is mirrored about its centre line and its full width at height y is
the number of grid vertices of the basin with loss <= y, so the area of a basin equals its
volume (in grid cells) — the profile is volume preserving and the top is n_vertices wide.
A basin's own polygon is its band between its lower node (minimum or saddle) and its upper node;
the basins merging at its lower node sit side by side (largest first) beneath that band, so the
full region of a basin is its band plus the bands of all basins below it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from toposweep.topology._kernels import NODE_MINIMUM, NODE_SADDLE
from toposweep.topology.io import json_safe
from toposweep.topology.merge_tree import NODE_TYPE_NAMES, MergeTree

MAX_LEVELS_PER_BASIN = 64
NONFINITE_MARGIN = 0.05  # non-finite vertices are drawn this fraction of the range above the max


@dataclass
class Basin:
    """One basin (merge-tree arc) of a profile."""

    id: int
    node: int  # merge-tree node at the bottom of the band (minimum or saddle)
    node_type: str
    parent: int | None  # basin this one merges into (None at the top)
    children: list[int]
    lower: float  # height of the band's bottom (node value)
    upper: float  # height where the basin merges (parent node value)
    minimum: float  # deepest loss inside the basin
    size: int  # grid vertices in the basin (its width at `upper`)
    centre: float
    levels: np.ndarray  # sampled heights of the band, increasing
    widths: np.ndarray  # full width of the basin at each level

    @property
    def polygon(self) -> np.ndarray:
        """Band outline (m, 2): left side upwards, then right side downwards."""
        left = np.column_stack([self.centre - self.widths / 2, self.levels])
        right = np.column_stack([self.centre + self.widths / 2, self.levels])[::-1]
        return np.concatenate([left, right])


@dataclass
class Profile:
    """A topological landscape profile: nested mirrored basins with their minima and saddles."""

    n_vertices: int
    n_nonfinite: int
    value_min: float
    value_max: float
    nonfinite_height: float | None
    basins: list[Basin]
    minima: list[tuple[int, float, float]] = field(default_factory=list)  # (node, x, y)
    saddles: list[tuple[int, float, float]] = field(default_factory=list)  # (node, x, y)

    @property
    def top_width(self) -> float:
        """Width of the profile at its top level (equals n_vertices)."""
        return float(sum(b.widths[-1] for b in self.basins if b.parent is None))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description: basins with polygons, minima and saddles."""
        return json_safe(
            {
                "n_vertices": self.n_vertices,
                "n_nonfinite": self.n_nonfinite,
                "value_min": self.value_min,
                "value_max": self.value_max,
                "nonfinite_height": self.nonfinite_height,
                "basins": [
                    {
                        "id": b.id,
                        "node": b.node,
                        "node_type": b.node_type,
                        "parent": b.parent,
                        "children": b.children,
                        "lower": b.lower,
                        "upper": b.upper,
                        "minimum": b.minimum,
                        "size": b.size,
                        "centre": b.centre,
                        "polygon": b.polygon.tolist(),
                    }
                    for b in self.basins
                ],
                "minima": [{"node": n, "x": x, "y": y} for n, x, y in self.minima],
                "saddles": [{"node": n, "x": x, "y": y} for n, x, y in self.saddles],
            }
        )

    def to_json(self) -> str:
        """The profile as a strict-JSON string (see `to_dict`)."""
        return json.dumps(self.to_dict(), allow_nan=False)

    def plot(self, ax=None, cmap: str = "viridis", outline_color: str = "0.15"):
        """Draw the profile with matplotlib: bands coloured by loss, minima and saddles marked."""
        import matplotlib.pyplot as plt
        from matplotlib.collections import PolyCollection
        from matplotlib.colors import Normalize

        if ax is None:
            _, ax = plt.subplots(figsize=(8, 4.5))
        top = self.nonfinite_height if self.nonfinite_height is not None else self.value_max
        norm = Normalize(vmin=self.value_min, vmax=top if top > self.value_min else self.value_min + 1)
        colormap = plt.get_cmap(cmap)
        slices, colours, outlines = [], [], []
        colour_step = (top - self.value_min) / 150 if top > self.value_min else 1.0
        for basin in self.basins:
            c = basin.centre
            # extra levels (widths interpolated like the outline) give a smooth loss gradient
            extra = np.arange(basin.lower, basin.upper, colour_step)
            y = np.union1d(basin.levels, extra)
            w = np.interp(y, basin.levels, basin.widths)
            for k in range(len(y) - 1):
                slices.append(
                    [(c - w[k] / 2, y[k]), (c + w[k] / 2, y[k]),
                     (c + w[k + 1] / 2, y[k + 1]), (c - w[k + 1] / 2, y[k + 1])]
                )
                colours.append(colormap(norm((y[k] + y[k + 1]) / 2)))
            outlines.append(basin.polygon)
        ax.add_collection(
            PolyCollection(slices, facecolors=colours, edgecolors=colours, linewidths=0.3)
        )
        ax.add_collection(
            PolyCollection(outlines, facecolors="none", edgecolors=outline_color, linewidths=0.6)
        )
        if self.minima:
            _, mx, my = zip(*self.minima)
            ax.scatter(mx, my, marker="v", s=28, color="tab:red", zorder=3, label="minimum")
        if self.saddles:
            _, sx, sy = zip(*self.saddles)
            ax.scatter(sx, sy, marker="X", s=28, color="white", edgecolors="black",
                       linewidths=0.6, zorder=3, label="saddle")
        if self.nonfinite_height is not None:
            ax.axhline(self.nonfinite_height, color="0.4", ls="--", lw=0.8, label="non-finite")
        ax.set_xlim(0, self.n_vertices)
        span = top - self.value_min
        pad = 0.03 * span if span > 0 else 0.5
        ax.set_ylim(self.value_min - pad, top + pad)
        ax.set_xlabel("grid vertices (basin width = vertices below the level)")
        ax.set_ylabel("loss")
        ax.figure.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=colormap), ax=ax, label="loss")
        ax.legend(loc="upper right", fontsize=8)
        return ax


def landscape_profile(tree: MergeTree, max_levels_per_basin: int = MAX_LEVELS_PER_BASIN) -> Profile:
    """Topological landscape profile of a merge tree (see module docstring).

    Each band's outline is sampled at up to `max_levels_per_basin` heights (quantiles of the
    basin's own vertex values, plus its bottom and top), with exact widths at those heights.
    """
    values = tree.values if tree.flattened_values is None else tree.flattened_values
    finite = np.isfinite(values)
    n_finite = int(finite.sum())
    value_min = float(values[finite].min()) if n_finite else 0.0
    value_max = float(values[finite].max()) if n_finite else 0.0
    nonfinite_height = None
    if tree.n_nonfinite:
        span = value_max - value_min
        nonfinite_height = value_max + (NONFINITE_MARGIN * span if span > 0 else 1.0)
    heights = np.where(finite, values, nonfinite_height if nonfinite_height is not None else 0.0)
    if tree.flattened_values is None:  # sweep order is already sorted by height: group by arc
        grouping = tree.order[np.argsort(tree.vertex_arc[tree.order], kind="stable")]
    else:  # flattened vertices moved up: sort by (arc, height)
        grouping = np.lexsort((heights, tree.vertex_arc))
    grouped_heights = heights[grouping]
    del grouping
    starts = np.concatenate([[0], np.cumsum(tree.arc_size)])

    node_height = heights[tree.node_vertex]
    n_arcs = tree.n_arcs
    children_of_node: list[list[int]] = [[] for _ in range(tree.n_nodes)]
    for arc in range(n_arcs):
        children_of_node[int(tree.arc_parent[arc])].append(arc)
    below = np.zeros(n_arcs, dtype=np.int64)  # vertices in basins merging at the arc's bottom
    subtree_size = np.zeros(n_arcs, dtype=np.int64)
    subtree_min = np.zeros(n_arcs, dtype=np.float64)
    for arc in range(n_arcs):  # arc ids follow the sweep: children before parents
        child_arcs = children_of_node[int(tree.arc_child[arc])]
        below[arc] = sum(int(subtree_size[c]) for c in child_arcs)
        subtree_size[arc] = below[arc] + tree.arc_size[arc]
        own_min = grouped_heights[starts[arc]] if tree.arc_size[arc] else np.inf
        subtree_min[arc] = min([own_min] + [subtree_min[c] for c in child_arcs])

    arc_of_child_node = {int(tree.arc_child[a]): a for a in range(n_arcs)}
    parent_basin = [arc_of_child_node.get(int(tree.arc_parent[a])) for a in range(n_arcs)]
    centre = np.zeros(n_arcs, dtype=np.float64)
    minima: list[tuple[int, float, float]] = []
    saddles: list[tuple[int, float, float]] = []

    def place(node: int, node_centre: float) -> list[int]:
        """Put the basins merging at `node` side by side under it; return them."""
        ordered = sorted(children_of_node[node], key=lambda a: (-subtree_size[a], a))
        left = node_centre - sum(int(subtree_size[a]) for a in ordered) / 2
        for k, arc in enumerate(ordered):
            centre[arc] = left + subtree_size[arc] / 2
            left += subtree_size[arc]
            if k < len(ordered) - 1 and tree.node_type[node] == NODE_SADDLE:
                saddles.append((node, float(left), float(node_height[node])))
        return ordered

    stack = place(tree.root, tree.n_vertices / 2)
    while stack:
        arc = stack.pop()
        bottom = int(tree.arc_child[arc])
        if tree.node_type[bottom] == NODE_MINIMUM:
            minima.append((bottom, float(centre[arc]), float(node_height[bottom])))
        else:
            stack.extend(place(bottom, float(centre[arc])))

    basins = []
    for arc in range(n_arcs):
        own = grouped_heights[starts[arc] : starts[arc + 1]]
        lower = float(node_height[tree.arc_child[arc]])
        upper = float(node_height[tree.arc_parent[arc]])
        if own.size > max_levels_per_basin - 2:
            picks = np.linspace(0, own.size - 1, max_levels_per_basin - 2).round().astype(np.int64)
            sampled = own[picks]
        else:
            sampled = own
        levels = np.unique(np.concatenate([[lower], sampled, [upper]]))
        widths = below[arc] + np.searchsorted(own, levels, side="right")
        bottom = int(tree.arc_child[arc])
        basins.append(
            Basin(
                id=arc,
                node=bottom,
                node_type=NODE_TYPE_NAMES[int(tree.node_type[bottom])],
                parent=parent_basin[arc],
                children=[int(c) for c in children_of_node[bottom]],
                lower=lower,
                upper=upper,
                minimum=float(subtree_min[arc]),
                size=int(subtree_size[arc]),
                centre=float(centre[arc]),
                levels=levels.astype(np.float64),
                widths=widths.astype(np.float64),
            )
        )
    return Profile(
        n_vertices=tree.n_vertices,
        n_nonfinite=tree.n_nonfinite,
        value_min=value_min,
        value_max=value_max,
        nonfinite_height=nonfinite_height,
        basins=basins,
        minima=sorted(minima),
        saddles=sorted(saddles),
    )
