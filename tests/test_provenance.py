"""Every stage after training refuses a checkpoint that is not its run's own, and the summary
marks a run whose stage files come from different checkpoints (real run folders with another
run's files copied in)."""

from __future__ import annotations

import shutil

import pytest
import torch

from toposweep.aggregate import RunSpec, summary_table
from toposweep.hessian import hessian_of_checkpoint
from toposweep.io import load_checkpoint, save_checkpoint
from toposweep.landscape import sample_landscape
from toposweep.layout import TrainFiles
from toposweep.stage import WrongRun
from toposweep.topology import topology_of_landscape_file
from toposweep.training import train_run

from conftest import TINY_RESNET, make_runs

HESSIAN = {"k": 1, "trace_probes": 2, "density_runs": 1, "density_steps": 5}
LANDSCAPE = {"name": "main", "resolution": 3, "method": "loop"}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two trained PINN runs (β = 1 and 5) with every stage's files, in their own folders."""
    root = tmp_path_factory.mktemp("runs")
    runs = make_runs("pinn_convection", {"max_iter": 5, "hidden_width": 8, "hidden_layers": 1},
                     grid={"beta": [1, 5]})
    for run in runs:
        folder = root / run["point"]
        train_run(run, folder)
        hessian_of_checkpoint(folder / "checkpoint.pt", folder, run=run,
                              train_metrics=folder / "train_metrics.json", **HESSIAN)
        sample_landscape(folder / "checkpoint.pt", folder / "main" / "landscape.h5", LANDSCAPE,
                         run=run, train_metrics=folder / "train_metrics.json")
        topology_of_landscape_file(folder / "main" / "landscape.h5", folder / "main")
    return root, runs


def copy_run(root, run, tmp_path):
    folder = tmp_path / run["point"]
    shutil.copytree(root / run["point"], folder)
    return folder


def test_another_runs_checkpoint_copied_in_is_refused_by_every_stage(two_runs, tmp_path):
    root, (first, second) = two_runs
    folder = copy_run(root, second, tmp_path)
    shutil.copy(root / first["point"] / "checkpoint.pt", folder / "checkpoint.pt")
    checkpoint = folder / "checkpoint.pt"
    message = r"checkpoint.pt belongs to another run: it was trained for t/beta~1/seed~0.*this step is for t/beta~5/seed~0"
    with pytest.raises(WrongRun, match=message):
        hessian_of_checkpoint(checkpoint, folder, run=second, train_metrics=folder / "train_metrics.json", **HESSIAN)
    with pytest.raises(WrongRun, match=message):
        sample_landscape(checkpoint, folder / "main" / "new.h5", LANDSCAPE, run=second,
                         train_metrics=folder / "train_metrics.json")
    assert not (folder / "main" / "new.h5").exists()


def test_a_replaced_checkpoint_of_the_same_run_is_refused_naming_both_files(two_runs, tmp_path):
    """Same run configuration, other weights: train_metrics.json records another hash."""
    root, (_, second) = two_runs
    folder = copy_run(root, second, tmp_path)
    stored = load_checkpoint(folder / "checkpoint.pt")
    weights = {name: tensor + 0.01 for name, tensor in stored["state_dict"].items()}
    save_checkpoint(folder / "checkpoint.pt", weights, stored["run_config"], stored["problem"], "ok")
    with pytest.raises(WrongRun, match=r"checkpoint.pt \(hash \w+\) is not the checkpoint .*train_metrics.json records"):
        hessian_of_checkpoint(folder / "checkpoint.pt", folder, run=second,
                              train_metrics=folder / "train_metrics.json", **HESSIAN)


def test_a_pinn_checkpoint_in_a_resnet_run_is_refused(two_runs, tmp_path):
    root, (first, _) = two_runs
    resnet = make_runs("resnet20", TINY_RESNET)[0]
    folder = tmp_path / "resnet"
    folder.mkdir()
    shutil.copy(root / first["point"] / "checkpoint.pt", folder / "checkpoint.pt")
    with pytest.raises(WrongRun, match=r"\(problem 'pinn_convection'\).*\(problem 'resnet20'\)"):
        hessian_of_checkpoint(folder / "checkpoint.pt", folder, run=resnet, **HESSIAN)


def test_the_summary_marks_stage_files_of_different_checkpoints_inconsistent(two_runs, tmp_path):
    root, runs = two_runs
    folders = [copy_run(root, run, tmp_path) for run in runs]
    shutil.copy(folders[0] / "hessian.json", folders[1] / "hessian.json")  # the other run's Hessian

    def spec(run, folder):
        return RunSpec.from_dict({**run, "files": {
            "train_metrics": folder / "train_metrics.json", "hessian": folder / "hessian.json",
            "landscape": folder / "main" / "landscape.h5", "topology": folder / "main" / "topology.json",
            "profile": folder / "main" / "profile.json"}})

    table = summary_table([spec(run, folder) for run, folder in zip(runs, folders)]).set_index("point")
    assert table.loc["beta~1", "status"] == "ok" and table.loc["beta~1", "inconsistent_files"] == ""
    assert table.loc["beta~5", "status"] == "inconsistent"
    named = table.loc["beta~5", "inconsistent_files"]
    own = load_checkpoint(folders[1] / "checkpoint.pt")["hash"][:12]
    other = load_checkpoint(folders[0] / "checkpoint.pt")["hash"][:12]
    assert f"beta~5/hessian.json ({other})" in named and f"beta~5/train_metrics.json ({own})" in named
    assert table.loc["beta~5", "top_eigenvalue"] == pytest.approx(table.loc["beta~1", "top_eigenvalue"])  # kept, not hidden


def test_runs_with_mostly_nonfinite_landscapes_or_exploding_losses_are_flagged():
    from toposweep.aggregate import run_warnings

    assert run_warnings({"landscape_nonfinite_fraction": 0.98}) == ["landscape 98 % non-finite"]
    assert run_warnings({"initial_train_loss": 2.0, "final_train_loss": 6e27}) == [
        "final training loss 6e+27 is 3e+27x the initial 2"]
    assert run_warnings({"landscape_nonfinite_fraction": 0.1, "initial_train_loss": 2.0,
                         "final_train_loss": 0.1}) == []
