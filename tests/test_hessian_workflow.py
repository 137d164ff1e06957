"""Integration: the real `snakemake` command runs the hessian rule on a tiny sweep."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from toposweep.hessian import load_eigenvectors, top_eigenpairs
from toposweep.io import read_json
from toposweep.training import load_trained

from conftest import REPO
from test_workflow import snakemake

CONFIG = REPO / "tests" / "data" / "tiny_hessian.yaml"
PINN_RUN = "results/pinn/default/seed~0"
RESNET_RUN = "results/resnet/lr~100000000.0/seed~0"


@pytest.fixture(scope="module")
def hessian_sweep(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("hessian_sweep")
    result = snakemake(workdir, CONFIG, f"{PINN_RUN}/hessian.json", f"{RESNET_RUN}/hessian.json")
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


def test_hessian_rule_writes_the_three_files_with_the_config_settings(hessian_sweep):
    run_dir = hessian_sweep / PINN_RUN
    summary = read_json(run_dir / "hessian.json")
    assert summary["status"] == "ok" and summary["settings"]["k"] == 2  # the config's hessian section
    assert summary["settings"]["trace_probes"] == 20 and summary["settings"]["backend"] == "native"
    assert len(summary["eigenvalues"]) == 2 and summary["eigen_converged"]
    # the same numbers as the library on the same checkpoint (same seed, same thread count)
    problem, model, _ = load_trained(run_dir / "checkpoint.pt")
    loss, params = problem.loss_function(model)
    direct = top_eigenpairs(loss, params, 2)
    np.testing.assert_allclose(summary["eigenvalues"], direct.eigenvalues.numpy(), rtol=1e-5)
    eigenvalues, directions = load_eigenvectors(run_dir / "eigenvectors.pt")
    assert eigenvalues.tolist() == summary["eigenvalues"]
    assert list(directions[0]) == [name for name, _ in model.named_parameters()]
    density = pd.read_csv(run_dir / "density.csv")
    assert len(density) == 200
    assert np.trapezoid(density["density"], density["eigenvalue"]) == pytest.approx(1.0, abs=1e-4)
    assert (hessian_sweep / "logs" / "pinn" / "default" / "seed~0" / "hessian.log").exists()


def test_a_diverged_run_gets_skipped_hessian_files(hessian_sweep):
    run_dir = hessian_sweep / RESNET_RUN
    assert read_json(run_dir / "train_metrics.json")["status"] == "diverged"
    summary = read_json(run_dir / "hessian.json")
    assert summary["status"] == "skipped" and "training status is 'diverged'" in summary["message"]
    assert torch.load(run_dir / "eigenvectors.pt", weights_only=True)["status"] == "skipped"
