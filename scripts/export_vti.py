"""Export a 2-D or 3-D landscape.h5 to VTK image data (.vti) for ParaView/TTK."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout's library
from toposweep.io import read_landscape
from toposweep.landscape import write_vti


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("landscape", help="landscape.h5")
    parser.add_argument("output", help=".vti file to write")
    args = parser.parse_args()
    landscape = read_landscape(args.landscape)
    write_vti(args.output, landscape.loss, landscape.axes)


if __name__ == "__main__":
    main()
