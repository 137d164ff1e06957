"""Profiles: the Perlmutter profile dry-runs without Slurm; profile mistakes stop before submission."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

VENV_BIN = Path(sys.executable).parent


def dry_run(tmp_path: Path, *args: str, account: str | None = "m1234",
            sweep: str = "pinn_beta.yaml") -> subprocess.CompletedProcess:
    environment = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    environment.pop("TOPOSWEEP_SLURM_ACCOUNT", None)
    if account is not None:
        environment["TOPOSWEEP_SLURM_ACCOUNT"] = account
    command = [str(VENV_BIN / "snakemake"), "--snakefile", str(REPO / "Snakefile"), "--directory",
               str(tmp_path), "--configfile", str(REPO / "config" / "paper" / sweep),
               "-n", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment)


def test_perlmutter_profile_packs_runs_into_group_jobs_and_large_landscapes_into_mpi_jobs(tmp_path):
    """The PINN beta sweep's 28 runs (41 x 41 landscapes) go as 7 group jobs of 4 runs; the
    41^4 landscapes of pinn_profiles_4d.yaml are 4-rank MPI jobs of their own. (A dry run
    shows the local launcher: it cannot know the jobs will go to Slurm; the sizes themselves
    are tested in tests/test_jobs.py.)"""
    beta = dry_run(tmp_path / "beta", "--workflow-profile", str(REPO / "profiles" / "perlmutter"))
    assert beta.returncode == 0, beta.stderr[-3000:]
    assert beta.stdout.count("Group job runs (jobs in lexicogr. order)") == 7
    profiles = dry_run(tmp_path / "4d", "--workflow-profile", str(REPO / "profiles" / "perlmutter"),
                       "-p", sweep="pinn_profiles_4d.yaml")
    assert profiles.returncode == 0, profiles.stderr[-3000:]
    commands = [line for line in profiles.stdout.splitlines() if "sample_landscape.py" in line]
    four_d = [line for line in commands if "/hessian4d/" in line]
    assert len(four_d) == 5 and all(" -n 4 " in line and "-m mpi4py" in line for line in four_d)
    three_d = [line for line in commands if "/hessian3d/" in line]  # 41^3 = 68,921 points
    assert len(three_d) == 5 and all("--serial" in line for line in three_d)


def test_a_missing_account_variable_stops_before_submission(tmp_path):
    result = dry_run(tmp_path, "--workflow-profile", str(REPO / "profiles" / "perlmutter"), account=None)
    assert result.returncode != 0
    assert "environment variable TOPOSWEEP_SLURM_ACCOUNT is not set" in result.stdout + result.stderr


@pytest.mark.parametrize("resources, message", [
    (["landscap:tasks=2"], "set-resources names 'landscap', which is not a step of this workflow"),
    (["landscape:tasks=0"], "set-resources landscape: tasks must be >= 1, got 0"),
])
def test_profile_mistakes_are_named(resources, message, tmp_path):
    result = dry_run(tmp_path, "--workflow-profile", str(REPO / "profiles" / "local"),
                     "--set-resources", *resources)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
