"""The layout the value × seed figures share (seed_heatmap and landscape_profiles): columns are
the values of the swept hyperparameter, rows the seeds (with the other varied parameters), and
all profiles on one loss axis, so one run sits in the same cell in both and depths compare."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import Normalize

from ..aggregate import metric_label, short_label
from .common import (LossScale, counts_text, format_value, other_varied_parameters,
                     profile_counts, sort_key, wrap_text)
from .drawing import draw_profile_outline

BUSY_PROFILE = 40  # basins above which outlines get thinner (or a 4-D profile turns black)


@dataclass(frozen=True)
class SweepGrid:
    """A summary's runs in a grid: `values` (columns) of `parameter`, `rows` of
    (*values of `others`, seed), and each run's summary row by (value, *others, seed), the key
    of `load_profiles(table, parameter, others)`."""

    parameter: str
    others: tuple[str, ...]
    values: list[Any]
    rows: list[tuple[Any, ...]]
    runs: dict[tuple[Any, ...], Any]

    @classmethod
    def of(cls, table: pd.DataFrame, parameter: str, others: Sequence[str] | None = None
           ) -> "SweepGrid":
        """`others` None: the swept parameters besides `parameter` that vary in `table`."""
        others = tuple(other_varied_parameters(table, parameter) if others is None else others)
        known = list(table.dropna(subset=[parameter]).itertuples(index=False))
        runs = {(getattr(row, parameter), *(getattr(row, o) for o in others), row.seed): row
                for row in known}
        values = sorted({key[0] for key in runs}, key=sort_key)
        rows = sorted({key[1:] for key in runs}, key=lambda key: tuple(map(sort_key, key)))
        return cls(parameter, others, values, rows, runs)

    def cells(self) -> Iterator[tuple[int, int, tuple[Any, ...]]]:
        """(row index, column index, run key) of every cell, row by row."""
        for i, row in enumerate(self.rows):
            for j, value in enumerate(self.values):
                yield i, j, (value, *row)

    def check_keys(self, profiles: Mapping[tuple[Any, ...], Any]) -> None:
        """Profiles keyed by (value, seed) would merge the runs of the other parameters."""
        if profiles and any(len(key) != 2 + len(self.others) for key in profiles):
            raise ValueError(f"{', '.join(self.others) or 'nothing'} vary besides "
                             f"{self.parameter!r}: key the profiles by (value, *others, seed) "
                             "(load_profiles(..., others=...))")

    def column_label(self, value: Any) -> str:
        return f"{short_label(self.parameter)} = {format_value(value)}"

    def row_label(self, row: tuple[Any, ...], separator: str = "\n") -> str:
        """'seed 0', or 'lr = 0.01' + separator + 'seed 0'."""
        parts = [f"{short_label(o)} = {format_value(v)}" for o, v in zip(self.others, row[:-1])]
        return separator.join([*parts, f"seed {row[-1]}"])

    @property
    def rows_name(self) -> str:
        return ", ".join([*(metric_label(o) for o in self.others), "seed"])

    def cell_label(self, key: tuple[Any, ...]) -> str:
        """The axes label of a run's profile cell, e.g. 'profile beta=1 lr=0.01 seed=0'."""
        names = [self.parameter, *self.others, "seed"]
        return " ".join(["profile", *(f"{n}={format_value(v)}" for n, v in zip(names, key))])


@dataclass(frozen=True)
class SharedLossAxis:
    """One loss axis for every profile of a figure: the scale (log₁₀ when the profiles' heights
    span more than a factor 100), the colour norm and the axes limits."""

    scale: LossScale
    norm: Normalize
    available: bool  # some run has a profile to draw

    @classmethod
    def of(cls, profiles: Mapping[Any, Mapping[str, Any] | None]) -> "SharedLossAxis":
        available = [p for p in profiles.values() if p and p.get("basins")]
        heights = [h for p in available for h in (p["value_min"], p["value_max"],
                                                  p.get("nonfinite_height")) if h is not None]
        scale = LossScale.for_values(heights) if heights else LossScale(False)
        shown = scale(np.asarray(heights, dtype=float)) if heights else np.array([0.0, 1.0])
        low, high = float(np.nanmin(shown)), float(np.nanmax(shown))
        if not high > low:
            low, high = low - 0.5, high + 0.5
        return cls(scale, Normalize(vmin=low, vmax=high), bool(available))

    @property
    def colormap(self):
        return plt.get_cmap("viridis")

    @property
    def limits(self) -> tuple[float, float]:
        low, high = self.norm.vmin, self.norm.vmax
        return low - 0.02 * (high - low), high + 0.02 * (high - low)

    def colour_bar(self, figure, axes, **options) -> None:
        figure.colorbar(plt.cm.ScalarMappable(norm=self.norm, cmap=self.colormap), ax=axes,
                        **options)


def draw_profile_cell(ax, profile: Mapping[str, Any] | None, run: Any, axis: SharedLossAxis,
                      counts: bool = True) -> None:
    """One run's cell: its profile on the shared axis (with its counts below when `counts`,
    framed red when the summary flags it), else why it has none."""
    if profile and profile.get("basins"):
        draw_profile_outline(ax, profile, axis.scale, axis.norm, axis.colormap,
                             linewidth=0.3 if len(profile["basins"]) <= BUSY_PROFILE else 0.12)
        if counts:
            ax.set_xlabel(counts_text(*profile_counts(profile)), labelpad=2)
        mark_flagged(ax, run)
    else:
        ax.set_yticks([])
        ax.text(0.5, 0.5, run_status_text(run, profile), ha="center", va="center",
                color="0.35", transform=ax.transAxes)
        for spine in ax.spines.values():
            spine.set_color("0.8")
    ax.set_xticks([])
    ax.set_ylim(*axis.limits)


def mark_flagged(ax, row: Any) -> None:
    """A run the summary flags (its `warnings`: mostly non-finite landscape, exploding loss) gets
    a red frame and the warning under its cell: its numbers are shown, but not as trusted."""
    warning = getattr(row, "warnings", None) if row is not None else None
    if not isinstance(warning, str) or not warning:
        return
    for spine in ax.spines.values():
        spine.set_color("tab:red")
        spine.set_linewidth(1.2)
    ax.set_xlabel(f"{ax.get_xlabel()}\n⚠ {wrap_text(warning, 30)}", color="tab:red")


def run_status_text(row: Any, profile: Mapping[str, Any] | None) -> str:
    """Why a run has no profile to draw: its summary status (and missing files), else the
    profile's own status."""
    if row is None:
        return "not run"
    if row.status == "missing":
        files = getattr(row, "missing_files", "") or ""
        return "missing" + ("\n" + wrap_text(files, 22) if files else "")
    if row.status != "ok":
        return str(row.status)
    if profile is None:
        return "profile.json is missing"
    return f"profile status: {profile.get('status', '?')}"
