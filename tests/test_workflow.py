"""Integration: the real `snakemake` command on a tiny sweep, bad configs, and paper dry runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from toposweep.io import load_checkpoint, read_json, read_landscape

from conftest import REPO

VENV_BIN = Path(sys.executable).parent
SNAKEMAKE = str(VENV_BIN / "snakemake")
# The venv is not activated (its bin is not on PATH), as for a user who runs .venv/bin/snakemake:
# jobs must find the interpreter and the MPI launcher that run Snakemake. (The Slurm and profile
# tests run with the venv on PATH, the other way of starting it.)
ENVIRONMENT = {**os.environ, "PATH": os.pathsep.join(
    entry for entry in os.environ["PATH"].split(os.pathsep) if Path(entry) != VENV_BIN)}


def snakemake(workdir: Path, configfile: Path, *args: str) -> subprocess.CompletedProcess:
    command = [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
               "--configfile", str(configfile), "--cores", "2", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=ENVIRONMENT)


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory) -> Path:
    """The tiny sweep in a fresh work directory that holds a copy of examples/ (its regression
    experiment names examples/regression/problem.py relative to the working directory)."""
    workdir = tmp_path_factory.mktemp("sweep")
    shutil.copytree(REPO / "examples" / "regression", workdir / "examples" / "regression")
    result = snakemake(workdir, REPO / "tests" / "data" / "tiny_sweep.yaml",
                       "--set-resources", "landscape:tasks=2")
    assert result.returncode == 0, result.stderr[-3000:]
    (workdir / "snakemake.stderr").write_text(result.stderr)
    return workdir


def test_logs_show_progress_and_the_end_says_where_the_results_are(tiny_sweep):
    """Through logging, whatever the terminal: a line per epoch, landscape lines with rate and
    time left, Lanczos steps; and the sweep's last lines name the tables and figures."""
    logs = tiny_sweep / "logs"
    training = (logs / "resnet" / "lr~0.05" / "seed~0" / "train.log").read_text()
    assert "training: 1/1 epochs (100 %)" in training and ", loss " in training
    pinn = (logs / "pinn" / "beta~1" / "seed~0" / "train.log").read_text()
    assert "training (lbfgs): " in pinn and " loss evaluations, " in pinn
    landscape = (logs / "pinn" / "beta~1" / "seed~0" / "random2d" / "landscape.log").read_text()
    assert "landscape: 81/81 points (100 %), " in landscape and " left" in landscape
    hessian = (logs / "segmentation" / "lr~0.01" / "seed~0" / "hessian.log").read_text()
    assert "Lanczos (top 2): " in hessian
    stderr = (tiny_sweep / "snakemake.stderr").read_text()
    assert "Results:" in stderr
    assert "pinn (random2d): results/pinn/tables/random2d/summary.csv, figures in " \
           "results/pinn/figures/random2d/" in stderr


def test_tiny_sweep_trains_every_run_and_summarises(tiny_sweep):
    pinn = pd.read_csv(tiny_sweep / "results" / "pinn" / "train_summary.csv")
    assert list(pinn["point"]) == ["beta~1", "beta~5"]
    assert list(pinn.columns[:5]) == ["experiment", "point", "beta", "seed", "status"]
    assert (pinn["status"] == "ok").all() and (pinn["test_relative_l2"] > 0).all()
    assert (pinn["n_steps"] > 1).all()
    for point in ("beta~1", "beta~5"):
        run_dir = tiny_sweep / "results" / "pinn" / point / "seed~0"
        checkpoint = load_checkpoint(run_dir / "checkpoint.pt")
        assert checkpoint["run_config"]["settings"]["max_iter"] == 30
        assert (tiny_sweep / "logs" / "pinn" / point / "seed~0" / "train.log").exists()


def test_a_diverged_run_stays_in_the_summary(tiny_sweep):
    resnet = pd.read_csv(tiny_sweep / "results" / "resnet" / "train_summary.csv")
    by_point = resnet.set_index("point")
    assert by_point.loc["lr~0.05", "status"] == "ok"
    assert 0 <= by_point.loc["lr~0.05", "test_accuracy"] <= 1
    assert by_point.loc["lr~100000000.0", "status"] == "diverged"
    assert pd.isna(by_point.loc["lr~100000000.0", "test_accuracy"])
    metrics = read_json(tiny_sweep / "results" / "resnet" / "lr~100000000.0" / "seed~0" / "train_metrics.json")
    assert "became nan" in metrics["message"]


def test_a_finished_sweep_has_nothing_left_to_do(tiny_sweep):
    result = snakemake(tiny_sweep, REPO / "tests" / "data" / "tiny_sweep.yaml", "-n")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_every_run_gets_a_landscape_and_its_topology(tiny_sweep):
    """The sweep ran the landscape step as a 2-rank MPI job (see the fixture)."""
    from toposweep.io import read_landscape

    run_dir = tiny_sweep / "results" / "pinn" / "beta~1" / "seed~0" / "random2d"
    landscape = read_landscape(run_dir / "landscape.h5")
    assert landscape.loss.shape == (9, 9) and landscape.attrs["status"] == "ok"
    assert landscape.loss.min() == landscape.loss[4, 4]
    topology = read_json(run_dir / "topology.json")
    assert topology["settings"]["connectivity"] == "axis"  # from the config's topology section
    assert topology["metrics"]["n_minima"] >= 1 and topology["metrics"]["n_vertices"] == 81
    log = tiny_sweep / "logs" / "pinn" / "beta~1" / "seed~0" / "random2d" / "landscape.log"
    assert "'ranks': 2" in log.read_text()
    diverged = tiny_sweep / "results" / "resnet" / "lr~100000000.0" / "seed~0" / "random2d"
    assert read_landscape(diverged / "landscape.h5").attrs["status"] == "skipped"
    topology = read_json(diverged / "topology.json")
    assert topology["status"] == "skipped" and "training status is 'diverged'" in topology["message"]


def test_tiny_unet_crf_sweep_runs_end_to_end(tiny_sweep):
    """Training, Hessian, landscape in the top-2 Hessian directions, topology, summary, figures."""
    from toposweep.io import read_landscape
    from toposweep.training import load_trained

    summary = pd.read_csv(tiny_sweep / "results" / "segmentation" / "tables" / "hessian2d" / "summary.csv")
    assert list(summary["point"]) == ["lr~0.01", "lr~0.001"]
    assert (summary["status"] == "ok").all()
    assert summary["test_mean_iou"].between(0, 1).all()
    assert summary["test_pixel_accuracy"].between(0, 1).all()
    assert (summary["n_minima"] >= 1).all() and summary["top_eigenvalue"].notna().all()
    assert (summary["n_loops"] >= 0).all() and summary["total_loop_persistence"].notna().all()
    correlated = pd.read_csv(tiny_sweep / "results" / "segmentation" / "tables" / "hessian2d"
                             / "correlations.csv")["topology_metric"]
    assert {"smad", "n_loops", "total_loop_persistence"} <= set(correlated)
    run_dir = tiny_sweep / "results" / "segmentation" / "lr~0.01" / "seed~0"
    landscape = read_landscape(run_dir / "hessian2d" / "landscape.h5")
    assert landscape.loss.shape == (7, 7)
    problem, model, _ = load_trained(run_dir / "checkpoint.pt")
    loss_fn, params = problem.loss_function(model)
    assert landscape.loss[3, 3] == pytest.approx(float(loss_fn(params)), rel=1e-5)
    hessian = read_json(run_dir / "hessian.json")
    assert len(hessian["eigenvalues"]) == 2
    figures = tiny_sweep / "results" / "segmentation" / "figures" / "hessian2d"
    assert (figures / "seed_heatmap.png").stat().st_size > 10_000
    assert (figures / "runs" / "lr~0.01_seed~0.png").stat().st_size > 10_000


def test_a_bad_config_stops_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("experiments:\n  - {name: x, problem: pinn_convection, grid: {beta: [1], lr: [0]}}\n")
    result = snakemake(tmp_path, bad)
    assert result.returncode != 0
    assert "experiments[0].grid.lr[0]: 0 is less than or equal to the minimum of 0" in result.stderr
    assert not (tmp_path / "results").exists()


def test_a_key_given_twice_stops_the_workflow(tmp_path):
    """Snakemake's own YAML reading keeps the last of two keys; the workflow re-reads strictly."""
    twice = tmp_path / "twice.yaml"
    twice.write_text("experiments:\n  - name: x\n    problem: pinn_convection\n"
                     "    landscapes: [{name: a, resolution: 5}]\n"
                     "    landscapes: [{name: a, resolution: 201}]\n")
    result = snakemake(tmp_path, twice, "-n")
    assert result.returncode != 0
    assert "twice.yaml: line 5: duplicate key 'landscapes' (first given on line 4)" in result.stdout + result.stderr


PAPER_CONFIGS = sorted((REPO / "config" / "paper").glob("*.yaml"))


def test_paper_configs_dry_run(tmp_path):
    """Every paper sweep builds its whole DAG: their experiments (distinct names) in one dry run,
    one snakemake start-up instead of one per file (each costs seconds)."""
    import yaml

    experiments = [experiment for path in PAPER_CONFIGS
                   for experiment in yaml.safe_load(path.read_text())["experiments"]]
    assert len(PAPER_CONFIGS) >= 8 and len({e["name"] for e in experiments}) == len(experiments)
    combined = tmp_path / "papers.yaml"
    combined.write_text(yaml.safe_dump({"experiments": experiments}))
    result = snakemake(tmp_path, combined, "-n", "--quiet")
    assert result.returncode == 0, result.stderr[-3000:]
    for experiment in experiments:
        assert f"landscape {experiment['name']}/" in result.stderr  # its cost line


def test_vti_export_of_a_run_landscape(tiny_sweep):
    from xml.etree import ElementTree

    from toposweep.io import read_landscape

    target = "results/pinn/beta~1/seed~0/random2d/landscape.vti"
    result = snakemake(tiny_sweep, REPO / "tests" / "data" / "tiny_sweep.yaml", target)
    assert result.returncode == 0, result.stderr[-3000:]
    image = ElementTree.parse(tiny_sweep / target).getroot().find("ImageData")
    assert image.get("WholeExtent") == "0 8 0 8 0 0"
    values = [float(v) for v in image.find("Piece/PointData/DataArray").text.split()]
    loss = read_landscape(tiny_sweep / "results/pinn/beta~1/seed~0/random2d/landscape.h5").loss
    assert values == loss.ravel(order="F").tolist()


def test_two_landscapes_share_one_training(tiny_sweep):
    """The PINN runs have a random-direction landscape and one on the PCA plane of their
    training trajectory, each with its topology, tables and figures, from one checkpoint."""
    from toposweep.io import load_checkpoint, read_landscape

    run_dir = tiny_sweep / "results" / "pinn" / "beta~5" / "seed~0"
    checkpoint = load_checkpoint(run_dir / "checkpoint.pt")
    metrics = read_json(run_dir / "train_metrics.json")
    assert metrics["n_snapshots"] == metrics["n_steps"] + 1  # every loss evaluation + the start
    hashes = set()
    for name, shape in (("random2d", (9, 9)), ("trajectory2d", (7, 7))):
        landscape = read_landscape(run_dir / name / "landscape.h5")
        assert landscape.loss.shape == shape
        hashes.add(json.loads(landscape.attrs["provenance"])["checkpoint_hash"])
        assert read_json(run_dir / name / "topology.json")["status"] == "ok"
        summary = pd.read_csv(tiny_sweep / "results" / "pinn" / "tables" / name / "summary.csv")
        assert list(summary["status"]) == ["ok", "ok"]
        assert (tiny_sweep / "results" / "pinn" / "figures" / name / "profiles.png").stat().st_size > 10_000
    assert hashes == {checkpoint["hash"]}
    trajectory = read_landscape(run_dir / "trajectory2d" / "landscape.h5")
    path = trajectory.datasets["trajectory"]
    assert path.shape == (metrics["n_snapshots"], 2)
    explained = json.loads(trajectory.attrs["explained_variance_ratio"])
    assert 0 < explained[1] <= explained[0] and sum(explained) <= 1 + 1e-9
    assert trajectory.axes[0][-1] == pytest.approx(1.2 * abs(path).max())
    assert len(list((tiny_sweep / "logs" / "pinn" / "beta~5" / "seed~0").glob("train.log"))) == 1


def test_the_users_own_problem_from_examples_runs_through_the_workflow(tiny_sweep):
    """examples/regression/problem.py, named in the config, through every stage."""
    summary = pd.read_csv(tiny_sweep / "results" / "regression" / "tables" / "hessian2d" / "summary.csv")
    assert list(summary["point"]) == ["lr~0.01", "lr~0.03"]
    assert (summary["status"] == "ok").all() and (summary["problem"] == "examples/regression/problem.py:SineRegression").all()
    assert (summary["test_mse"] > 0).all() and summary["top_eigenvalue"].notna().all()
    assert (summary["n_vertices"] == 49).all()
    figures = tiny_sweep / "results" / "regression" / "figures" / "hessian2d"
    assert (figures / "runs" / "lr~0.01_seed~0.png").stat().st_size > 10_000
    heatmap_log = (tiny_sweep / "logs" / "regression" / "figures" / "hessian2d" / "seed_heatmap.log")
    assert heatmap_log.exists()


def test_a_6d_grid_and_10d_scattered_samples_run_through_the_workflow(tiny_sweep):
    """Beyond four dimensions: landscape, topology, summary and profiles figure of a 5^6 grid and
    of 1,024 Sobol samples in the top-10 Hessian eigenvector subspace."""
    results = tiny_sweep / "results" / "regression_nd"
    grid = pd.read_csv(results / "tables" / "random6d" / "summary.csv")
    scattered = pd.read_csv(results / "tables" / "hessian10d" / "summary.csv")
    assert (grid["status"] == "ok").all() and (scattered["status"] == "ok").all()
    assert (grid["n_vertices"] == 5**6).all() and (grid["landscape_dimensions"] == 6).all()
    assert (scattered["n_vertices"] == 1024).all() and (scattered["landscape_dimensions"] == 10).all()
    assert (scattered["n_minima"] >= 1).all() and scattered["eigenvalue_10"].notna().all()
    run = results / "lr~0.01" / "seed~0"
    landscape = read_landscape(run / "hessian10d" / "landscape.h5")
    assert landscape.samples.shape == (1024, 10) and landscape.axes == []
    assert landscape.loss[0] == pytest.approx(grid["landscape_centre"].iloc[0], rel=1e-6)
    topology = json.loads((run / "hessian10d" / "topology.json").read_text())
    assert topology["settings"]["graph"] == "gabriel" and topology["settings"]["neighbours"] == 12
    for name in ("random6d", "hessian10d"):
        assert (results / "figures" / name / "profiles.png").stat().st_size > 10_000


def test_validating_the_default_config_imports_no_torch(tmp_path):
    """`snakemake -n` reads every problem's declarations without importing torch (seconds on a
    login node's shared file system): no torch module is executed, nor matplotlib."""
    environment = {**ENVIRONMENT, "PYTHONPROFILEIMPORTTIME": "1"}
    command = [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
               "--configfile", str(REPO / "config" / "config.yaml"), "--cores", "1", "-n", "--quiet"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment)
    assert result.returncode == 0, result.stderr[-2000:]
    imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:")]
    assert "toposweep.config" in imported and "toposweep.datasets" in imported  # problems read
    assert not [name for name in imported if name == "torch" or name.startswith("torch.")]
    # the figure rules come from toposweep.figures.registry, which needs no matplotlib
    assert "toposweep.figures.registry" in imported
    assert not [name for name in imported if name.split(".")[0] == "matplotlib"]


def report_data(html: str, variable: str):
    """A JSON variable of Snakemake's report page (`var results = {...};`, not the libraries'
    variables of the same name)."""
    import re

    start = re.search(rf'var {variable} = (?=[{{"])', html).end()
    return json.JSONDecoder().raw_decode(html[start:])[0]


def test_the_report_opens_on_the_sweep_and_labels_each_run_with_its_numbers(tiny_sweep):
    """Landing page: what was swept, every run's numbers, the headline correlations. Run panels
    carry their numbers as labels (in numeric order: lr 0.001 before 0.01) and in the caption."""
    overview = (tiny_sweep / "results" / "report_overview.rst").read_text()
    assert "segmentation: landscape hessian2d" in overview and "regression_nd: landscape hessian10d" in overview
    result = snakemake(tiny_sweep, REPO / "tests" / "data" / "tiny_sweep.yaml", "--report",
                       "results/report.zip")
    assert result.returncode == 0, result.stderr[-3000:]
    import zipfile

    with zipfile.ZipFile(tiny_sweep / "results" / "report.zip") as archive:
        html = archive.read("report/report.html").decode()
    landing = report_data(html, "workflow_desc")
    assert "Swept: unet_crf, lr ∈ {0.01, 0.001}" in landing
    assert "<th class=\"head\">lr</th>" in landing and "2 of 2 runs finished every stage" in landing
    # two runs: the page says why there are no correlations instead of showing numbers
    assert "No correlation could be computed: not enough runs" in landing
    panels = {path: entry for path, entry in report_data(html, "results").items() if "/runs/" in path}
    first = panels["results/segmentation/figures/hessian2d/runs/lr~0.001_seed~0.png"]
    second = panels["results/segmentation/figures/hessian2d/runs/lr~0.01_seed~0.png"]
    assert (first["labels"]["#"], second["labels"]["#"]) == ("1", "2")
    summary = pd.read_csv(tiny_sweep / "results" / "segmentation" / "tables" / "hessian2d" / "summary.csv")
    row = summary[summary["point"] == "lr~0.01"].iloc[0]
    assert second["labels"]["run"] == "lr = 0.01, seed 0"
    assert second["labels"]["minima"] == str(row["n_minima"])
    assert f"minima {row['n_minima']};" in second["caption"]


def test_a_failed_job_says_what_failed_and_names_its_log(tmp_path):
    """The end of a failed sweep names the failed step with the last line of its log (the
    exception), not only Snakemake's 'message: None' block."""
    source = (REPO / "examples" / "regression" / "problem.py").read_text()
    marker = "    def train(self, model, curve, resume_path=None):\n"
    assert marker in source
    (tmp_path / "broken.py").write_text(source.replace(
        marker, marker + "        raise RuntimeError('sine.csv is missing (planted)')\n"))
    config = tmp_path / "broken.yaml"
    config.write_text("experiments:\n  - name: broken\n    problem: broken.py:SineRegression\n"
                      "    landscapes: [{name: random2d, resolution: 5}]\n")
    result = snakemake(tmp_path, config)
    assert result.returncode != 0
    assert ("Failed jobs:\n  train: RuntimeError: sine.csv is missing (planted)\n"
            "    (full log: logs/broken/default/seed~0/train.log)") in result.stderr
    assert "experiments (from " in result.stderr and "broken (1 run)" in result.stderr
