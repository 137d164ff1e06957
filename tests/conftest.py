"""Shared fixtures: small, fast run configurations built through the real config validator."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from toposweep.config import expand_runs, validate_config

REPO = Path(__file__).resolve().parents[1]
# Tests pin the thread count so results (and timings) do not depend on the machine.
torch.set_num_threads(int(os.environ.get("TOPOSWEEP_TEST_THREADS", "1")))


def make_runs(problem: str, settings: dict, grid: dict | None = None, seeds=(0,),
              snapshots: dict | None = None) -> list[dict]:
    """Validated runs of one experiment, as the dicts the training stage takes."""
    experiment = {"name": "t", "problem": problem, "settings": settings, "seeds": list(seeds),
                  "snapshots": snapshots}
    if grid:
        experiment["grid"] = grid
    config = validate_config({"experiments": [experiment]})
    return [run.to_dict() for run in expand_runs(config)]


TINY_RESNET = {
    "dataset": "digits", "input_size": 8, "width": 2, "epochs": 2, "milestones": [],
    "batch_size": 64, "max_train_samples": 256, "eval_batch_size": 32, "lr": 0.05,
}


@pytest.fixture
def tiny_resnet_run() -> dict:
    return make_runs("resnet20", TINY_RESNET)[0]


@pytest.fixture
def short_pinn_run() -> dict:
    return make_runs("pinn_convection", {"beta": 5.0, "max_iter": 20})[0]


# The arrays that make a MergeTree: two trees are equal when all of them are.
TREE_FIELDS = ("node_vertex", "node_type", "arc_child", "arc_parent", "arc_size", "vertex_arc",
               "pair_birth_vertex", "pair_death_vertex")
