"""Figures: every figure builds from real stage files and writes PNG and PDF; the drawings
carry the numbers they claim (profiles rebuilt exactly, tree layout, scales, messages)."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from toposweep.aggregate import correlations, metric_label, summary_table
from toposweep.figures import registry
from toposweep.figures.common import (LossScale, choose_parameter, default_panel_metrics,
                                      landscape_description, landscape_settings,
                                      load_profiles, other_varied_parameters, save_figure)
from toposweep.figures.correlation_heatmap import correlation_heatmap
from toposweep.figures.drawing import (central_slice, display_tree, merge_tree_layout,
                                       profile_on_scale)
from toposweep.figures.landscape_profiles import landscape_profiles
from toposweep.figures.metric_panels import metric_panels
from toposweep.figures.run_panel import run_panel
from toposweep.figures.seed_heatmap import seed_heatmap
from toposweep.topology.profile import Profile
from toposweep.io import read_json, read_landscape, write_landscape
from toposweep.topology import landscape_profile, merge_tree

from synthetic_runs import panel_files, write_experiment


@pytest.fixture(autouse=True)
def pinn_labels():
    """The synthetic experiment is PINN-like: figures get the PINN's declared labels (β for
    beta), as the workflow's figure jobs do through --problem."""
    from toposweep.aggregate import problem_labels
    from toposweep.problems import get_problem

    with problem_labels(get_problem("pinn_convection").describe()):
        yield

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
    save_figure(figure, paths, dpi=60)
    assert paths[0].read_bytes()[:8] == PNG_SIGNATURE
    assert paths[1].read_bytes()[:5] == b"%PDF-"
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave nothing behind


def test_correlation_heatmap_shows_both_coefficients_with_spelled_out_names(experiment, tmp_path):
    _, _, table = experiment
    result = correlations(table)
    figure = correlation_heatmap(result, "pinn")
    text = figure_texts(figure)
    assert "Pearson r (n = 6 finished runs)" in text and "Spearman ρ (n = 6 finished runs)" in text
    assert "number of saddles" in text and "top Hessian eigenvalue λ₁" in text
    assert "correlation coefficient" in text  # the colour bar is labelled
    value = result.set_index(["topology_metric", "other"]).loc[("n_minima", "beta"), "spearman_rho"]
    assert f"{value:.2f}" in text
    significant = result[result["significant"]]
    assert len(significant) and all(f"{rho:.2f}*" in text for rho in significant["spearman_rho"])
    tests = int(result["spearman_p"].notna().sum())
    assert f"* Benjamini–Hochberg q < 0.05 over the {tests} pairs of this table" in text
    assert "p-values: exact permutation." in text
    assert_written(figure, tmp_path, "correlations")


def test_correlation_heatmap_says_when_there_are_not_enough_runs(experiment, tmp_path):
    _, _, table = experiment
    few = table[table["beta"].isin([1, 8])]  # two finished runs
    figure = correlation_heatmap(correlations(few), "few")
    assert "not enough runs: 2 finished with both values, need at least 3" in figure_texts(figure)
    assert_written(figure, tmp_path, "none")


def test_metric_panels_plot_means_over_seeds(experiment, tmp_path):
    _, _, table = experiment
    metrics = ["n_saddles", "top_eigenvalue", "trace"]
    figure = metric_panels(table, "beta", metrics, "pinn")
    axes = [ax for ax in figure.axes if ax.get_visible()]
    assert len(axes) == 3
    eigenvalue_axes = next(ax for ax in axes if ax.get_ylabel() == "top Hessian eigenvalue λ₁")
    line = eigenvalue_axes.lines[0]
    assert np.asarray(line.get_xdata(), dtype=float).tolist() == [1, 2, 4]
    np.testing.assert_allclose(np.asarray(line.get_ydata(), dtype=float), [100.5, 200.5, 400.5])
    assert eigenvalue_axes.get_xscale() == "log"  # 1, 2, 4: evenly spaced in log
    assert metric_panels(table, "beta", metrics, log_x=False).axes[0].get_xscale() == "linear"
    assert "mean ± sd over 2 seeds" in figure_texts(figure)
    assert_written(figure, tmp_path, "panels")


def test_run_panel_of_a_finished_run_has_every_view(experiment, tmp_path):
    _, runs, _ = experiment
    figure = run_panel(panel_files(runs[4].directory), "pinn β = 4, seed 0", "field")
    text = figure_texts(figure)
    for title in ("loss landscape (contour)", "loss landscape (surface)", "merge tree",
                  "persistence diagram (0-dimensional)", "landscape profile",
                  "Hessian spectral density (λ₁ = 400)", "training curve", "predicted u(x, t)",
                  "exact u(x, t) = sin(x − βt)"):
        assert title in text, title
    n_minima = read_json(runs[4].directory / "topology.json")["metrics"]["n_minima"]
    assert f"merge tree ({n_minima} minima" in text
    assert_written(figure, tmp_path, "run")


def test_run_panel_of_scattered_samples_shows_their_projection_and_radial_loss(experiment, tmp_path):
    """A 10-D Sobol landscape replaces the contour and surface by the samples' projection on
    (α0, α1) and the loss against the distance from the trained weights; the rest is drawn."""
    from toposweep.sampling import scattered_samples
    from toposweep.topology import write_topology_outputs

    _, runs, _ = experiment
    directory = tmp_path / "scattered"
    shutil.copytree(runs[4].directory, directory)
    samples = scattered_samples("sobol", 2048, 10, 1.0, seed=0)
    loss = 1.0 + np.sum(samples**2, axis=1) - 0.8 * np.exp(-np.sum((samples - 0.4) ** 2, axis=1) / 0.3)
    settings = {"dimensions": 10, "directions": "hessian", "sampling": "sobol", "n_samples": 2048}
    write_landscape(directory / "landscape.h5", loss, None, samples=samples,
                    attrs={"status": "ok", "settings": settings})
    write_topology_outputs(loss, directory, samples=samples, neighbours=12)
    figure = run_panel(panel_files(directory), "pinn β = 4, seed 0 (10-D)", "field")
    text = figure_texts(figure)
    for title in ("2,048 sobol samples in 10-D:\nprojection on α0, α1",
                  "2,048 sobol samples in 10-D:\nloss against distance", "merge tree",
                  "landscape profile", "distance from the trained weights ‖α‖",
                  "samples below the level"):
        assert title in text, title
    assert_written(figure, tmp_path, "scattered")
    assert landscape_description(settings) == (
        "10-D landscapes (top-10 Hessian directions), 2,048 sobol samples")


def test_run_panel_draws_only_the_30_most_persistent_minima_of_a_busy_tree(experiment, tmp_path):
    from toposweep.topology import merge_tree, write_topology_outputs

    _, runs, _ = experiment
    directory = tmp_path / "busy"
    shutil.copytree(runs[4].directory, directory)
    loss = np.random.default_rng(0).normal(size=(41, 41))  # hundreds of minima
    axes = [np.linspace(-1, 1, 41)] * 2
    write_landscape(directory / "landscape.h5", loss, axes, attrs={"status": "ok"})
    write_topology_outputs(loss, directory, connectivity="axis", axes=axes)
    n_minima = read_json(directory / "topology.json")["metrics"]["n_minima"]
    assert n_minima > 100
    shown = display_tree(read_landscape(directory / "landscape.h5"),
                               {"connectivity": "axis"})
    minima = [node for node in shown["nodes"] if node["type"] == "minimum"]
    assert len(minima) == 30  # continuous values: no ties at the cut
    persistence = np.sort(merge_tree(loss, "axis").persistence)[::-1]
    kept = {node["vertex"] for node in minima}
    assert merge_tree(loss, "axis").global_minimum_vertex in kept
    figure = run_panel(panel_files(directory), "busy", "field")
    assert f"merge tree: the 30 most persistent\nof {n_minima} minima" in figure_texts(figure)
    assert persistence[28] > persistence[29]  # the cut: 29 pairs kept, the 30th pair's gone


def test_run_panel_without_a_prediction_plot_lists_the_runs_numbers(experiment, tmp_path):
    """A ResNet-like problem (no run_panel_plot): its test metric, λ₁ and counts in the slots."""
    _, runs, _ = experiment
    figure = run_panel(panel_files(runs[4].directory), "numbers", None)
    text = figure_texts(figure)
    metrics = read_json(runs[4].directory / "train_metrics.json")
    assert "the run's numbers" in text and metric_label("test_relative_l2") in text
    assert f"{metrics['test_relative_l2']:.4g}" in text
    assert metric_label("top_eigenvalue") in text and "400" in text
    assert_written(figure, tmp_path, "numbers")


def test_run_panel_of_a_diverged_run_says_why_instead_of_crashing(experiment, tmp_path):
    _, runs, _ = experiment
    figure = run_panel(panel_files(runs[6].directory), "diverged", "field")
    text = figure_texts(figure)
    assert "training status: diverged" in text
    assert "status: skipped\ntraining status is 'diverged'" in text
    assert_written(figure, tmp_path, "diverged")
    missing = run_panel(panel_files(runs[7].directory), "missing", "field")
    assert "landscape.h5 is missing" in figure_texts(missing)


def test_seed_heatmap_places_each_run_and_its_status(experiment, tmp_path):
    results, _, table = experiment
    profiles = load_profiles(table, "beta")
    assert profiles[(8, 1)] is None and profiles[(8, 0)]["status"] == "skipped"
    figure = seed_heatmap(table, "beta", "test_relative_l2", profiles, "pinn")
    text = figure_texts(figure)
    assert "0.041" in text  # beta 4, seed 1: 0.04 + 0.001
    assert "diverged" in text and "missing" in text
    assert "β = 4" in text and "seed 1" in text
    assert_written(figure, tmp_path, "seeds")


def test_profile_rebuilt_from_json_equals_the_library_profile(experiment):
    _, runs, _ = experiment
    loss = read_landscape(runs[4].directory / "landscape.h5").loss
    expected = landscape_profile(merge_tree(loss))
    data = read_json(runs[4].directory / "profile.json")
    rebuilt = Profile.from_dict(data)
    assert rebuilt.n_basins == expected.n_basins
    np.testing.assert_allclose(rebuilt.levels, expected.levels)
    np.testing.assert_allclose(rebuilt.widths, expected.widths)
    np.testing.assert_array_equal(rebuilt.basin_parent, expected.basin_parent)
    assert rebuilt.top_width == pytest.approx(expected.n_vertices)
    assert rebuilt.to_dict() == data  # the round trip is exact
    logged = profile_on_scale(data, LossScale(True))
    np.testing.assert_allclose(logged.levels, np.log10(expected.levels))
    assert logged.value_max == pytest.approx(np.log10(expected.value_max))


def test_merge_tree_layout_puts_leaves_in_a_row_and_parents_over_their_children():
    tree = {"root": 4, "nodes": [{"id": 0, "value": 0.0}, {"id": 1, "value": 1.0},
                                 {"id": 2, "value": 0.5}, {"id": 3, "value": 2.0},
                                 {"id": 4, "value": 3.0}],
            "arcs": [{"child": 0, "parent": 3}, {"child": 1, "parent": 3},
                     {"child": 3, "parent": 4}, {"child": 2, "parent": 4}]}
    position = merge_tree_layout(tree)
    assert sorted(position[leaf] for leaf in (0, 1, 2)) == [0, 1, 2]
    assert position[3] == (position[0] + position[1]) / 2
    assert position[4] == (position[3] + position[2]) / 2


def test_loss_scale_goes_log_only_for_wide_positive_ranges():
    assert LossScale.for_values([1e-4, 1.0, 2e4]).log
    assert not LossScale.for_values([0.4, 4.2]).log
    assert not LossScale.for_values([-1.0, 1e4]).log
    assert LossScale(True)(100.0) == 2.0 and LossScale(True).label == "log₁₀ loss"


def test_choose_parameter_checks_the_request(experiment):
    _, _, table = experiment
    assert choose_parameter(table) == "beta"
    with pytest.raises(ValueError, match=r"figures parameter 'lr' is not swept in this experiment; swept: \['beta'\]"):
        choose_parameter(table, "lr")
    assert default_panel_metrics(table) == ["n_saddles", "avg_persistence", "test_relative_l2",
                                                  "test_mean_abs_error", "top_eigenvalue", "trace"]


def test_figures_do_not_import_snakemake():
    import subprocess
    import sys

    modules = ", ".join(f"toposweep.figures.{entry.rule}" for entry in registry.FIGURES)
    code = f"import sys, {modules}, toposweep.aggregate; print('snakemake' in sys.modules)"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert output.stdout.strip() == "False"


def test_a_three_dimensional_landscape_is_drawn_as_central_slices(tmp_path):
    grid = np.add.outer(np.add.outer(np.arange(5.0), np.arange(5.0)), np.arange(5.0))
    assert central_slice(grid, (0, 2)).tolist() == grid[:, 2, :].tolist()
    from synthetic_runs import write_run
    from toposweep.io import write_landscape
    from toposweep.topology import write_topology_outputs

    run = write_run(tmp_path, "cube", 1, 0, 1)
    axis = np.linspace(-1, 1, 5)
    write_landscape(run.directory / "landscape.h5", (grid - 6.0) ** 2 + 1.0, [axis] * 3,
                    attrs={"status": "ok", "settings": {"directions": "hessian"}})
    write_topology_outputs((grid - 6.0) ** 2 + 1.0, run.directory, axes=[axis] * 3)
    text = figure_texts(run_panel(panel_files(run.directory), "cube", "field"))
    assert "3-D landscape:\nslice at α2 = 0" in text and "3-D landscape:\nslice at α1 = 0" in text
    assert "Hessian eigenvector 1" in text


@pytest.mark.parametrize("ndim", [5, 6])
def test_a_five_or_six_dimensional_landscape_is_drawn_as_central_slices(tmp_path, ndim):
    from synthetic_runs import write_run
    from toposweep.io import write_landscape
    from toposweep.topology import write_topology_outputs

    axis = np.linspace(-1, 1, 5)
    grids = np.meshgrid(*[axis] * ndim, indexing="ij")
    loss = sum((k + 1) * g**2 for k, g in enumerate(grids)) + 1.0
    assert central_slice(loss, (0, 2)).shape == (5, 5)
    run = write_run(tmp_path, "hyper", 1, 0, 1)
    write_landscape(run.directory / "landscape.h5", loss, [axis] * ndim,
                    attrs={"status": "ok", "settings": {"directions": "hessian"}})
    write_topology_outputs(loss, run.directory, axes=[axis] * ndim)
    text = figure_texts(run_panel(panel_files(run.directory), "hyper", "field"))
    others = ",".join(str(a) for a in range(2, ndim))
    assert f"{ndim}-D landscape:\nslice at α{others} = 0" in text
    assert f"{ndim}-D landscape:\nslice at α1,{others[2:]} = 0" in text
    assert "Hessian eigenvector 1" in text


# --- landscape profiles side by side ---------------------------------------------------------


def profile_axes(figure) -> dict[str, object]:
    """The profile cells of a landscape_profiles figure, by their label."""
    return {ax.get_label(): ax for ax in figure.axes if ax.get_label().startswith("profile ")}


def axes_texts(ax) -> str:
    return "\n".join(text.get_text() for text in ax.texts)


def test_landscape_profiles_put_every_run_on_one_shared_loss_axis(experiment, tmp_path):
    results, runs, table = experiment
    profiles = load_profiles(table, "beta")
    settings = landscape_settings(table)
    assert settings == {"directions": "random"}  # what synthetic_runs writes
    figure = landscape_profiles(table, "beta", profiles, "pinn", settings)
    cells = profile_axes(figure)
    assert sorted(cells) == sorted(f"profile beta={b} seed={s}" for b in (1, 2, 4, 8) for s in (0, 1))
    # one loss axis: the range of every finished run's profile (linear: 0.3 to 2 is < 100x)
    finished_profiles = [p for p in profiles.values() if p and p.get("basins")]
    low = min(p["value_min"] for p in finished_profiles)
    high = max(p["value_max"] for p in finished_profiles)
    margin = 0.02 * (high - low)
    for ax in cells.values():
        assert ax.get_ylim() == pytest.approx((low - margin, high + margin))
    # each finished cell: the colour fill spans the shared range, the counts match topology.json
    for beta in (1, 2, 4):
        for seed in (0, 1):
            ax = cells[f"profile beta={beta} seed={seed}"]
            run = next(r for r in runs if r.swept["beta"] == beta and r.seed == seed)
            n_minima = read_json(run.directory / "topology.json")["metrics"]["n_minima"]
            n_saddles = read_json(run.directory / "topology.json")["metrics"]["n_saddles"]
            assert ax.get_xlabel() == (f"{n_minima} minim{'um' if n_minima == 1 else 'a'} · "
                                       f"{n_saddles} saddle{'' if n_saddles == 1 else 's'}")
            assert ax.images[0].get_extent() == pytest.approx([0, 121, low, high])  # 11 x 11 grid
    assert cells["profile beta=4 seed=0"].get_xlabel() == "5 minima · 4 saddles"
    assert cells["profile beta=1 seed=0"].get_xlabel() == "1 minimum · 0 saddles"
    assert axes_texts(cells["profile beta=8 seed=0"]) == "diverged"
    assert axes_texts(cells["profile beta=8 seed=1"]).startswith("missing\ntrain_metrics.json")
    assert [cells[f"profile beta={b} seed=0"].get_title() for b in (1, 2, 4, 8)] == [
        "β = 1", "β = 2", "β = 4", "β = 8"]
    assert cells["profile beta=1 seed=1"].get_ylabel() == "seed 1\nloss"
    # the dimension comes from the summary, the directions from landscape.h5
    assert "2-D landscapes (2 random directions)" in figure.get_suptitle()
    assert "each profile is 121 grid vertices wide" in figure_texts(figure)
    assert_written(figure, tmp_path, "profiles")


def test_landscape_profiles_name_hessian_directions_and_go_log_for_wide_losses(tmp_path):
    from synthetic_runs import write_run
    from toposweep.io import write_landscape
    from toposweep.topology import write_topology_outputs

    axis = np.linspace(-1, 1, 5)
    grids = np.meshgrid(*[axis] * 4, indexing="ij")
    runs = []
    for beta in (1, 2):
        run = write_run(tmp_path, "hess", beta, 0, 1)
        # 4-D bowls from 1e-3 beta to 1e-3 beta + 400 beta: together far more than 100x
        loss = 1e-3 * beta + 100.0 * beta * sum(g**2 for g in grids)
        write_landscape(run.directory / "landscape.h5", loss, [axis] * 4,
                        attrs={"status": "ok", "settings": {"dimensions": 4, "directions": "hessian"}})
        write_topology_outputs(loss, run.directory, axes=[axis] * 4)
        runs.append(run)
    table = summary_table(runs)
    profiles = load_profiles(table, "beta")
    figure = landscape_profiles(table, "beta", profiles, "",
                                      landscape_settings(table))
    assert figure.get_suptitle() == ("4-D landscapes (top-4 Hessian directions): landscape "
                                     "profile of every run, one shared log₁₀ loss axis")
    low = np.log10(min(p["value_min"] for p in profiles.values()))
    high = np.log10(max(p["value_max"] for p in profiles.values()))
    assert low == pytest.approx(np.log10(1e-3)) and high == pytest.approx(np.log10(2e-3 + 800.0))
    cells = profile_axes(figure)
    assert len(cells) == 2
    for ax in cells.values():
        assert ax.get_ylim() == pytest.approx((low - 0.02 * (high - low), high + 0.02 * (high - low)))
    assert "each profile is 625 grid vertices wide" in figure_texts(figure)  # 5⁴
    assert landscape_description({"dimensions": 1, "directions": "hessian"}) == (
        "1-D landscapes (top Hessian direction)")
    assert landscape_description(None, 3) == "3-D landscapes"
    assert landscape_description(None) is None
    diverged = table.assign(status="diverged")
    figure = landscape_profiles(diverged, "beta", {key: None for key in profiles})
    assert figure.get_suptitle() == "4-D landscapes: no run has a landscape profile"
    assert [axes_texts(ax) for ax in profile_axes(figure).values()] == ["diverged", "diverged"]


def test_landscape_profiles_keep_runs_of_another_swept_parameter_apart(experiment):
    results, runs, _ = experiment
    # a grid over beta and lr: rows are (lr, seed), profiles keyed by (beta, lr, seed)
    finished_runs = [r for r in runs if r.swept["beta"] in (1, 4) and r.seed == 0]
    rows, profiles = [], {}
    for run in finished_runs:
        for lr in (0.1, 0.01):
            rows.append({"experiment": "pinn", "point": f"{run.point}_lr~{lr}",
                         "beta": run.swept["beta"], "lr": lr, "seed": 0, "status": "ok",
                         "missing_files": ""})
            profiles[(run.swept["beta"], lr, 0)] = read_json(run.directory / "profile.json")
    table = pd.DataFrame(rows)
    assert other_varied_parameters(table, "beta") == ["lr"]
    figure = landscape_profiles(table, "beta", profiles)
    cells = profile_axes(figure)
    assert sorted(cells) == sorted(f"profile beta={b} lr={lr} seed=0" for b in (1, 4)
                                   for lr in (0.1, 0.01))
    assert cells["profile beta=1 lr=0.01 seed=0"].get_ylabel() == "lr = 0.01\nseed 0\nloss"
    assert cells["profile beta=4 lr=0.1 seed=0"].get_xlabel() == "5 minima · 4 saddles"
    with pytest.raises(ValueError, match="lr vary besides 'beta'"):
        landscape_profiles(table, "beta", {(b, s): p for (b, _, s), p in profiles.items()})


def test_seed_heatmap_gives_every_combination_of_two_swept_parameters_a_row(experiment):
    results, runs, _ = experiment
    finished_runs = [r for r in runs if r.swept["beta"] in (1, 4) and r.seed == 0]
    rows, profiles = [], {}
    for run in finished_runs:
        for lr, error in ((0.1, 0.5), (0.01, 0.25)):
            rows.append({"experiment": "pinn", "point": f"{run.point}_lr~{lr}",
                         "beta": run.swept["beta"], "lr": lr, "seed": 0, "status": "ok",
                         "missing_files": "", "test_relative_l2": error * run.swept["beta"]})
            profiles[(run.swept["beta"], lr, 0)] = read_json(run.directory / "profile.json")
    table = pd.DataFrame(rows)
    figure = seed_heatmap(table, "beta", "test_relative_l2", profiles, "pinn", ["lr"])
    heat_ax = figure.axes[0]
    # columns are the values of beta, rows (lr, seed), as in the profiles figure
    assert [tick.get_text() for tick in heat_ax.get_xticklabels()] == ["1", "4"]
    assert heat_ax.get_xlabel() == "wave speed β"
    labels = [tick.get_text() for tick in heat_ax.get_yticklabels()]
    assert labels == ["lr = 0.01, seed 0", "lr = 0.1, seed 0"]
    assert heat_ax.get_ylabel() == "learning rate, seed"
    # each run keeps its own cell (before, runs with the same (beta, seed) overwrote each other)
    annotations = [text.get_text() for text in heat_ax.texts]
    assert annotations == ["0.25", "1", "0.5", "2"]
    cells = profile_axes(figure)
    assert sorted(cells) == sorted(f"profile beta={b} lr={lr} seed=0" for b in (1, 4)
                                   for lr in (0.1, 0.01))
    assert cells["profile beta=1 lr=0.01 seed=0"].get_title() == "β = 1"
    assert cells["profile beta=1 lr=0.01 seed=0"].get_ylabel() == "lr = 0.01\nseed 0"


def test_plot_figures_profiles_command_writes_the_figure(experiment, tmp_path):
    import subprocess
    import sys

    from conftest import REPO

    results, _, table = experiment
    summary = tmp_path / "summary.parquet"
    table.to_parquet(summary)
    outputs = [tmp_path / "profiles.png", tmp_path / "profiles.pdf"]
    subprocess.run([sys.executable, str(REPO / "scripts" / "plot_figures.py"), "profiles",
                    "--summary", str(summary), "--settings", '{"dpi": 60}',
                    "--output", *map(str, outputs)], check=True)
    assert outputs[0].read_bytes()[:8] == PNG_SIGNATURE
    assert outputs[1].read_bytes()[:5] == b"%PDF-"


# --- segmentation examples in the per-run panel ----------------------------------------------


def test_run_panel_shows_segmentation_examples_with_named_classes(tmp_path):
    from synthetic_runs import write_run
    from toposweep.io import write_json, write_npz

    run = write_run(tmp_path, "seg", 1, 0, 1)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 3, 12, 16), dtype=np.uint8)
    masks = rng.integers(0, 3, (5, 12, 16)).astype(np.int64)
    predicted = np.where(rng.random((5, 12, 16)) < 0.2, (masks + 1) % 3, masks)
    masks[0, 0, :] = 255  # an ignore label: drawn as "no class", not scored
    names = np.array(["pet", "background", "border"])
    write_npz(run.directory / "predictions.npz", {
        "segmentation_images": images, "segmentation_masks": masks,
        "segmentation_predicted": predicted, "class_names": names})
    metrics = read_json(run.directory / "train_metrics.json")
    write_json(run.directory / "train_metrics.json",
               {**metrics, "test_pixel_accuracy": 0.9412, "test_mean_iou": 0.8123})

    figure = run_panel(panel_files(run.directory), "segmentation", "segmentation")
    (examples,) = figure.subfigs
    true_block, predicted_block = examples.subfigs
    assert true_block.get_suptitle() == "3 test images\nwith their true masks"  # capped at 3
    assert predicted_block.get_suptitle() == ("predicted masks, wrong pixels black\n"
                                              "(test set: pixel accuracy 0.941, "
                                              "mean IoU 0.812)")
    true_axes = np.array(true_block.axes).reshape(2, 3)
    predicted_axes = np.array(predicted_block.axes).reshape(2, 3)
    for k in range(3):
        np.testing.assert_array_equal(true_axes[0, k].images[0].get_array(),
                                      images[k].transpose(1, 2, 0))
        shown_mask = true_axes[1, k].images[0].get_array()
        np.testing.assert_array_equal(shown_mask.filled(-1), np.where(masks[k] == 255, -1, masks[k]))
        np.testing.assert_array_equal(predicted_axes[0, k].images[0].get_array(), predicted[k])
        labelled = masks[k] != 255
        wrong = labelled & (predicted[k] != masks[k])
        np.testing.assert_array_equal(predicted_axes[1, k].images[0].get_array() == 0, wrong)
        assert predicted_axes[1, k].get_xlabel() == f"{100 * wrong.sum() / labelled.sum():.1f} %"
    # the legend names the classes in the colours the masks are drawn with
    legend = true_block.legends[0]
    labels = [text.get_text() for text in legend.get_texts()]
    assert labels == ["pet", "background", "border", "no class (ignored)"]
    mask_image = true_axes[1, 0].images[0]
    for index, handle in enumerate(legend.legend_handles[:3]):
        np.testing.assert_allclose(handle.get_facecolor(), mask_image.cmap(mask_image.norm(index)))
    assert "predicted u(x, t)" not in figure_texts(figure)  # the PINN slots are not drawn
    assert_written(figure, tmp_path, "segmentation")


def test_a_flagged_run_is_marked_in_the_profiles_figure(experiment):
    from matplotlib.colors import to_rgba

    _, _, table = experiment
    flagged = table.copy()
    flagged["warnings"] = flagged["warnings"].astype(object)
    flagged.loc[(flagged["beta"] == 4) & (flagged["seed"] == 0), "warnings"] = "landscape 98 % non-finite"
    figure = landscape_profiles(flagged, "beta", load_profiles(flagged, "beta"), "pinn")
    cells = profile_axes(figure)
    marked = cells["profile beta=4 seed=0"]
    assert "⚠ landscape 98 % non-finite" in marked.get_xlabel()
    assert marked.spines["left"].get_edgecolor() == to_rgba("tab:red")
    assert "⚠" not in cells["profile beta=4 seed=1"].get_xlabel()


# --- the registry drives the workflow's figure rules ------------------------------------------


def test_the_registry_imports_neither_matplotlib_nor_pandas():
    """The Snakefile imports it at DAG time (`snakemake -n` on a login node)."""
    import subprocess
    import sys

    code = ("import sys, toposweep.figures.registry; "
            "print(sorted({'matplotlib', 'pandas', 'torch'} & set(sys.modules)))")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert output.stdout.strip() == "[]"


def test_every_registry_entry_is_a_rule_with_its_caption_module_and_outputs(tmp_path):
    """A dry run of the default sweep has one job per entry, experiment and landscape (and per
    run for the run panel), writing layout.figure's files (in the printed commands: the job
    blocks show the rules' messages); each entry's caption and module exist."""
    import importlib
    import subprocess
    import sys
    from pathlib import Path

    from conftest import REPO
    from toposweep import layout
    from toposweep.config import expand_runs, validate_config
    from toposweep.schema import load_yaml

    for entry in registry.FIGURES:
        assert (REPO / "workflow" / "report" / entry.caption).is_file(), entry.caption
        assert callable(importlib.import_module(entry.module).from_inputs), entry.module
    assert len(registry.BY_COMMAND) == len(registry.FIGURES)  # sub-commands are distinct
    snakemake = str(Path(sys.executable).parent / "snakemake")
    result = subprocess.run([snakemake, "--snakefile", str(REPO / "Snakefile"), "--directory",
                             str(tmp_path), "--configfile", str(REPO / "config" / "config.yaml"),
                             "-n", "--forceall", "--printshellcmds", "--cores", "1"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    counts = dict(line.split() for line in result.stdout.split("Job stats:")[1].splitlines()
                  if len(line.split()) == 2 and line.split()[1].isdigit())
    config = validate_config(load_yaml(REPO / "config" / "config.yaml"))
    landscapes = {e["name"]: [spec["name"] for spec in e["landscapes"]] for e in config["experiments"]}
    # one run-panel job per experiment and landscape draws all its runs' panels
    panels = sum(len(landscapes[e["name"]]) for e in config["experiments"]
                 if e["figures"]["run_panels"] and any(run.experiment == e["name"]
                                                       for run in expand_runs(config)))
    for entry in registry.EXPERIMENT_FIGURES:
        assert int(counts[entry.rule]) == sum(map(len, landscapes.values())), entry.rule
        for experiment, names in landscapes.items():
            for name in names:
                assert layout.figure(experiment, name, entry.name, "png") in result.stdout
    assert int(counts[registry.RUN_PANEL.rule]) == panels > 0


@pytest.mark.slow  # five figure jobs: about a minute on the busy 2-core machine
def test_each_figure_rule_runs_its_own_entry(experiment, tmp_path):
    """The real `snakemake` draws every figure of the registry from existing tables (a rule
    generated in a loop must not run another entry's command: Snakemake evaluates a shell
    command again when the job runs, after the loop)."""
    import subprocess
    import sys
    from pathlib import Path

    import yaml
    from conftest import REPO
    from toposweep import layout
    from toposweep.io import write_csv

    results, runs, table = experiment
    workdir = tmp_path / "work"
    shutil.copytree(results, workdir / "results")  # the synthetic runs are at layout.run_dir
    config = {"available_runs_only": True, "experiments": [{
        "name": "pinn", "problem": "pinn_convection", "grid": {"beta": [1, 2, 4, 8]},
        "seeds": [0, 1], "landscapes": [{"name": "main"}]}]}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    tables = Path(layout.table("pinn", "main", "x")).parent
    (workdir / tables).mkdir(parents=True, exist_ok=True)
    write_csv(workdir / tables / "summary.csv", table)  # newer than the runs' files: up to date
    table.to_parquet(workdir / tables / "summary.parquet")
    write_csv(workdir / tables / "correlations.csv", correlations(table))
    targets = [layout.figure("pinn", "main", entry.name, "png")
               for entry in registry.EXPERIMENT_FIGURES]
    targets.append(layout.run_figures_dir("pinn", "main"))  # one job draws every run's panel
    snakemake = str(Path(sys.executable).parent / "snakemake")
    result = subprocess.run([snakemake, "--snakefile", str(REPO / "Snakefile"), "--directory",
                             str(workdir), "--configfile", str(tmp_path / "config.yaml"),
                             "--cores", "2", *targets], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{len(targets)} of {len(targets)} steps (100%) done" in result.stderr
    panel = layout.run_figure("pinn", "main", "beta~4", 0, "png")
    for entry, target in zip(registry.FIGURES, [*targets[:-1], panel]):
        assert (workdir / target).read_bytes()[:8] == PNG_SIGNATURE, entry.rule
        log = (workdir / "logs" / "pinn" / "figures" / "main").rglob("*.log")
        assert all("Traceback" not in path.read_text() for path in log)
