"""Config validation, grid expansion and path helpers shared by every rule."""

import json
import os
import re
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

# The workflow runs the library of this checkout (scripts/ do the same for their jobs).
sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from toposweep.config import ConfigError, expand_runs, validate_config

try:
    VALIDATED = validate_config(config)
except ConfigError as error:
    raise WorkflowError(str(error))

RUN_DIR = "results/{experiment}/{point}/seed~{seed}"
RUNS = {run.directory: run for run in expand_runs(VALIDATED)}
EXPERIMENTS = [experiment["name"] for experiment in VALIDATED["experiments"]]
EXPERIMENT_CONFIG = {
    experiment["name"]: experiment for experiment in VALIDATED["experiments"]
}


wildcard_constraints:
    experiment=r"[^/]+",
    point=r"[^/]+",
    seed=r"\d+",


def script(name):
    """Absolute path of a script in scripts/ (so --directory elsewhere still finds it)."""
    return str(Path(workflow.basedir) / "scripts" / name)


def run_of(wildcards):
    """The config.Run behind a run directory's wildcards."""
    return RUNS[f"{wildcards.experiment}/{wildcards.point}/seed~{wildcards.seed}"]


def run_json(wildcards):
    return json.dumps(run_of(wildcards).to_dict(), sort_keys=True)


def stage_settings(stage):
    """Params function: an experiment's settings of one stage (e.g. topology) as JSON."""
    return lambda wildcards: json.dumps(
        EXPERIMENT_CONFIG[wildcards.experiment][stage], sort_keys=True
    )


def experiment_runs(experiment):
    """Run directories (relative to results/) of one experiment, in config order."""
    return [path for path, run in RUNS.items() if run.experiment == experiment]


def landscape_inputs(wildcards):
    """The checkpoint, plus the Hessian eigenvectors when the experiment asks for them."""
    inputs = {"checkpoint": f"{RUN_DIR}/checkpoint.pt".format(**wildcards)}
    if EXPERIMENT_CONFIG[wildcards.experiment]["landscape"]["directions"] == "hessian":
        inputs["eigenvectors"] = f"{RUN_DIR}/eigenvectors.pt".format(**wildcards)
    return inputs


def check_profile():
    """Profile mistakes that would otherwise surface only on the cluster: an unset environment
    variable in the default resources (e.g. the Slurm account), resources or threads for a rule
    that does not exist, an MPI rule with fewer than one task."""
    settings = workflow.resource_settings
    problems = []
    rule_names = {rule.name for rule in workflow.rules}
    for kind, table in (
        ("set-resources", settings.overwrite_resources),
        ("set-threads", settings.overwrite_threads),
    ):
        for name in table or {}:
            if name not in rule_names:
                problems.append(
                    f"{kind} names {name!r}, which is not a step of this workflow "
                    f"(steps are {', '.join(sorted(rule_names))})"
                )
    for name, resources in (settings.overwrite_resources or {}).items():
        tasks = resources.get("tasks")
        value = None if tasks is None else tasks.value
        if isinstance(value, int) and value < 1:
            problems.append(f"set-resources {name}: tasks must be >= 1, got {value}")
    # Snakemake expands $VARIABLES when it evaluates a resource; an unset one would reach
    # sbatch as literal text. Dry runs check too: a profile that cannot submit says so first.
    for argument in getattr(settings.default_resources, "args", None) or []:
        names = re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", argument)
        unset = [name for name in names if not os.environ.get(name)]
        if unset:
            problems.append(
                f"default resource {argument!r}: environment variable {unset[0]} is not "
                f"set (e.g. export {unset[0]}=<your Slurm account>)"
            )
    if problems:
        raise WorkflowError("profile error:\n  " + "\n  ".join(problems))


def run_files(experiment, *names):
    """The named files of every run of an experiment; with `available_runs_only: true`, only
    those that exist now (aggregate and plot what a --keep-going sweep left)."""
    paths = [
        f"results/{run}/{name}" for run in experiment_runs(experiment) for name in names
    ]
    if VALIDATED["available_runs_only"]:
        paths = [path for path in paths if Path(path).exists()]
    return paths


def swept_description(experiment):
    """What an experiment sweeps, in words, for report captions."""
    settings = EXPERIMENT_CONFIG[experiment]
    grid = settings.get("grid", {})
    swept = "; ".join(
        f"{key} ∈ {{{', '.join(map(str, values))}}}" for key, values in grid.items()
    )
    seeds = ", ".join(map(str, settings["seeds"]))
    return (
        f"{settings['problem']}, {swept or 'no swept hyperparameter'}"
        f" ({settings['grid_mode']}), seeds {{{seeds}}}"
    )


def experiment_figures(experiment):
    """Every figure file (PNG and PDF) of one experiment."""
    names = ["correlations", "metric_panels", "seed_heatmap", "profiles"]
    if EXPERIMENT_CONFIG[experiment]["figures"]["run_panels"]:
        names += [
            f"runs/{RUNS[run].point}_seed~{RUNS[run].seed}"
            for run in experiment_runs(experiment)
        ]
    return [
        f"results/{experiment}/figures/{name}.{ext}"
        for name in names
        for ext in ("png", "pdf")
    ]


def runs_description(wildcards):
    """JSON list of an experiment's runs (so runs without files still get a summary row)."""
    return json.dumps(
        [
            {
                key: run.to_dict()[key]
                for key in ("experiment", "point", "seed", "swept")
            }
            for run in RUNS.values()
            if run.experiment == wildcards.experiment
        ],
        sort_keys=True,
    )


RUN_PANEL_FILES = (
    "train_metrics.json",
    "curve.csv",
    "predictions.npz",
    "hessian.json",
    "density.csv",
    "landscape.h5",
    "topology.json",
    "merge_tree.json",
    "persistence.csv",
    "profile.json",
)


def run_panel_inputs(wildcards):
    """A run's stage files (only those present, with `available_runs_only: true`)."""
    paths = [f"{RUN_DIR}/{name}".format(**wildcards) for name in RUN_PANEL_FILES]
    if VALIDATED["available_runs_only"]:
        paths = [path for path in paths if Path(path).exists()]
    return paths


def figure_title(kind):
    return lambda wildcards: f"{wildcards.experiment}: {kind}"
