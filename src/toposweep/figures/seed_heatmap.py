"""The hyperparameter × seed heat map (seed_heatmap.png): the test metric of every run, and
beside it each run's landscape profile in the same cell (the profile paper's learning-rate
figure); columns are the swept values, rows the seeds, as in profiles.png."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import ListedColormap, LogNorm

from ..aggregate import main_test_metric, metric_label
from .common import (PAPER_CONTEXT, LossScale, choose_parameter, format_value, load_profiles,
                     other_varied_parameters)
from .sweep_grid import SharedLossAxis, SweepGrid, draw_profile_cell

CELL = 1.25  # inches per profile cell


def from_inputs(inputs: Mapping[str, str], settings: Mapping[str, Any],
                problem: Mapping[str, Any], title: str = "") -> plt.Figure:
    """The figure rule's call: the summary (`inputs["summary"]`); the metric is
    `figures.heatmap_metric`, else the problem's declared test metric."""
    table = pd.read_parquet(inputs["summary"])
    parameter = choose_parameter(table, settings.get("parameter")) or "point"
    metric = settings.get("heatmap_metric") or main_test_metric(table, problem.get("test_metric"))
    others = other_varied_parameters(table, parameter)
    profiles = load_profiles(table, parameter, others)
    return seed_heatmap(table, parameter, metric, profiles, title, others)


def seed_heatmap(
    table: pd.DataFrame,
    parameter: str,
    metric: str | None,
    profiles: Mapping[tuple[Any, ...], Mapping[str, Any] | None],
    title: str = "",
    others: Sequence[str] | None = None,
) -> plt.Figure:
    """Left: `metric` for every run as an annotated heat map, columns the values of `parameter`,
    rows the seeds (missing or unfinished runs blank, labelled with their status). Right: the
    landscape profile of each run in the same cell, all on one log/linear loss axis, so shapes
    compare across the grid. Without any value of `metric` (e.g. every run diverged) the cells
    show the runs' statuses only. Other swept parameters (`others`; None: those that vary in
    `table`) give every combination rows of its own, and `profiles` is keyed by
    (value, *other values, seed) as `load_profiles(..., others)` gives it."""
    grid = SweepGrid.of(table, parameter, others)
    grid.check_keys(profiles)
    with plt.rc_context(PAPER_CONTEXT):
        n_rows, n_cols = len(grid.rows), len(grid.values)
        label_width = 0.9 + 0.5 * len(grid.others)
        figure = plt.figure(figsize=(label_width + 1.9 + 0.9 * n_cols + CELL * 1.1 * n_cols + 1.2,
                                     1.9 + CELL * n_rows), layout="constrained")
        outer = figure.add_gridspec(1, 2, width_ratios=[label_width + 0.9 * n_cols + 1.4,
                                                        CELL * 1.1 * n_cols + 1.0])
        _draw_heat_map(figure.add_subplot(outer[0]), grid, metric)
        axis = SharedLossAxis.of(profiles)
        cells = outer[1].subgridspec(n_rows, n_cols, hspace=0.08, wspace=0.08)
        profile_axes = []
        for i, j, key in grid.cells():
            ax = figure.add_subplot(cells[i, j])
            ax.set_label(grid.cell_label(key))
            draw_profile_cell(ax, profiles.get(key), grid.runs.get(key), axis, counts=False)
            ax.set_yticks([])
            if i == 0:
                ax.set_title(grid.column_label(key[0]), fontsize=8)
            if j == 0:
                ax.set_ylabel(grid.row_label(key[1:]), fontsize=8)
            profile_axes.append(ax)
        if axis.available:
            axis.colour_bar(figure, profile_axes, shrink=0.8, label=axis.scale.label)
        figure.suptitle((title + "\n" if title else "")
                        + f"right: landscape profiles (columns: {metric_label(parameter)}, rows: "
                        f"{grid.rows_name}; shared {axis.scale.label} axis)")
        return figure


def _draw_heat_map(ax, grid: SweepGrid, metric: str | None) -> None:
    """The metric of every finished run in its cell; other cells their status."""
    metric_name = metric_label(metric) if metric else "test metric (none recorded)"
    values = np.full((len(grid.rows), len(grid.values)), np.nan)
    annotations = np.full(values.shape, "not run", dtype=object)
    for i, j, key in grid.cells():
        run = grid.runs.get(key)
        if run is None:
            continue
        number = pd.to_numeric(getattr(run, metric, np.nan), errors="coerce") if metric else np.nan
        if run.status == "ok" and np.isfinite(number):
            values[i, j] = number
            annotations[i, j] = f"{number:.3g}"
        else:
            annotations[i, j] = run.status
    any_value = bool(np.isfinite(values).any())
    log_colours = any_value and LossScale.for_values(values[np.isfinite(values)]).log
    sns.heatmap(values if any_value else np.zeros_like(values), ax=ax,
                annot=annotations, fmt="",
                cmap="viridis" if any_value else ListedColormap(["0.9"]),
                vmin=None if any_value else 0, vmax=None if any_value else 1,
                norm=LogNorm() if log_colours else None,
                cbar=any_value, linewidths=0.5, linecolor="white",
                xticklabels=[format_value(value) for value in grid.values],
                yticklabels=[grid.row_label(row, ", ") for row in grid.rows],
                cbar_kws={"label": metric_name + (" (log scale)" if log_colours else ""),
                          "shrink": 0.8},
                annot_kws={"fontsize": 8})
    ax.set_facecolor("0.9")
    for i, j in zip(*np.nonzero(~np.isfinite(values) if any_value else np.zeros(values.shape))):
        # seaborn leaves NaN cells unannotated: say why the run has no value
        ax.text(j + 0.5, i + 0.5, annotations[i, j], ha="center", va="center", fontsize=8,
                color="0.35")
    ax.set_xlabel(metric_label(grid.parameter))
    ax.set_ylabel(grid.rows_name)
    ax.set_title(f"{metric_name} per run")
    ax.tick_params(axis="y", rotation=0)
