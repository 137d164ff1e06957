"""An experiment's figures (the figure rules): thin wrapper over toposweep.plots; each command
writes one figure to every --output (PNG, PDF: the format follows the suffix).

  plot_figures.py correlations --correlations C.csv --output F.png F.pdf
  plot_figures.py panels --summary S.parquet --settings JSON --output ...
  plot_figures.py run --run-dir results/<experiment>/<point>/seed~<seed> --output ...
  plot_figures.py seeds --summary S.parquet --settings JSON --results-dir results --output ...
  plot_figures.py profiles --summary S.parquet --settings JSON --results-dir results --output ...
"""

import argparse
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout's library
import pandas as pd

from toposweep import plots
from toposweep.aggregate import main_test_metric


def correlations(args, settings):
    return plots.correlation_heatmap(pd.read_csv(args.correlations), args.title)


def panels(args, settings):
    table = pd.read_parquet(args.summary)
    parameter = plots.choose_parameter(table, settings.get("parameter"))
    if parameter is None:
        return plots.no_parameter_figure("metric panels", args.title)
    metrics = settings.get("panel_metrics") or plots.default_panel_metrics(table)
    return plots.metric_panels(table, parameter, metrics, args.title, settings.get("log_x"))


def run(args, settings):
    return plots.run_panel(args.run_dir, args.title)


def seeds(args, settings):
    table = pd.read_parquet(args.summary)
    parameter = plots.choose_parameter(table, settings.get("parameter")) or "point"
    metric = settings.get("heatmap_metric") or main_test_metric(table)
    others = plots.other_varied_parameters(table, parameter)
    profiles = plots.load_profiles(table, parameter, args.results_dir, others)
    return plots.seed_heatmap(table, parameter, metric, profiles, args.title, others)


def profiles(args, settings):
    table = pd.read_parquet(args.summary)
    parameter = plots.choose_parameter(table, settings.get("parameter")) or "point"
    others = plots.other_varied_parameters(table, parameter)
    by_run = plots.load_profiles(table, parameter, args.results_dir, others)
    landscape = plots.landscape_settings(table, args.results_dir)
    return plots.landscape_profiles(table, parameter, by_run, args.title, landscape)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["correlations", "panels", "run", "seeds", "profiles"])
    parser.add_argument("--output", nargs="+", required=True, help="figure files (.png, .pdf)")
    parser.add_argument("--title", default="")
    parser.add_argument("--settings", default="{}", help="JSON: the experiment's `figures` section")
    parser.add_argument("--correlations", help="correlations.csv")
    parser.add_argument("--summary", help="summary.parquet")
    parser.add_argument("--run-dir", help="a run's results directory")
    parser.add_argument("--results-dir", default="results")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = json.loads(args.settings)
    commands = {"correlations": correlations, "panels": panels, "run": run, "seeds": seeds,
                "profiles": profiles}
    figure = commands[args.command](args, settings)
    plots.save_figure(figure, args.output, dpi=settings.get("dpi", 150))
    logging.info("wrote %s", ", ".join(args.output))


if __name__ == "__main__":
    main()
