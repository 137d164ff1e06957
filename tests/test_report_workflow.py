"""Integration: the real `snakemake` command runs the whole DAG (train -> hessian -> landscape ->
topology -> summary -> correlations -> figures) on a tiny sweep, builds the HTML report, and
aggregates what is left when a run's files are missing (`available_runs_only`)."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from conftest import REPO
from test_workflow import snakemake

CONFIG = REPO / "tests" / "data" / "tiny_report.yaml"
LANDSCAPE = "random2d"  # the landscape of both experiments in the config


def table(workdir, experiment: str, name: str):
    return workdir / "results" / experiment / "tables" / LANDSCAPE / name
FIGURES = ["correlations", "metric_panels", "seed_heatmap", "profiles", "runs/beta~1_seed~0",
           "runs/beta~5_seed~1"]

pytestmark = pytest.mark.slow  # the whole DAG of 5 runs: about 2 minutes on 2 busy cores


@pytest.fixture(scope="module")
def report_sweep(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("report_sweep")
    result = snakemake(workdir, CONFIG)  # rule all: the whole DAG
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


def test_the_summary_has_every_stage_and_the_diverged_run(report_sweep):
    pinn = pd.read_csv(table(report_sweep, "pinn", "summary.csv"))
    assert list(pinn["point"]) == ["beta~1", "beta~1", "beta~5", "beta~5"]
    assert (pinn["status"] == "ok").all()
    for column in ("test_relative_l2", "top_eigenvalue", "trace", "n_saddles", "avg_persistence",
                   "landscape_min", "landscape_centre"):
        assert pinn[column].notna().all(), column
    assert (pinn["n_vertices"] == 81).all()  # the 9 x 9 landscapes of the config
    parquet = pd.read_parquet(table(report_sweep, "pinn", "summary.parquet"))
    assert parquet["n_saddles"].tolist() == pinn["n_saddles"].tolist()
    resnet = pd.read_csv(table(report_sweep, "resnet", "summary.csv"))
    assert list(resnet["status"]) == ["diverged"] and list(resnet["topology_status"]) == ["skipped"]
    assert "n_saddles" not in resnet.columns and "top_eigenvalue" not in resnet.columns


def test_correlations_use_the_four_finished_runs_or_say_there_are_too_few(report_sweep):
    pinn = pd.read_csv(table(report_sweep, "pinn", "correlations.csv"))
    assert set(pinn["topology_metric"]) >= {"n_saddles", "avg_persistence"}
    assert set(pinn["other"]) == {"test_relative_l2", "test_mean_abs_error", "final_train_loss",
                                  "top_eigenvalue", "trace", "beta"}
    assert (pinn["n"] == 4).all()
    resnet = pd.read_csv(table(report_sweep, "resnet", "correlations.csv"))
    assert resnet["note"].str.startswith("not enough runs: 0 finished").all()


def test_every_figure_is_written_as_png_and_pdf(report_sweep):
    for experiment, names in (("pinn", FIGURES), ("resnet", ["correlations", "seed_heatmap",
                                                              "profiles",
                                                              "runs/lr~100000000.0_seed~0"])):
        for name in names:
            for suffix in ("png", "pdf"):
                path = report_sweep / "results" / experiment / "figures" / LANDSCAPE / f"{name}.{suffix}"
                assert path.stat().st_size > 1000, path
    assert (report_sweep / "logs" / "pinn" / "figures" / LANDSCAPE / "correlations.log").exists()


def test_the_html_report_has_the_figures_and_captions(report_sweep):
    result = snakemake(report_sweep, CONFIG, "--report", "results/report.html")
    assert result.returncode == 0, result.stderr[-3000:]
    html = (report_sweep / "results" / "report.html").read_text()
    assert "metric_panels.png" in html and "seed_heatmap.png" in html and "profiles.png" in html
    assert "beta~5_seed~1.png" in html
    # the captions are rendered per figure, with what was swept (JSON inside the HTML: ∈ escaped)
    assert "Swept: pinn_convection, beta \\u2208 {1, 5} (product), seeds {0, 1}" in html


def test_available_runs_only_aggregates_what_a_failed_sweep_left(report_sweep, tmp_path):
    workdir = tmp_path / "partial"
    shutil.copytree(report_sweep, workdir, symlinks=True)
    lost = workdir / "results" / "pinn" / "beta~5" / "seed~1" / LANDSCAPE
    for name in ("topology.json", "landscape.h5"):
        (lost / name).unlink()
    result = snakemake(workdir, CONFIG, "paper_figures", "--config", "available_runs_only=True")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = pd.read_csv(table(workdir, "pinn", "summary.csv")).set_index(["point", "seed"])
    assert summary.loc[("beta~5", 1), "status"] == "missing"
    assert summary.loc[("beta~5", 1), "missing_files"] == "landscape.h5 topology.json"
    log = (workdir / "logs" / "pinn" / LANDSCAPE / "summary.log").read_text()
    assert "missing run (files absent): pinn/beta~5/seed~1: landscape.h5 topology.json" in log
    correlations = pd.read_csv(table(workdir, "pinn", "correlations.csv"))
    assert (correlations["n"] == 3).all()
    assert not (lost / "topology.json").exists()  # nothing was recomputed
