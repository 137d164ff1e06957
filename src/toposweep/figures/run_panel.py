"""The papers' per-run panel (runs/<point>_seed~<seed>.png): a run's landscape, its topology,
Hessian, training curve and predictions on one page, sized to read at the HTML report's width
(about 1000 px: the smallest text is then about 12 px)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import TwoSlopeNorm

from ..io import json_attribute, read_json, read_landscape
from .common import LossScale, message_axes, read_optional_json, status_text
from .drawing import (MAX_DRAWN_MINIMA, central_slice, count_nodes, display_tree,
                      draw_landscape_contour, draw_landscape_surface, draw_merge_tree,
                      draw_persistence_diagram, draw_profile, draw_scattered_landscape,
                      draw_trajectory, landscape_axis_label)
from .run_drawing import (SEGMENTATION_KEYS, draw_run_numbers, draw_scatter,
                          draw_segmentation_examples, draw_solution, draw_spectral_density,
                          draw_training_curve, run_numbers)

# 3 x 3 panels on 12 x 11 inches: at 1000 px wide, 10.5 pt is 12 px (15 x 13 in at 8 pt was 7)
PANEL_SIZE = (12.0, 11.0)
PANEL_CONTEXT = {"font.size": 11, "axes.titlesize": 11.5, "axes.labelsize": 11,
                 "xtick.labelsize": 10.5, "ytick.labelsize": 10.5, "legend.fontsize": 10,
                 "legend.title_fontsize": 10, "figure.titlesize": 13.5}


def from_inputs(inputs: Mapping[str, str], settings: Mapping[str, Any],
                problem: Mapping[str, Any], title: str = "") -> plt.Figure:
    """The figure rule's call: the run's files by name; the problem's `run_panel_plot`."""
    return run_panel(inputs, title, problem.get("run_panel_plot"))


@dataclass
class RunFiles:
    """What a run panel reads of a run's files (None where a file is missing)."""

    paths: dict[str, Path]
    metrics: dict[str, Any] | None
    topology: dict[str, Any] | None
    hessian: dict[str, Any] | None
    landscape: Any
    predictions: dict[str, np.ndarray]

    @classmethod
    def read(cls, files: Mapping[str, str | os.PathLike]) -> "RunFiles":
        paths = {key: Path(path) for key, path in files.items() if Path(path).exists()}
        predictions = {}
        if "predictions" in paths:
            with np.load(paths["predictions"]) as npz:
                predictions = {key: npz[key] for key in npz.files}
        return cls(paths, read_optional_json(paths.get("train_metrics")),
                   read_optional_json(paths.get("topology")),
                   read_optional_json(paths.get("hessian")),
                   read_landscape(paths["landscape"]) if "landscape" in paths else None,
                   predictions)

    @property
    def landscape_ok(self) -> bool:
        return self.landscape is not None and self.landscape.attrs.get("status", "ok") == "ok"

    @property
    def scale(self) -> LossScale:
        return LossScale.for_values(self.landscape.loss) if self.landscape_ok else LossScale(False)


def run_panel(files: Mapping[str, str | os.PathLike], title: str = "",
              run_panel_plot: str | None = None) -> plt.Figure:
    """The papers' per-run figure from a run's files (`files`: train_metrics, curve,
    predictions, hessian, density, landscape, topology, merge_tree, persistence, profile; a
    missing key or file gets a panel saying so): landscape contour (with the training path on a
    trajectory_pca plane) and 3-D surface (2-D; central slices for 3-D and up, a line for 1-D),
    merge tree, persistence diagram, landscape profile, Hessian spectral density, training
    curve, and what the problem's `run_panel_plot` names: the PINN's predicted vs exact u(x, t)
    ("field"), test images with true and predicted masks ("segmentation"), or predicted against
    true targets ("scatter"); without one, a table of the run's numbers."""
    run = RunFiles.read(files)
    with plt.rc_context(PANEL_CONTEXT):
        figure = plt.figure(figsize=PANEL_SIZE, layout="constrained")
        grid = figure.add_gridspec(3, 3)
        slots = [grid[i, j] for i in range(3) for j in range(3)]
        _draw_landscape(figure, slots[:2], run)
        _draw_topology(figure, slots[2:5], run)
        density_ax = figure.add_subplot(slots[5])
        if run.hessian is not None and run.hessian.get("status") == "ok" and "density" in run.paths:
            draw_spectral_density(density_ax, pd.read_csv(run.paths["density"]),
                                  run.hessian.get("eigenvalues") or [])
        else:
            message_axes(density_ax, status_text(run.hessian, "hessian.json"),
                         "Hessian spectral density")
        curve_ax = figure.add_subplot(slots[6])
        if "curve" in run.paths:
            draw_training_curve(curve_ax, pd.read_csv(run.paths["curve"]))
        else:
            message_axes(curve_ax, "curve.csv is missing", "training curve")
        _draw_predictions(figure, grid, run, run_panel_plot)
        status = run.metrics.get("status", "?") if run.metrics else "missing (no train_metrics.json)"
        heading = title or str(files.get("train_metrics", ""))
        if status != "ok":
            heading += f" — training status: {status}"
        figure.suptitle(heading, color="black" if status == "ok" else "tab:red")
        return figure


def _draw_landscape(figure, slots, run: RunFiles) -> None:
    """Slots 1 and 2: contour and surface (2-D), projection and radial loss (scattered), the
    line (1-D), or two central slices (3-D and up)."""
    first, scale = figure.add_subplot(slots[0]), run.scale
    if not run.landscape_ok:
        reason = status_text(run.landscape, "landscape.h5")
        message_axes(first, reason, "loss landscape")
        message_axes(figure.add_subplot(slots[1]), reason, "3-D surface")
        return
    landscape = run.landscape
    settings = json_attribute(landscape.attrs.get("settings"))
    loss, axes = landscape.loss, landscape.axes
    if landscape.scattered:
        draw_scattered_landscape(first, figure.add_subplot(slots[1]), landscape.samples, loss,
                                 scale, settings)
    elif loss.ndim == 1:
        first.plot(axes[0], scale(loss), color="tab:blue")
        first.set_xlabel(landscape_axis_label(0, settings))
        first.set_ylabel(scale.label)
        first.set_title("loss landscape (1-D)")
        message_axes(figure.add_subplot(slots[1]), "1-D landscape: no surface", "3-D surface")
    elif loss.ndim == 2:
        draw_landscape_contour(first, loss, axes, scale, landscape_axis_label(1, settings),
                               landscape_axis_label(0, settings), "loss landscape (contour)")
        if "trajectory" in landscape.datasets:
            explained = landscape.attrs.get("explained_variance_ratio")
            draw_trajectory(first, landscape.datasets["trajectory"],
                            json.loads(explained) if isinstance(explained, str) else explained)
        draw_landscape_surface(figure.add_subplot(slots[1], projection="3d"), loss, axes, scale,
                               "loss landscape (surface)")
    else:
        for slot_ax, keep in ((first, (0, 1)), (figure.add_subplot(slots[1]), (0, 2))):
            others = [a for a in range(loss.ndim) if a not in keep]
            draw_landscape_contour(
                slot_ax, central_slice(loss, keep), [axes[keep[0]], axes[keep[1]]], scale,
                landscape_axis_label(keep[1], settings), landscape_axis_label(keep[0], settings),
                f"{loss.ndim}-D landscape:\nslice at α{','.join(map(str, others))} = 0")


def _draw_topology(figure, slots, run: RunFiles) -> None:
    """Slots 3 to 5: merge tree (its most persistent minima when busy), persistence diagram,
    landscape profile."""
    topology, paths, scale = run.topology, run.paths, run.scale
    if not (topology is not None and topology.get("status") == "ok"
            and "merge_tree" in paths and "profile" in paths):
        reason = status_text(topology, "topology.json")
        for slot, name in zip(slots, ["merge tree", "persistence diagram", "landscape profile"]):
            message_axes(figure.add_subplot(slot), reason, name)
        return
    profile = read_json(paths["profile"])
    value_max = topology["metrics"]["value_max"]
    nonfinite_height = float(scale(profile["nonfinite_height"]
                                   if profile.get("nonfinite_height") is not None else value_max))
    tree_ax = figure.add_subplot(slots[0])
    n_minima = topology["metrics"]["n_minima"]
    shown = (display_tree(run.landscape, topology["settings"])
             if run.landscape_ok and n_minima > MAX_DRAWN_MINIMA else None)
    draw_merge_tree(tree_ax, shown or read_json(paths["merge_tree"]), scale, nonfinite_height)
    if shown is not None:
        tree_ax.set_title(f"merge tree: the {count_nodes(shown, 'minimum')} most persistent\n"
                          f"of {n_minima} minima")
    draw_persistence_diagram(figure.add_subplot(slots[1]), pd.read_csv(paths["persistence"]),
                             topology["global_minimum"]["value"], scale, value_max)
    draw_profile(figure.add_subplot(slots[2]), profile, scale,
                 "samples" if run.landscape_ok and run.landscape.scattered else "grid vertices")


def _draw_predictions(figure, grid, run: RunFiles, run_panel_plot: str | None) -> None:
    """Slots 8 and 9 (the last row's second and third): what the problem declares
    (`run_panel_plot`) and its predictions hold; else the run's numbers across both."""
    predictions, metrics = run.predictions, run.metrics
    slots = [grid[2, 1], grid[2, 2]]
    if run_panel_plot == "segmentation" and all(key in predictions for key in SEGMENTATION_KEYS):
        # one subfigure across both slots: a slot's own margins (the colour bar of the profile
        # above it) would shrink the images to half its width
        true_figure, predicted_figure = figure.add_subfigure(grid[2, 1:]).subfigures(1, 2)
        draw_segmentation_examples(true_figure, predicted_figure, predictions, metrics)
        return
    if run_panel_plot == "field" and "u_pred" in predictions:
        limit = max(float(np.nanmax(np.abs(predictions["u_exact"]))), 1e-12)
        norm = TwoSlopeNorm(vcenter=0.0, vmin=-limit, vmax=limit)
        error = metrics.get("test_relative_l2") if metrics else None
        predicted_title = "predicted u(x, t)" + (f" (relative L2 {error:.3g})" if error is not None
                                                 and np.isfinite(error) else "")
        pred_ax, exact_ax = figure.add_subplot(slots[0]), figure.add_subplot(slots[1])
        draw_solution(pred_ax, predictions, "u_pred", predicted_title, norm)
        mesh = draw_solution(exact_ax, predictions, "u_exact", "exact u(x, t) = sin(x − βt)", norm)
        figure.colorbar(mesh, ax=[pred_ax, exact_ax], label="u", shrink=0.85)
        return
    if run_panel_plot == "scatter" and "y_pred" in predictions:
        draw_scatter(figure.add_subplot(slots[0]), predictions)
        figure.add_subplot(slots[1]).set_visible(False)
    else:
        draw_run_numbers(figure.add_subplot(grid[2, 1:]), run_numbers(metrics, run.hessian,
                                                                      run.topology))
