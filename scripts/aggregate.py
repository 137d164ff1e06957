"""An experiment's tables (the `summary` and `correlations` rules): thin wrapper over
toposweep.aggregate.

  aggregate.py summary --runs JSON --csv S.csv --parquet S.parquet
  aggregate.py correlations --summary S.parquet --settings JSON --output C.csv
"""

import argparse
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout's library
from toposweep.aggregate import (RunSpec, correlations, flagged_runs, missing_runs,
                                 summary_table, unfinished_runs)
from toposweep.io import atomic_path, write_csv

log = logging.getLogger("aggregate")


def summary(args: argparse.Namespace) -> None:
    runs = [RunSpec.from_dict(run) for run in json.loads(args.runs)]
    table = summary_table(runs)
    for name in missing_runs(table):
        log.warning("missing run (files absent): %s", name)
    for name in unfinished_runs(table):
        log.warning("unfinished run: %s", name)
    for name in flagged_runs(table):
        log.warning("flagged run (numbers kept): %s", name)
    log.info("%d runs, %d finished", len(table), int((table["status"] == "ok").sum()))
    write_csv(args.csv, table)
    with atomic_path(args.parquet) as tmp:
        table.to_parquet(tmp, index=False)


def correlation_table(args: argparse.Namespace) -> None:
    import pandas as pd

    settings = json.loads(args.settings)
    table = pd.read_parquet(args.summary)
    result = correlations(table, settings["topology_metrics"], settings["ml_metrics"],
                          settings["min_runs"])
    not_enough = result["note"].str.startswith("not enough runs").sum()
    if not_enough:
        log.warning("%d of %d metric pairs have too few finished runs: %s", not_enough,
                    len(result), result.loc[result["note"] != "", "note"].iloc[0])
    write_csv(args.output, result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("summary", help="one row per run of an experiment")
    one.add_argument("--runs", required=True,
                     help="JSON list of runs (experiment, point, seed, swept, files: their paths)")
    one.add_argument("--csv", required=True)
    one.add_argument("--parquet", required=True)
    one.set_defaults(function=summary)
    two = commands.add_parser("correlations", help="topology metrics against ML/Hessian metrics")
    two.add_argument("--summary", required=True, help="summary.parquet")
    two.add_argument("--settings", default="{}", help="JSON: the experiment's `aggregate` section")
    two.add_argument("--output", required=True)
    two.set_defaults(function=correlation_table)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args.function(args)


if __name__ == "__main__":
    main()
