"""Drawing primitives of a run's training, Hessian and predictions, each on a given axes (or
subfigure): training curve, spectral density, the PINN's u(x, t), predicted against true
targets, segmentation examples, and a table of the run's numbers. The run panel composes them."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import ListedColormap, Normalize

from ..aggregate import metric_label
from .common import WIDE_RANGE, format_value, message_axes

SEGMENTATION_KEYS = ("segmentation_images", "segmentation_masks", "segmentation_predicted",
                     "class_names")
MAX_SEGMENTATION_EXAMPLES = 3  # columns of the examples; a fourth makes them too small to read


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
        ax.legend(loc="upper right")


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


def draw_solution(ax, predictions: Mapping[str, np.ndarray], key: str, title: str,
                  norm: Normalize) -> Any:
    """u(x, t) as a colour map, t horizontal and x vertical (as in Krishnapriyan et al.)."""
    mesh = ax.pcolormesh(predictions["t"], predictions["x"], np.asarray(predictions[key]).T,
                         cmap="RdBu_r", norm=norm, shading="auto", rasterized=True)
    ax.set_xlabel("t")
    ax.set_ylabel("x")
    ax.set_title(title)
    return mesh


def draw_scatter(ax, predictions: Mapping[str, np.ndarray]) -> None:
    """Predicted against true test targets, with the identity line."""
    truth = np.asarray(predictions["y_true"]).ravel()
    predicted = np.asarray(predictions["y_pred"]).ravel()
    ax.scatter(truth, predicted, s=8, alpha=0.6, color="tab:blue")
    low, high = float(np.nanmin(truth)), float(np.nanmax(truth))
    ax.plot([low, high], [low, high], color="0.4", lw=1, ls="--")
    ax.set_xlabel("true target")
    ax.set_ylabel("predicted")
    ax.set_title("test predictions")


def run_numbers(metrics: Mapping[str, Any] | None, hessian: Mapping[str, Any] | None,
                topology: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """(label, value) of a run's test and training metrics, λ₁, the trace and the topology
    counts: what a panel shows when the problem's predictions are not drawn."""
    def number(value: Any) -> str:  # four significant digits: a table, not a file
        return f"{value:.4g}" if isinstance(value, float) else format_value(value)

    rows = []
    for key, value in (metrics or {}).items():
        if (key.startswith("test_") or key.startswith("final_train")) and isinstance(value, float):
            rows.append((metric_label(key), number(value)))
    if hessian and hessian.get("status") == "ok":
        rows += [(metric_label(k), number(hessian[k])) for k in ("top_eigenvalue", "trace")
                 if isinstance(hessian.get(k), float)]
    if topology and topology.get("status") == "ok":
        rows += [(metric_label(k), number(topology["metrics"][k]))
                 for k in ("n_minima", "n_saddles", "avg_persistence", "smad")
                 if k in topology["metrics"]]
    return rows


def draw_run_numbers(ax, rows: Sequence[tuple[str, str]]) -> None:
    """`run_numbers` as a two-column table, names left, values right in bold."""
    ax.axis("off")
    ax.set_title("the run's numbers")
    if not rows:
        ax.text(0.5, 0.5, "no numbers: the run did not finish", ha="center", va="center")
        return
    step = min(0.09, 0.9 / len(rows))
    for index, (name, value) in enumerate(rows):
        y = 0.95 - index * step
        ax.text(0.05, y, name, ha="left", va="top", transform=ax.transAxes)
        ax.text(0.75, y, value, ha="right", va="top", fontweight="bold", transform=ax.transAxes)


# --- segmentation ---------------------------------------------------------------------------


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


def _draw_example(true_axes, predicted_axes, image, mask, predicted, colormap) -> None:
    """One test image's four cells: image, true mask, predicted mask, wrong pixels."""
    image = _display_image(image)
    true_axes[0].imshow(image, cmap="gray" if image.ndim == 2 else None, interpolation="nearest")
    _mask_image(true_axes[1], mask, colormap)
    _mask_image(predicted_axes[0], predicted, colormap)
    # wrong pixels black on the faded image, so errors read against the scene; pixels
    # without a true class (ignore labels) are not scored
    labelled = (mask >= 0) & (mask < colormap.N)
    wrong = labelled & (predicted != mask)
    share = wrong.sum() / max(int(labelled.sum()), 1)
    predicted_axes[1].set_xlabel(f"{100 * share:.1f} %")
    grey = image.mean(axis=-1) if image.ndim == 3 else image.astype(float)
    faded = 0.75 + 0.25 * (grey - grey.min()) / (np.ptp(grey) or 1.0)
    predicted_axes[1].imshow(np.where(wrong, 0.0, faded), cmap="gray", vmin=0, vmax=1,
                             interpolation="nearest")


def _class_legend(figure, names: Sequence[str], colormap, outside: bool) -> None:
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=colormap(index), edgecolor="0.3", linewidth=0.4, label=name)
               for index, name in enumerate(names)]
    if outside:
        handles.append(Patch(facecolor="0.85", edgecolor="0.3", linewidth=0.4,
                             label="no class (ignored)"))
    figure.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4),
                  title="classes", frameon=False)


def draw_segmentation_examples(true_figure, predicted_figure, segmentation: Mapping[str, np.ndarray],
                               metrics: Mapping[str, Any] | None) -> None:
    """Up to MAX_SEGMENTATION_EXAMPLES test images: in `true_figure` the images over their true
    masks, in `predicted_figure` the predicted masks over the wrongly classified pixels (with
    each image's share of them); one legend names the classes. The title carries the test set's
    pixel accuracy and mean IoU from train_metrics.json (the examples are too few to judge by)."""
    images, masks, predicted = (np.asarray(segmentation[key])[:MAX_SEGMENTATION_EXAMPLES]
                                for key in SEGMENTATION_KEYS[:3])
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
        _draw_example(true_axes[:, k], predicted_axes[:, k], images[k], masks[k], predicted[k],
                      colormap)
    for ax in [*true_axes.ravel(), *predicted_axes.ravel()]:
        ax.set_xticks([])
        ax.set_yticks([])
    # two-line labels: a row of three images on a third of the panel is under an inch tall
    for axes, labels in ((true_axes, ("image", "true\nmask")),
                         (predicted_axes, ("predicted\nmask", "wrong\npixels"))):
        axes[0, 0].set_ylabel(labels[0])
        axes[1, 0].set_ylabel(labels[1])
    true_figure.suptitle(f"{n} test images\nwith their true masks")
    scores = [f"{label} {value:.3f}" for key, label in (("test_pixel_accuracy", "pixel accuracy"),
                                                         ("test_mean_iou", "mean IoU"))
              if (value := (metrics or {}).get(key)) is not None and np.isfinite(value)]
    predicted_figure.suptitle("predicted masks, wrong pixels black"
                              + (f"\n(test set: {', '.join(scores)})" if scores else ""))
    outside = any(np.any((m < 0) | (m >= len(names))) for m in (masks, predicted))
    _class_legend(true_figure, names, colormap, outside)
