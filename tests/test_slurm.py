"""A real single-node Slurm (tests/slurm/cluster.sh): the sweep through the Slurm executor, the
landscape as a 2-task MPI job under srun, and the outputs equal to a local run's."""

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


def test_the_sweep_on_slurm_equals_the_local_run(slurm, tmp_path):
    on_slurm = snakemake(tmp_path / "slurm", "--workflow-profile", str(REPO / "profiles" / "slurm-test"))
    assert on_slurm.returncode == 0, on_slurm.stderr[-4000:]
    local = snakemake(tmp_path / "local", "--cores", "2", "--set-resources", "landscape:tasks=2")
    assert local.returncode == 0, local.stderr[-4000:]
    slurm_run, local_run = tmp_path / "slurm" / RUN, tmp_path / "local" / RUN
    assert "has been submitted with SLURM jobid" in on_slurm.stdout + on_slurm.stderr
    log = (tmp_path / "slurm" / "logs" / "pinn" / "beta~5" / "seed~0" / LANDSCAPE / "landscape.log").read_text()
    assert "'ranks': 2" in log
    assert load_checkpoint(slurm_run / "checkpoint.pt")["hash"] == load_checkpoint(local_run / "checkpoint.pt")["hash"]
    assert np.array_equal(read_landscape(slurm_run / LANDSCAPE / "landscape.h5").loss,
                          read_landscape(local_run / LANDSCAPE / "landscape.h5").loss)
    assert (read_json(slurm_run / LANDSCAPE / "topology.json")["metrics"]
            == read_json(local_run / LANDSCAPE / "topology.json")["metrics"])
    slurm_hessian, local_hessian = read_json(slurm_run / "hessian.json"), read_json(local_run / "hessian.json")
    np.testing.assert_allclose(slurm_hessian["eigenvalues"], local_hessian["eigenvalues"], rtol=1e-6)


@pytest.mark.slow
def test_a_landscape_killed_by_its_time_limit_resumes_on_retry(slurm, tmp_path):
    """First attempt: a 1-minute limit, too short; Slurm kills it. The profile's retry gives it
    10 minutes, and the job computes only the work units the first attempt did not finish."""
    sweep = REPO / "tests" / "data" / "slurm_timelimit.yaml"
    command = [str(VENV_BIN / "snakemake"), "--snakefile", str(REPO / "Snakefile"), "--directory",
               str(tmp_path), "--configfile", str(sweep), "--workflow-profile",
               str(REPO / "profiles" / "slurm-test"), "--set-resources", "landscape:mpi='srun'",
               "landscape:tasks=2", "landscape:runtime=1 if attempt == 1 else 10"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1200, env=ENVIRONMENT)
    assert result.returncode == 0, result.stderr[-4000:]
    output = result.stdout + result.stderr
    assert "Trying to restart job" in output or "attempt 2" in output.lower() or "retry" in output.lower()
    log = (tmp_path / "logs" / "pinn" / "beta~5" / "seed~0" / "random3d" / "landscape.log").read_text()
    assert "resuming from" in log
    computed = int(log.split("'points_computed': ")[1].split(",")[0])
    assert 0 < computed < 45**3, "the retry must compute only what the first attempt left"
    assert read_landscape(tmp_path / RUN / "random3d" / "landscape.h5").loss.shape == (45, 45, 45)
