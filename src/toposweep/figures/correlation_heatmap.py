"""The correlation heatmap (correlations.png): Pearson and Spearman coefficients of the topology
metrics against the ML/Hessian metrics and hyperparameters, significant cells starred."""

from __future__ import annotations

from typing import Any, Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..aggregate import metric_label
from ..statistics import EXACT_MAX_N, SIGNIFICANCE
from .common import PAPER_CONTEXT, message_axes

COEFFICIENTS = (("pearson_r", "pearson_q", "Pearson r"), ("spearman_rho", "spearman_q", "Spearman ρ"))


def from_inputs(inputs: Mapping[str, str], settings: Mapping[str, Any],
                problem: Mapping[str, Any], title: str = "") -> plt.Figure:
    """The figure rule's call: correlations.csv (`inputs["correlations"]`)."""
    return correlation_heatmap(pd.read_csv(inputs["correlations"]), title)


def correlation_heatmap(correlations: pd.DataFrame, title: str = "") -> plt.Figure:
    """Pearson and Spearman coefficients side by side: rows are topology metrics, columns the
    ML/Hessian metrics and hyperparameters, annotated, diverging palette centred at 0. Pairs
    without enough runs are blank; if no pair has enough, the figure says so."""
    with plt.rc_context(PAPER_CONTEXT):
        if correlations.dropna(subset=["pearson_r", "spearman_rho"], how="all").empty:
            return _no_correlations_figure(correlations, title)
        rows = list(dict.fromkeys(correlations["topology_metric"]))
        columns = list(dict.fromkeys(correlations["other"]))
        width = 2 * (1.6 + 0.72 * len(columns)) + 2.6
        height = 1.9 + 0.42 * len(rows)
        figure, axes = plt.subplots(1, 2, figsize=(width, height), gridspec_kw={"wspace": 0.06})
        colour_axes = figure.add_axes([0.0, 0.0, 0.01, 0.01])  # placed below
        for index, (ax, coefficient) in enumerate(zip(axes, COEFFICIENTS)):
            _draw_coefficient(ax, correlations, rows, columns, coefficient,
                              colour_axes if index == 1 else None)
        axes[0].tick_params(axis="y", rotation=0)
        axes[1].tick_params(axis="y", labelleft=False, left=False)
        axes[0].set_ylabel("topology metric")
        figure.canvas.draw()
        right = axes[1].get_position()
        colour_axes.set_position([right.x1 + 0.012, right.y0, 0.012, right.height])
        if title:
            figure.suptitle(title, y=1.0)
        renderer = figure.canvas.get_renderer()  # below the rotated tick labels, not over them
        bottom = min(ax.get_tightbbox(renderer).y0 for ax in axes) / figure.bbox.height
        figure.text(0.01, bottom - 0.02, "\n".join(_notes(correlations, rows)), fontsize=7,
                    color="0.3", va="top")
        return figure


def _no_correlations_figure(correlations: pd.DataFrame, title: str) -> plt.Figure:
    figure, ax = plt.subplots(figsize=(6.5, 2.6))
    notes = correlations["note"].dropna().unique() if "note" in correlations else []
    max_n = int(correlations["n"].max()) if len(correlations) else 0
    reason = notes[0] if len(notes) else "no metric pairs"
    message_axes(ax, f"No correlations: {reason}.\n(largest number of finished runs "
                     f"with both values: {max_n})", title or None)
    return figure


def _draw_coefficient(ax, correlations: pd.DataFrame, rows: list[str], columns: list[str],
                      coefficient: tuple[str, str, str], colour_axes) -> None:
    """One coefficient's annotated heat map (a star where its q-value is significant); the
    colour bar goes to `colour_axes` when given."""
    column, q_column, name = coefficient

    def pivot(values: str) -> pd.DataFrame:
        return correlations.pivot(index="topology_metric", columns="other",
                                  values=values).reindex(index=rows, columns=columns)

    values = pivot(column).to_numpy(dtype=float)
    n = pivot("n").to_numpy().ravel()
    n_range = sorted(set(int(v) for v in n if v > 0))
    q = (pivot(q_column).to_numpy(dtype=float) if q_column in correlations
         else np.full(values.shape, np.nan))
    labels = np.vectorize(lambda v, qv: "" if not np.isfinite(v) else
                          f"{v:.2f}{'*' if qv < SIGNIFICANCE else ''}")(values, q)
    column_labels = [metric_label(name) for name in columns]
    sns.heatmap(values, ax=ax, cmap="RdBu_r", vmin=-1, vmax=1,
                center=0, annot=labels, fmt="", annot_kws={"fontsize": 7.5},
                linewidths=0.5, linecolor="white", square=False,
                xticklabels=column_labels, yticklabels=[metric_label(name) for name in rows],
                cbar=colour_axes is not None, cbar_ax=colour_axes,
                cbar_kws={"label": "correlation coefficient"})
    n_text = (f"n = {n_range[0]}" if len(n_range) == 1
              else f"n = {n_range[0]}–{n_range[-1]}" if n_range else "n = 0")
    ax.set_title(f"{name} ({n_text} finished runs)")
    ax.set_xticklabels(column_labels, rotation=35, ha="right")
    ax.set_xlabel("")
    ax.set_ylabel("")


def _notes(correlations: pd.DataFrame, rows: list[str]) -> list[str]:
    """The lines under the heat maps: what a star means, the TTK-style metric's caveat, why
    cells are blank."""
    notes = [heatmap_significance_note(correlations)]
    if "avg_persistence_ttk_csv" in rows:
        notes.append("Average persistence (papers' TTK CSV) counts the global (min, max) pair "
                     "and halves by the diagram's diagonal rows, so it can move against the "
                     "plain average persistence (docs/topology.md).")
    blank = correlations[correlations[["pearson_r", "spearman_rho"]].isna().any(axis=1)]
    if len(blank):
        notes.append("Blank cells: " + "; ".join(
            sorted({f"{metric_label(r.other)}: {r.note}" for r in blank.itertuples()})[:3]))
    return notes


def heatmap_significance_note(correlations: pd.DataFrame) -> str:
    """What a star means in the correlation heatmap, with the number of tests it corrects for."""
    tests = int(np.isfinite(pd.to_numeric(correlations.get("spearman_p"), errors="coerce")).sum())
    methods = sorted(set(correlations.get("p_method", pd.Series(dtype=str)).dropna()))
    exact = (f"; p-values: {' and '.join(methods)}" if methods else "")
    if "asymptotic" in methods:
        exact += f" (exact up to n = {EXACT_MAX_N} runs)"
    return (f"* Benjamini–Hochberg q < {SIGNIFICANCE} over the {tests} pairs of this table{exact}. "
            "95 % bootstrap intervals of ρ: correlations.csv (spearman_low, spearman_high).")
