"""An experiment's figures (the figure rules): thin wrapper over toposweep.plots; each command
writes one figure to every --output (PNG, PDF: the format follows the suffix).

  plot_figures.py correlations --correlations C.csv --output F.png F.pdf
  plot_figures.py panels --summary S.parquet --settings JSON --problem JSON --output ...
  plot_figures.py run --train-metrics M.json --curve C.csv ... --problem JSON --output ...
  plot_figures.py seeds --summary S.parquet --settings JSON --problem JSON --output ...
  plot_figures.py profiles --summary S.parquet --settings JSON --problem JSON --output ...

The summary's `profile_file` and `landscape_file` columns name the per-run files the seeds and
profiles figures read.
"""

import argparse
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout's library
import pandas as pd

from toposweep import plots
from toposweep.aggregate import main_test_metric, problem_labels

RUN_FILES = ("train_metrics", "curve", "predictions", "hessian", "density", "landscape",
             "topology", "merge_tree", "persistence", "profile")


def correlations(args, settings, problem):
    return plots.correlation_heatmap(pd.read_csv(args.correlations), args.title)


def panels(args, settings, problem):
    table = pd.read_parquet(args.summary)
    parameter = plots.choose_parameter(table, settings.get("parameter"))
    if parameter is None:
        return plots.no_parameter_figure("metric panels", args.title)
    metrics = settings.get("panel_metrics") or plots.default_panel_metrics(table)
    return plots.metric_panels(table, parameter, metrics, args.title, settings.get("log_x"))


def run(args, settings, problem):
    files = {key: getattr(args, key) for key in RUN_FILES if getattr(args, key)}
    return plots.run_panel(files, args.title, problem.get("run_panel_plot"))


def seeds(args, settings, problem):
    table = pd.read_parquet(args.summary)
    parameter = plots.choose_parameter(table, settings.get("parameter")) or "point"
    metric = settings.get("heatmap_metric") or main_test_metric(table, problem.get("test_metric"))
    others = plots.other_varied_parameters(table, parameter)
    profiles = plots.load_profiles(table, parameter, others)
    return plots.seed_heatmap(table, parameter, metric, profiles, args.title, others)


def profiles(args, settings, problem):
    table = pd.read_parquet(args.summary)
    parameter = plots.choose_parameter(table, settings.get("parameter")) or "point"
    others = plots.other_varied_parameters(table, parameter)
    by_run = plots.load_profiles(table, parameter, others)
    return plots.landscape_profiles(table, parameter, by_run, args.title,
                                    plots.landscape_settings(table))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["correlations", "panels", "run", "seeds", "profiles"])
    parser.add_argument("--output", nargs="+", required=True, help="figure files (.png, .pdf)")
    parser.add_argument("--title", default="")
    parser.add_argument("--settings", default="{}", help="JSON: the experiment's `figures` section")
    parser.add_argument("--problem", default="{}", help="JSON: the problem's declarations (Problem.describe)")
    parser.add_argument("--correlations", help="correlations.csv")
    parser.add_argument("--summary", help="summary.parquet")
    for name in RUN_FILES:
        parser.add_argument(f"--{name.replace('_', '-')}", help=f"run panel: the run's {name} file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings, problem = json.loads(args.settings), json.loads(args.problem)
    commands = {"correlations": correlations, "panels": panels, "run": run, "seeds": seeds,
                "profiles": profiles}
    with problem_labels(problem):
        figure = commands[args.command](args, settings, problem)
        plots.save_figure(figure, args.output, dpi=settings["dpi"])
    logging.info("wrote %s", ", ".join(args.output))


if __name__ == "__main__":
    main()
