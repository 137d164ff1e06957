"""Config validation, the runs and their landscapes, and path helpers shared by every rule.
Every path comes from toposweep.layout (the one owner of the run layout)."""

import json
import os
import re
import shlex
import shutil
import sys
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.iocontainers import Wildcards
from snakemake.utils import update_config
from snakemake.settings.types import DeploymentMethod

# The workflow runs the library of this checkout (scripts/ do the same for their jobs).
sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from toposweep import jobs, layout
from toposweep.config import ConfigError, expand_runs, resolve_problems, validate_config
from toposweep.figures import registry as figure_registry
from toposweep.schema import load_yaml
from toposweep.sizes import landscape_cost, readable_bytes


def typed_cli_config(value):
    """A --config value as the same YAML in a file reads: Snakemake parses a mapping such as
    `cluster={gpus_per_rank: 1}` with YAML's base loader, which makes every leaf a string.
    """
    if isinstance(value, dict):
        return {key: typed_cli_config(item) for key, item in value.items()}
    if isinstance(value, list):
        return [typed_cli_config(item) for item in value]
    return yaml.safe_load(value) if isinstance(value, str) and value else value


for key, value in workflow.config_settings.config.items():
    if isinstance(value, (dict, list)):
        update_config(config, {key: typed_cli_config(value)})

try:
    # Snakemake has parsed the config files already; read them again, strictly, so that a key
    # given twice (which plain YAML silently resolves to the last) is an error.
    for configfile in workflow.configfiles:
        load_yaml(configfile)
    VALIDATED = validate_config(config)
except ConfigError as error:
    raise WorkflowError(str(error))

PROBLEMS = resolve_problems(VALIDATED)[0]
RUNS = {run.name: run for run in expand_runs(VALIDATED)}
EXPERIMENTS = [experiment["name"] for experiment in VALIDATED["experiments"]]
EXPERIMENT_CONFIG = {
    experiment["name"]: experiment for experiment in VALIDATED["experiments"]
}
LANDSCAPES = {
    name: {spec["name"]: spec for spec in experiment["landscapes"]}
    for name, experiment in EXPERIMENT_CONFIG.items()
}


def runs_text(count):
    return f"{count} run" if count == 1 else f"{count} runs"


if workflow.is_main_process:
    # Which experiments run: with --configfile, the later file's `experiments` replaces the
    # default config's list (Snakemake merges mappings, not lists); say so before any job.
    default = Path(workflow.basedir, "config", "config.yaml").resolve()
    given = " + ".join(
        str(path) for path in workflow.configfiles if Path(path).resolve() != default
    )
    origin = (
        f"from {given}, in place of config/config.yaml's"
        if given
        else "config/config.yaml"
    )
    print(
        f"experiments ({origin}): "
        + "; ".join(
            f"{name} ({runs_text(sum(run.experiment == name for run in RUNS.values()))})"
            for name in EXPERIMENTS
        ),
        file=sys.stderr,
    )
    # What the landscapes will cost, before any job (jobs re-read the Snakefile: say it once).
    for name, specs in LANDSCAPES.items():
        n_runs = sum(run.experiment == name for run in RUNS.values())
        for landscape, spec in specs.items():
            cost = landscape_cost(
                spec, EXPERIMENT_CONFIG[name]["topology"]["neighbours"]
            )
            points = (
                f"{spec['resolution']}^{spec['dimensions']} = {cost['points']:,} grid points"
                if spec["sampling"] == "grid"
                else f"{cost['points']:,} {spec['sampling']} samples in {spec['dimensions']}-D"
            )
            print(
                f"landscape {name}/{landscape}: {points} per run x {runs_text(n_runs)}; memory per run: loss "
                f"{readable_bytes(cost['landscape_bytes'])}, topology about "
                f"{readable_bytes(cost['topology_bytes'])}",
                file=sys.stderr,
            )

# Wildcard patterns of the layout's paths.
RUN_DIR = layout.run_dir("{experiment}", "{point}", "{seed}")
LANDSCAPE_DIR = layout.landscape_dir("{experiment}", "{point}", "{seed}", "{landscape}")
RUN_LOG = "{experiment}/{point}/seed~{seed}"


wildcard_constraints:
    experiment=r"[^/]+",
    point=r"[^/]+",
    seed=r"\d+",
    landscape=r"[A-Za-z0-9][A-Za-z0-9_-]*",


# Jobs run with the interpreter that runs Snakemake, so `.venv/bin/snakemake` works without an
# activated venv (and on cluster nodes whose PATH differs); under `--sdm conda` each rule's own
# environment provides `python`.
CONDA_JOBS = DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method


def within_workdir(path):
    """A path relative to the working directory when it lies inside (shorter commands in logs
    and in the report), else absolute (e.g. --directory elsewhere)."""
    path = Path(path).absolute()
    return (
        str(path.relative_to(Path.cwd()))
        if path.is_relative_to(Path.cwd())
        else str(path)
    )


PYTHON = "python" if CONDA_JOBS else shlex.quote(within_workdir(sys.executable))
# The MPI launcher beside that interpreter (the mpich wheel's), else the one on PATH; on a
# cluster `cluster.mpi_launcher` (srun) for landscapes of their own.
MPIEXEC = (
    "mpiexec"
    if CONDA_JOBS
    else shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or "mpiexec"
)


def script(name, mpi=False):
    """The command that runs a script of scripts/: PYTHON and the script's absolute path (so
    --directory elsewhere still finds it), through mpi4py for an MPI launcher's ranks.
    """
    path = shlex.quote(within_workdir(Path(workflow.basedir) / "scripts" / name))
    return f"{PYTHON} -m mpi4py {path}" if mpi else f"{PYTHON} {path}"


# --- job sizes (toposweep.jobs: groups on a cluster, own MPI jobs for large landscapes) -------
CLUSTER = VALIDATED["cluster"]
RUN_GROUP = jobs.RUN_GROUP


def on_cluster():
    """Jobs go to a cluster executor, or this process runs one of them there (a dry run
    cannot tell, and shows the local launcher)."""
    return workflow.non_local_exec or workflow.remote_exec


def landscape_job(wildcards):
    """How one landscape job is sized (toposweep.jobs.LandscapeJob)."""
    return jobs.landscape_job(
        landscape_spec(wildcards),
        CLUSTER,
        EXPERIMENT_CONFIG[wildcards.experiment]["topology"]["neighbours"],
        on_cluster(),
        MPIEXEC,
    )


def landscape_command(wildcards, resources):
    """Params function: the landscape script for the job's `tasks` and `mpi` resources."""
    return jobs.landscape_command(
        script("sample_landscape.py", mpi=True),
        script("sample_landscape.py"),
        resources.get("tasks"),
        resources.get("mpi"),
        jobs.mpi_launcher(CLUSTER, on_cluster(), MPIEXEC),
    )


def job_qos(wildcards):
    """QOS of a training, Hessian or topology job (`cluster.qos`; none: the cluster's default;
    every job of a group job must ask for the same one)."""
    return CLUSTER["qos"]


def run_gpus(wildcards):
    """GPUs of a training or Hessian job (`cluster.gpus_per_rank`, one rank)."""
    return CLUSTER["gpus_per_rank"]


def run_of(wildcards):
    """The config.Run behind a run directory's wildcards."""
    return RUNS[layout.run_name(wildcards.experiment, wildcards.point, wildcards.seed)]


def run_json(wildcards):
    """The run as JSON: training takes it, later stages check their checkpoint against it."""
    return json.dumps(run_of(wildcards).to_dict(), sort_keys=True)


def stage_settings(stage):
    """Params function: an experiment's settings of one stage (e.g. topology) as JSON."""
    return lambda wildcards: json.dumps(
        EXPERIMENT_CONFIG[wildcards.experiment][stage], sort_keys=True
    )


def landscape_spec(wildcards):
    return LANDSCAPES[wildcards.experiment][wildcards.landscape]


def landscape_settings(wildcards):
    """Params function: one landscape's settings as JSON."""
    return json.dumps(landscape_spec(wildcards), sort_keys=True)


def problem_info(wildcards):
    """Params function: what the figures need of an experiment's problem, as JSON."""
    problem = EXPERIMENT_CONFIG[wildcards.experiment]["problem"]
    return json.dumps(PROBLEMS[problem].describe(), sort_keys=True)


def run_words(wildcards):
    """A run in words, e.g. "β = 10, seed 0" (the problem's short labels for the swept
    settings, not the folder name beta~10)."""
    run = run_of(wildcards)
    labels = PROBLEMS[run.problem].short_labels
    point = ", ".join(
        (
            f"{labels.get(key, key)} = {value:g}"
            if isinstance(value, float)
            else f"{labels.get(key, key)} = {value}"
        )
        for key, value in run.swept.items()
    )
    parts = [point] if point else []
    parts.append(f"seed {wildcards.seed}")
    return ", ".join(parts)


def run_title(wildcards):
    """Params function: a run panel's title, e.g. "pinn (random2d): β = 10, seed 0"."""
    return f"{wildcards.experiment} ({wildcards.landscape}): {run_words(wildcards)}"


def run_order(experiment):
    """Each run's place in numeric order (swept values, then seed: β 1, 5, 10, 20, not the
    text order of the folder names), by run name."""
    runs = sorted(
        experiment_runs(experiment),
        key=lambda run: (
            [
                (0, v) if isinstance(v, (int, float)) else (1, str(v))
                for v in run.swept.values()
            ],
            run.seed,
        ),
    )
    return {run.name: index for index, run in enumerate(runs, start=1)}


def run_panel_labels(wildcards):
    """Report labels of a run panel (evaluated when the report is built): its place in numeric
    order (the report sorts labels as text, so zero-padded), the run in words and its numbers
    (test metric, λ₁, minima, saddles, persistence) from its stage files."""
    from toposweep.report import run_numbers

    order = run_order(wildcards.experiment)
    run = run_of(wildcards)
    width = len(str(len(order)))
    problem = PROBLEMS[run.problem].describe()
    return {
        "#": str(order[run.name]).zfill(width),
        "run": run_words(wildcards),
        **run_numbers(run_panel_inputs(wildcards), problem),
    }


def experiment_runs(experiment):
    """The experiment's runs, in config order."""
    return [run for run in RUNS.values() if run.experiment == experiment]


def landscape_inputs(wildcards):
    """The checkpoint, plus the Hessian eigenvectors or the training trajectory when the
    landscape's directions need them."""
    run = RUN_DIR.format(**wildcards)
    files = layout.TrainFiles.in_dir(run)
    inputs = {"checkpoint": str(files.checkpoint), "train_metrics": str(files.metrics)}
    directions = landscape_spec(wildcards)["directions"]
    if directions == "hessian":
        inputs["eigenvectors"] = str(layout.HessianFiles.in_dir(run).eigenvectors)
    elif directions == "trajectory_pca":
        inputs["trajectory"] = str(files.trajectory)
    return inputs


def run_files(experiment, landscape, existing_only=True):
    """Each run's files that the summary reads, by run name; with `available_runs_only: true`
    (and `existing_only`), only those that exist now (aggregate and plot what a --keep-going
    sweep left)."""
    files = {}
    for run in experiment_runs(experiment):
        directory = layout.run_dir(run.experiment, run.point, run.seed)
        landscape_dir = layout.landscape_dir(
            run.experiment, run.point, run.seed, landscape
        )
        paths = {
            "train_metrics": str(layout.TrainFiles.in_dir(directory).metrics),
            "hessian": str(layout.HessianFiles.in_dir(directory).hessian),
            "landscape": f"{landscape_dir}/{layout.LANDSCAPE}",
            "topology": str(layout.TopologyFiles.in_dir(landscape_dir).topology),
            "profile": str(layout.TopologyFiles.in_dir(landscape_dir).profile),
        }
        if existing_only and VALIDATED["available_runs_only"]:
            paths = {key: path for key, path in paths.items() if Path(path).exists()}
        files[run.name] = paths
    return files


def summary_inputs(wildcards):
    """Every file the summary of one landscape reads (flat list, for the rule's input)."""
    return [
        path
        for paths in run_files(wildcards.experiment, wildcards.landscape).values()
        for path in paths.values()
    ]


def runs_description(wildcards):
    """JSON list of a landscape's runs with all their files' paths (the summary names the
    missing ones; runs without files still get a row)."""
    files = run_files(wildcards.experiment, wildcards.landscape, existing_only=False)
    return json.dumps(
        [
            {
                "experiment": run.experiment,
                "point": run.point,
                "seed": run.seed,
                "swept": run.swept,
                "files": files[run.name],
            }
            for run in experiment_runs(wildcards.experiment)
        ],
        sort_keys=True,
    )


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
    """Every figure file (PNG and PDF) of one experiment, for each of its landscapes: the
    registry's experiment figures and, unless figures.run_panels is off, the folder of its
    runs' panels.
    """
    paths = []
    for landscape in LANDSCAPES[experiment]:
        for extension in layout.FIGURE_FORMATS:
            paths += [
                layout.figure(experiment, landscape, entry.name, extension)
                for entry in figure_registry.EXPERIMENT_FIGURES
            ]
        if EXPERIMENT_CONFIG[experiment]["figures"]["run_panels"]:
            paths.append(layout.run_figures_dir(experiment, landscape))
    return paths


def all_tables():
    """Every experiment's training table and, per landscape, its summary and correlations."""
    paths = [layout.train_summary(experiment) for experiment in EXPERIMENTS]
    for experiment in EXPERIMENTS:
        for landscape in LANDSCAPES[experiment]:
            paths += [
                layout.table(experiment, landscape, name)
                for name in ("summary.csv", "correlations.csv")
            ]
    return paths


def overview_sections(wildcards):
    """Params function: the report landing page's sections (one per experiment and landscape)
    as JSON: what was swept, the problem's declarations and the two tables."""
    return json.dumps(
        [
            {
                "experiment": experiment,
                "landscape": landscape,
                "swept": swept_description(experiment),
                "problem": PROBLEMS[
                    EXPERIMENT_CONFIG[experiment]["problem"]
                ].describe(),
                "summary": layout.table(experiment, landscape, "summary.csv"),
                "correlations": layout.table(experiment, landscape, "correlations.csv"),
            }
            for experiment in EXPERIMENTS
            for landscape in LANDSCAPES[experiment]
        ],
        sort_keys=True,
    )


def report_text():
    """The report's landing page: the sweep's overview once the workflow has written it, else
    a page that says how to get it (Snakemake reads the file only when it builds a report).
    """
    overview = Path(layout.report_overview())
    if overview.exists():
        return str(overview.resolve())
    return "workflow/report/workflow.rst"


def all_topology():
    """Every run's Hessian record and the topology of each of its landscapes."""
    paths = []
    for run in RUNS.values():
        directory = layout.run_dir(run.experiment, run.point, run.seed)
        paths.append(str(layout.HessianFiles.in_dir(directory).hessian))
        for landscape in LANDSCAPES[run.experiment]:
            landscape_dir = layout.landscape_dir(
                run.experiment, run.point, run.seed, landscape
            )
            paths.append(str(layout.TopologyFiles.in_dir(landscape_dir).topology))
    return paths


def run_panel_inputs(wildcards):
    """A run's files that its panel for one landscape draws, by option name (only those
    present, with `available_runs_only: true`)."""
    paths = layout.run_panel_files(
        wildcards.experiment, wildcards.point, wildcards.seed, wildcards.landscape
    )
    if VALIDATED["available_runs_only"]:
        paths = {key: path for key, path in paths.items() if Path(path).exists()}
    return paths


def panel_wildcards(wildcards, run):
    """The wildcards of one run's panel of a landscape."""
    return Wildcards(
        fromdict={
            "experiment": run.experiment,
            "point": run.point,
            "seed": str(run.seed),
            "landscape": wildcards.landscape,
        }
    )


def all_run_panel_inputs(wildcards):
    """Every run's panel files of one landscape (the one job that draws all its panels)."""
    return [
        path
        for run in experiment_runs(wildcards.experiment)
        for path in run_panel_inputs(panel_wildcards(wildcards, run)).values()
    ]


def run_panel_list(wildcards):
    """Params function: the runs whose panels the job draws, as JSON (point, seed, title)."""
    return json.dumps(
        [
            {
                "point": run.point,
                "seed": run.seed,
                "title": run_title(panel_wildcards(wildcards, run)),
            }
            for run in experiment_runs(wildcards.experiment)
        ]
    )


def figure_title(kind):
    return lambda wildcards: f"{wildcards.experiment} ({wildcards.landscape}): {kind}"


def figure_run_files(keys):
    """Input function: the runs' files of a landscape that a figure reads through the
    summary's paths (`keys`, e.g. profile, landscape), so it is redrawn when they change.
    """
    return lambda wildcards: [
        paths[key]
        for paths in run_files(wildcards.experiment, wildcards.landscape).values()
        for key in keys
        if key in paths
    ]


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


def report_flagged_runs():
    """At the end of a sweep: the runs whose summary rows carry warnings (their numbers are
    kept; see the `warnings` column), so they are not missed in the tables."""
    import pandas as pd

    flagged = []
    for path in all_tables():
        if path.endswith("summary.csv") and Path(path).exists():
            table = pd.read_csv(path)
            if "warnings" in table:
                rows = table[table["warnings"].fillna("") != ""]
                flagged += [
                    f"  {row.experiment}/{row.point}/seed~{row.seed} ({path}): {row.warnings}"
                    for row in rows.itertuples()
                ]
    if flagged:
        print(
            "Runs flagged in the summaries (numbers kept):",
            *flagged,
            sep="\n",
            file=sys.stderr,
        )


def report_outputs():
    """At the end of a sweep: where its tables, figures and logs are, and how to get the
    report (what a user looks for first)."""
    lines = []
    for experiment in EXPERIMENTS:
        for landscape in LANDSCAPES[experiment]:
            summary = layout.table(experiment, landscape, "summary.csv")
            figures = Path(
                layout.figure(experiment, landscape, "profiles", "png")
            ).parent
            if Path(summary).exists():
                lines.append(
                    f"  {experiment} ({landscape}): {summary}, figures in {figures}/"
                )
    if lines:
        print(
            "Results:",
            *lines,
            "  logs: logs/; the HTML report: snakemake --report results/report.html "
            "(with the same --configfile)",
            sep="\n",
            file=sys.stderr,
        )


def report_failed_jobs(snakemake_logs):
    """When a sweep stops on an error: each failed job's step and the last line of its log
    (usually the exception), so the cause shows without opening the file. `snakemake_logs`:
    Snakemake's own log file(s), where it names the failed jobs' logs."""
    paths = (
        [snakemake_logs] if isinstance(snakemake_logs, (str, Path)) else snakemake_logs
    )
    text = "\n".join(Path(path).read_text(errors="replace") for path in paths or [])
    failed = re.findall(
        r"Error in rule\s(\S+):.*?log: (\S+) \(check log", text, flags=re.S
    )
    lines = []
    for rule, path in dict.fromkeys(failed):
        log_lines = (
            Path(path).read_text(errors="replace").strip().splitlines()
            if Path(path).exists()
            else []
        )
        last = log_lines[-1] if log_lines else "(the log is empty)"
        lines.append(f"  {rule}: {last}\n    (full log: {path})")
    if lines:
        print("Failed jobs:", *lines, sep="\n", file=sys.stderr)
