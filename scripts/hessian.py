"""Hessian of one trained run (the `hessian` rule): thin wrapper over
toposweep.hessian.hessian_of_checkpoint."""

import argparse
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout's library
from toposweep.hessian import hessian_of_checkpoint
from toposweep.layout import HessianFiles, add_file_arguments, files_from_arguments
from toposweep.stage import configure_process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", required=True, help="checkpoint.pt written by the train stage")
    parser.add_argument("--train-metrics", required=True, help="the run's train_metrics.json (its status)")
    parser.add_argument("--run", required=True, help="the run as JSON: the checkpoint must be its own")
    add_file_arguments(parser, HessianFiles)
    parser.add_argument("--settings", default="{}",
                        help="JSON: k, which, tol, max_iter, trace_probes, ... (config key `hessian`)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    configure_process(args.threads)
    summary = hessian_of_checkpoint(args.checkpoint, files_from_arguments(args, HessianFiles),
                                    run=json.loads(args.run), train_metrics=args.train_metrics,
                                    **json.loads(args.settings))
    logging.info("status %s: %s", summary["status"],
                 summary.get("eigenvalues", summary.get("message")))


if __name__ == "__main__":
    main()
