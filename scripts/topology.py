"""Topology of one landscape file (the `topology` rule): thin wrapper over
toposweep.topology.topology_of_landscape_file."""

import argparse
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout's library
from toposweep.layout import TopologyFiles, add_file_arguments, files_from_arguments
from toposweep.topology import topology_of_landscape_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--landscape", required=True, help="landscape.h5 written by the landscape stage")
    add_file_arguments(parser, TopologyFiles)
    parser.add_argument("--settings", default="{}",
                        help="JSON: connectivity, threshold, relative_threshold, homology_dimensions, graph, "
                             "neighbours (config key `topology`)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    summary = topology_of_landscape_file(args.landscape, files_from_arguments(args, TopologyFiles),
                                         **json.loads(args.settings))
    logging.info("status %s: %s", summary["status"], summary.get("metrics", summary.get("message")))


if __name__ == "__main__":
    main()
