"""Drawing primitives of the landscape and its topology, each on a given axes: contour,
surface, scattered samples, training path, merge tree, persistence diagram, landscape profile
(full size and as a small multiple). The figures compose them; none of them reads files."""

from __future__ import annotations

import sys
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.colors import Normalize
from matplotlib.ticker import MaxNLocator

from ..topology.profile import Profile
from .common import LossScale, counts_text, message_axes, profile_counts

AXIS_NAMES = {"hessian": "Hessian eigenvector", "trajectory_pca": "trajectory PC",
              "random": "random direction"}
MAX_DRAWN_MINIMA = 30  # more is an unreadable comb at a panel's width
MAX_TICKS = 5  # landscape axes: at most this many ticks, and 3 on a horizontal axis whose
X_TICKS = 3  # labels are long (-0.010, 0.000, 0.010 of a UNet-CRF's 0.01 landscape collide)


def landscape_axis_label(index: int, settings: Mapping[str, Any]) -> str:
    """'α0 (Hessian eigenvector 1)': which direction a landscape axis walks along."""
    name = AXIS_NAMES.get(settings.get("directions", "random"), "direction")
    return f"α{index} ({name} {index + 1})"


def _few_ticks(ax) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(X_TICKS))
    ax.yaxis.set_major_locator(MaxNLocator(MAX_TICKS))


def central_slice(loss: np.ndarray, keep: tuple[int, int]) -> np.ndarray:
    """The 2-D slice of an n-D grid through its centre along the two axes in `keep`."""
    index = tuple(slice(None) if axis in keep else n // 2 for axis, n in enumerate(loss.shape))
    return loss[index]


def draw_landscape_contour(ax, loss: np.ndarray, axes: Sequence[np.ndarray], scale: LossScale,
                           xlabel: str, ylabel: str, title: str) -> None:
    """Filled contours of a 2-D loss grid (rows = first axis), trained weights at the centre."""
    shown = scale(loss)
    shown = np.where(np.isfinite(shown), shown, np.nan)
    grid_y, grid_x = np.meshgrid(axes[0], axes[1], indexing="ij")
    low, high = float(np.nanmin(shown)), float(np.nanmax(shown))
    if low == high:
        low, high = low - 0.5, high + 0.5
    levels = MaxNLocator(24).tick_values(low, high)
    contour = ax.contourf(grid_x, grid_y, shown, levels=levels, cmap="viridis")
    ax.contour(grid_x, grid_y, shown, levels=levels[::3], colors="white", linewidths=0.3)
    ax.plot(0, 0, marker="*", color="red", ms=8, mec="white", mew=0.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.set_aspect("equal")
    _few_ticks(ax)
    ax.figure.colorbar(contour, ax=ax, label=scale.label, shrink=0.85)


def draw_landscape_surface(ax, loss: np.ndarray, axes: Sequence[np.ndarray], scale: LossScale,
                           title: str) -> None:
    """3-D surface of a 2-D loss grid."""
    shown = scale(loss)
    shown = np.where(np.isfinite(shown), shown, np.nan)
    grid_y, grid_x = np.meshgrid(axes[0], axes[1], indexing="ij")
    ax.plot_surface(grid_x, grid_y, shown, cmap="viridis", linewidth=0, antialiased=True,
                    rstride=1, cstride=1)
    ax.set_xlabel("α1", labelpad=-2)
    ax.set_ylabel("α0", labelpad=-2)
    ax.set_zlabel(scale.label, labelpad=2)
    ax.tick_params(labelsize="small", pad=-1)
    for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
        axis.set_major_locator(MaxNLocator(4))
    ax.set_title(title)
    ax.view_init(elev=35, azim=-60)


def draw_scattered_landscape(projection_ax, radial_ax, samples: np.ndarray, loss: np.ndarray,
                             scale: LossScale, settings: dict) -> None:
    """Scattered samples: projected on their first two axes (lowest loss drawn on top) and the
    loss against the distance from the trained weights (what a high-D landscape looks like
    from its centre)."""
    shown = scale(loss)
    finite = np.isfinite(shown)
    order = np.argsort(np.where(finite, -shown, np.inf))  # high first, so low ends on top
    order = order[finite[order]]
    dimensions = samples.shape[1]
    title = f"{len(loss):,} {settings.get('sampling', 'scattered')} samples in {dimensions}-D"
    if dimensions >= 2:
        points = projection_ax.scatter(samples[order, 1], samples[order, 0], c=shown[order], s=4,
                                       cmap="viridis", linewidths=0)
        projection_ax.plot(0, 0, marker="*", color="red", ms=8, mec="white", mew=0.5)
        projection_ax.set_xlabel(landscape_axis_label(1, settings))
        projection_ax.set_ylabel(landscape_axis_label(0, settings))
        projection_ax.set_aspect("equal")
        _few_ticks(projection_ax)
        projection_ax.figure.colorbar(points, ax=projection_ax, label=scale.label, shrink=0.85)
        projection_ax.set_title(f"{title}:\nprojection on α0, α1")
    else:
        message_axes(projection_ax, "1-D samples: see the distance plot", "projection")
    distance = np.linalg.norm(samples, axis=1)
    radial_ax.scatter(distance[finite], shown[finite], s=3, color="tab:blue", alpha=0.4,
                      linewidths=0)
    radial_ax.plot(distance[0], shown[0], marker="*", color="red", ms=10, mec="white", mew=0.5,
                   label="trained weights")
    radial_ax.set_xlabel("distance from the trained weights ‖α‖")
    radial_ax.set_ylabel(scale.label)
    radial_ax.set_title(f"{title}:\nloss against distance")
    radial_ax.legend(loc="upper left")


def draw_trajectory(ax, coordinates: np.ndarray, explained: Sequence[float] | None) -> None:
    """The optimiser's path projected on the first two principal components (from the initial
    weights, open circle, to the trained ones, the star at the origin), with the variance the
    two components explain."""
    path = np.asarray(coordinates)[:, :2]
    ax.plot(path[:, 1], path[:, 0], color="white", lw=2.2, zorder=3)
    ax.plot(path[:, 1], path[:, 0], color="tab:red", lw=1.2, marker=".", ms=4, zorder=4,
            label="training path")
    ax.plot(path[0, 1], path[0, 0], "o", mfc="none", mec="tab:red", ms=7, zorder=5)
    ax.plot(0, 0, "*", color="tab:red", ms=10, zorder=5)
    if explained is not None and len(explained) >= 2:
        ax.set_title(f"training path on the PCA plane\n(PC1 {100 * explained[0]:.1f} %, PC2 "
                     f"{100 * explained[1]:.1f} % of its variance)")


# --- merge tree and persistence -------------------------------------------------------------


def merge_tree_layout(tree: Mapping[str, Any]) -> dict[int, float]:
    """Horizontal positions of merge-tree nodes: leaves (minima) in depth-first order from the
    root, children sorted by value, each inner node above the mean of its children."""
    children: dict[int, list[int]] = {}
    values = {node["id"]: node["value"] for node in tree["nodes"]}
    for arc in tree["arcs"]:
        children.setdefault(arc["parent"], []).append(arc["child"])
    position: dict[int, float] = {}
    next_leaf = [0.0]

    def place(node: int) -> float:
        kids = sorted(children.get(node, []), key=lambda k: values[k])
        if not kids:
            position[node] = next_leaf[0]
            next_leaf[0] += 1
        else:
            position[node] = float(np.mean([place(kid) for kid in kids]))
        return position[node]

    stack_limit = max(1000, 4 * len(values))
    if sys.getrecursionlimit() < stack_limit:
        sys.setrecursionlimit(stack_limit)
    place(tree["root"])
    return position


def count_nodes(tree: Mapping[str, Any], node_type: str) -> int:
    return sum(node["type"] == node_type for node in tree["nodes"])


def display_tree(landscape, settings: Mapping[str, Any], keep: int = MAX_DRAWN_MINIMA
                 ) -> dict[str, Any] | None:
    """The merge tree simplified for drawing to its `keep` most persistent minima (the
    threshold is the keep-1-th largest persistence; ties may keep a few more), rebuilt from the
    landscape with the topology stage's own settings. The files keep the full tree."""
    from ..topology import graph_topology, merge_tree, simplify
    from ..topology.graph import PRUNE_OF_GRAPH

    if landscape.scattered:
        tree = graph_topology(landscape.samples, landscape.loss, settings.get("neighbours", 16),
                              PRUNE_OF_GRAPH[settings.get("graph", "gabriel")])
    else:
        tree = merge_tree(landscape.loss, settings.get("connectivity", "freudenthal"))
    # the stage's own threshold removed only pairs below the keep-1-th largest persistence
    persistence = np.sort(tree.persistence[np.isfinite(tree.persistence)])[::-1]
    if len(persistence) < keep:
        return None
    simplified = simplify(tree, float(persistence[keep - 2]))
    return simplified.to_dict(landscape.axes or None, landscape.samples)


def draw_merge_tree(ax, tree: Mapping[str, Any], scale: LossScale, nonfinite_height: float) -> None:
    """The merge tree: nodes at their loss (minima ▼, saddles ✕, root ●), arcs child → parent."""
    position = merge_tree_layout(tree)
    nodes = {node["id"]: node for node in tree["nodes"]}

    def height(node: Mapping[str, Any]) -> float:
        return nonfinite_height if node["nonfinite"] else float(scale(node["value"]))

    for arc in tree["arcs"]:
        child, parent = nodes[arc["child"]], nodes[arc["parent"]]
        x0, x1 = position[child["id"]], position[parent["id"]]
        ax.plot([x0, x0, x1], [height(child), height(parent), height(parent)], color="0.3", lw=0.8)
    styles = {"minimum": ("v", "tab:blue", "minimum"), "saddle": ("X", "tab:orange", "saddle"),
              "root": ("o", "tab:red", "root (maximum)")}
    for node_type, (marker, colour, label) in styles.items():
        chosen = [node for node in tree["nodes"] if node["type"] == node_type]
        if chosen:
            ax.scatter([position[n["id"]] for n in chosen], [height(n) for n in chosen],
                       marker=marker, color=colour, s=22, zorder=3, label=label,
                       edgecolors="black", linewidths=0.3)
    inner = [height(node) for node in tree["nodes"] if node["type"] != "root"]
    root_height = height(nodes[tree["root"]])
    low, high = (min(inner), max(inner)) if inner else (root_height, root_height)
    span = (high - low) or abs(high) or 1.0
    if len(inner) > 1 and root_height > high + 0.3 * span:
        # the root (the landscape's maximum) would squash the branches: zoom to them and say
        # where the root arc goes
        ax.set_ylim(low - 0.08 * span, high + 0.35 * span)
        ax.annotate(f"root at {root_height:.3g} ↑", xy=(position[tree["root"]], high + 0.3 * span),
                    ha="center", va="top", fontsize="small", color="tab:red")
    ax.set_xticks([])
    ax.set_xlabel("minima (depth-first order)")
    ax.set_ylabel(scale.label)
    ax.legend(loc="best", framealpha=0.85)
    n_minima, n_saddles = count_nodes(tree, "minimum"), count_nodes(tree, "saddle")
    ax.set_title(f"merge tree ({counts_text(n_minima, n_saddles).replace(' ·', ',')})")


def draw_persistence_diagram(ax, pairs: pd.DataFrame, global_minimum: float | None,
                             scale: LossScale, value_max: float) -> None:
    """Birth against death of the finite pairs (components ●; loops ◆ when persistence.csv has
    dimension-1 rows), the diagonal, and, on a dashed line at the top, the essential class of the
    global minimum and any pair that dies at +inf."""
    dimension = pairs["dimension"] if "dimension" in pairs else pd.Series(0, index=pairs.index)
    births, deaths = scale(pairs["birth"].to_numpy()), scale(pairs["death"].to_numpy())
    finite_deaths = deaths[np.isfinite(deaths)]
    low = float(scale(global_minimum)) if global_minimum is not None else np.nanmin(births, initial=0)
    high = float(np.nanmax(finite_deaths)) if finite_deaths.size else float(scale(value_max))
    span = high - low if high > low else 1.0
    top = high + 0.08 * span
    ax.plot([low, high], [low, high], color="0.5", lw=0.8, ls=":")
    styles = {0: ("o", "tab:blue", lambda n: f"component{'s' if n != 1 else ''} (H0)"),
              1: ("D", "tab:orange", lambda n: f"loop{'s' if n != 1 else ''} (H1)")}
    for dim, (marker, colour, name) in styles.items():
        rows = (dimension == dim).to_numpy()
        if rows.any():
            shown = np.where(np.isfinite(deaths[rows]), deaths[rows], top)
            ax.scatter(births[rows], shown, s=16, marker=marker, color=colour, edgecolors="black",
                       linewidths=0.3, label=f"{int(rows.sum())} {name(int(rows.sum()))}",
                       zorder=3)
    if global_minimum is not None or not np.isfinite(deaths).all():
        ax.axhline(top, color="0.4", ls="--", lw=0.8)
    if global_minimum is not None:
        ax.scatter([float(scale(global_minimum))], [top], marker="^", color="tab:red", s=24,
                   zorder=3, label="global min. (dies at ∞)")
    ax.set_xlabel(f"birth ({scale.label})")
    ax.set_ylabel(f"death ({scale.label})")
    ax.set_xlim(low - 0.05 * span, high + 0.05 * span)
    ax.set_ylim(low - 0.05 * span, high + 0.15 * span)
    title = ("persistence diagram (0- and 1-dimensional)" if (dimension == 1).any()
             else "persistence diagram (0-dimensional)")
    if len(pairs):
        title += f"\naxes end at the last death; max. {scale.label} {float(scale(value_max)):.3g}"
    ax.set_title(title)
    ax.legend(loc="best", framealpha=0.85)


# --- landscape profiles ---------------------------------------------------------------------


def profile_on_scale(data: Mapping[str, Any], scale: LossScale) -> Profile:
    """profile.json as a `Profile` with every height mapped through `scale` (a monotone map,
    so the profile keeps its shape on a log axis)."""
    def height(value):
        return None if value is None else float(scale(value))

    def point(marker):
        return {**marker, "y": height(marker["y"])}

    basins = [{**basin, "lower": height(basin["lower"]), "upper": height(basin["upper"]),
               "minimum": height(basin["minimum"]),
               "polygon": [[x, height(y)] for x, y in basin["polygon"]]}
              for basin in data["basins"]]
    return Profile.from_dict({
        **data, "basins": basins, "minima": [point(m) for m in data["minima"]],
        "saddles": [point(s) for s in data["saddles"]],
        **{key: height(data[key]) for key in ("value_min", "value_max", "nonfinite_height")}})


def draw_profile(ax, data: Mapping[str, Any], scale: LossScale, vertices: str = "grid vertices"
                 ) -> None:
    """The topological landscape profile with `Profile.plot`, relabelled for a log scale
    (`vertices`: what a unit of width counts, grid vertices or scattered samples)."""
    profile = profile_on_scale(data, scale)
    before = set(ax.figure.axes)
    profile.plot(ax)
    ax.set_ylabel(scale.label)
    ax.set_xlabel(f"{vertices} below the level")
    ax.xaxis.set_major_locator(MaxNLocator(MAX_TICKS))
    ax.legend(loc="best")
    for colour_bar in set(ax.figure.axes) - before:
        colour_bar.set_ylabel(scale.label)
    ax.set_title(f"landscape profile ({counts_text(*profile_counts(data))})")


def draw_profile_outline(ax, profile: Mapping[str, Any], scale: LossScale, norm: Normalize,
                         colormap, linewidth: float = 0.3) -> None:
    """A compact landscape profile on a shared height scale (small multiples): the basins'
    union filled with the loss colour of each height, basin outlines drawn thin."""
    from matplotlib.patches import PathPatch
    from matplotlib.path import Path as MatplotlibPath

    polygons = []
    for basin in profile["basins"]:
        polygon = np.asarray(basin["polygon"], dtype=float)
        polygon[:, 1] = scale(polygon[:, 1])
        polygons.append(polygon)
    width = float(profile["n_vertices"])
    bottom, top = norm.vmin, norm.vmax
    gradient = np.linspace(bottom, top, 256).reshape(-1, 1)
    image = ax.imshow(gradient, extent=(0, width, bottom, top), origin="lower", aspect="auto",
                      cmap=colormap, norm=norm, interpolation="bilinear")
    outline = MatplotlibPath.make_compound_path(*[MatplotlibPath(p, closed=False) for p in polygons])
    clip = PathPatch(outline, transform=ax.transData, facecolor="none", edgecolor="none")
    ax.add_patch(clip)
    image.set_clip_path(clip)
    for polygon in polygons:
        ax.plot(*np.vstack([polygon, polygon[:1]]).T, color="0.15", lw=linewidth)
    ax.set_xlim(0, width)
    ax.set_ylim(bottom, top + 0.02 * (top - bottom or 1))
