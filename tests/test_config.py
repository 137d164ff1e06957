"""Config validation (schema + semantic checks), defaults, grid expansion and run naming."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from toposweep import layout
from toposweep.config import (
    ConfigError, assembled_schema, expand_runs, load_config, load_schema, point_name,
    validate_config,
)
from toposweep.problems import get_problem
from toposweep.problems import BUILT_IN

from conftest import REPO

GOOD = {"name": "e", "problem": "pinn_convection", "grid": {"beta": [1, 10]}}


def config_with(**changes) -> dict:
    experiment = copy.deepcopy(GOOD)
    for key, value in changes.items():
        if value is None:
            experiment.pop(key, None)
        else:
            experiment[key] = value
    return {"experiments": [experiment]}


BAD_CONFIGS = {
    "unknown top-level key": ({**config_with(), "experiment": []}, "<top level>", "'experiment' was unexpected"),
    "no experiments": ({"experiments": []}, "experiments", "should be non-empty"),
    "unknown problem": (config_with(problem="pinn_burgers"), "experiments[0].problem", "'pinn_burgers' is not a built-in problem (pinn_convection, resnet20, unet_crf)"),
    "missing problem file": (config_with(problem="nowhere/model.py:Net"), "experiments[0].problem", "no such file nowhere/model.py"),
    "unimportable problem module": (config_with(problem="no_such_package.models:Net"), "experiments[0].problem", "cannot import no_such_package.models: ModuleNotFoundError"),
    "missing problem class": (config_with(problem="toposweep.problems.resnet20:Nope"), "experiments[0].problem", "toposweep.problems.resnet20 has no class 'Nope'"),
    "class that is not a Problem": (config_with(problem="toposweep.io:Landscape"), "experiments[0].problem", "Landscape in toposweep.io is not a subclass of toposweep.problems.Problem"),
    "missing problem": (config_with(problem=None), "experiments[0]", "'problem' is a required property"),
    "wrong key in experiment": (config_with(seed=[1]), "experiments[0]", "'seed' was unexpected"),
    "wrong key in settings": (config_with(settings={"betaa": 3}), "experiments[0].settings", "allowed keys"),
    "wrong type": (config_with(settings={"n_collocation": "100"}), "experiments[0].settings.n_collocation", "is not of type 'integer'"),
    "empty grid list": (config_with(grid={"beta": []}), "experiments[0].grid.beta", "should be non-empty"),
    "empty grid": (config_with(grid={}), "experiments[0].grid", "should be non-empty"),
    "unsweepable grid key": (config_with(grid={"width": [4]}), "experiments[0].grid", "'width' was unexpected"),
    "non-positive learning rate": (config_with(grid={"lr": [1.0, 0.0]}), "experiments[0].grid.lr[1]", "less than or equal to the minimum of 0"),
    "negative lr in settings": (config_with(settings={"lr": -0.1}), "experiments[0].settings.lr", "less than or equal to the minimum of 0"),
    "number YAML reads as text": (config_with(grid={"lr": ["1e-3"]}), "experiments[0].grid.lr[0]", "YAML reads 1e-3 as text"),
    "grid values not a list": (config_with(grid={"beta": 5}), "experiments[0].grid.beta", "is not of type 'array'"),
    "bad seeds": (config_with(seeds=[0, -1]), "experiments[0].seeds[1]", "less than the minimum of 0"),
    "duplicate seeds": (config_with(seeds=[0, 0]), "experiments[0].seeds", "non-unique"),
    "bad grid mode": (config_with(grid_mode="cartesian"), "experiments[0].grid_mode", "is not one of"),
    "bad experiment name": (config_with(name="a/b"), "experiments[0].name", "does not match"),
    "too many collocation points": (config_with(settings={"n_collocation": 30000}), "experiments[0].settings.n_collocation", "30000 exceeds the 25245 interior"),
    "zip of unequal lengths": (config_with(grid={"beta": [1, 5], "lr": [1.0]}, grid_mode="zip"), "experiments[0].grid", "equal length"),
    "duplicate grid values": (config_with(grid={"beta": [1, 1]}), "experiments[0].grid.beta", "duplicate values"),
    "too many landscape dimensions": (config_with(landscapes=[{"name": "a", "dimensions": 5}]), "experiments[0].landscapes[0].dimensions", "set allow_high_dimensions: true"),
    "landscape resolution": (config_with(landscapes=[{"name": "a", "resolution": 2}]), "experiments[0].landscapes[0].resolution", "less than the minimum of 3"),
    "landscape directions": (config_with(landscapes=[{"name": "a", "directions": "pca"}]), "experiments[0].landscapes[0].directions", "is not one of"),
    "landscape without a name": (config_with(landscapes=[{"dimensions": 2}]), "experiments[0].landscapes[0]", "'name' is a required property"),
    "duplicate landscape names": (config_with(landscapes=[{"name": "a"}, {"name": "a", "dimensions": 3}]), "experiments[0].landscapes[1].name", "'a' is also the name of landscapes[0]"),
    "old single landscape key": (config_with(landscape={"resolution": 5}), "experiments[0]", "'landscape' was unexpected"),
    "too few Hessian eigenvectors": (config_with(landscapes=[{"name": "h", "directions": "hessian", "dimensions": 3}], hessian={"k": 2}), "experiments[0].hessian.k", "set hessian.k >= 3"),
    "trajectory without snapshots": (config_with(landscapes=[{"name": "t", "directions": "trajectory_pca"}]), "experiments[0].landscapes[0].directions", "trajectory_pca needs the training snapshots"),
    "epoch snapshots of an L-BFGS PINN": (config_with(snapshots={"every": 1}), "experiments[0].snapshots.unit", "pinn_convection does not train in epochs"),
    "auto extent of random directions": (config_with(landscapes=[{"name": "r", "extent": "auto"}]), "experiments[0].landscapes[0].extent", "auto (fit the trajectory) needs directions: trajectory_pca"),
    "integral float for an integer": (config_with(landscapes=[{"name": "a", "resolution": 11.0}]), "experiments[0].landscapes[0].resolution", "(write the integer 11, not 11.0)"),
    "integral float in the settings": (config_with(settings={"n_collocation": 10.0}), "experiments[0].settings.n_collocation", "(write the integer 10, not 10.0)"),
    "NaN in the grid": (config_with(grid={"beta": [1.0, float("nan")]}), "experiments[0].grid.beta[1]", "NaN and infinite values are not allowed"),
    "NaN learning rate": (config_with(settings={"lr": float("nan")}), "experiments[0].settings.lr", "NaN and infinite values are not allowed"),
    "NaN extent": (config_with(landscapes=[{"name": "a", "extent": float("nan")}]), "experiments[0].landscapes[0].extent", "NaN and infinite values are not allowed"),
    "infinite threshold": (config_with(topology={"threshold": float("inf")}), "experiments[0].topology.threshold", "NaN and infinite values are not allowed"),
    "unknown figures parameter": (config_with(figures={"parameter": "lr"}), "experiments[0].figures.parameter", "'lr' is not swept; the grid sweeps ['beta']"),
    "unknown heat map metric": (config_with(figures={"heatmap_metric": "test_accuracy"}), "experiments[0].figures.heatmap_metric", "['test_accuracy'] will not be columns of the summary"),
    "unknown topology metric": (config_with(aggregate={"topology_metrics": ["n_minimum"]}), "experiments[0].aggregate.topology_metrics", "['n_minimum'] are not topology metrics"),
    "unknown ML metric": (config_with(aggregate={"ml_metrics": ["test_accuracy"]}), "experiments[0].aggregate.ml_metrics", "['test_accuracy'] will not be columns of the summary"),
    "unknown panel metric": (config_with(figures={"panel_metrics": ["eigenvalue_9"]}), "experiments[0].figures.panel_metrics", "['eigenvalue_9'] will not be columns"),
    "too many landscape points": (config_with(landscapes=[{"name": "big", "dimensions": 4, "resolution": 201, "allow_high_dimensions": True}]), "experiments[0].landscapes[0]", "201^4 = 1,632,240,801 grid points is more than max_points = 100,000,000"),
    "loops on scattered samples": (config_with(topology={"homology_dimensions": [0, 1]}, landscapes=[{"name": "s", "sampling": "sobol", "n_samples": 100}]), "experiments[0].topology.homology_dimensions", "loops (dimension 1) are computed on grids"),
    "scattered sampling without n_samples": (config_with(landscapes=[{"name": "s", "dimensions": 10, "sampling": "sobol"}]), "experiments[0].landscapes[0].n_samples", "sampling sobol needs n_samples"),
    "n_samples on a grid": (config_with(landscapes=[{"name": "g", "n_samples": 100}]), "experiments[0].landscapes[0].n_samples", "applies to scattered sampling"),
    "unknown sampling": (config_with(landscapes=[{"name": "s", "sampling": "halton", "n_samples": 100}]), "experiments[0].landscapes[0].sampling", "grid"),
    "more samples than max_points": (config_with(landscapes=[{"name": "s", "sampling": "uniform", "n_samples": 2000, "max_points": 1000}]), "experiments[0].landscapes[0].n_samples", "2,000 samples is more than max_points = 1,000"),
    "fewer samples than graph neighbours": (config_with(landscapes=[{"name": "s", "sampling": "sobol", "n_samples": 10}]), "experiments[0].landscapes[0].n_samples", "topology.neighbours = 16"),
    "scattered samples larger than the machine's memory": (config_with(landscapes=[{"name": "s", "sampling": "sobol", "dimensions": 10, "n_samples": 10**10, "max_points": 10**11}]), "experiments[0].landscapes[0]", "more than this machine's"),
    "landscape larger than the machine's memory": (config_with(landscapes=[{"name": "big", "dimensions": 4, "resolution": 201, "max_points": 2000000000}]), "experiments[0].landscapes[0]", "more than this machine's"),
    "normalised trajectory directions": (config_with(snapshots={"every": 1, "unit": "step"}, landscapes=[{"name": "t", "directions": "trajectory_pca", "normalization": "filter"}]), "experiments[0].landscapes[0].normalization", "trajectory_pca keeps the components' unit norm"),
    "unet dataset": ({"experiments": [{"name": "u", "problem": "unet_crf", "settings": {"dataset": "voc"}}]}, "experiments[0].settings.dataset", "is not one of"),
    "unet width in grid": ({"experiments": [{"name": "u", "problem": "unet_crf", "grid": {"width": [0]}}]}, "experiments[0].grid.width[0]", "less than the minimum of 1"),
    "resnet dataset": ({"experiments": [{"name": "r", "problem": "resnet20", "settings": {"dataset": "mnist"}}]}, "experiments[0].settings.dataset", "is not one of"),
    "resnet shortcut in grid": ({"experiments": [{"name": "r", "problem": "resnet20", "grid": {"shortcut": ["C"]}}]}, "experiments[0].grid.shortcut[0]", "is not one of"),
}


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
def test_bad_config_is_rejected_with_key_path(name):
    config, path, fragment = BAD_CONFIGS[name]
    with pytest.raises(ConfigError) as caught:
        validate_config(config)
    message = str(caught.value)
    assert f"{path}: " in message
    assert fragment in message


def test_duplicate_experiment_names_are_rejected():
    config = {"experiments": [dict(GOOD), dict(GOOD)]}
    with pytest.raises(ConfigError, match=r"experiments\[1\]\.name: 'e' is also the name of experiments\[0\]"):
        validate_config(config)


def test_defaults_are_filled_from_schema():
    config = validate_config(config_with())
    experiment = config["experiments"][0]
    assert experiment["seeds"] == [0]
    assert experiment["grid_mode"] == "product"
    settings = experiment["settings"]
    assert settings["n_collocation"] == 100
    assert settings["hidden_width"] == 50 and settings["hidden_layers"] == 4
    assert settings["optimizer"] == "lbfgs" and settings["lr"] == 1.0 and settings["history_size"] == 50
    resnet = validate_config({"experiments": [{"name": "r", "problem": "resnet20"}]})
    assert resnet["experiments"][0]["settings"]["milestones"] == [100, 150]
    assert resnet["experiments"][0]["settings"]["weight_decay"] == 1e-4


def test_validation_does_not_mutate_input():
    config = config_with()
    before = copy.deepcopy(config)
    validate_config(config)
    assert config == before


def test_product_and_zip_expansion():
    grid = {"beta": [1, 5, 10], "lr": [1.0, 0.5, 0.1]}
    product = expand_runs(validate_config(config_with(grid=grid, seeds=[0, 7])))
    assert len(product) == 18
    zipped = expand_runs(validate_config(config_with(grid=grid, grid_mode="zip")))
    assert [run.swept for run in zipped] == [{"beta": 1, "lr": 1.0}, {"beta": 5, "lr": 0.5}, {"beta": 10, "lr": 0.1}]
    assert zipped[1].settings["beta"] == 5 and zipped[1].settings["lr"] == 0.5


def test_run_directories_are_stable_and_readable():
    runs = expand_runs(validate_config(config_with(grid={"lr": [1.0], "beta": [10]}, seeds=[3])))
    assert runs[0].name == "e/beta~10_lr~1.0/seed~3"
    assert layout.run_dir(runs[0].experiment, runs[0].point, runs[0].seed) == "results/e/beta~10_lr~1.0/seed~3"
    assert point_name({}) == "default"
    assert point_name({"lr": 5e-05, "optimizer": "adam"}) == "lr~5e-05_optimizer~adam"
    no_grid = expand_runs(validate_config(config_with(grid=None)))
    assert [run.name for run in no_grid] == ["e/default/seed~0"]


def test_schema_is_assembled_from_the_problems_declarations():
    schema = load_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "allOf" not in schema["$defs"]["experiment"]  # no hand-copied per-problem blocks
    pinn = get_problem("pinn_convection")
    assembled = assembled_schema({"pinn_convection": pinn})
    block = assembled["$defs"]["experiment"]["allOf"][0]
    assert block["if"]["properties"]["problem"] == {"const": "pinn_convection"}
    settings = block["then"]["properties"]["settings"]["properties"]
    assert set(settings) == set(pinn.settings_schema) | {"device"}
    assert set(block["then"]["properties"]["grid"]["properties"]) == set(pinn.sweepable)
    assert sorted(BUILT_IN) == ["pinn_convection", "resnet20", "unet_crf"]


def test_scattered_samples_need_no_high_dimension_opt_in():
    config = validate_config(config_with(landscapes=[
        {"name": "s10", "dimensions": 10, "sampling": "sobol", "n_samples": 4096}]))
    spec = config["experiments"][0]["landscapes"][0]
    assert spec["sampling"] == "sobol" and spec["n_samples"] == 4096
    assert config["experiments"][0]["topology"]["graph"] == "gabriel"


def test_several_landscapes_default_and_named():
    default = validate_config(config_with())["experiments"][0]["landscapes"]
    assert [spec["name"] for spec in default] == ["main"] and default[0]["resolution"] == 41
    two = validate_config(config_with(landscapes=[{"name": "random2d"}, {"name": "random3d", "dimensions": 3}]))
    specs = two["experiments"][0]["landscapes"]
    assert [(s["name"], s["dimensions"], s["directions"]) for s in specs] == [("random2d", 2, "random"), ("random3d", 3, "random")]


def test_a_problem_named_by_file_or_module(tmp_path, monkeypatch):
    (tmp_path / "mine.py").write_text(USER_PROBLEM)
    monkeypatch.chdir(tmp_path)
    config = validate_config({"experiments": [{"name": "u", "problem": "mine.py:Quadratic", "grid": {"scale": [1.0, 2.0]}}]})
    settings = config["experiments"][0]["settings"]
    assert settings == {"scale": 1.0, "size": 3, "device": "auto"}  # the class's defaults + device
    with pytest.raises(ConfigError, match=r"experiments\[0\]\.grid: .*'size' was unexpected"):
        validate_config({"experiments": [{"name": "u", "problem": "mine.py:Quadratic", "grid": {"size": [1]}}]})
    with pytest.raises(ConfigError, match=r"experiments\[0\]\.settings\.size: -1 is less than the minimum of 1"):
        validate_config({"experiments": [{"name": "u", "problem": "mine.py:Quadratic", "settings": {"size": -1}}]})
    with pytest.raises(ConfigError, match=r"experiments\[0\]\.problem: Broken in .*: settings_schema.scale needs a `default`"):
        validate_config({"experiments": [{"name": "u", "problem": "mine.py:Broken"}]})
    monkeypatch.syspath_prepend(str(tmp_path))
    by_module = validate_config({"experiments": [{"name": "u", "problem": "mine:Quadratic"}]})
    assert by_module["experiments"][0]["settings"]["size"] == 3


USER_PROBLEM = """
from toposweep.problems import Problem

class Quadratic(Problem):
    name = "quadratic"
    settings_schema = {"scale": {"type": "number", "default": 1.0, "description": "s"},
                       "size": {"type": "integer", "minimum": 1, "default": 3, "description": "n"}}
    sweepable = ("scale",)
    def build_model(self): ...
    def train(self, model, curve, resume_path=None): ...
    def evaluate(self, model): ...
    def loss_function(self, model): ...

class Broken(Quadratic):
    settings_schema = {"scale": {"type": "number"}}
    sweepable = ()
"""


@pytest.mark.parametrize("path", sorted((REPO / "config").rglob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid(path: Path):
    config = load_config(path)
    assert expand_runs(config)


def test_paper_pinn_sweep_has_the_papers_grid():
    config = load_config(REPO / "config" / "paper" / "pinn_beta.yaml")
    runs = expand_runs(config)
    assert sorted({run.swept["beta"] for run in runs}) == [1, 5, 10, 20, 30, 40, 50]
    assert sorted({run.seed for run in runs}) == [0, 123, 2023, 123456]
    assert len(runs) == 28


def test_load_config_reports_the_file(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(config_with(grid={"lr": [-1.0]})))
    with pytest.raises(ConfigError, match=r"sweep.yaml: invalid configuration:\n  experiments\[0\]\.grid\.lr\[0\]"):
        load_config(path)
    path.write_text("experiments: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_a_key_given_twice_is_refused_with_its_line(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("experiments:\n  - name: e\n    problem: pinn_convection\n    landscapes:\n"
                    "      - {name: a, resolution: 21}\n    landscapes:\n      - {name: a, resolution: 201}\n")
    with pytest.raises(ConfigError, match=r"sweep.yaml: line 6: duplicate key 'landscapes' \(first given on line 4\)"):
        load_config(path)


def test_metric_declarations_cover_what_the_problems_return():
    """The built-ins' declared `metrics` are what their train/evaluate return (recorded runs)."""
    import json

    reference = json.loads((REPO / "tests" / "data" / "builtin_reference.json").read_text())
    for case in reference.values():
        declared = get_problem(case["run"]["problem"]).metrics
        assert set(case["test_metrics"]) <= set(declared), case["run"]["problem"]
