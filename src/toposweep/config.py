"""Sweep configuration: schema validation (with defaults), semantic checks, grid expansion.

Validation happens before any job runs and reports every problem with the key path
(e.g. `experiments[0].grid.lr[1]`) and what is allowed.
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


from .layout import run_name
from .problems import Problem, ProblemError, get_problem
from .sizes import (LOOP_BYTES_PER_POINT, LOOP_MAX_NDIM, LOOP_METRICS, TOPOLOGY_METRICS,
                    landscape_cost, machine_memory_bytes, readable_bytes, summary_columns)
from .schema import (ConfigError, _describe, _validator_filling_defaults, key_path, load_schema,
                     load_yaml, stage_settings)

__all__ = ["ConfigError", "Run", "assembled_schema", "expand_runs", "grid_points", "key_path",
           "load_config", "load_schema", "point_name", "resolve_problems", "stage_settings",
           "validate_config"]

DEFAULT_POINT = "default"


@dataclass(frozen=True)
class Run:
    """One training run: an experiment's grid point and seed, with fully resolved settings."""

    experiment: str
    problem: str
    point: str
    seed: int
    swept: dict[str, Any] = field(hash=False)
    settings: dict[str, Any] = field(hash=False)
    snapshots: dict[str, Any] | None = field(default=None, hash=False)

    @property
    def name(self) -> str:
        """`<experiment>/<point>/seed~<seed>` (see toposweep.layout)."""
        return run_name(self.experiment, self.point, self.seed)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


DEVICE_SETTING = {"description": "auto = CUDA when available, else CPU.",
                  "enum": ["auto", "cpu", "cuda"], "default": "auto"}


def problem_settings_schema(problem: type[Problem]) -> dict:
    """JSON Schema of an experiment's `settings` for one problem: its declared settings plus
    the `device` every problem has."""
    return {"type": "object", "additionalProperties": False,
            "properties": {**problem.settings_schema, "device": DEVICE_SETTING}}


def problem_grid_schema(problem: type[Problem]) -> dict:
    """JSON Schema of an experiment's `grid` for one problem: its sweepable settings, each a
    non-empty list of values its settings schema allows."""
    return {"additionalProperties": False, "properties": {
        key: {"type": "array", "minItems": 1, "items": problem.settings_schema[key]}
        for key in problem.sweepable}}


def assembled_schema(problems: dict[str, type[Problem]], schema: dict | None = None) -> dict:
    """The workflow's schema with, for every problem a configuration names, the schema of its
    `settings` and `grid` assembled from the problem's declarations."""
    schema = copy.deepcopy(load_schema() if schema is None else schema)
    schema["$defs"]["experiment"]["allOf"] = [
        {"if": {"required": ["problem"], "properties": {"problem": {"const": reference}}},
         "then": {"properties": {"settings": problem_settings_schema(problem),
                                 "grid": problem_grid_schema(problem)}}}
        for reference, problem in problems.items()
    ]
    return schema


def resolve_problems(config: dict) -> tuple[dict[str, type[Problem]], list[str]]:
    """The Problem class of every experiment's `problem` value, and an error (with its key path)
    for each value that names none."""
    problems, errors = {}, []
    experiments = config.get("experiments") if isinstance(config, dict) else None
    for index, experiment in enumerate(experiments if isinstance(experiments, list) else []):
        reference = experiment.get("problem") if isinstance(experiment, dict) else None
        if not isinstance(reference, str) or reference in problems:
            continue
        try:
            problems[reference] = get_problem(reference)
        except ProblemError as error:
            errors.append(f"experiments[{index}].problem: {error}")
    return problems, errors


def validate_config(config: dict, schema: dict | None = None) -> dict:
    """Return a copy of `config` with every default filled in, or raise ConfigError."""
    if not isinstance(config, dict):
        raise ConfigError(f"invalid configuration:\n  <top level>: the configuration must be a "
                          f"mapping with the key `experiments`, got {type(config).__name__}")
    problems, messages = resolve_problems(config)
    schema = assembled_schema(problems, schema)
    filled = copy.deepcopy(config)
    errors = sorted(
        _validator_filling_defaults()(schema).iter_errors(filled),
        key=lambda e: (list(map(str, e.absolute_path)), e.message),
    )
    messages += list(dict.fromkeys(_describe(error) for error in errors))
    if not messages:
        messages = _semantic_errors(filled, problems)
    if messages:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(messages))
    return filled


def _semantic_errors(config: dict, problems: dict[str, type[Problem]]) -> list[str]:
    """Checks JSON Schema cannot express: unique names, zip lengths, distinct grid points,
    landscapes that need Hessian eigenvectors or snapshots, the problem's own checks."""
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
        problem = problems[experiment["problem"]]
        messages += _landscape_errors(experiment, problem, where)
        messages += _topology_errors(experiment, where)
        messages += _reference_errors(experiment, problem, where)
        lengths = {key: len(values) for key, values in grid.items()}
        if experiment["grid_mode"] == "zip" and len(set(lengths.values())) > 1:
            messages.append(f"{where}.grid: grid_mode zip needs lists of equal length, got {lengths}")
        if not messages:
            for point in grid_points(experiment):
                settings = {**experiment["settings"], **point}
                for key, message in problem.settings_errors(settings):
                    if key in point:
                        messages.append(f"{where}.grid.{key}: {message} "
                                        f"(at grid point {point_name(point)})")
                    else:
                        messages.append(f"{where}.settings.{key}: {message}")
    return list(dict.fromkeys(messages))


def _landscape_errors(experiment: dict, problem: type[Problem], where: str) -> list[str]:
    """Landscape specs: unique names, the dimension cap, what their directions need."""
    messages, names = [], {}
    snapshots = experiment["snapshots"]
    if snapshots is not None and snapshots["unit"] == "epoch" and not problem.has_epochs:
        messages.append(f"{where}.snapshots.unit: {problem.name} does not train in epochs; "
                        "use unit: step")
    for number, landscape in enumerate(experiment["landscapes"]):
        at = f"{where}.landscapes[{number}]"
        if landscape["name"] in names:
            messages.append(f"{at}.name: {landscape['name']!r} is also the name of "
                            f"landscapes[{names[landscape['name']]}]; names must be unique")
        names.setdefault(landscape["name"], number)
        dimensions, directions = landscape["dimensions"], landscape["directions"]
        messages += _sampling_errors(landscape, experiment["topology"], at)
        if directions == "hessian" and experiment["hessian"]["k"] < dimensions:
            messages.append(f"{where}.hessian.k: landscape {landscape['name']!r} takes {dimensions} "
                            f"Hessian eigenvectors (dimensions) but k is "
                            f"{experiment['hessian']['k']}; set hessian.k >= {dimensions}")
        if directions == "trajectory_pca" and snapshots is None:
            messages.append(f"{at}.directions: trajectory_pca needs the training snapshots; set "
                            f"{where}.snapshots (e.g. {{every: 1, unit: epoch}})")
        if directions == "trajectory_pca" and landscape["normalization"] not in ("auto", "none"):
            messages.append(f"{at}.normalization: trajectory_pca keeps the components' unit norm "
                            "(the training path is projected on them); use auto or none")
        if landscape["extent"] == "auto" and directions != "trajectory_pca":
            messages.append(f"{at}.extent: auto (fit the trajectory) needs directions: "
                            "trajectory_pca; give a number")
    return messages


def _sampling_errors(landscape: dict, topology: dict, at: str) -> list[str]:
    """Grid or scattered samples: the keys each needs, and the points and memory they cost."""
    dimensions, sampling = landscape["dimensions"], landscape["sampling"]
    if sampling != "grid":
        if landscape["n_samples"] is None:
            return [f"{at}.n_samples: sampling {sampling} needs n_samples (e.g. 4096)"]
        if landscape["n_samples"] > landscape["max_points"]:
            return [f"{at}.n_samples: {landscape['n_samples']:,} samples is more than max_points "
                    f"= {landscape['max_points']:,}; lower n_samples or raise {at}.max_points"]
        if topology["neighbours"] >= landscape["n_samples"]:
            return [f"{at}.n_samples: the neighbourhood graph joins every sample to "
                    f"topology.neighbours = {topology['neighbours']} others; take more samples "
                    "than that, or fewer neighbours"]
    else:
        if landscape["n_samples"] is not None:
            return [f"{at}.n_samples: applies to scattered sampling (sobol, latin_hypercube, "
                    "uniform); a grid has resolution^dimensions points: remove n_samples"]
        if dimensions > 4 and not landscape["allow_high_dimensions"]:
            return [f"{at}.dimensions: {dimensions} is more than 4; set allow_high_dimensions: "
                    "true to allow a grid of resolution^dimensions points, or use scattered "
                    "sampling (sobol with n_samples)"]
        # Compared in logarithms first: resolution^dimensions of a typo can have millions of digits.
        log_points = dimensions * math.log10(landscape["resolution"])
        if log_points > math.log10(landscape["max_points"]):
            count = (f"{landscape['resolution'] ** dimensions:,}" if log_points < 30
                     else f"about 10^{log_points:.0f}")
            return [f"{at}: {landscape['resolution']}^{dimensions} = {count} grid points "
                    f"is more than max_points = {landscape['max_points']:,}; lower "
                    f"resolution or dimensions, or raise {at}.max_points"]
    cost = landscape_cost(landscape, topology["neighbours"])
    memory = machine_memory_bytes()
    if memory is not None and cost["topology_bytes"] > memory:
        lower = "resolution or dimensions" if sampling == "grid" else "n_samples"
        return [f"{at}: its topology needs about {readable_bytes(cost['topology_bytes'])} "
                f"for {cost['points']:,} points, more than this machine's "
                f"{readable_bytes(memory)}; lower {lower}"]
    return []


def _topology_errors(experiment: dict, where: str) -> list[str]:
    """The topology section against the landscapes: loops (homology dimension 1, gudhi's cubical
    complex) are computed for grid landscapes of at most LOOP_MAX_NDIM dimensions."""
    messages = []
    if 1 not in experiment["topology"]["homology_dimensions"]:
        return messages
    for landscape in experiment["landscapes"]:
        if landscape["sampling"] != "grid":  # the cubical complex only exists on a grid
            messages.append(f"{where}.topology.homology_dimensions: loops (dimension 1) are "
                            f"computed on grids; landscape {landscape['name']!r} has "
                            f"{landscape['sampling']} samples; use [0], or put the grid "
                            "landscapes in an experiment of their own")
            continue
        if landscape["dimensions"] > LOOP_MAX_NDIM:
            messages.append(f"{where}.topology.homology_dimensions: loops (dimension 1) are "
                            f"computed for landscapes of at most {LOOP_MAX_NDIM} dimensions; "
                            f"landscape {landscape['name']!r} has {landscape['dimensions']}; "
                            "use [0] or lower its dimensions")
            continue
        points = landscape["resolution"] ** landscape["dimensions"]  # at most 4-D: small int
        memory = machine_memory_bytes()
        if memory is not None and points * LOOP_BYTES_PER_POINT > memory:
            messages.append(f"{where}.topology.homology_dimensions: the loops of landscape "
                            f"{landscape['name']!r} need about "
                            f"{readable_bytes(points * LOOP_BYTES_PER_POINT)} (gudhi's cubical "
                            f"complex), more than this machine's {readable_bytes(memory)}")
    return messages


def _reference_errors(experiment: dict, problem: type[Problem], where: str) -> list[str]:
    """Names a config gives that the sweep will not produce: the figures' parameter must be a
    swept setting; metric names must be columns of the summary (topology metrics always; the
    others when the problem declares its `metrics`)."""
    messages = []
    swept = list(experiment.get("grid", {}))
    figures, aggregate = experiment["figures"], experiment["aggregate"]
    if figures["parameter"] is not None and figures["parameter"] not in swept:
        messages.append(f"{where}.figures.parameter: {figures['parameter']!r} is not swept; the "
                        f"grid sweeps {swept or 'nothing'}")
    unknown = [name for name in aggregate["topology_metrics"] if name not in TOPOLOGY_METRICS]
    if unknown:
        messages.append(f"{where}.aggregate.topology_metrics: {unknown} are not topology metrics; "
                        f"allowed: {', '.join(TOPOLOGY_METRICS)}")
    loops = 1 in experiment["topology"]["homology_dimensions"]
    unasked = [name for name in aggregate["topology_metrics"] if name in LOOP_METRICS]
    if unasked and not loops:
        messages.append(f"{where}.aggregate.topology_metrics: {unasked} are loop metrics; set "
                        f"{where}.topology.homology_dimensions: [0, 1] to compute them")
    if not problem.metrics:
        return messages
    columns = summary_columns(problem.metrics, experiment["hessian"]["k"], swept, loops)
    named = {"aggregate.ml_metrics": aggregate["ml_metrics"] or [],
             "figures.panel_metrics": figures["panel_metrics"] or [],
             "figures.heatmap_metric": [figures["heatmap_metric"]] if figures["heatmap_metric"] else []}
    for key, names in named.items():
        unknown = [name for name in names if name not in columns]
        if unknown:
            messages.append(f"{where}.{key}: {unknown} will not be columns of the summary; "
                            f"allowed: {', '.join(sorted(columns))}")
    return messages


def load_config(path: str | Path) -> dict:
    """Read a YAML sweep file (duplicate keys refused) and validate it."""
    config = load_yaml(path)
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
                    snapshots=experiment["snapshots"],
                ))
    return runs
