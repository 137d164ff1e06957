"""Every run's landscape profile, swept values side by side (profiles.png): the landscape-profile
paper's β figure, columns the values, rows the seeds, one loss axis for all."""

from __future__ import annotations

from typing import Any, Mapping

import matplotlib.pyplot as plt
import pandas as pd

from .common import (PAPER_CONTEXT, choose_parameter, landscape_description, landscape_settings,
                     load_profiles, other_varied_parameters)
from .sweep_grid import SharedLossAxis, SweepGrid, draw_profile_cell


def from_inputs(inputs: Mapping[str, str], settings: Mapping[str, Any],
                problem: Mapping[str, Any], title: str = "") -> plt.Figure:
    """The figure rule's call: the summary (`inputs["summary"]`), whose `profile_file` and
    `landscape_file` columns name the runs' files."""
    table = pd.read_parquet(inputs["summary"])
    parameter = choose_parameter(table, settings.get("parameter")) or "point"
    profiles = load_profiles(table, parameter, other_varied_parameters(table, parameter))
    return landscape_profiles(table, parameter, profiles, title, landscape_settings(table))


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
    Every profile shares one loss axis (`SharedLossAxis`), so the depth, width and branching of
    the basins compare across values; each is labelled with its numbers of minima and saddles.
    Runs without a profile show their status. `landscape` (the landscape settings, see
    `landscape_settings`) names the dimension and directions in the title; without it the
    dimension comes from the summary's `landscape_dimensions`."""
    grid = SweepGrid.of(table, parameter)
    grid.check_keys(profiles)
    axis = SharedLossAxis.of(profiles)
    with plt.rc_context(PAPER_CONTEXT):
        n_rows, n_cols = len(grid.rows), len(grid.values)
        figure, axes = plt.subplots(n_rows, n_cols, squeeze=False, layout="constrained",
                                    figsize=(1.6 + 2.0 * n_cols, 1.4 + 1.7 * n_rows))
        for i, j, key in grid.cells():
            ax = axes[i, j]
            ax.set_label(grid.cell_label(key))
            draw_profile_cell(ax, profiles.get(key), grid.runs.get(key), axis)
            ax.tick_params(labelleft=j == 0, labelsize=7)
            if i == 0:
                ax.set_title(grid.column_label(key[0]))
            if j == 0:
                ax.set_ylabel(grid.row_label(key[1:])
                              + (f"\n{axis.scale.label}" if axis.available else ""))
        if axis.available:
            axis.colour_bar(figure, axes.ravel().tolist(), shrink=0.8, aspect=30,
                            label=f"{axis.scale.label} (shared by all profiles)")
            figure.supxlabel(_width_text(profiles, landscape), fontsize=8)
        figure.suptitle((title + "\n" if title else "") + _heading(table, landscape, axis))
        return figure


def _width_text(profiles: Mapping[Any, Mapping[str, Any] | None],
                landscape: Mapping[str, Any] | None) -> str:
    """What a profile's width counts, and how wide the profiles are."""
    widths = sorted({int(p["n_vertices"]) for p in profiles.values() if p and p.get("basins")})
    width_text = f"{widths[0]:,}" if len(widths) == 1 else f"{widths[0]:,}–{widths[-1]:,}"
    vertices = ("samples" if (landscape or {}).get("sampling", "grid") != "grid"
                else "grid vertices")
    return (f"basin width = {vertices} below the level (each profile is {width_text} "
            f"{vertices} wide)")


def _heading(table: pd.DataFrame, landscape: Mapping[str, Any] | None,
             axis: SharedLossAxis) -> str:
    """The landscapes' dimension and directions (a profile does not show them)."""
    dims = (pd.to_numeric(table["landscape_dimensions"], errors="coerce").dropna().unique()
            if "landscape_dimensions" in table else [])
    described = landscape_description(landscape, int(dims[0]) if len(dims) == 1 else None)
    return (f"{described}: " if described else "") + (
        f"landscape profile of every run, one shared {axis.scale.label} axis" if axis.available
        else "no run has a landscape profile")
