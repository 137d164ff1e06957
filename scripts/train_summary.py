"""Collect an experiment's train_metrics.json files into one CSV table (the `train_summary` rule)."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout's library
from toposweep.aggregate import train_summary
from toposweep.io import write_csv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", required=True, help="CSV table to write")
    parser.add_argument("metrics", nargs="+", help="train_metrics.json files, one per run")
    args = parser.parse_args()
    write_csv(args.output, train_summary(args.metrics))


if __name__ == "__main__":
    main()
