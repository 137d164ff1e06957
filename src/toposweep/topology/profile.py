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

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from toposweep.topology._kernels import NODE_MINIMUM, NODE_SADDLE
from toposweep.io import json_text
from toposweep.topology.merge_tree import NODE_TYPE_NAMES, MergeTree
from toposweep.topology.profile_layout import Layout, side_by_side_layout

MAX_LEVELS_PER_BASIN = 64
MAX_LEVELS_TOTAL = 100_000  # keeps profile.json small for trees with very many basins
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
        return band_polygon(self.centre, self.levels, self.widths)


def band_polygon(centre: float, levels: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Mirrored outline of a band: left side upwards, then right side downwards."""
    left = np.column_stack([centre - widths / 2, levels])
    right = np.column_stack([centre + widths / 2, levels])[::-1]
    return np.concatenate([left, right])


@dataclass(eq=False)
class Profile:
    """A topological landscape profile: nested mirrored basins with their minima and saddles.

    Stored column-wise (one entry per basin = merge-tree arc; outlines concatenated, basin i's
    levels and widths at level_offsets[i]:level_offsets[i+1]); `basins` gives Basin objects.
    """

    n_vertices: int
    n_nonfinite: int
    value_min: float
    value_max: float
    nonfinite_height: float | None
    basin_node: np.ndarray
    basin_node_type: np.ndarray  # int8 node type codes
    basin_parent: np.ndarray  # -1 at the top
    basin_lower: np.ndarray
    basin_upper: np.ndarray
    basin_minimum: np.ndarray
    basin_size: np.ndarray
    basin_centre: np.ndarray
    level_offsets: np.ndarray
    levels: np.ndarray
    widths: np.ndarray
    minima: list[tuple[int, float, float]]  # (node, x, y)
    saddles: list[tuple[int, float, float]]  # (node, x, y), one per junction of merging basins

    @property
    def n_basins(self) -> int:
        return int(self.basin_node.size)

    @cached_property
    def basins(self) -> list[Basin]:
        children: list[list[int]] = [[] for _ in range(self.n_basins)]
        for basin, parent in enumerate(self.basin_parent.tolist()):
            if parent >= 0:
                children[parent].append(basin)
        result = []
        for i in range(self.n_basins):
            start, stop = self.level_offsets[i], self.level_offsets[i + 1]
            result.append(
                Basin(
                    id=i,
                    node=int(self.basin_node[i]),
                    node_type=NODE_TYPE_NAMES[int(self.basin_node_type[i])],
                    parent=None if self.basin_parent[i] < 0 else int(self.basin_parent[i]),
                    children=children[i],
                    lower=float(self.basin_lower[i]),
                    upper=float(self.basin_upper[i]),
                    minimum=float(self.basin_minimum[i]),
                    size=int(self.basin_size[i]),
                    centre=float(self.basin_centre[i]),
                    levels=self.levels[start:stop],
                    widths=self.widths[start:stop],
                )
            )
        return result

    @property
    def top_width(self) -> float:
        """Width of the profile at its top level (equals n_vertices)."""
        tops = np.flatnonzero(self.basin_parent < 0)
        return float(self.widths[self.level_offsets[tops + 1] - 1].sum())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description: basins with polygons, minima and saddles."""
        type_names = [NODE_TYPE_NAMES[int(t)] for t in self.basin_node_type]
        parents = self.basin_parent.tolist()
        children: list[list[int]] = [[] for _ in range(self.n_basins)]
        for basin, parent in enumerate(parents):
            if parent >= 0:
                children[parent].append(basin)
        offsets = self.level_offsets.tolist()
        levels, widths = self.levels.tolist(), self.widths.tolist()
        centres = self.basin_centre.tolist()
        basins = []
        for i in range(self.n_basins):
            c, ys, ws = (
                centres[i],
                levels[offsets[i] : offsets[i + 1]],
                widths[offsets[i] : offsets[i + 1]],
            )
            polygon = [[c - w / 2, y] for y, w in zip(ys, ws)]
            polygon += [[c + w / 2, y] for y, w in zip(reversed(ys), reversed(ws))]
            basins.append(
                {
                    "id": i,
                    "node": int(self.basin_node[i]),
                    "node_type": type_names[i],
                    "parent": None if parents[i] < 0 else parents[i],
                    "children": children[i],
                    "lower": float(self.basin_lower[i]),
                    "upper": float(self.basin_upper[i]),
                    "minimum": float(self.basin_minimum[i]),
                    "size": int(self.basin_size[i]),
                    "centre": c,
                    "polygon": polygon,
                }
            )
        header = {  # numpy scalars are converted by json_text; None stays null
            "n_vertices": self.n_vertices,
            "n_nonfinite": self.n_nonfinite,
            "value_min": self.value_min,
            "value_max": self.value_max,
            "nonfinite_height": self.nonfinite_height,
        }
        return {
            **header,
            "basins": basins,  # heights are finite by construction
            "minima": [{"node": n, "x": x, "y": y} for n, x, y in self.minima],
            "saddles": [{"node": n, "x": x, "y": y} for n, x, y in self.saddles],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Profile":
        """The profile back from `to_dict`'s description (profile.json): each basin's levels
        and widths from the left half of its polygon, so figures redraw it without the tree."""
        codes = {name: code for code, name in NODE_TYPE_NAMES.items()}
        basins = data["basins"]
        levels, widths, offsets = [], [], [0]
        for basin in basins:
            left = np.asarray(basin["polygon"], dtype=float)[: len(basin["polygon"]) // 2]
            levels.append(left[:, 1])
            widths.append(2 * (basin["centre"] - left[:, 0]))
            offsets.append(offsets[-1] + len(left))

        def column(key: str, dtype) -> np.ndarray:
            return np.array([basin[key] for basin in basins], dtype=dtype)

        return cls(
            n_vertices=int(data["n_vertices"]),
            n_nonfinite=int(data["n_nonfinite"]),
            value_min=data["value_min"],
            value_max=data["value_max"],
            nonfinite_height=data["nonfinite_height"],
            basin_node=column("node", np.int64),
            basin_node_type=np.array([codes[b["node_type"]] for b in basins], dtype=np.int8),
            basin_parent=np.array([-1 if b["parent"] is None else b["parent"] for b in basins],
                                  dtype=np.int64),
            basin_lower=column("lower", float),
            basin_upper=column("upper", float),
            basin_minimum=column("minimum", float),
            basin_size=column("size", np.int64),
            basin_centre=column("centre", float),
            level_offsets=np.array(offsets, dtype=np.int64),
            levels=np.concatenate(levels) if levels else np.zeros(0),
            widths=np.concatenate(widths) if widths else np.zeros(0),
            minima=[(m["node"], m["x"], m["y"]) for m in data["minima"]],
            saddles=[(s["node"], s["x"], s["y"]) for s in data["saddles"]],
        )

    def to_json(self) -> str:
        """The profile as a JSON string (see `to_dict`)."""
        return json_text(self.to_dict(), indent=None)

    def plot(self, ax=None, cmap: str = "viridis", outline_color: str = "0.15"):
        """Draw the profile with matplotlib: bands coloured by loss, minima and saddles marked."""
        import matplotlib.pyplot as plt
        from matplotlib.collections import PolyCollection
        from matplotlib.colors import Normalize

        if ax is None:
            _, ax = plt.subplots(figsize=(8, 4.5))
        top = self.nonfinite_height if self.nonfinite_height is not None else self.value_max
        norm = Normalize(
            vmin=self.value_min, vmax=top if top > self.value_min else self.value_min + 1
        )
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
                    [
                        (c - w[k] / 2, y[k]),
                        (c + w[k] / 2, y[k]),
                        (c + w[k + 1] / 2, y[k + 1]),
                        (c - w[k + 1] / 2, y[k + 1]),
                    ]
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
            ax.scatter(
                sx,
                sy,
                marker="X",
                s=28,
                color="white",
                edgecolors="black",
                linewidths=0.6,
                zorder=3,
                label="saddle",
            )
        if self.nonfinite_height is not None:
            ax.axhline(self.nonfinite_height, color="0.4", ls="--", lw=0.8, label="non-finite")
        ax.set_xlim(0, self.n_vertices)
        span = top - self.value_min
        pad = 0.03 * span if span > 0 else 0.5
        ax.set_ylim(self.value_min - pad, top + pad)
        ax.set_xlabel("grid vertices (basin width = vertices below the level)")
        ax.set_ylabel("loss")
        ax.figure.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=colormap), ax=ax, label="loss")
        ax.legend(loc="best", fontsize=8)
        return ax


def landscape_profile(
    tree: MergeTree,
    max_levels_per_basin: int = MAX_LEVELS_PER_BASIN,
    max_levels_total: int = MAX_LEVELS_TOTAL,
) -> Profile:
    """Topological landscape profile of a merge tree (see module docstring).

    Each band's outline is sampled at up to `max_levels_per_basin` heights (evenly spaced ranks
    of the basin's own vertex values, from its bottom node, plus its top; fewer when the tree has
    so many basins that `max_levels_total` would be exceeded, but at least 2), with the exact
    widths there. Trees from `simplify` use their flattened values.
    """
    heights, value_min, value_max, nonfinite_height = _profile_heights(tree)
    grouped_heights, run_end = _arc_heights(tree, heights)
    node_height = heights[tree.node_vertex]
    lower = node_height[tree.arc_child]
    upper = node_height[tree.arc_parent]
    up_arc = np.full(tree.n_nodes, -1, dtype=np.int64)
    up_arc[tree.arc_child] = np.arange(tree.n_arcs)
    parent_arc = up_arc[tree.arc_parent]
    subtree_size, below_size, deepest = _basin_sizes(tree, lower, parent_arc)
    layout = side_by_side_layout(tree, subtree_size)
    minima, saddles = _markers(tree, layout, lower, node_height)
    level_offsets, levels, widths = _band_outlines(
        tree, grouped_heights, run_end, upper, below_size, subtree_size,
        max_levels_per_basin, max_levels_total,
    )
    return Profile(
        n_vertices=tree.n_vertices,
        n_nonfinite=tree.n_nonfinite,
        value_min=value_min,
        value_max=value_max,
        nonfinite_height=nonfinite_height,
        basin_node=tree.arc_child.copy(),
        basin_node_type=tree.node_type[tree.arc_child],
        basin_parent=parent_arc,
        basin_lower=lower,
        basin_upper=upper,
        basin_minimum=deepest,
        basin_size=subtree_size,
        basin_centre=layout.centre,
        level_offsets=level_offsets,
        levels=levels,
        widths=widths,
        minima=minima,
        saddles=saddles,
    )


def _profile_heights(tree: MergeTree) -> tuple[np.ndarray, float, float, float | None]:
    """(drawing height of every vertex, finite min, finite max, height of non-finite vertices).

    Non-finite vertices get one finite height just above the finite range (they still count in
    the widths), so every band and polygon stays finite and drawable.
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
    return heights, value_min, value_max, nonfinite_height


def _arc_heights(tree: MergeTree, heights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every arc's own vertex heights sorted, arcs one after another, and for each position the
    last position of its run of equal heights within the arc.

    run_end - arc start + 1 is the arc's own vertex count at or below that height: the width
    the band outlines need, found for all samples at once without a search per sample.
    """
    if tree.flattened_values is None:  # the sweep order is sorted by height already
        grouping = tree.order[np.argsort(tree.vertex_arc[tree.order], kind="stable")]
    else:  # flattened vertices moved up: sort by (arc, height)
        grouping = np.lexsort((heights, tree.vertex_arc))
    grouped_heights = heights[grouping]
    grouped_arcs = tree.vertex_arc[grouping]
    del grouping
    n = grouped_heights.size
    run_last = np.ones(n, dtype=bool)
    run_last[:-1] = (grouped_arcs[1:] != grouped_arcs[:-1]) | (
        grouped_heights[1:] != grouped_heights[:-1]
    )
    run_end = np.minimum.accumulate(np.where(run_last, np.arange(n), n)[::-1])[::-1]
    return grouped_heights, run_end


def _basin_sizes(
    tree: MergeTree, lower: np.ndarray, parent_arc: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vertices of each whole basin, vertices of the basins merging at its bottom, its deepest
    loss), accumulated in one pass because arc ids follow the sweep: children before parents.
    """
    n_arcs = tree.n_arcs
    below = [0] * n_arcs
    subtree = tree.arc_size.tolist()
    deepest = lower.tolist()
    parents = parent_arc.tolist()
    for arc in range(n_arcs):
        subtree[arc] += below[arc]
        parent = parents[arc]
        if parent >= 0:
            below[parent] += subtree[arc]
            deepest[parent] = min(deepest[parent], deepest[arc])
    return (
        np.array(subtree, dtype=np.int64),
        np.array(below, dtype=np.int64),
        np.array(deepest, dtype=np.float64),
    )


def _markers(
    tree: MergeTree, layout: Layout, lower: np.ndarray, node_height: np.ndarray
) -> tuple[list[tuple[int, float, float]], list[tuple[int, float, float]]]:
    """(minima, saddles) as sorted (node, x, y): a minimum at the bottom centre of its band, a
    saddle at every junction between basins merging side by side (so a multi-saddle shows at
    each of its junctions)."""
    centre = layout.centre
    leaf = tree.node_type[tree.arc_child] == NODE_MINIMUM
    minima = sorted(zip(tree.arc_child[leaf].tolist(), centre[leaf].tolist(), lower[leaf].tolist()))
    sorted_parent = layout.sorted_parent
    junction = ~layout.group_first  # every basin after the first in its group starts a junction
    junction &= tree.node_type[sorted_parent] == NODE_SADDLE
    junction_x = (
        layout.node_centre[sorted_parent] - layout.group_total[sorted_parent] / 2 + layout.before
    )
    saddles = sorted(
        zip(
            sorted_parent[junction].tolist(),
            junction_x[junction].tolist(),
            node_height[sorted_parent[junction]].tolist(),
        )
    )
    return minima, saddles


def _band_outlines(
    tree: MergeTree,
    grouped_heights: np.ndarray,
    run_end: np.ndarray,
    upper: np.ndarray,
    below_size: np.ndarray,
    subtree_size: np.ndarray,
    max_levels_per_basin: int,
    max_levels_total: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(level_offsets, levels, widths) of every band, sampled at evenly spaced ranks of the
    arc's own heights (first = its bottom) plus its top, repeated heights dropped.

    Sampling ranks rather than evenly spaced heights keeps detail where the basin has its
    vertices; the widths there are exact (below_size + own vertices at or below the level).
    """
    n_arcs = tree.n_arcs
    arc_size = tree.arc_size
    starts = np.concatenate([[0], np.cumsum(arc_size)])
    levels_cap = int(np.clip(max_levels_total // max(n_arcs, 1), 2, max_levels_per_basin))
    picks = np.minimum(arc_size, levels_cap - 1)
    pick_arc = np.repeat(np.arange(n_arcs), picks)
    pick_offsets = np.concatenate([[0], np.cumsum(picks)])
    rank_in_arc = np.arange(pick_offsets[-1]) - pick_offsets[pick_arc]
    fraction = rank_in_arc / np.maximum(picks[pick_arc] - 1, 1)
    position = starts[pick_arc] + np.round(fraction * (arc_size[pick_arc] - 1)).astype(np.int64)
    sample_levels = np.concatenate([grouped_heights[position], upper])
    sample_widths = np.concatenate(
        [below_size[pick_arc] + run_end[position] - starts[pick_arc] + 1, subtree_size]
    )
    sample_arc = np.concatenate([pick_arc, np.arange(n_arcs)])
    ordering = np.lexsort((sample_levels, sample_arc))  # the top goes last within each arc
    sample_levels, sample_widths, sample_arc = (
        sample_levels[ordering],
        sample_widths[ordering],
        sample_arc[ordering],
    )
    keep = np.ones(sample_arc.size, dtype=bool)  # drop repeated heights within an arc
    keep[1:] = (sample_arc[1:] != sample_arc[:-1]) | (sample_levels[1:] != sample_levels[:-1])
    level_offsets = np.concatenate(
        [[0], np.cumsum(np.bincount(sample_arc[keep], minlength=n_arcs))]
    )
    return (
        level_offsets.astype(np.int64),
        sample_levels[keep].astype(np.float64),
        sample_widths[keep].astype(np.float64),
    )
