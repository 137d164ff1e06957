"""Sweep configuration: schema validation (with defaults), semantic checks, grid expansion.

Validation happens before any job runs and reports every problem with the key path
(e.g. `experiments[0].grid.lr[1]`) and what is allowed.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import jsonschema
import yaml
from jsonschema import Draft202012Validator

from .problems import PROBLEMS

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"
DEFAULT_POINT = "default"


class ConfigError(ValueError):
    """A configuration that must not run; the message lists every offending key path."""


@dataclass(frozen=True)
class Run:
    """One training run: an experiment's grid point and seed, with fully resolved settings."""

    experiment: str
    problem: str
    point: str
    seed: int
    swept: dict[str, Any] = field(hash=False)
    settings: dict[str, Any] = field(hash=False)

    @property
    def directory(self) -> str:
        """Path of the run's outputs relative to results/: `<experiment>/<point>/seed~<seed>`."""
        return f"{self.experiment}/{self.point}/seed~{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_schema(path: Path = SCHEMA_PATH) -> dict:
    return yaml.safe_load(path.read_text())


def _validator_filling_defaults() -> type:
    """Draft 2020-12 validator that also writes each property's `default` into the instance."""
    check_properties = Draft202012Validator.VALIDATORS["properties"]

    def properties_with_defaults(validator, properties, instance, schema):
        if validator.is_type(instance, "object"):
            for name, subschema in properties.items():
                if isinstance(subschema, dict) and "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from check_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(Draft202012Validator, {"properties": properties_with_defaults})


def key_path(parts: Iterable[Any]) -> str:
    """['experiments', 0, 'grid', 'lr', 1] -> 'experiments[0].grid.lr[1]'."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "<top level>"


def _describe(error: jsonschema.ValidationError) -> str:
    message = error.message
    if error.validator == "additionalProperties" and isinstance(error.schema, dict):
        allowed = sorted(error.schema.get("properties", {}))
        message += f"; allowed keys: {', '.join(allowed)}"
    if error.validator == "type" and isinstance(error.instance, str) and _looks_numeric(error.instance):
        message += (f" (YAML reads {error.instance} as text: write the number with a dot and a "
                    "signed exponent, e.g. 1.0e-4 or 1.0e+8)")
    return f"{key_path(error.absolute_path)}: {message}"


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def validate_config(config: dict, schema: dict | None = None) -> dict:
    """Return a copy of `config` with every default filled in, or raise ConfigError."""
    if not isinstance(config, dict):
        raise ConfigError(f"the configuration must be a mapping, got {type(config).__name__}")
    schema = load_schema() if schema is None else schema
    filled = copy.deepcopy(config)
    errors = sorted(
        _validator_filling_defaults()(schema).iter_errors(filled),
        key=lambda e: (list(map(str, e.absolute_path)), e.message),
    )
    messages = list(dict.fromkeys(_describe(error) for error in errors))
    if not messages:
        messages = _semantic_errors(filled)
    if messages:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(messages))
    return filled


def _semantic_errors(config: dict) -> list[str]:
    """Checks JSON Schema cannot express: unique names, zip lengths, distinct grid points."""
    messages = []
    seen: dict[str, int] = {}
    for index, experiment in enumerate(config["experiments"]):
        where = f"experiments[{index}]"
        name = experiment["name"]
        if name in seen:
            messages.append(f"{where}.name: {name!r} is also the name of experiments[{seen[name]}]; "
                            "experiment names must be unique")
        seen.setdefault(name, index)
        grid = experiment.get("grid", {})
        for key, values in grid.items():
            labels = [format_value(v) for v in values]
            if len(set(labels)) != len(labels):
                messages.append(f"{where}.grid.{key}: duplicate values {values}; each must be distinct")
        landscape = experiment["landscape"]
        if landscape["dimensions"] > 4 and not landscape["allow_high_dimensions"]:
            messages.append(f"{where}.landscape.dimensions: {landscape['dimensions']} is more than 4; "
                            "set landscape.allow_high_dimensions: true to allow it")
        if landscape["directions"] == "hessian" and experiment["hessian"]["k"] < landscape["dimensions"]:
            messages.append(f"{where}.hessian.k: the landscape takes {landscape['dimensions']} Hessian "
                            f"eigenvectors (landscape.dimensions) but k is {experiment['hessian']['k']}; "
                            f"set hessian.k >= {landscape['dimensions']}")
        lengths = {key: len(values) for key, values in grid.items()}
        if experiment["grid_mode"] == "zip" and len(set(lengths.values())) > 1:
            messages.append(f"{where}.grid: grid_mode zip needs lists of equal length, got {lengths}")
        if not messages:
            for point in grid_points(experiment):
                settings = {**experiment["settings"], **point}
                for key, message in PROBLEMS[experiment["problem"]].settings_errors(settings):
                    if key in point:
                        messages.append(f"{where}.grid.{key}: {message} "
                                        f"(at grid point {point_name(point)})")
                    else:
                        messages.append(f"{where}.settings.{key}: {message}")
    return list(dict.fromkeys(messages))


def load_config(path: str | Path) -> dict:
    """Read a YAML sweep file and validate it."""
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    try:
        return validate_config(config)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def format_value(value: Any) -> str:
    """Readable, stable text of a grid value for directory names (1.0 stays '1.0')."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return repr(value)
    return str(value)


def point_name(swept: dict[str, Any]) -> str:
    """'beta~10_lr~1.0' from {'lr': 1.0, 'beta': 10}: keys sorted, so names are stable."""
    if not swept:
        return DEFAULT_POINT
    return "_".join(f"{key}~{format_value(swept[key])}" for key in sorted(swept))


def grid_points(experiment: dict) -> list[dict[str, Any]]:
    """The grid's points, in config order: full product by default, element-wise for zip."""
    grid = experiment.get("grid", {})
    if not grid:
        return [{}]
    keys = list(grid)
    if experiment.get("grid_mode", "product") == "zip":
        combos = zip(*(grid[key] for key in keys))
    else:
        combos = itertools.product(*(grid[key] for key in keys))
    return [dict(zip(keys, combo)) for combo in combos]


def expand_runs(config: dict) -> list[Run]:
    """Every run of a validated configuration, experiments in order, then points, then seeds."""
    runs = []
    for experiment in config["experiments"]:
        for point in grid_points(experiment):
            for seed in experiment["seeds"]:
                runs.append(Run(
                    experiment=experiment["name"], problem=experiment["problem"],
                    point=point_name(point), seed=int(seed), swept=dict(point),
                    settings={**experiment["settings"], **point},
                ))
    return runs
