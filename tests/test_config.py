"""Config validation (schema + semantic checks), defaults, grid expansion and run naming."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from toposweep.config import (
    ConfigError, expand_runs, load_config, load_schema, point_name, validate_config,
)
from toposweep.problems import PROBLEMS

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
    "unknown problem": (config_with(problem="pinn_burgers"), "experiments[0].problem", "is not one of"),
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
    "too many landscape dimensions": (config_with(landscape={"dimensions": 5}), "experiments[0].landscape.dimensions", "set landscape.allow_high_dimensions"),
    "landscape resolution": (config_with(landscape={"resolution": 2}), "experiments[0].landscape.resolution", "less than the minimum of 3"),
    "landscape directions": (config_with(landscape={"directions": "pca"}), "experiments[0].landscape.directions", "is not one of"),
    "too few Hessian eigenvectors": (config_with(landscape={"directions": "hessian", "dimensions": 3}, hessian={"k": 2}), "experiments[0].hessian.k", "set hessian.k >= 3"),
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
    assert runs[0].directory == "e/beta~10_lr~1.0/seed~3"
    assert point_name({}) == "default"
    assert point_name({"lr": 5e-05, "optimizer": "adam"}) == "lr~5e-05_optimizer~adam"
    no_grid = expand_runs(validate_config(config_with(grid=None)))
    assert [run.directory for run in no_grid] == ["e/default/seed~0"]


def test_schema_problem_enum_is_the_registry():
    schema = load_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$defs"]["experiment"]["properties"]["problem"]["enum"] == sorted(PROBLEMS)


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


def test_every_key_is_documented_with_its_default():
    """config/README.md has a row `| key | default | ...` for every key of the schema."""
    text = (REPO / "config" / "README.md").read_text()
    schema = load_schema()
    experiment = schema["$defs"]["experiment"]
    definitions = {"## An experiment": experiment,
                   "## `topology` settings": experiment["properties"]["topology"],
                   "## `landscape` settings": experiment["properties"]["landscape"],
                   "## `hessian` settings": experiment["properties"]["hessian"],
                   "## `aggregate` settings": experiment["properties"]["aggregate"],
                   "## `figures` settings": experiment["properties"]["figures"],
                   "## Top-level keys": schema,
                   **{f"## `{p}` settings": schema["$defs"][f"{p}_settings"] for p in PROBLEMS}}
    for heading, definition in definitions.items():
        assert heading in text, heading
        section = text.split(heading, 1)[1].split("\n## ", 1)[0]
        for key, spec in definition["properties"].items():
            row = next((line for line in section.splitlines() if line.startswith(f"| `{key}` |")), None)
            assert row is not None, f"{heading}: no row for {key}"
            default = spec.get("default", "required")
            if isinstance(default, (bool, int, str, list)) and not isinstance(default, float):
                shown = yaml.safe_dump(default, default_flow_style=True, width=float("inf")).strip().removesuffix("...").strip()
                assert shown in row or default == "required" or default == {}, f"{key}: {shown} not in {row}"
