"""The per-stage conda environments (validated by parsing: these machines reach no conda channel)."""

from __future__ import annotations

import re

import pytest
import yaml

from conftest import REPO

ENVS = sorted((REPO / "envs").glob("*.yaml"))


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_environment_is_pinned_and_conda_forge_only(path):
    spec = yaml.safe_load(path.read_text())
    assert spec["channels"] == ["conda-forge", "nodefaults"]
    for dependency in spec["dependencies"]:
        if isinstance(dependency, dict):  # the pip section
            assert all("==" in requirement for requirement in dependency["pip"]), dependency
        else:
            assert re.fullmatch(r"[A-Za-z0-9_.-]+=[0-9][0-9.]*", dependency), dependency


def test_every_rule_names_an_existing_environment():
    rules = (REPO / "workflow" / "rules").glob("*.smk")
    named = {m for path in rules for m in re.findall(r'conda:\s*\n\s*"\.\./\.\./(envs/[^"]+)"', path.read_text())}
    assert named, "no rule names a conda environment"
    for env in named:
        assert (REPO / env).exists(), env


def test_environments_hold_what_their_stages_import():
    torch_env = yaml.safe_load((REPO / "envs" / "torch.yaml").read_text())["dependencies"]
    analysis_env = yaml.safe_load((REPO / "envs" / "analysis.yaml").read_text())["dependencies"]
    names = lambda deps: {d.split("=")[0] for d in deps if isinstance(d, str)}
    assert {"pytorch", "mpi4py", "h5py", "scipy", "jsonschema", "pillow"} <= names(torch_env)
    assert {"numba", "h5py", "matplotlib-base", "seaborn", "pandas", "scikit-learn",
            "gudhi"} <= names(analysis_env)  # graphs of scattered samples; loops
    assert "pytorch" not in names(analysis_env)  # the topology stage must not need torch
