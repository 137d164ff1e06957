"""An experiment's figures (the figure rules): thin wrapper over toposweep.figures; each command
is an entry of toposweep.figures.registry and writes one figure to every --output (PNG, PDF:
the format follows the suffix).

  plot_figures.py correlations --correlations C.csv --output F.png F.pdf
  plot_figures.py panels --summary S.parquet --settings JSON --problem JSON --output ...
  plot_figures.py run --experiment E --landscape L --runs JSON --problem JSON   (every panel)
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
from toposweep import layout
from toposweep.aggregate import problem_labels
from toposweep.figures import registry
from toposweep.figures.common import save_figure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=list(registry.BY_COMMAND))
    parser.add_argument("--output", nargs="+", help="figure files (.png, .pdf)")
    parser.add_argument("--title", default="")
    parser.add_argument("--settings", default="{}", help="JSON: the experiment's `figures` section")
    parser.add_argument("--problem", default="{}", help="JSON: the problem's declarations (Problem.describe)")
    parser.add_argument("--correlations", help="correlations.csv")
    parser.add_argument("--summary", help="summary.parquet")
    parser.add_argument("--experiment", help="run panels: the experiment")
    parser.add_argument("--landscape", help="run panels: the landscape")
    parser.add_argument("--runs", help="run panels: JSON list of {point, seed, title}; each "
                                       "panel reads the run's files and writes its PNG and PDF "
                                       "where toposweep.layout puts them")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings, problem = json.loads(args.settings), json.loads(args.problem)
    entry = registry.BY_COMMAND[args.command]
    module = importlib.import_module(entry.module)
    with problem_labels(problem):
        if entry is registry.RUN_PANEL:
            draw_run_panels(module, args, settings, problem)
            return
        if not args.output:
            parser.error("--output is required")
        inputs = {name: getattr(args, name) for name in entry.inputs if getattr(args, name)}
        figure = module.from_inputs(inputs, settings, problem, args.title)
        save_figure(figure, args.output, dpi=settings.get("dpi"))
    logging.info("wrote %s", ", ".join(args.output))


def draw_run_panels(module, args, settings, problem) -> None:
    """Every run's panel of one landscape, in this one process; a run's missing files (a stage
    that did not finish) become panels that say so."""
    runs = json.loads(args.runs)
    Path(layout.run_figures_dir(args.experiment, args.landscape)).mkdir(parents=True, exist_ok=True)
    for number, run in enumerate(runs, start=1):
        files = layout.run_panel_files(args.experiment, run["point"], run["seed"], args.landscape)
        inputs = {key: path for key, path in files.items() if Path(path).exists()}
        outputs = [layout.run_figure(args.experiment, args.landscape, run["point"], run["seed"],
                                     extension) for extension in layout.FIGURE_FORMATS]
        save_figure(module.from_inputs(inputs, settings, problem, run["title"]), outputs,
                    dpi=settings.get("dpi"))
        logging.info("run panel %d/%d: wrote %s", number, len(runs), ", ".join(outputs))


if __name__ == "__main__":
    main()
