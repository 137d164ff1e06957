"""Figures of a sweep: correlation heatmaps, metric-vs-hyperparameter panels, the per-run panel
of the papers' PINN figure, and the hyperparameter × seed heat map with small-multiple landscape
profiles. Every function returns a matplotlib Figure; `save_figure` writes it (PNG, PDF, ...)
atomically. Inputs are the stage files and the aggregate tables; nothing here imports Snakemake.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # files only; no display on cluster nodes

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.colors import ListedColormap, LogNorm, Normalize, TwoSlopeNorm  # noqa: E402

from .aggregate import (  # noqa: E402
    finished,
    is_log_spaced,
    metric_label,
    short_label,
    seed_statistics,
    swept_parameters,
)
from .io import atomic_path, json_attribute, read_json, read_landscape  # noqa: E402
from .statistics import EXACT_MAX_N, SIGNIFICANCE  # noqa: E402
from .schema import stage_settings  # noqa: E402

WIDE_RANGE = 100.0  # positive values spanning more than this factor get a log axis
PANEL_LOG_RANGE = 10.0  # the metric panels' y axis: λ₁ or the trace across a sweep span 75x
PAPER_CONTEXT = {"font.size": 9, "axes.titlesize": 9.5, "axes.labelsize": 9,
                 "xtick.labelsize": 8, "ytick.labelsize": 8, "legend.fontsize": 8}


def save_figure(figure: plt.Figure, paths: Iterable[str | os.PathLike], dpi: int | None = None) -> None:
    """Write the figure to every path (format from the suffix), each atomically, then close it;
    dpi None: the schema's figures.dpi."""
    for path in paths:
        path = Path(path)
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format=path.suffix.lstrip("."), bbox_inches="tight",
                           dpi=dpi or stage_settings("figures")["dpi"])
    plt.close(figure)


def message_axes(ax: plt.Axes, text: str, title: str | None = None) -> None:
    """An empty axes that says why there is nothing to draw."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_color("0.8")
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=9,
            transform=ax.transAxes, color="0.25")
    if title:
        ax.set_title(title)


# --- loss axes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LossScale:
    """Linear or log10 display of loss values (log when positive and spanning > WIDE_RANGE)."""

    log: bool

    @classmethod
    def for_values(cls, values: Any) -> "LossScale":
        array = np.asarray(values, dtype=float).ravel()
        finite = array[np.isfinite(array)]
        if finite.size == 0 or finite.min() <= 0:
            return cls(False)
        return cls(finite.max() / finite.min() > WIDE_RANGE)

    def __call__(self, values: Any) -> np.ndarray:
        array = np.asarray(values, dtype=float)
        if not self.log:
            return array
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log10(array)

    @property
    def label(self) -> str:
        return "log₁₀ loss" if self.log else "loss"


# --- correlation heatmap --------------------------------------------------------------------


def correlation_heatmap(correlations: pd.DataFrame, title: str = "") -> plt.Figure:
    """Pearson and Spearman coefficients side by side: rows are topology metrics, columns the
    ML/Hessian metrics and hyperparameters, annotated, diverging palette centred at 0. Pairs
    without enough runs are blank; if no pair has enough, the figure says so."""
    with plt.rc_context(PAPER_CONTEXT):
        computed = correlations.dropna(subset=["pearson_r", "spearman_rho"], how="all")
        if computed.empty:
            figure, ax = plt.subplots(figsize=(6.5, 2.6))
            notes = correlations["note"].dropna().unique() if "note" in correlations else []
            max_n = int(correlations["n"].max()) if len(correlations) else 0
            reason = notes[0] if len(notes) else "no metric pairs"
            message_axes(ax, f"No correlations: {reason}.\n(largest number of finished runs "
                             f"with both values: {max_n})", title or None)
            return figure
        rows = list(dict.fromkeys(correlations["topology_metric"]))
        columns = list(dict.fromkeys(correlations["other"]))
        row_labels = [metric_label(name) for name in rows]
        column_labels = [metric_label(name) for name in columns]
        width = 2 * (1.6 + 0.72 * len(columns)) + 2.6
        height = 1.9 + 0.42 * len(rows)
        figure, axes = plt.subplots(1, 2, figsize=(width, height), gridspec_kw={"wspace": 0.06})
        colour_axes = figure.add_axes([0.0, 0.0, 0.01, 0.01])  # placed below
        for index, (ax, column, name) in enumerate(
            zip(axes, ["pearson_r", "spearman_rho"], ["Pearson r", "Spearman ρ"])
        ):
            matrix = correlations.pivot(index="topology_metric", columns="other", values=column)
            matrix = matrix.reindex(index=rows, columns=columns)
            n = correlations.pivot(index="topology_metric", columns="other", values="n")
            n_range = sorted(set(int(v) for v in n.to_numpy().ravel() if v > 0))
            q_column = "pearson_q" if column == "pearson_r" else "spearman_q"
            q = (correlations.pivot(index="topology_metric", columns="other", values=q_column)
                 .reindex(index=rows, columns=columns).to_numpy(dtype=float)
                 if q_column in correlations else np.full(matrix.shape, np.nan))
            values = matrix.to_numpy(dtype=float)
            labels = np.vectorize(lambda v, qv: "" if not np.isfinite(v) else
                                  f"{v:.2f}{'*' if qv < SIGNIFICANCE else ''}")(values, q)
            sns.heatmap(values, ax=ax, cmap="RdBu_r", vmin=-1, vmax=1,
                        center=0, annot=labels, fmt="", annot_kws={"fontsize": 7.5},
                        linewidths=0.5, linecolor="white", square=False,
                        xticklabels=column_labels, yticklabels=row_labels,
                        cbar=index == 1, cbar_ax=colour_axes if index == 1 else None,
                        cbar_kws={"label": "correlation coefficient"})
            n_text = (f"n = {n_range[0]}" if len(n_range) == 1
                      else f"n = {n_range[0]}–{n_range[-1]}" if n_range else "n = 0")
            ax.set_title(f"{name} ({n_text} finished runs)")
            ax.set_xticklabels(column_labels, rotation=35, ha="right")
            ax.set_xlabel("")
            ax.set_ylabel("")
        axes[0].tick_params(axis="y", rotation=0)
        axes[1].tick_params(axis="y", labelleft=False, left=False)
        axes[0].set_ylabel("topology metric")
        figure.canvas.draw()
        right = axes[1].get_position()
        colour_axes.set_position([right.x1 + 0.012, right.y0, 0.012, right.height])
        if title:
            figure.suptitle(title, y=1.0)
        notes = [heatmap_significance_note(correlations)]
        if "avg_persistence_ttk_csv" in rows:
            notes.append("Average persistence (papers' TTK CSV) counts the global (min, max) pair "
                         "and halves by the diagram's diagonal rows, so it can move against the "
                         "plain average persistence (docs/topology.md).")
        blank = correlations[correlations[["pearson_r", "spearman_rho"]].isna().any(axis=1)]
        if len(blank):
            notes.append("Blank cells: " + "; ".join(
                sorted({f"{metric_label(r.other)}: {r.note}" for r in blank.itertuples()})[:3]))
        renderer = figure.canvas.get_renderer()  # below the rotated tick labels, not over them
        bottom = min(ax.get_tightbbox(renderer).y0 for ax in axes) / figure.bbox.height
        figure.text(0.01, bottom - 0.02, "\n".join(notes), fontsize=7, color="0.3", va="top")
        return figure


def heatmap_significance_note(correlations: pd.DataFrame) -> str:
    """What a star means in the correlation heatmap, with the number of tests it corrects for."""
    tests = int(np.isfinite(pd.to_numeric(correlations.get("spearman_p"), errors="coerce")).sum())
    methods = sorted(set(correlations.get("p_method", pd.Series(dtype=str)).dropna()))
    exact = (f"; p-values: {' and '.join(methods)}" if methods else "")
    if "asymptotic" in methods:
        exact += f" (exact up to n = {EXACT_MAX_N} runs)"
    return (f"* Benjamini–Hochberg q < {SIGNIFICANCE} over the {tests} pairs of this table{exact}. "
            "95 % bootstrap intervals of ρ: correlations.csv (spearman_low, spearman_high).")


# --- metric against hyperparameter ---------------------------------------------------------


def metric_panels(
    table: pd.DataFrame,
    parameter: str,
    metrics: Sequence[str],
    title: str = "",
    log_x: bool | None = None,
    columns: int = 3,
) -> plt.Figure:
    """One panel per metric against `parameter`: mean ± sd over seeds (finished runs), seeds as
    dots; one line per combination of the other swept parameters. Log x when the swept values
    are log-spaced (or as `log_x` says), log y when a metric spans more than PANEL_LOG_RANGE,
    with min-max bars there (mean - sd can be below zero)."""
    with plt.rc_context(PAPER_CONTEXT):
        rows = max(1, math.ceil(len(metrics) / columns))
        figure, axes = plt.subplots(rows, columns, figsize=(3.4 * columns, 2.9 * rows),
                                    squeeze=False, layout="constrained")
        values = pd.to_numeric(table[parameter], errors="coerce")
        if log_x is None:
            log_x = is_log_spaced(values.dropna())
        others = [p for p in swept_parameters(table) if p != parameter]
        done = finished(table)
        palette = sns.color_palette("colorblind")
        for ax, metric in zip(axes.ravel(), metrics):
            stats = seed_statistics(table, parameter, metric)
            if stats.empty:
                message_axes(ax, f"{metric_label(metric)}:\nno finished run has this metric",
                             metric_label(metric))
                continue
            positive = pd.to_numeric(done[metric], errors="coerce")
            positive = positive[np.isfinite(positive)]
            log_y = bool(len(positive) and positive.min() > 0
                         and positive.max() / positive.min() > PANEL_LOG_RANGE)
            groups = stats.groupby(others, sort=True) if others else [((), stats)]
            for colour, (key, group) in zip(palette, groups):
                key = key if isinstance(key, tuple) else (key,)
                label = ", ".join(f"{metric_label(o)} = {k}" for o, k in zip(others, key)) or None
                # on a log axis mean - sd can be negative: the bars span the seeds' min to max
                error = ([group["mean"] - group["min"], group["max"] - group["mean"]] if log_y
                         else group["sd"].fillna(0))
                ax.errorbar(group[parameter], group["mean"], yerr=error,
                            marker="o", ms=4, capsize=3, lw=1.4, color=colour, label=label)
                seeds = done
                for other, value in zip(others, key):
                    seeds = seeds[seeds[other] == value]
                ax.scatter(seeds[parameter], pd.to_numeric(seeds[metric], errors="coerce"),
                           s=10, color=colour, alpha=0.45, zorder=3, linewidths=0)
            if log_y:
                ax.set_yscale("log")
                if stats["n"].max() > 1:
                    ax.set_title("bars: min–max over seeds", fontsize=7, color="0.35")
            if log_x:
                ax.set_xscale("log")
                values = sorted(pd.to_numeric(done[parameter], errors="coerce").dropna().unique())
                ax.set_xticks(values, [f"{v:g}" for v in values])  # the swept values, plainly
                ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_xlabel(metric_label(parameter))
            ax.set_ylabel(metric_label(metric))
            ax.grid(alpha=0.3)
            if others:
                ax.legend(fontsize=7)
        for ax in axes.ravel()[len(metrics):]:
            ax.set_visible(False)
        n_seeds = done.groupby(parameter)["seed"].nunique()
        seeds_text = (f"{n_seeds.min()}" if len(n_seeds) and n_seeds.min() == n_seeds.max()
                      else f"{n_seeds.min()}–{n_seeds.max()}" if len(n_seeds) else "0")
        subtitle = ("one seed per value" if seeds_text == "1" else
                    f"mean ± sd over {seeds_text} seeds per value (dots: single seeds; log axes: "
                    "min–max bars)")
        figure.suptitle((title + "\n" if title else "") + subtitle)
        return figure


# --- the per-run panel ----------------------------------------------------------------------


AXIS_NAMES = {"hessian": "Hessian eigenvector", "trajectory_pca": "trajectory PC",
              "random": "random direction"}


def _landscape_axes_label(index: int, settings: Mapping[str, Any]) -> str:
    name = AXIS_NAMES.get(settings.get("directions", "random"), "direction")
    return f"α{index} ({name} {index + 1})"


def draw_landscape_contour(ax, loss: np.ndarray, axes: Sequence[np.ndarray], scale: LossScale,
                           xlabel: str, ylabel: str, title: str) -> None:
    """Filled contours of a 2-D loss grid (rows = first axis), trained weights at the centre."""
    shown = scale(loss)
    shown = np.where(np.isfinite(shown), shown, np.nan)
    grid_y, grid_x = np.meshgrid(axes[0], axes[1], indexing="ij")
    from matplotlib.ticker import MaxNLocator

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
    ax.figure.colorbar(contour, ax=ax, label=scale.label, shrink=0.85)


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
    sampling = settings.get("sampling", "scattered")
    title = f"{len(loss):,} {sampling} samples in {dimensions}-D"
    if dimensions >= 2:
        points = projection_ax.scatter(samples[order, 1], samples[order, 0], c=shown[order], s=4,
                                       cmap="viridis", linewidths=0)
        projection_ax.plot(0, 0, marker="*", color="red", ms=8, mec="white", mew=0.5)
        projection_ax.set_xlabel(_landscape_axes_label(1, settings))
        projection_ax.set_ylabel(_landscape_axes_label(0, settings))
        projection_ax.set_aspect("equal")
        projection_ax.figure.colorbar(points, ax=projection_ax, label=scale.label, shrink=0.85)
        projection_ax.set_title(f"{title}: projection on α0, α1")
    else:
        message_axes(projection_ax, "1-D samples: see the distance plot", "projection")
    distance = np.linalg.norm(samples, axis=1)
    radial_ax.scatter(distance[finite], shown[finite], s=3, color="tab:blue", alpha=0.4,
                      linewidths=0)
    radial_ax.plot(distance[0], shown[0], marker="*", color="red", ms=10, mec="white", mew=0.5,
                   label="trained weights")
    radial_ax.set_xlabel("distance from the trained weights ‖α‖")
    radial_ax.set_ylabel(scale.label)
    radial_ax.set_title(f"{title}: loss against distance")
    radial_ax.legend(loc="upper left", fontsize="small")


def draw_landscape_surface(ax, loss: np.ndarray, axes: Sequence[np.ndarray], scale: LossScale,
                           title: str) -> None:
    """3-D surface of a 2-D loss grid."""
    shown = scale(loss)
    shown = np.where(np.isfinite(shown), shown, np.nan)
    grid_y, grid_x = np.meshgrid(axes[0], axes[1], indexing="ij")
    ax.plot_surface(grid_x, grid_y, shown, cmap="viridis", linewidth=0, antialiased=True,
                    rstride=1, cstride=1)
    ax.set_xlabel("α1", labelpad=-6)
    ax.set_ylabel("α0", labelpad=-6)
    ax.set_zlabel(scale.label, labelpad=-4)
    ax.tick_params(labelsize=6, pad=-2)
    ax.set_title(title)
    ax.view_init(elev=35, azim=-60)


def central_slice(loss: np.ndarray, keep: tuple[int, int]) -> np.ndarray:
    """The 2-D slice of an n-D grid through its centre along the two axes in `keep`."""
    index = tuple(slice(None) if axis in keep else n // 2 for axis, n in enumerate(loss.shape))
    return loss[index]


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
    import sys

    if sys.getrecursionlimit() < stack_limit:
        sys.setrecursionlimit(stack_limit)
    place(tree["root"])
    return position


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
                    ha="center", va="top", fontsize=7, color="tab:red")
    ax.set_xticks([])
    ax.set_xlabel("minima (depth-first order)")
    ax.set_ylabel(scale.label)
    ax.legend(loc="lower right", fontsize=7)
    n_minima, n_saddles = _count(tree, "minimum"), _count(tree, "saddle")
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
    styles = {0: ("o", "tab:blue", "components (H0)"), 1: ("D", "tab:orange", "loops (H1)")}
    for dim, (marker, colour, name) in styles.items():
        rows = (dimension == dim).to_numpy()
        if rows.any():
            shown = np.where(np.isfinite(deaths[rows]), deaths[rows], top)
            ax.scatter(births[rows], shown, s=16, marker=marker, color=colour, edgecolors="black",
                       linewidths=0.3, label=f"{int(rows.sum())} {name}", zorder=3)
    if global_minimum is not None or not np.isfinite(deaths).all():
        ax.axhline(top, color="0.4", ls="--", lw=0.8)
    if global_minimum is not None:
        ax.scatter([float(scale(global_minimum))], [top], marker="^", color="tab:red", s=24,
                   zorder=3, label="global minimum (dies at ∞)")
    ax.set_xlabel(f"birth ({scale.label})")
    ax.set_ylabel(f"death ({scale.label})")
    ax.set_xlim(low - 0.05 * span, high + 0.05 * span)
    ax.set_ylim(low - 0.05 * span, high + 0.15 * span)
    title = ("persistence diagram (0- and 1-dimensional)" if (dimension == 1).any()
             else "persistence diagram (0-dimensional)")
    if len(pairs):
        title += f"\naxes end at the last death; maximum {scale.label} {high_value(scale, value_max)}"
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=7)


def high_value(scale: LossScale, value: float) -> str:
    return f"{float(scale(value)):.3g}"


def profile_from_dict(data: Mapping[str, Any], scale: LossScale | None = None):
    """Rebuild a `toposweep.topology.Profile` from profile.json (heights optionally mapped
    through `scale`, a monotone map, so the profile keeps its shape on a log axis)."""
    from .topology.merge_tree import NODE_TYPE_NAMES
    from .topology.profile import Profile

    scale = scale or LossScale(False)
    codes = {name: code for code, name in NODE_TYPE_NAMES.items()}
    basins = data["basins"]
    levels, widths, offsets = [], [], [0]
    for basin in basins:
        polygon = np.asarray(basin["polygon"], dtype=float)
        left = polygon[: len(polygon) // 2]
        levels.append(scale(left[:, 1]))
        widths.append(2 * (basin["centre"] - left[:, 0]))
        offsets.append(offsets[-1] + len(left))

    def mapped(value):
        return None if value is None else float(scale(value))

    return Profile(
        n_vertices=int(data["n_vertices"]),
        n_nonfinite=int(data["n_nonfinite"]),
        value_min=mapped(data["value_min"]),
        value_max=mapped(data["value_max"]),
        nonfinite_height=mapped(data["nonfinite_height"]),
        basin_node=np.array([b["node"] for b in basins], dtype=np.int64),
        basin_node_type=np.array([codes[b["node_type"]] for b in basins], dtype=np.int8),
        basin_parent=np.array([-1 if b["parent"] is None else b["parent"] for b in basins],
                              dtype=np.int64),
        basin_lower=scale(np.array([b["lower"] for b in basins], dtype=float)),
        basin_upper=scale(np.array([b["upper"] for b in basins], dtype=float)),
        basin_minimum=scale(np.array([b["minimum"] for b in basins], dtype=float)),
        basin_size=np.array([b["size"] for b in basins], dtype=np.int64),
        basin_centre=np.array([b["centre"] for b in basins], dtype=float),
        level_offsets=np.array(offsets, dtype=np.int64),
        levels=np.concatenate(levels) if levels else np.zeros(0),
        widths=np.concatenate(widths) if widths else np.zeros(0),
        minima=[(m["node"], m["x"], float(scale(m["y"]))) for m in data["minima"]],
        saddles=[(s["node"], s["x"], float(scale(s["y"]))) for s in data["saddles"]],
    )


def draw_profile(ax, data: Mapping[str, Any], scale: LossScale, vertices: str = "grid vertices"
                 ) -> None:
    """The topological landscape profile with `Profile.plot`, relabelled for a log scale
    (`vertices`: what a unit of width counts, grid vertices or scattered samples)."""
    profile = profile_from_dict(data, scale)
    before = set(ax.figure.axes)
    profile.plot(ax)
    ax.set_ylabel(scale.label)
    ax.set_xlabel(f"{vertices} below the level")
    for colour_bar in set(ax.figure.axes) - before:
        colour_bar.set_ylabel(scale.label)
    ax.set_title(f"landscape profile ({counts_text(*profile_counts(data))})")


MAX_DRAWN_MINIMA = 30  # more is an unreadable comb at a panel's width


def _count(tree: Mapping[str, Any], node_type: str) -> int:
    return sum(node["type"] == node_type for node in tree["nodes"])


def display_tree(landscape, settings: Mapping[str, Any], keep: int = MAX_DRAWN_MINIMA
                 ) -> dict[str, Any] | None:
    """The merge tree simplified for drawing to its `keep` most persistent minima (the
    threshold is the keep-1-th largest persistence; ties may keep a few more), rebuilt from the
    landscape with the topology stage's own settings. The files keep the full tree."""
    from .topology import graph_topology, merge_tree, simplify
    from .topology.graph import PRUNE_OF_GRAPH

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


def profile_counts(profile: Mapping[str, Any]) -> tuple[int, int]:
    """(minima, saddles) of a profile.json; a saddle where several basins merge (a multi-saddle,
    common on graphs) is one saddle, as in topology.json's n_saddles."""
    return len(profile["minima"]), len({saddle["node"] for saddle in profile["saddles"]})


def counts_text(n_minima: int, n_saddles: int) -> str:
    """'1 minimum · 0 saddles', '5 minima · 4 saddles': what a profile shows, in words that
    match (its bands are merge-tree arcs, not basins of minima, so they are not counted)."""
    return (f"{n_minima} minim{'um' if n_minima == 1 else 'a'} · "
            f"{n_saddles} saddle{'' if n_saddles == 1 else 's'}")


def draw_spectral_density(ax, density: pd.DataFrame, eigenvalues: Sequence[float]) -> None:
    """Hessian spectral density (SLQ) on a log density axis, top eigenvalues marked."""
    positive = density[density["density"] > 0]
    ax.semilogy(positive["eigenvalue"], positive["density"], color="tab:purple", lw=1)
    if len(positive):
        top = float(positive["density"].max())
        ax.set_ylim(top * 1e-7, top * 3)  # SLQ's Gaussian tails reach 1e-300: not informative
    for index, value in enumerate(eigenvalues):
        ax.axvline(value, color="tab:red", lw=0.7, ls="--",
                   label="top eigenvalues" if index == 0 else None)
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density")
    ax.set_title("Hessian spectral density"
                 + (f" (λ₁ = {eigenvalues[0]:.3g})" if len(eigenvalues) else ""))
    if len(eigenvalues):
        ax.legend(loc="upper right", fontsize=7)


def draw_solution(ax, predictions: Mapping[str, np.ndarray], key: str, title: str,
                  norm: Normalize) -> Any:
    """u(x, t) as a colour map, t horizontal and x vertical (as in Krishnapriyan et al.)."""
    mesh = ax.pcolormesh(predictions["t"], predictions["x"], np.asarray(predictions[key]).T,
                         cmap="RdBu_r", norm=norm, shading="auto", rasterized=True)
    ax.set_xlabel("t")
    ax.set_ylabel("x")
    ax.set_title(title)
    return mesh


def draw_training_curve(ax, curve: pd.DataFrame) -> None:
    """Training loss per step (log y when it spans more than WIDE_RANGE)."""
    loss = pd.to_numeric(curve["loss"], errors="coerce")
    ax.plot(curve["step"], loss, color="tab:green", lw=1, marker="o" if len(curve) < 30 else None,
            ms=3)
    finite = loss[np.isfinite(loss)]
    if len(finite) and finite.min() > 0 and finite.max() / finite.min() > WIDE_RANGE:
        ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    ax.set_title("training curve")
    ax.grid(alpha=0.3)


SEGMENTATION_KEYS = ("segmentation_images", "segmentation_masks", "segmentation_predicted",
                     "class_names")
MAX_SEGMENTATION_EXAMPLES = 3  # columns of the examples; a fourth makes them too small to read


def segmentation_colormap(n_classes: int) -> ListedColormap:
    """Categorical colours for class indices 0 … n_classes - 1 (colour-blind safe up to 10),
    pixels of no class (e.g. an ignore label) light grey."""
    palette = sns.color_palette("colorblind" if n_classes <= 10 else "tab20", n_classes)
    return ListedColormap(palette, name="classes").with_extremes(bad="0.85")


def _display_image(image: np.ndarray) -> np.ndarray:
    """(3, H, W) or (1, H, W) as stored, to what imshow takes: (H, W, 3) or (H, W)."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[0] in (1, 3) and image.shape[-1] not in (1, 3):
        image = np.moveaxis(image, 0, -1)
    return image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image


def _mask_image(ax, mask: np.ndarray, colormap: ListedColormap) -> None:
    n_classes = colormap.N
    shown = np.ma.masked_outside(np.asarray(mask), 0, n_classes - 1)
    ax.imshow(shown, cmap=colormap, vmin=-0.5, vmax=n_classes - 0.5, interpolation="nearest")


def draw_segmentation_examples(true_figure, predicted_figure, segmentation: Mapping[str, np.ndarray],
                               metrics: Mapping[str, Any] | None) -> None:
    """Up to MAX_SEGMENTATION_EXAMPLES test images: in `true_figure` the images over their true
    masks, in `predicted_figure` the predicted masks over the wrongly classified pixels (with
    each image's share of them); one legend names the classes. The title carries the test set's
    pixel accuracy and mean IoU from train_metrics.json (the examples are too few to judge by)."""
    from matplotlib.patches import Patch

    images = np.asarray(segmentation["segmentation_images"])[:MAX_SEGMENTATION_EXAMPLES]
    masks = np.asarray(segmentation["segmentation_masks"])[:MAX_SEGMENTATION_EXAMPLES]
    predicted = np.asarray(segmentation["segmentation_predicted"])[:MAX_SEGMENTATION_EXAMPLES]
    names = [str(name) for name in np.asarray(segmentation["class_names"]).ravel()]
    colormap = segmentation_colormap(len(names))
    n = len(images)
    if n == 0:
        message_axes(true_figure.subplots(), "predictions.npz has no segmentation examples",
                     "test images with their true masks")
        predicted_figure.subplots().set_visible(False)
        return
    spacing = {"wspace": 0.02, "hspace": 0.02}
    true_axes = true_figure.subplots(2, n, squeeze=False, gridspec_kw=spacing)
    predicted_axes = predicted_figure.subplots(2, n, squeeze=False, gridspec_kw=spacing)
    for k in range(n):
        image = _display_image(images[k])
        true_axes[0, k].imshow(image, cmap="gray" if image.ndim == 2 else None,
                               interpolation="nearest")
        true_axes[0, k].set_title(f"image {k + 1}", fontsize=8)
        _mask_image(true_axes[1, k], masks[k], colormap)
        _mask_image(predicted_axes[0, k], predicted[k], colormap)
        predicted_axes[0, k].set_title(f"image {k + 1}", fontsize=8)
        # wrong pixels black on the faded image, so errors read against the scene; pixels
        # without a true class (ignore labels) are not scored
        labelled = (masks[k] >= 0) & (masks[k] < len(names))
        wrong = labelled & (predicted[k] != masks[k])
        share = wrong.sum() / max(int(labelled.sum()), 1)
        predicted_axes[1, k].set_xlabel(f"{100 * share:.1f} % wrong", fontsize=8)
        grey = image.mean(axis=-1) if image.ndim == 3 else image.astype(float)
        faded = 0.75 + 0.25 * (grey - grey.min()) / (np.ptp(grey) or 1.0)
        predicted_axes[1, k].imshow(np.where(wrong, 0.0, faded), cmap="gray", vmin=0, vmax=1,
                                    interpolation="nearest")
    for ax in [*true_axes.ravel(), *predicted_axes.ravel()]:
        ax.set_xticks([])
        ax.set_yticks([])
    true_axes[0, 0].set_ylabel("image")
    true_axes[1, 0].set_ylabel("true mask")
    predicted_axes[0, 0].set_ylabel("predicted mask")
    predicted_axes[1, 0].set_ylabel("wrong pixels (black)")
    true_figure.suptitle(f"{n} test images with their true masks", fontsize=9.5)
    scores = []
    for key, label in (("test_pixel_accuracy", "pixel accuracy"), ("test_mean_iou", "mean IoU")):
        value = (metrics or {}).get(key)
        if value is not None and np.isfinite(value):
            scores.append(f"{label} {value:.3f}")
    predicted_figure.suptitle("predicted masks" + (f" (test set: {', '.join(scores)})"
                                                   if scores else ""), fontsize=9.5)
    handles = [Patch(facecolor=colormap(index), edgecolor="0.3", linewidth=0.4, label=name)
               for index, name in enumerate(names)]
    outside = any(np.any((m < 0) | (m >= len(names))) for m in (masks, predicted))
    if outside:
        handles.append(Patch(facecolor="0.85", edgecolor="0.3", linewidth=0.4,
                             label="no class (ignored)"))
    true_figure.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4),
                       fontsize=8, title="classes", title_fontsize=8, frameon=False)


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


def draw_scatter(ax, predictions: Mapping[str, np.ndarray], metrics: Mapping[str, Any] | None) -> None:
    """Predicted against true test targets, with the identity line."""
    truth = np.asarray(predictions["y_true"]).ravel()
    predicted = np.asarray(predictions["y_pred"]).ravel()
    ax.scatter(truth, predicted, s=8, alpha=0.6, color="tab:blue")
    low, high = float(np.nanmin(truth)), float(np.nanmax(truth))
    ax.plot([low, high], [low, high], color="0.4", lw=1, ls="--")
    ax.set_xlabel("true target")
    ax.set_ylabel("predicted")
    ax.set_title("test predictions")


def run_panel(files: Mapping[str, str | os.PathLike], title: str = "",
              run_panel_plot: str | None = None) -> plt.Figure:
    """The papers' per-run figure from a run's files (`files`: train_metrics, curve,
    predictions, hessian, density, landscape, topology, merge_tree, persistence, profile; a
    missing key or file gets a panel saying so): landscape contour (with the training path on a
    trajectory_pca plane) and 3-D surface (2-D; central slices for 3-D and up, a line for 1-D),
    merge tree, persistence diagram, landscape profile, Hessian spectral density, training
    curve, and what the problem's `run_panel_plot` names: the PINN's predicted vs exact u(x, t)
    ("field"), test images with true and predicted masks ("segmentation"), or predicted against
    true targets ("scatter")."""
    paths = {key: Path(path) for key, path in files.items() if Path(path).exists()}
    metrics = _read_optional_json(paths.get("train_metrics"))
    topology = _read_optional_json(paths.get("topology"))
    hessian = _read_optional_json(paths.get("hessian"))
    landscape = read_landscape(paths["landscape"]) if "landscape" in paths else None
    predictions = {}
    if "predictions" in paths:
        with np.load(paths["predictions"]) as npz:
            predictions = {key: npz[key] for key in npz.files}
    segmentation = (predictions if run_panel_plot == "segmentation"
                    and all(key in predictions for key in SEGMENTATION_KEYS) else None)
    field = predictions if run_panel_plot == "field" and "u_pred" in predictions else None
    scatter = predictions if run_panel_plot == "scatter" and "y_pred" in predictions else None
    landscape_ok = landscape is not None and landscape.attrs.get("status", "ok") == "ok"
    scale = LossScale.for_values(landscape.loss) if landscape_ok else LossScale(False)

    with plt.rc_context(PAPER_CONTEXT):
        figure = plt.figure(figsize=(15, 13.2), layout="constrained")
        grid = figure.add_gridspec(3, 3)
        slots = [grid[i, j] for i in range(3) for j in range(3)]

        # 1, 2: the landscape
        first, second = figure.add_subplot(slots[0]), None
        if not landscape_ok:
            reason = _status_text(landscape, "landscape.h5")
            message_axes(first, reason, "loss landscape")
            message_axes(figure.add_subplot(slots[1]), reason, "3-D surface")
        else:
            settings = json_attribute(landscape.attrs.get("settings"))
            loss, axes = landscape.loss, landscape.axes
            if landscape.scattered:
                draw_scattered_landscape(first, figure.add_subplot(slots[1]), landscape.samples,
                                         loss, scale, settings)
            elif loss.ndim == 1:
                first.plot(axes[0], scale(loss), color="tab:blue")
                first.set_xlabel(_landscape_axes_label(0, settings))
                first.set_ylabel(scale.label)
                first.set_title("loss landscape (1-D)")
                message_axes(figure.add_subplot(slots[1]), "1-D landscape: no surface", "3-D surface")
            elif loss.ndim == 2:
                draw_landscape_contour(first, loss, axes, scale, _landscape_axes_label(1, settings),
                                       _landscape_axes_label(0, settings), "loss landscape (contour)")
                if "trajectory" in landscape.datasets:
                    explained = landscape.attrs.get("explained_variance_ratio")
                    draw_trajectory(first, landscape.datasets["trajectory"],
                                    json.loads(explained) if isinstance(explained, str) else explained)
                second = figure.add_subplot(slots[1], projection="3d")
                draw_landscape_surface(second, loss, axes, scale, "loss landscape (surface)")
            else:
                for slot_ax, keep in ((first, (0, 1)), (figure.add_subplot(slots[1]), (0, 2))):
                    others = [a for a in range(loss.ndim) if a not in keep]
                    draw_landscape_contour(
                        slot_ax, central_slice(loss, keep), [axes[keep[0]], axes[keep[1]]], scale,
                        _landscape_axes_label(keep[1], settings), _landscape_axes_label(keep[0], settings),
                        f"{loss.ndim}-D landscape: slice at α{','.join(map(str, others))} = 0")

        # 3, 4, 5: topology
        topology_ok = topology is not None and topology.get("status") == "ok"
        if topology_ok and "merge_tree" in paths and "profile" in paths:
            tree = read_json(paths["merge_tree"])
            profile = read_json(paths["profile"])
            value_max = topology["metrics"]["value_max"]
            nonfinite_height = (float(scale(profile["nonfinite_height"]))
                                if profile.get("nonfinite_height") is not None
                                else float(scale(value_max)))
            tree_ax = figure.add_subplot(slots[2])
            shown = (display_tree(landscape, topology["settings"]) if landscape_ok
                     and topology["metrics"]["n_minima"] > MAX_DRAWN_MINIMA else None)
            draw_merge_tree(tree_ax, shown or tree, scale, nonfinite_height)
            if shown is not None:
                tree_ax.set_title(f"merge tree: the {_count(shown, 'minimum')} most persistent of "
                                  f"{topology['metrics']['n_minima']} minima")
            pairs = pd.read_csv(paths["persistence"])
            draw_persistence_diagram(figure.add_subplot(slots[3]), pairs,
                                     topology["global_minimum"]["value"], scale, value_max)
            draw_profile(figure.add_subplot(slots[4]), profile, scale,
                         "samples" if landscape_ok and landscape.scattered else "grid vertices")
        else:
            reason = _status_text(topology, "topology.json")
            for slot, name in zip(slots[2:5], ["merge tree", "persistence diagram", "landscape profile"]):
                message_axes(figure.add_subplot(slot), reason, name)

        # 6: Hessian
        density_ax = figure.add_subplot(slots[5])
        if hessian is not None and hessian.get("status") == "ok" and "density" in paths:
            draw_spectral_density(density_ax, pd.read_csv(paths["density"]),
                                  hessian.get("eigenvalues") or [])
        else:
            message_axes(density_ax, _status_text(hessian, "hessian.json"), "Hessian spectral density")

        # 7: training curve
        curve_ax = figure.add_subplot(slots[6])
        if "curve" in paths:
            draw_training_curve(curve_ax, pd.read_csv(paths["curve"]))
        else:
            message_axes(curve_ax, "curve.csv is missing", "training curve")

        # 8, 9: what the problem's predictions show
        if segmentation is not None:
            draw_segmentation_examples(figure.add_subfigure(slots[7]),
                                       figure.add_subfigure(slots[8]), segmentation, metrics)
        elif scatter is not None:
            draw_scatter(figure.add_subplot(slots[7]), scatter, metrics)
            figure.add_subplot(slots[8]).set_visible(False)
        elif field is not None:
            predictions = field
            limit = float(np.nanmax(np.abs(predictions["u_exact"])))
            limit = max(limit, 1e-12)
            norm = TwoSlopeNorm(vcenter=0.0, vmin=-limit, vmax=limit)
            error = metrics.get("test_relative_l2") if metrics else None
            predicted_title = "predicted u(x, t)" + (f" (relative L2 {error:.3g})" if error is not None
                                                     and np.isfinite(error) else "")
            pred_ax = figure.add_subplot(slots[7])
            exact_ax = figure.add_subplot(slots[8])
            draw_solution(pred_ax, predictions, "u_pred", predicted_title, norm)
            mesh = draw_solution(exact_ax, predictions, "u_exact", "exact u(x, t) = sin(x − βt)", norm)
            figure.colorbar(mesh, ax=[pred_ax, exact_ax], label="u", shrink=0.85)
        else:  # nothing to draw of the predictions: the run's numbers instead of blank slots
            draw_run_numbers(figure.add_subplot(slots[7]), metrics, hessian, topology)
            figure.add_subplot(slots[8]).set_visible(False)

        status = metrics.get("status", "?") if metrics else "missing (no train_metrics.json)"
        heading = title or str(files.get("train_metrics", ""))
        if status != "ok":
            heading += f" — training status: {status}"
        figure.suptitle(heading, fontsize=11, color="black" if status == "ok" else "tab:red")
        return figure


def draw_run_numbers(ax, metrics: Mapping[str, Any] | None, hessian: Mapping[str, Any] | None,
                     topology: Mapping[str, Any] | None) -> None:
    """A table of the run's numbers: its test and training metrics (e.g. a ResNet's accuracy),
    λ₁ and the trace, and the topology counts, for problems whose predictions are not drawn."""
    rows = []
    for key, value in (metrics or {}).items():
        if (key.startswith("test_") or key.startswith("final_train")) and isinstance(value, float):
            rows.append((metric_label(key), _format_value(value)))
    if hessian and hessian.get("status") == "ok":
        rows += [(metric_label(k), _format_value(hessian[k])) for k in ("top_eigenvalue", "trace")
                 if isinstance(hessian.get(k), float)]
    if topology and topology.get("status") == "ok":
        rows += [(metric_label(k), _format_value(topology["metrics"][k]))
                 for k in ("n_minima", "n_saddles", "avg_persistence", "smad")
                 if k in topology["metrics"]]
    ax.axis("off")
    ax.set_title("the run's numbers")
    if not rows:
        ax.text(0.5, 0.5, "no numbers: the run did not finish", ha="center", va="center")
        return
    step = min(0.09, 0.9 / len(rows))
    for index, (name, value) in enumerate(rows):
        y = 0.95 - index * step
        ax.text(0.02, y, name, ha="left", va="top", fontsize=9, transform=ax.transAxes)
        ax.text(0.98, y, value, ha="right", va="top", fontsize=9, fontweight="bold",
                transform=ax.transAxes)


def _read_optional_json(path: Path | None) -> dict[str, Any] | None:
    return read_json(path) if path is not None and path.exists() else None


def _status_text(stage: Any, filename: str) -> str:
    """Why a stage has nothing to draw: its file is missing, or its status and message."""
    if stage is None:
        return f"{filename} is missing"
    if hasattr(stage, "attrs"):  # a Landscape
        status, message = stage.attrs.get("status", "?"), stage.attrs.get("message", "")
    else:
        status, message = stage.get("status", "?"), stage.get("message", "")
    text = f"status: {status}"
    if message:
        text += "\n" + _wrap(str(message), 45)
    return text


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)[:4])


# --- hyperparameter x seed heat map with small-multiple profiles ----------------------------


def seed_heatmap(
    table: pd.DataFrame,
    parameter: str,
    metric: str | None,
    profiles: Mapping[tuple[Any, ...], Mapping[str, Any] | None],
    title: str = "",
    others: Sequence[str] = (),
) -> plt.Figure:
    """Left: `metric` for every (parameter value, seed) as an annotated heat map (missing or
    unfinished runs blank, labelled with their status). Right: the landscape profile of each run
    at the same place, all on one log/linear loss scale, so shapes compare across the grid (as
    the profile paper's learning-rate figure). Without any value of `metric` (e.g. every run
    diverged) the cells show the runs' statuses only. When other swept parameters (`others`)
    vary too, every combination gets its own row, and `profiles` is keyed by
    (value, *other values, seed) as `load_profiles(..., others)` gives it."""
    metric_name = metric_label(metric) if metric else "test metric (none recorded)"
    keys = [parameter, *others]
    with plt.rc_context(PAPER_CONTEXT):
        known = table.dropna(subset=[parameter])
        row_keys = sorted({tuple(getattr(row, key) for key in keys) for row in known.itertuples(index=False)},
                          key=lambda combination: tuple(_sort_key(v) for v in combination))
        row_index = {combination: i for i, combination in enumerate(row_keys)}
        seeds = sorted(pd.unique(table["seed"]))
        grid = pd.DataFrame(np.nan, index=range(len(row_keys)), columns=seeds)
        statuses = pd.DataFrame("", index=range(len(row_keys)), columns=seeds)
        for row in known.itertuples(index=False):
            i = row_index[tuple(getattr(row, key) for key in keys)]
            statuses.loc[i, row.seed] = row.status
            number = (pd.to_numeric(getattr(row, metric), errors="coerce")
                      if metric and metric in table else np.nan)
            if row.status == "ok":
                grid.loc[i, row.seed] = number

        def row_label(combination: tuple[Any, ...], short: bool) -> str:
            if len(keys) == 1 and not short:
                return _format_value(combination[0])
            return ", ".join(f"{short_label(key)} = {_format_value(value)}"
                             for key, value in zip(keys, combination))

        n_rows, n_cols = len(row_keys), len(seeds)
        cell = 1.25
        figure = plt.figure(figsize=(3.2 + 1.0 * n_cols + cell * 1.25 * n_cols + 1.2,
                                     1.6 + cell * n_rows), layout="constrained")
        outer = figure.add_gridspec(1, 2, width_ratios=[1.0 * n_cols + 1.6, cell * 1.25 * n_cols + 1.0])
        heat_ax = figure.add_subplot(outer[0])
        annotations = np.empty(grid.shape, dtype=object)
        for i in range(n_rows):
            for j in range(n_cols):
                number = grid.iloc[i, j]
                annotations[i, j] = (f"{number:.3g}" if np.isfinite(number)
                                     else (statuses.iloc[i, j] or "not run"))
        values = grid.to_numpy(dtype=float)
        any_value = bool(np.isfinite(values).any())
        log_colours = any_value and LossScale.for_values(values[np.isfinite(values)]).log
        colour_label = metric_name + (" (log scale)" if log_colours else "")
        sns.heatmap(values if any_value else np.zeros_like(values), ax=heat_ax,
                    annot=annotations, fmt="",
                    cmap="viridis" if any_value else ListedColormap(["0.9"]),
                    vmin=None if any_value else 0, vmax=None if any_value else 1,
                    norm=LogNorm() if log_colours else None,
                    cbar=any_value, linewidths=0.5, linecolor="white",
                    xticklabels=[str(s) for s in seeds],
                    yticklabels=[row_label(combination, short=False) for combination in row_keys],
                    cbar_kws={"label": colour_label, "shrink": 0.8},
                    annot_kws={"fontsize": 8})
        heat_ax.set_facecolor("0.9")
        heat_ax.set_xlabel("seed")
        rows_name = ", ".join(metric_label(key) for key in keys)
        heat_ax.set_ylabel(rows_name)
        heat_ax.set_title(f"{metric_name} per run")
        heat_ax.tick_params(axis="y", rotation=0)

        profile_grid = outer[1].subgridspec(n_rows, n_cols, hspace=0.08, wspace=0.08)
        available = [p for p in profiles.values() if p and p.get("basins")]
        all_heights = [p["value_min"] for p in available] + [p["value_max"] for p in available]
        scale = LossScale.for_values(all_heights) if all_heights else LossScale(False)
        shown = scale(np.asarray(all_heights, dtype=float)) if all_heights else np.array([0.0, 1.0])
        norm = Normalize(vmin=float(np.nanmin(shown)), vmax=float(np.nanmax(shown)))
        colormap = plt.get_cmap("viridis")
        for i, combination in enumerate(row_keys):
            for j, seed in enumerate(seeds):
                ax = figure.add_subplot(profile_grid[i, j])
                ax.set_xticks([])
                ax.set_yticks([])
                profile = profiles.get((*combination, seed))
                if not profile or not profile.get("basins"):
                    ax.text(0.5, 0.5, statuses.loc[i, seed] or "not run", ha="center",
                            va="center", fontsize=7, color="0.4", transform=ax.transAxes)
                else:
                    draw_profile_outline(ax, profile, scale, norm, colormap)
                if i == 0:
                    ax.set_title(f"seed {seed}", fontsize=8)
                if j == 0:
                    ax.set_ylabel(row_label(combination, short=True), fontsize=8)
                for spine in ax.spines.values():
                    spine.set_linewidth(0.4)
        if available:
            figure.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=colormap),
                            ax=figure.axes[-n_rows * n_cols:], shrink=0.8, label=scale.label)
        figure.suptitle((title + "\n" if title else "")
                        + f"right: landscape profiles (rows: {rows_name}, "
                        f"columns: seed; shared {scale.label} axis)")
        return figure


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




def _sort_key(value: Any) -> tuple[int, Any]:
    return (0, float(value)) if isinstance(value, (int, float, np.number)) else (1, str(value))


def _format_value(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (float, np.floating, int, np.integer)) else str(value)


# --- every run's landscape profile, swept values side by side ------------------------------


def landscape_profiles(
    table: pd.DataFrame,
    parameter: str,
    profiles: Mapping[tuple[Any, ...], Mapping[str, Any] | None],
    title: str = "",
    landscape: Mapping[str, Any] | None = None,
) -> plt.Figure:
    """The profile paper's comparison of basins across a sweep: one landscape profile per run,
    the values of `parameter` as columns and seeds as rows (with the other swept parameters when
    they vary too: `profiles` is then keyed by (value, *others, seed), see `load_profiles`).
    Every profile shares one loss axis (LossScale over all runs), so the depth, width and
    branching of the basins compare across values; each is labelled with its number of minima
    and saddles. Runs without a profile show their status. `landscape` (the landscape settings,
    see `landscape_settings`) names the dimension and directions in the title; without it the
    dimension comes from the summary's `landscape_dimensions`."""
    others = other_varied_parameters(table, parameter)
    if others and profiles and all(len(key) == 2 for key in profiles):
        raise ValueError(f"{', '.join(others)} vary besides {parameter!r}: key the profiles by "
                         "(value, *others, seed) (load_profiles(..., others=...))")
    with plt.rc_context(PAPER_CONTEXT):
        parameter_values = sorted(pd.unique(table[parameter].dropna()), key=_sort_key)
        row_keys = sorted({(*(getattr(row, o) for o in others), row.seed)
                           for row in table.itertuples(index=False)},
                          key=lambda key: tuple(_sort_key(k) for k in key))
        runs = {(getattr(row, parameter), *(getattr(row, o) for o in others), row.seed): row
                for row in table.itertuples(index=False)}

        available = [p for p in profiles.values() if p and p.get("basins")]
        heights = [h for p in available for h in (p["value_min"], p["value_max"],
                                                  p.get("nonfinite_height")) if h is not None]
        scale = LossScale.for_values(heights) if heights else LossScale(False)
        shown = scale(np.asarray(heights, dtype=float)) if heights else np.array([0.0, 1.0])
        low, high = float(np.nanmin(shown)), float(np.nanmax(shown))
        if not high > low:
            low, high = low - 0.5, high + 0.5
        norm = Normalize(vmin=low, vmax=high)
        limits = (low - 0.02 * (high - low), high + 0.02 * (high - low))
        colormap = plt.get_cmap("viridis")

        n_rows, n_cols = len(row_keys), len(parameter_values)
        figure, axes = plt.subplots(n_rows, n_cols, squeeze=False, layout="constrained",
                                    figsize=(1.6 + 2.0 * n_cols, 1.4 + 1.7 * n_rows))
        short = short_label(parameter)
        for j, value in enumerate(parameter_values):
            for i, row_key in enumerate(row_keys):
                ax = axes[i, j]
                key = (value, *row_key)
                ax.set_label(" ".join(["profile", f"{parameter}={_format_value(value)}",
                                       *(f"{o}={_format_value(v)}" for o, v in zip(others, row_key)),
                                       f"seed={row_key[-1]}"]))
                profile = profiles.get(key)
                if profile and profile.get("basins"):
                    n_basins = len(profile["basins"])
                    # hundreds of basins (4-D landscapes): thinner outlines, or the stacked
                    # band edges turn the profile black
                    draw_profile_outline(ax, profile, scale, norm, colormap,
                                         linewidth=0.3 if n_basins <= 40 else 0.12)
                    ax.set_xlabel(counts_text(*profile_counts(profile)), fontsize=7.5,
                                  labelpad=2)
                    mark_flagged(ax, runs.get(key))
                    ax.set_xticks([])
                    ax.tick_params(labelleft=j == 0, labelsize=7)
                else:
                    ax.set_xticks([])
                    ax.set_yticks([])
                    ax.text(0.5, 0.5, _run_status_text(runs.get(key), profile), ha="center",
                            va="center", fontsize=7.5, color="0.35", transform=ax.transAxes)
                    for spine in ax.spines.values():
                        spine.set_color("0.8")
                ax.set_ylim(*limits)
                if i == 0:
                    ax.set_title(f"{short} = {_format_value(value)}")
                if j == 0:
                    label = ", ".join(f"{short_label(o)} = {_format_value(v)}"
                                      for o, v in zip(others, row_key[:-1]))
                    ax.set_ylabel((label + "\n" if label else "") + f"seed {row_key[-1]}"
                                  + (f"\n{scale.label}" if available else ""))
        if available:
            figure.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=colormap), ax=axes.ravel().tolist(),
                            shrink=0.8, aspect=30, label=f"{scale.label} (shared by all profiles)")
            widths = sorted({int(p["n_vertices"]) for p in available})
            width_text = (f"{widths[0]:,}" if len(widths) == 1 else f"{widths[0]:,}–{widths[-1]:,}")
            vertices = ("samples" if (landscape or {}).get("sampling", "grid") != "grid"
                        else "grid vertices")
            figure.supxlabel(f"basin width = {vertices} below the level (each profile is "
                             f"{width_text} {vertices} wide)", fontsize=8)
        dims = (pd.to_numeric(table["landscape_dimensions"], errors="coerce").dropna().unique()
                if "landscape_dimensions" in table else [])
        described = landscape_description(landscape, int(dims[0]) if len(dims) == 1 else None)
        heading = (f"{described}: " if described else "") + (
            f"landscape profile of every run, one shared {scale.label} axis" if available
            else "no run has a landscape profile")
        figure.suptitle((title + "\n" if title else "") + heading)
        return figure


def mark_flagged(ax, row: Any) -> None:
    """A run the summary flags (its `warnings`: mostly non-finite landscape, exploding loss) gets
    a red frame and the warning under its cell: its numbers are shown, but not as trusted."""
    warning = getattr(row, "warnings", None) if row is not None else None
    if not isinstance(warning, str) or not warning:
        return
    for spine in ax.spines.values():
        spine.set_color("tab:red")
        spine.set_linewidth(1.2)
    ax.set_xlabel(f"{ax.get_xlabel()}\n⚠ {_wrap(warning, 30)}", color="tab:red")


def _run_status_text(row: Any, profile: Mapping[str, Any] | None) -> str:
    """Why a run has no profile to draw: its summary status (and missing files), else the
    profile's own status."""
    if row is None:
        return "not run"
    if row.status == "missing":
        files = getattr(row, "missing_files", "") or ""
        return "missing" + ("\n" + _wrap(files, 22) if files else "")
    if row.status != "ok":
        return str(row.status)
    if profile is None:
        return "profile.json is missing"
    return f"profile status: {profile.get('status', '?')}"


# --- what to draw (figure settings resolved against a summary) ------------------------------


def choose_parameter(table: pd.DataFrame, requested: str | None = None) -> str | None:
    """The hyperparameter on the x axis / heat-map rows: `requested` (must be swept), else the
    first swept one with more than one value, else the first swept one; None without a grid."""
    swept = swept_parameters(table)
    if requested is not None:
        if requested not in swept:
            raise ValueError(f"figures parameter {requested!r} is not swept in this experiment; "
                             f"swept: {swept or 'nothing'}")
        return requested
    varied = [p for p in swept if table[p].nunique(dropna=True) > 1]
    return (varied or swept or [None])[0]


def other_varied_parameters(table: pd.DataFrame, parameter: str) -> list[str]:
    """Swept parameters besides `parameter` that take more than one value (each of their
    combinations is a row of its own in the profiles figure)."""
    return [p for p in swept_parameters(table)
            if p != parameter and table[p].nunique(dropna=True) > 1]


def default_panel_metrics(table: pd.DataFrame) -> list[str]:
    """The papers' panels: saddles, average persistence, the test metrics, λ₁ and the trace."""
    from .aggregate import evaluation_metrics

    return ["n_saddles", "avg_persistence", *evaluation_metrics(table), "top_eigenvalue", "trace"]


def no_parameter_figure(what: str, title: str) -> plt.Figure:
    """A small figure saying that an experiment without a swept hyperparameter has no `what`."""
    with plt.rc_context(PAPER_CONTEXT):
        figure, ax = plt.subplots(figsize=(6, 2))
        message_axes(ax, f"No swept hyperparameter in this experiment: no {what}.", title or None)
        return figure


def load_profiles(table: pd.DataFrame, parameter: str, others: Sequence[str] = ()
                  ) -> dict[tuple[Any, ...], dict[str, Any] | None]:
    """profile.json of every run of a summary (its `profile_file` column; None where missing),
    keyed by (value, seed), or by (value, *values of `others`, seed) so that grids over several
    parameters keep every run."""
    profiles: dict[tuple[Any, ...], dict[str, Any] | None] = {}
    for row in table.itertuples(index=False):
        path = getattr(row, "profile_file", None)
        key = (getattr(row, parameter), *(getattr(row, other) for other in others), row.seed)
        profiles[key] = read_json(path) if isinstance(path, str) and Path(path).exists() else None
    return profiles


def landscape_settings(table: pd.DataFrame) -> dict[str, Any] | None:
    """The `settings` attribute (dimensions, directions, ...) of the first finished landscape of
    a summary (its `landscape_file` column), read without loading the grid (a 4-D one can be
    large); None if there is none. All runs of a named landscape share its settings."""
    import h5py

    for row in table.itertuples(index=False):
        path = getattr(row, "landscape_file", None)
        if getattr(row, "landscape_status", "ok") != "ok" or not isinstance(path, str):
            continue
        if Path(path).exists():
            with h5py.File(path, "r") as handle:
                return json_attribute(handle.attrs.get("settings"))
    return None


def landscape_description(settings: Mapping[str, Any] | None, dimensions: int | None = None
                          ) -> str | None:
    """Title text such as "4-D landscapes (top-4 Hessian directions)": a profile hides the
    landscape's dimension and directions, so its figure has to say them. None if unknown."""
    settings = settings or {}
    dimensions = settings.get("dimensions") or dimensions
    if not dimensions:
        return None
    text = f"{int(dimensions)}-D landscapes"
    directions = settings.get("directions")
    if directions == "hessian":
        text += (" (top Hessian direction)" if dimensions == 1
                 else f" (top-{int(dimensions)} Hessian directions)")
    elif directions == "random":
        text += f" ({int(dimensions)} random direction{'s' if dimensions > 1 else ''})"
    elif directions == "trajectory_pca":
        text += f" (top-{int(dimensions)} principal components of the training trajectory)"
    if settings.get("sampling", "grid") != "grid" and settings.get("n_samples"):
        text += f", {int(settings['n_samples']):,} {settings['sampling']} samples"
    return text
