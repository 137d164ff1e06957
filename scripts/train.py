"""Train one run of the sweep (the `train` rule): thin wrapper over toposweep.training.train_run."""

import argparse
import sys
from pathlib import Path
import json
import logging

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout's library
from toposweep.training import train_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", required=True, help="the run as JSON (toposweep.config.Run)")
    parser.add_argument("--out-dir", required=True, help="the run's results directory")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    train_run(json.loads(args.run), args.out_dir)


if __name__ == "__main__":
    main()
