"""Sample one run's loss landscape (the `landscape` rule), under MPI:
`mpiexec -n N python -m mpi4py scripts/sample_landscape.py ...`. Thin wrapper over
toposweep.landscape.sample_landscape; ranks share the grid, rank 0 writes the file."""

import argparse
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout's library
from toposweep.io import write_json
from toposweep.landscape import SerialComm, sample_landscape
from toposweep.stage import configure_process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", required=True, help="the run's checkpoint.pt")
    parser.add_argument("--output", required=True, help="landscape.h5 to write")
    parser.add_argument("--settings", required=True, help="JSON: one entry of the experiment's `landscapes`")
    parser.add_argument("--eigenvectors", help="eigenvectors.pt of the Hessian stage (hessian directions)")
    parser.add_argument("--trajectory", help="trajectory.pt of the training stage (trajectory_pca directions)")
    parser.add_argument("--run", help="the run as JSON: a checkpoint of another run is refused")
    parser.add_argument("--train-metrics", help="the run's train_metrics.json (status, checkpoint hash)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per rank")
    parser.add_argument("--report", help="also write the run's summary (points, seconds, method) as JSON")
    parser.add_argument("--serial", action="store_true",
                        help="one rank without MPI (inside a cluster group job, where MPI's "
                             "singleton start fails under the job's process manager)")
    args = parser.parse_args()
    comm = SerialComm() if args.serial else None
    if comm is None:
        try:
            from mpi4py import MPI

            comm = MPI.COMM_WORLD
        except ImportError:
            comm = SerialComm()
    logging.basicConfig(level=logging.INFO,
                        format=f"%(asctime)s rank {comm.rank} %(levelname)s %(name)s: %(message)s")
    configure_process(args.threads)
    result = sample_landscape(args.checkpoint, args.output, json.loads(args.settings),
                              eigenvectors_path=args.eigenvectors,
                              trajectory_path=args.trajectory, comm=comm,
                              run=json.loads(args.run) if args.run else None,
                              train_metrics=args.train_metrics)
    if comm.rank == 0:
        logging.info("%s", result)
        if args.report:
            write_json(args.report, result)


if __name__ == "__main__":
    main()
