"""The HTML report's landing page (rule report_overview): thin wrapper over
toposweep.report.overview_rst.

  report_overview.py --sections JSON --output results/report_overview.rst

JSON: a list of {experiment, landscape, swept, problem, summary, correlations}, one per
experiment and landscape (summary and correlations: the aggregate tables' CSV paths).
"""

import argparse
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout's library

from toposweep.io import write_text
from toposweep.report import overview_rst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", required=True, help="JSON list, one per landscape")
    parser.add_argument("--output", required=True, help="the page (.rst)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    write_text(args.output, overview_rst(json.loads(args.sections)))
    logging.info("wrote %s", args.output)


if __name__ == "__main__":
    main()
