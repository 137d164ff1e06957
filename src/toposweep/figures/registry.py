"""Which figures the workflow draws, as plain data: the one list that the Snakefile (its figure
rules, their report captions, `rule all`), scripts/plot_figures.py (its sub-commands) and the
tests read. Adding a figure is one module of toposweep.figures plus one entry here.

The Snakefile imports this at DAG time, so it imports nothing beyond the standard library (no
matplotlib, pandas or torch: `snakemake -n` stays fast on a login node).
"""

from __future__ import annotations

from dataclasses import dataclass

# The tables a figure can be drawn from, by the script option that names them.
TABLE_FILES = {"correlations": "correlations.csv", "summary": "summary.parquet"}
# A run's files that its panel reads, by option name (--train-metrics, ...).
RUN_PANEL_FILES = ("train_metrics", "curve", "predictions", "hessian", "density", "landscape",
                   "topology", "merge_tree", "persistence", "profile")


@dataclass(frozen=True)
class FigureEntry:
    """One figure: `rule` is its Snakemake rule and the module of toposweep.figures whose
    `from_inputs(inputs, settings, problem, title)` draws it; `name` the file stem of
    `layout.figure` (and of its log); `command` the plot_figures.py sub-command; `inputs` the
    files the script gets by option; `run_files` the per-run files it reads through the
    summary's paths (rule inputs only, so it is redrawn when they change); `caption` its report
    caption in workflow/report/; `subcategory` and `title` the report's and the figure's text
    after "<landscape>: " and "<experiment> (<landscape>): "."""

    rule: str
    name: str
    command: str
    inputs: tuple[str, ...]
    caption: str
    subcategory: str
    title: str = ""
    run_files: tuple[str, ...] = ()

    @property
    def module(self) -> str:
        return f"{__package__}.{self.rule}"

    @property
    def table(self) -> str:
        """The table option of an experiment figure (its one input)."""
        (name,) = self.inputs
        return name


EXPERIMENT_FIGURES = (
    FigureEntry("correlation_heatmap", "correlations", "correlations", ("correlations",),
                "correlations.rst", "correlations", "correlations over finished runs"),
    FigureEntry("metric_panels", "metric_panels", "panels", ("summary",), "metric_panels.rst",
                "metrics against the hyperparameter", "topology, test and Hessian metrics"),
    FigureEntry("seed_heatmap", "seed_heatmap", "seeds", ("summary",), "seed_heatmap.rst",
                "hyperparameter × seed", "test metric and landscape profile per run",
                run_files=("profile",)),
    # landscape.h5 for the title (dimension, directions: only its attributes are read)
    FigureEntry("landscape_profiles", "profiles", "profiles", ("summary",),
                "landscape_profiles.rst", "landscape profiles", "the basins of every run",
                run_files=("profile", "landscape")),
)
# Per run and landscape, at layout.run_figure; its title names the run.
RUN_PANEL = FigureEntry("run_panel", "runs", "run", RUN_PANEL_FILES, "run_panel.rst",
                        "per-run panels")
FIGURES = (*EXPERIMENT_FIGURES, RUN_PANEL)
BY_COMMAND = {entry.command: entry for entry in FIGURES}
