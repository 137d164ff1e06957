"""Profiles: the Perlmutter profile dry-runs without Slurm; profile mistakes stop before submission."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

VENV_BIN = Path(sys.executable).parent


def dry_run(tmp_path: Path, *args: str, account: str | None = "m1234") -> subprocess.CompletedProcess:
    environment = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    environment.pop("TOPOSWEEP_SLURM_ACCOUNT", None)
    if account is not None:
        environment["TOPOSWEEP_SLURM_ACCOUNT"] = account
    command = [str(VENV_BIN / "snakemake"), "--snakefile", str(REPO / "Snakefile"), "--directory",
               str(tmp_path), "--configfile", str(REPO / "config" / "paper" / "pinn_beta.yaml"),
               "-n", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment)


def test_perlmutter_profile_dry_run(tmp_path):
    result = dry_run(tmp_path, "--workflow-profile", str(REPO / "profiles" / "perlmutter"))
    assert result.returncode == 0, result.stderr[-3000:]
    landscape = next(block for block in result.stdout.split("\n\n") if "rule landscape:" in block)
    for expected in ("slurm_account=m1234", "qos=regular", "mpi=srun", "tasks=4", "gpu=4",
                     "tasks_per_gpu=1", "constraint=gpu"):
        assert expected in landscape, expected
    train = next(block for block in result.stdout.split("\n\n") if "rule train:" in block)
    assert "qos=shared" in train and "gpu=1" in train


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
