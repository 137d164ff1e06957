"""An experiment's figures (the figure rules): thin wrapper over toposweep.figures; each command
is an entry of toposweep.figures.registry and writes one figure to every --output (PNG, PDF:
the format follows the suffix).

  plot_figures.py correlations --correlations C.csv --output F.png F.pdf
  plot_figures.py panels --summary S.parquet --settings JSON --problem JSON --output ...
  plot_figures.py run --train-metrics M.json --curve C.csv ... --problem JSON --output ...
  plot_figures.py seeds --summary S.parquet --settings JSON --problem JSON --output ...
  plot_figures.py profiles --summary S.parquet --settings JSON --problem JSON --output ...

The summary's `profile_file` and `landscape_file` columns name the per-run files the seeds and
profiles figures read.
"""

import argparse
import importlib
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout's library
from toposweep.aggregate import problem_labels
from toposweep.figures import registry
from toposweep.figures.common import save_figure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=list(registry.BY_COMMAND))
    parser.add_argument("--output", nargs="+", required=True, help="figure files (.png, .pdf)")
    parser.add_argument("--title", default="")
    parser.add_argument("--settings", default="{}", help="JSON: the experiment's `figures` section")
    parser.add_argument("--problem", default="{}", help="JSON: the problem's declarations (Problem.describe)")
    parser.add_argument("--correlations", help="correlations.csv")
    parser.add_argument("--summary", help="summary.parquet")
    for name in registry.RUN_PANEL_FILES:
        parser.add_argument(f"--{name.replace('_', '-')}", help=f"run panel: the run's {name} file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings, problem = json.loads(args.settings), json.loads(args.problem)
    entry = registry.BY_COMMAND[args.command]
    inputs = {name: getattr(args, name) for name in entry.inputs if getattr(args, name)}
    with problem_labels(problem):
        figure = importlib.import_module(entry.module).from_inputs(inputs, settings, problem,
                                                                   args.title)
        save_figure(figure, args.output, dpi=settings.get("dpi"))
    logging.info("wrote %s", ", ".join(args.output))


if __name__ == "__main__":
    main()
