"""Figures: every figure builds from real stage files and writes PNG and PDF; the drawings
carry the numbers they claim (profiles rebuilt exactly, tree layout, scales, messages)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from toposweep import plots
from toposweep.aggregate import correlations, summary_table
from toposweep.io import read_json, read_landscape
from toposweep.topology import landscape_profile, merge_tree

from synthetic_runs import write_experiment

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    runs = write_experiment(results)
    return results, runs, summary_table(runs)


def figure_texts(figure) -> str:
    """Every text drawn in a figure (titles, labels, annotations), for assertions."""
    from matplotlib.text import Text

    texts = [t.get_text() for t in figure.findobj(Text)]
    return "\n".join(texts)


def assert_written(figure, tmp_path, name):
    paths = [tmp_path / f"{name}.png", tmp_path / f"{name}.pdf"]
    plots.save_figure(figure, paths, dpi=60)
    assert paths[0].read_bytes()[:8] == PNG_SIGNATURE
    assert paths[1].read_bytes()[:5] == b"%PDF-"
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave nothing behind


def test_correlation_heatmap_shows_both_coefficients_with_spelled_out_names(experiment, tmp_path):
    _, _, table = experiment
    result = correlations(table)
    figure = plots.correlation_heatmap(result, "pinn")
    text = figure_texts(figure)
    assert "Pearson r (n = 6 finished runs)" in text and "Spearman ρ (n = 6 finished runs)" in text
    assert "number of saddles" in text and "top Hessian eigenvalue λ₁" in text
    assert "correlation coefficient" in text  # the colour bar is labelled
    value = result.set_index(["topology_metric", "other"]).loc[("n_minima", "beta"), "spearman_rho"]
    assert f"{value:.2f}" in text
    assert_written(figure, tmp_path, "correlations")


def test_correlation_heatmap_says_when_there_are_not_enough_runs(experiment, tmp_path):
    _, _, table = experiment
    few = table[table["beta"].isin([1, 8])]  # two finished runs
    figure = plots.correlation_heatmap(correlations(few), "few")
    assert "not enough runs: 2 finished with both values, need at least 3" in figure_texts(figure)
    assert_written(figure, tmp_path, "none")


def test_metric_panels_plot_means_over_seeds(experiment, tmp_path):
    _, _, table = experiment
    metrics = ["n_saddles", "top_eigenvalue", "trace"]
    figure = plots.metric_panels(table, "beta", metrics, "pinn")
    axes = [ax for ax in figure.axes if ax.get_visible()]
    assert len(axes) == 3
    eigenvalue_axes = next(ax for ax in axes if ax.get_ylabel() == "top Hessian eigenvalue λ₁")
    line = eigenvalue_axes.lines[0]
    assert np.asarray(line.get_xdata(), dtype=float).tolist() == [1, 2, 4]
    np.testing.assert_allclose(np.asarray(line.get_ydata(), dtype=float), [100.5, 200.5, 400.5])
    assert eigenvalue_axes.get_xscale() == "log"  # 1, 2, 4: evenly spaced in log
    assert plots.metric_panels(table, "beta", metrics, log_x=False).axes[0].get_xscale() == "linear"
    assert "mean ± sd over 2 seeds" in figure_texts(figure)
    assert_written(figure, tmp_path, "panels")


def test_run_panel_of_a_finished_run_has_every_view(experiment, tmp_path):
    _, runs, _ = experiment
    figure = plots.run_panel(runs[4].directory, "pinn β = 4, seed 0")
    text = figure_texts(figure)
    for title in ("loss landscape (contour)", "loss landscape (surface)", "merge tree",
                  "persistence diagram (0-dimensional)", "landscape profile",
                  "Hessian spectral density (λ₁ = 400)", "training curve", "predicted u(x, t)",
                  "exact u(x, t) = sin(x − βt)"):
        assert title in text, title
    n_minima = read_json(runs[4].directory / "topology.json")["metrics"]["n_minima"]
    assert f"merge tree ({n_minima} minima" in text
    assert_written(figure, tmp_path, "run")


def test_run_panel_of_a_diverged_run_says_why_instead_of_crashing(experiment, tmp_path):
    _, runs, _ = experiment
    figure = plots.run_panel(runs[6].directory, "diverged")
    text = figure_texts(figure)
    assert "training status: diverged" in text
    assert "status: skipped\ntraining status is 'diverged'" in text
    assert_written(figure, tmp_path, "diverged")
    missing = plots.run_panel(runs[7].directory, "missing")
    assert "landscape.h5 is missing" in figure_texts(missing)


def test_seed_heatmap_places_each_run_and_its_status(experiment, tmp_path):
    results, _, table = experiment
    profiles = plots.load_profiles(table, "beta", results)
    assert profiles[(8, 1)] is None and profiles[(8, 0)]["status"] == "skipped"
    figure = plots.seed_heatmap(table, "beta", "test_relative_l2", profiles, "pinn")
    text = figure_texts(figure)
    assert "0.041" in text  # beta 4, seed 1: 0.04 + 0.001
    assert "diverged" in text and "missing" in text
    assert "β = 4" in text and "seed 1" in text
    assert_written(figure, tmp_path, "seeds")


def test_profile_rebuilt_from_json_equals_the_library_profile(experiment):
    _, runs, _ = experiment
    loss = read_landscape(runs[4].directory / "landscape.h5").loss
    expected = landscape_profile(merge_tree(loss))
    rebuilt = plots.profile_from_dict(read_json(runs[4].directory / "profile.json"))
    assert rebuilt.n_basins == expected.n_basins
    np.testing.assert_allclose(rebuilt.levels, expected.levels)
    np.testing.assert_allclose(rebuilt.widths, expected.widths)
    np.testing.assert_array_equal(rebuilt.basin_parent, expected.basin_parent)
    assert rebuilt.top_width == pytest.approx(expected.n_vertices)
    logged = plots.profile_from_dict(read_json(runs[4].directory / "profile.json"), plots.LossScale(True))
    np.testing.assert_allclose(logged.levels, np.log10(expected.levels))


def test_merge_tree_layout_puts_leaves_in_a_row_and_parents_over_their_children():
    tree = {"root": 4, "nodes": [{"id": 0, "value": 0.0}, {"id": 1, "value": 1.0},
                                 {"id": 2, "value": 0.5}, {"id": 3, "value": 2.0},
                                 {"id": 4, "value": 3.0}],
            "arcs": [{"child": 0, "parent": 3}, {"child": 1, "parent": 3},
                     {"child": 3, "parent": 4}, {"child": 2, "parent": 4}]}
    position = plots.merge_tree_layout(tree)
    assert sorted(position[leaf] for leaf in (0, 1, 2)) == [0, 1, 2]
    assert position[3] == (position[0] + position[1]) / 2
    assert position[4] == (position[3] + position[2]) / 2


def test_loss_scale_goes_log_only_for_wide_positive_ranges():
    assert plots.LossScale.for_values([1e-4, 1.0, 2e4]).log
    assert not plots.LossScale.for_values([0.4, 4.2]).log
    assert not plots.LossScale.for_values([-1.0, 1e4]).log
    assert plots.LossScale(True)(100.0) == 2.0 and plots.LossScale(True).label == "log₁₀ loss"


def test_choose_parameter_checks_the_request(experiment):
    _, _, table = experiment
    assert plots.choose_parameter(table) == "beta"
    with pytest.raises(ValueError, match=r"figures parameter 'lr' is not swept in this experiment; swept: \['beta'\]"):
        plots.choose_parameter(table, "lr")
    assert plots.default_panel_metrics(table) == ["n_saddles", "avg_persistence", "test_relative_l2",
                                                  "test_mean_abs_error", "top_eigenvalue", "trace"]


def test_plots_do_not_import_snakemake():
    import subprocess
    import sys

    code = "import sys, toposweep.plots, toposweep.aggregate; print('snakemake' in sys.modules)"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert output.stdout.strip() == "False"


def test_a_three_dimensional_landscape_is_drawn_as_central_slices(tmp_path):
    grid = np.add.outer(np.add.outer(np.arange(5.0), np.arange(5.0)), np.arange(5.0))
    assert plots.central_slice(grid, (0, 2)).tolist() == grid[:, 2, :].tolist()
    from synthetic_runs import write_run
    from toposweep.io import write_landscape
    from toposweep.topology import write_topology_outputs

    run = write_run(tmp_path, "cube", 1, 0, 1)
    axis = np.linspace(-1, 1, 5)
    write_landscape(run.directory / "landscape.h5", (grid - 6.0) ** 2 + 1.0, [axis] * 3,
                    attrs={"status": "ok", "settings": {"directions": "hessian"}})
    write_topology_outputs((grid - 6.0) ** 2 + 1.0, run.directory, axes=[axis] * 3)
    text = figure_texts(plots.run_panel(run.directory, "cube"))
    assert "3-D landscape: slice at α2 = 0" in text and "3-D landscape: slice at α1 = 0" in text
    assert "Hessian eigenvector 1" in text
