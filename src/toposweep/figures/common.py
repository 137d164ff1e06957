"""What every figure shares: the matplotlib backend and text sizes, atomic saving, the loss
scale, small text helpers, and the figure settings resolved against a summary (which
hyperparameter, which metrics, the landscapes' settings and profiles)."""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # files only; no display on cluster nodes

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..aggregate import evaluation_metrics, swept_parameters  # noqa: E402
from ..io import atomic_path, json_attribute, read_json  # noqa: E402
from ..schema import stage_settings  # noqa: E402

WIDE_RANGE = 100.0  # positive values spanning more than this factor get a log axis
PAPER_CONTEXT = {"font.size": 9, "axes.titlesize": 9.5, "axes.labelsize": 9,
                 "xtick.labelsize": 8, "ytick.labelsize": 8, "legend.fontsize": 8}


def save_figure(figure: plt.Figure, paths: Iterable[str | os.PathLike], dpi: int | None = None) -> None:
    """Write the figure to every path (format from the suffix), each atomically, so a killed
    job leaves no truncated PNG; then close it. dpi None: the schema's figures.dpi."""
    for path in paths:
        path = Path(path)
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format=path.suffix.lstrip("."), bbox_inches="tight",
                           dpi=dpi or stage_settings("figures")["dpi"])
    plt.close(figure)


def message_axes(ax: plt.Axes, text: str, title: str | None = None) -> None:
    """An empty axes that says why there is nothing to draw (a figure never just fails)."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_color("0.8")
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize="medium",
            transform=ax.transAxes, color="0.25")
    if title:
        ax.set_title(title)


def no_parameter_figure(what: str, title: str) -> plt.Figure:
    """A small figure saying that an experiment without a swept hyperparameter has no `what`
    (the rule still has to write its file)."""
    with plt.rc_context(PAPER_CONTEXT):
        figure, ax = plt.subplots(figsize=(6, 2))
        message_axes(ax, f"No swept hyperparameter in this experiment: no {what}.", title or None)
        return figure


@dataclass(frozen=True)
class LossScale:
    """Linear or log10 display of loss values (log when positive and spanning > WIDE_RANGE:
    a failing model's losses would squash everything else into one colour)."""

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


# --- text ---------------------------------------------------------------------------------


def sort_key(value: Any) -> tuple[int, Any]:
    """Numbers in numeric order, then anything else by its text (mixed swept values)."""
    return (0, float(value)) if isinstance(value, (int, float, np.number)) else (1, str(value))


def format_value(value: Any) -> str:
    """A swept value or metric as a reader writes it: 0.01, 1e+04, 'adam'."""
    return f"{value:g}" if isinstance(value, (float, np.floating, int, np.integer)) else str(value)


def wrap_text(text: str, width: int) -> str:
    """At most four wrapped lines: a message must fit its panel."""
    return "\n".join(textwrap.wrap(text, width)[:4])


def profile_counts(profile: Mapping[str, Any]) -> tuple[int, int]:
    """(minima, saddles) of a profile.json; a saddle where several basins merge (a multi-saddle,
    common on graphs) is one saddle, as in topology.json's n_saddles."""
    return len(profile["minima"]), len({saddle["node"] for saddle in profile["saddles"]})


def counts_text(n_minima: int, n_saddles: int) -> str:
    """'1 minimum · 0 saddles', '5 minima · 4 saddles': what a profile shows, in words that
    match (its bands are merge-tree arcs, not basins of minima, so they are not counted)."""
    return (f"{n_minima} minim{'um' if n_minima == 1 else 'a'} · "
            f"{n_saddles} saddle{'' if n_saddles == 1 else 's'}")


def status_text(stage: Any, filename: str) -> str:
    """Why a stage has nothing to draw: its file is missing, or its status and message."""
    if stage is None:
        return f"{filename} is missing"
    if hasattr(stage, "attrs"):  # a Landscape
        status, message = stage.attrs.get("status", "?"), stage.attrs.get("message", "")
    else:
        status, message = stage.get("status", "?"), stage.get("message", "")
    text = f"status: {status}"
    if message:
        text += "\n" + wrap_text(str(message), 45)
    return text


def read_optional_json(path: Path | None) -> dict[str, Any] | None:
    return read_json(path) if path is not None and path.exists() else None


# --- what to draw (figure settings resolved against a summary) ------------------------------


def choose_parameter(table: pd.DataFrame, requested: str | None = None) -> str | None:
    """The hyperparameter on the x axis / heat-map columns: `requested` (must be swept), else the
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
    combinations gets rows of its own in the value × seed figures)."""
    return [p for p in swept_parameters(table)
            if p != parameter and table[p].nunique(dropna=True) > 1]


def default_panel_metrics(table: pd.DataFrame) -> list[str]:
    """The papers' panels: saddles, average persistence, the test metrics, λ₁ and the trace."""
    return ["n_saddles", "avg_persistence", *evaluation_metrics(table), "top_eigenvalue", "trace"]


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
