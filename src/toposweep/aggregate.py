"""Tables across runs."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pandas as pd

from .io import read_json

NOT_IN_TABLE = {"settings", "swept", "config_hash", "checkpoint_hash"}


def train_summary(metrics_paths: Iterable[str | Path]) -> pd.DataFrame:
    """One row per run from `train_metrics.json` files: experiment, point, swept hyperparameters,
    seed, status, then metrics and timings. Diverged runs stay in with their status and empty
    test metrics, so the table shows them."""
    rows, swept_keys = [], {}
    for path in metrics_paths:
        metrics = read_json(path)
        swept_keys.update(dict.fromkeys(metrics["swept"]))
        row = {key: value for key, value in metrics.items() if key not in NOT_IN_TABLE}
        rows.append({**row, **metrics["swept"]})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    leading = ["experiment", "point", *swept_keys, "seed", "status"]
    return frame[leading + [c for c in frame.columns if c not in leading]]
