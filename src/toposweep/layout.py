"""The run layout: every output's file name and folder (the one owner of these facts).

The workflow's rules build their outputs from these functions (with wildcard names such as
"{experiment}" as arguments), scripts receive the resulting paths explicitly, and the library
never looks for files on its own.

    results/<experiment>/train_summary.csv
    results/<experiment>/<point>/seed~<seed>/           one trained run (TrainFiles, HessianFiles)
    results/<experiment>/<point>/seed~<seed>/<landscape>/   one landscape of it (LandscapeFiles)
    results/<experiment>/tables/<landscape>/            summary and correlations of a landscape
    results/<experiment>/figures/<landscape>/           its figures; runs/<point>_seed~<seed>.*
    results/report_overview.rst                          the HTML report's landing page
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

RESULTS = "results"
LOGS = "logs"
FIGURE_FORMATS = ("png", "pdf")


def run_dir(experiment: str, point: str, seed: int | str) -> str:
    """Folder of one trained run (an experiment's grid point and seed)."""
    return f"{RESULTS}/{experiment}/{point}/seed~{seed}"


def run_name(experiment: str, point: str, seed: int | str) -> str:
    """`<experiment>/<point>/seed~<seed>`: a run in messages, tables and the workflow's keys."""
    return f"{experiment}/{point}/seed~{seed}"


def landscape_dir(experiment: str, point: str, seed: int | str, landscape: str) -> str:
    """Folder of one named landscape of a run (its HDF5 file and its topology)."""
    return f"{run_dir(experiment, point, seed)}/{landscape}"


def train_summary(experiment: str) -> str:
    return f"{RESULTS}/{experiment}/train_summary.csv"


def table(experiment: str, landscape: str, name: str) -> str:
    """`summary.csv`, `summary.parquet` or `correlations.csv` of one landscape's runs."""
    return f"{RESULTS}/{experiment}/tables/{landscape}/{name}"


def figure(experiment: str, landscape: str, name: str, extension: str) -> str:
    """An experiment-level figure of one landscape (correlations, metric_panels, ...)."""
    return f"{RESULTS}/{experiment}/figures/{landscape}/{name}.{extension}"


def run_figures_dir(experiment: str, landscape: str) -> str:
    """The folder of one landscape's per-run panels (one job draws them all)."""
    return f"{RESULTS}/{experiment}/figures/{landscape}/runs"


def run_figure(experiment: str, landscape: str, point: str, seed: int | str, extension: str) -> str:
    """The per-run panel of one landscape."""
    return f"{run_figures_dir(experiment, landscape)}/{point}_seed~{seed}.{extension}"


def report_overview() -> str:
    """The HTML report's landing page (what was swept, the summaries, headline correlations)."""
    return f"{RESULTS}/report_overview.rst"


def log(*parts: str) -> str:
    """`logs/<parts...>.log` (parts mirror the output's place under results/)."""
    return f"{LOGS}/{'/'.join(parts)}.log"


@dataclass(frozen=True)
class _Files:
    """Paths of one stage's files; `in_dir` names them inside one folder."""

    @classmethod
    def in_dir(cls, directory: str | Path):
        directory = Path(directory)
        return cls(**{f.name: directory / f.default for f in fields(cls)})

    @classmethod
    def of(cls, files):
        """`files` as they are, or all of them inside one folder (a path)."""
        return files if isinstance(files, cls) else cls.in_dir(files)

    def as_dict(self) -> dict[str, Path]:
        return {f.name: Path(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True)
class TrainFiles(_Files):
    """The training stage's outputs (`metrics` last: its presence marks a finished run)."""

    checkpoint: str | Path = "checkpoint.pt"
    metrics: str | Path = "train_metrics.json"
    curve: str | Path = "curve.csv"
    predictions: str | Path = "predictions.npz"
    trajectory: str | Path = "trajectory.pt"
    resume_state: str | Path = ".train_state.pt"


@dataclass(frozen=True)
class HessianFiles(_Files):
    """The Hessian stage's outputs (`hessian` last)."""

    hessian: str | Path = "hessian.json"
    eigenvectors: str | Path = "eigenvectors.pt"
    density: str | Path = "density.csv"


@dataclass(frozen=True)
class TopologyFiles(_Files):
    """The topology stage's outputs for one landscape (`topology` last)."""

    topology: str | Path = "topology.json"
    persistence: str | Path = "persistence.csv"
    merge_tree: str | Path = "merge_tree.json"
    profile: str | Path = "profile.json"


LANDSCAPE = "landscape.h5"
LANDSCAPE_VTI = "landscape.vti"


def add_file_arguments(parser, files: type[_Files], role: str = "output") -> None:
    """`--<name>` options for a stage's files (scripts get every path explicitly); the
    training resume state is optional (default: beside the checkpoint)."""
    for item in fields(files):
        optional = item.name == "resume_state"
        parser.add_argument(f"--{item.name.replace('_', '-')}", required=not optional,
                            help=f"{role}: the run's {item.default}")


def files_from_arguments(args, files: type[_Files]):
    """The stage's files from the options of `add_file_arguments`."""
    values = {item.name: getattr(args, item.name) for item in fields(files)}
    if "resume_state" in values and values["resume_state"] is None:
        values["resume_state"] = Path(values["checkpoint"]).with_name(TrainFiles.resume_state)
    return files(**values)


def outputs(files: type[_Files], directory: str) -> dict[str, str]:
    """A stage's output paths in `directory` as plain strings (for Snakemake rules); the resume
    state is internal to the training step, not an output."""
    return {name: str(path) for name, path in files.in_dir(directory).as_dict().items()
            if name != "resume_state"}


def run_panel_files(experiment: str, point: str, seed: int | str, landscape: str) -> dict[str, str]:
    """A run's files that its panel of one landscape draws, by the figure's option name."""
    run = run_dir(experiment, point, seed)
    landscape_folder = landscape_dir(experiment, point, seed, landscape)
    train, hessian = TrainFiles.in_dir(run), HessianFiles.in_dir(run)
    topology = TopologyFiles.in_dir(landscape_folder)
    return {key: str(path) for key, path in {
        "train_metrics": train.metrics, "curve": train.curve, "predictions": train.predictions,
        "hessian": hessian.hessian, "density": hessian.density,
        "landscape": f"{landscape_folder}/{LANDSCAPE}", "topology": topology.topology,
        "merge_tree": topology.merge_tree, "persistence": topology.persistence,
        "profile": topology.profile,
    }.items()}
