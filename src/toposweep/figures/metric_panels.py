"""Metrics against the swept hyperparameter (metric_panels.png): the papers' panels of saddles,
persistence, test error, λ₁ and the trace against β, mean ± sd over seeds."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import NullFormatter

from ..aggregate import finished, is_log_spaced, metric_label, seed_statistics, swept_parameters
from .common import (PAPER_CONTEXT, choose_parameter, default_panel_metrics, message_axes,
                     no_parameter_figure)

PANEL_LOG_RANGE = 10.0  # the y axis goes log above this span: λ₁ or the trace span 75x in a sweep


def from_inputs(inputs: Mapping[str, str], settings: Mapping[str, Any],
                problem: Mapping[str, Any], title: str = "") -> plt.Figure:
    """The figure rule's call: the summary (`inputs["summary"]`) and the `figures` settings
    (parameter, panel_metrics, log_x)."""
    table = pd.read_parquet(inputs["summary"])
    parameter = choose_parameter(table, settings.get("parameter"))
    if parameter is None:
        return no_parameter_figure("metric panels", title)
    metrics = settings.get("panel_metrics") or default_panel_metrics(table)
    return metric_panels(table, parameter, metrics, title, settings.get("log_x"))


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
        if log_x is None:
            log_x = is_log_spaced(pd.to_numeric(table[parameter], errors="coerce").dropna())
        for ax, metric in zip(axes.ravel(), metrics):
            _draw_panel(ax, table, parameter, metric, log_x)
        for ax in axes.ravel()[len(metrics):]:
            ax.set_visible(False)
        figure.suptitle((title + "\n" if title else "") + _seeds_subtitle(table, parameter))
        return figure


def _draw_panel(ax, table: pd.DataFrame, parameter: str, metric: str, log_x: bool) -> None:
    """One metric: a line with error bars and the seeds as dots per combination of the other
    swept parameters."""
    stats = seed_statistics(table, parameter, metric)
    if stats.empty:
        message_axes(ax, f"{metric_label(metric)}:\nno finished run has this metric",
                     metric_label(metric))
        return
    others = [p for p in swept_parameters(table) if p != parameter]
    done = finished(table)
    positive = pd.to_numeric(done[metric], errors="coerce")
    positive = positive[np.isfinite(positive)]
    log_y = bool(len(positive) and positive.min() > 0
                 and positive.max() / positive.min() > PANEL_LOG_RANGE)
    groups = stats.groupby(others, sort=True) if others else [((), stats)]
    for colour, (key, group) in zip(sns.color_palette("colorblind"), groups):
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
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(metric_label(parameter))
    ax.set_ylabel(metric_label(metric))
    ax.grid(alpha=0.3)
    if others:
        ax.legend(fontsize=7)


def _seeds_subtitle(table: pd.DataFrame, parameter: str) -> str:
    n_seeds = finished(table).groupby(parameter)["seed"].nunique()
    seeds_text = (f"{n_seeds.min()}" if len(n_seeds) and n_seeds.min() == n_seeds.max()
                  else f"{n_seeds.min()}–{n_seeds.max()}" if len(n_seeds) else "0")
    return ("one seed per value" if seeds_text == "1" else
            f"mean ± sd over {seeds_text} seeds per value (dots: single seeds; log axes: "
            "min–max bars)")
