"""Train one run of the sweep (the `train` rule): thin wrapper over toposweep.training.train_run."""

import argparse
import sys
import json
import logging
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout's library
from toposweep.layout import TrainFiles, add_file_arguments, files_from_arguments
from toposweep.training import train_run
from toposweep.stage import configure_process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", required=True, help="the run as JSON (toposweep.config.Run)")
    add_file_arguments(parser, TrainFiles)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    configure_process(args.threads)
    train_run(json.loads(args.run), files_from_arguments(args, TrainFiles))


if __name__ == "__main__":
    main()
