"""A real single-node Slurm (tests/slurm/cluster.sh): the sweep through the Slurm executor as
few grouped jobs, a large landscape as a 2-task MPI job under srun, and the outputs equal to a
local run's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from toposweep.io import load_checkpoint, read_json, read_landscape

from conftest import REPO

VENV_BIN = Path(sys.executable).parent
CLUSTER = REPO / "tests" / "slurm" / "cluster.sh"
SWEEP = REPO / "tests" / "data" / "slurm_sweep.yaml"
RUN = Path("results/pinn/beta~5/seed~0")
LANDSCAPE = "random2d"  # the landscape of slurm_sweep.yaml
ENVIRONMENT = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}


@pytest.fixture(scope="module")
def slurm():
    started = subprocess.run(["bash", str(CLUSTER), "start"], capture_output=True, text=True,
                             timeout=600)
    if started.returncode == 3:
        pytest.skip(f"no Slurm here: {started.stderr.strip()}")
    assert started.returncode == 0, started.stderr[-3000:]
    yield
    subprocess.run(["bash", str(CLUSTER), "stop"], capture_output=True, timeout=60)


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    command = [str(VENV_BIN / "snakemake"), "--snakefile", str(REPO / "Snakefile"), "--directory",
               str(workdir), "--configfile", str(SWEEP), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=900, env=ENVIRONMENT)


def submitted_jobs(result: subprocess.CompletedProcess) -> int:
    """Slurm jobs the executor submitted (one line each in its log)."""
    return (result.stdout + result.stderr).count("has been submitted with SLURM jobid")


def assert_same_results(slurm_dir: Path, local_dir: Path, runs: list[Path], landscapes: list[str]):
    """Checkpoints, Hessians, landscapes and topology of the Slurm run equal the local run's."""
    for run in runs:
        slurm_run, local_run = slurm_dir / run, local_dir / run
        assert (load_checkpoint(slurm_run / "checkpoint.pt")["hash"]
                == load_checkpoint(local_run / "checkpoint.pt")["hash"]), run
        np.testing.assert_allclose(read_json(slurm_run / "hessian.json")["eigenvalues"],
                                   read_json(local_run / "hessian.json")["eigenvalues"], rtol=1e-6)
        for landscape in landscapes:
            assert np.array_equal(read_landscape(slurm_run / landscape / "landscape.h5").loss,
                                  read_landscape(local_run / landscape / "landscape.h5").loss)
            assert (read_json(slurm_run / landscape / "topology.json")["metrics"]
                    == read_json(local_run / landscape / "topology.json")["metrics"])


def test_the_sweep_on_slurm_is_few_grouped_jobs_equal_to_the_local_run(slurm, tmp_path):
    """Both runs' training, Hessian, small landscape and topology go as one group job; the
    large landscapes as 2-task MPI jobs under srun, their topologies as one more group job:
    4 Slurm jobs for 12 steps, with the local run's results."""
    runs = [Path("results/pinn/beta~1/seed~0"), RUN]
    # the run stages only (the tables and figures are local rules, the same on Slurm)
    targets = [str(run / name) for run in runs
               for name in ("hessian.json", "random2d/topology.json", "wide2d/topology.json")]
    on_slurm = snakemake(tmp_path / "slurm", "--workflow-profile", str(REPO / "profiles" / "slurm-test"),
                         *targets)
    assert on_slurm.returncode == 0, on_slurm.stderr[-4000:]
    local = snakemake(tmp_path / "local", "--cores", "2", *targets)
    assert local.returncode == 0, local.stderr[-4000:]
    assert submitted_jobs(on_slurm) == 4, on_slurm.stdout + on_slurm.stderr
    log = (tmp_path / "slurm" / "logs" / "pinn" / "beta~5" / "seed~0" / "wide2d" / "landscape.log").read_text()
    assert "'ranks': 2" in log
    small = (tmp_path / "slurm" / "logs" / "pinn" / "beta~5" / "seed~0" / "random2d" / "landscape.log").read_text()
    assert "'ranks': 1" in small
    assert_same_results(tmp_path / "slurm", tmp_path / "local", runs, ["random2d", "wide2d"])


@pytest.mark.slow  # ten L-BFGS trainings, on Slurm and locally: about 15 minutes on 2 cores
def test_the_reduced_pinn_beta_sweep_is_one_slurm_job_with_the_local_results(slurm, tmp_path):
    """The acceptance case: config/paper/pinn_beta_reduced.yaml (10 runs, 21 x 21 landscapes)
    submits at most 10 Slurm jobs (one here: every landscape is small) and its outputs equal a
    local run's."""
    sweep = REPO / "config" / "paper" / "pinn_beta_reduced.yaml"

    def run(workdir, *args):
        command = [str(VENV_BIN / "snakemake"), "--snakefile", str(REPO / "Snakefile"),
                   "--directory", str(workdir), "--configfile", str(sweep), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=2400,
                              env=ENVIRONMENT)

    on_slurm = run(tmp_path / "slurm", "--workflow-profile", str(REPO / "profiles" / "slurm-test"))
    assert on_slurm.returncode == 0, on_slurm.stderr[-4000:]
    assert 1 <= submitted_jobs(on_slurm) <= 10
    local = run(tmp_path / "local", "--cores", "2")
    assert local.returncode == 0, local.stderr[-4000:]
    runs = [Path(f"results/pinn_beta_reduced/beta~{beta}/seed~{seed}")
            for beta in (1, 5, 10, 20, 30) for seed in (0, 123)]
    assert_same_results(tmp_path / "slurm", tmp_path / "local", runs, ["random2d"])
    for name in ("summary.csv", "correlations.csv"):
        table = Path("results/pinn_beta_reduced/tables/random2d") / name
        slurm_table = (tmp_path / "slurm" / table).read_text().splitlines()
        local_table = (tmp_path / "local" / table).read_text().splitlines()
        assert len(slurm_table) == len(local_table)


@pytest.mark.slow
def test_a_landscape_killed_by_its_time_limit_resumes_on_retry(slurm, tmp_path):
    """First attempt: a 1-minute limit, too short; Slurm kills it. The profile's retry gives it
    10 minutes, and the job computes only the work units the first attempt did not finish."""
    sweep = REPO / "tests" / "data" / "slurm_timelimit.yaml"
    command = [str(VENV_BIN / "snakemake"), "--snakefile", str(REPO / "Snakefile"), "--directory",
               str(tmp_path), "--configfile", str(sweep), "--workflow-profile",
               str(REPO / "profiles" / "slurm-test"),
               "--config", "cluster={landscape_mpi_points: 1000, landscape_ranks: 2}",
               "--set-resources", "landscape:runtime=1 if attempt == 1 else 10"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1200, env=ENVIRONMENT)
    assert result.returncode == 0, result.stderr[-4000:]
    output = result.stdout + result.stderr
    assert "Trying to restart job" in output or "attempt 2" in output.lower() or "retry" in output.lower()
    log = (tmp_path / "logs" / "pinn" / "beta~5" / "seed~0" / "random3d" / "landscape.log").read_text()
    assert "resuming from" in log
    computed = int(log.split("'points_computed': ")[1].split(",")[0])
    assert 0 < computed < 45**3, "the retry must compute only what the first attempt left"
    assert read_landscape(tmp_path / RUN / "random3d" / "landscape.h5").loss.shape == (45, 45, 45)
