"""Tables across runs: the per-experiment summary (one row per run, every stage's numbers) and
the correlations between topology metrics and ML/Hessian metrics and the swept hyperparameters.

Runs whose files are missing (a crashed job under `--keep-going`) or whose stages did not finish
(diverged training, skipped Hessian/topology) stay in the summary with their status and empty
metrics; correlations use the finished runs only and say so when there are too few.
"""

from __future__ import annotations

import collections
import contextlib
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from .io import read_json
from .layout import run_name
from .schema import stage_settings

NOT_IN_TABLE = {"settings", "swept", "config_hash", "checkpoint_hash"}

HESSIAN_METRICS = ("top_eigenvalue", "trace")
# Readable names for tables and figures (the problem's own `metric_labels` come on top, see
# `problem_labels`); anything else is shown with underscores as spaces.
METRIC_LABELS = {
    "n_minima": "number of minima",
    "n_saddles": "number of saddles",
    "n_pairs": "number of persistence pairs",
    "avg_persistence": "average persistence",
    "max_persistence": "maximum persistence",
    "total_persistence": "total persistence",
    "median_persistence": "median persistence",
    "avg_persistence_ttk_csv": "average persistence (papers' TTK CSV)",
    "smad": "saddle–minimum average gap (SMAD)",
    "smad_normalized": "SMAD / loss range",
    "smad_weighted": "basin-weighted SMAD",
    "n_loops": "number of loops (H1 pairs)",
    "total_loop_persistence": "total loop persistence",
    "max_loop_persistence": "maximum loop persistence",
    "top_eigenvalue": "top Hessian eigenvalue λ₁",
    "trace": "Hessian trace",
    "trace_standard_error": "Hessian trace standard error",
    "final_train_loss": "final training loss",
    "landscape_min": "landscape minimum loss",
    "landscape_max": "landscape maximum loss",
    "landscape_centre": "loss at the landscape centre",
    "lr": "learning rate",
    "seed": "seed",
}
_labels = collections.ChainMap({}, METRIC_LABELS)
_short_labels = collections.ChainMap({})


@contextlib.contextmanager
def problem_labels(problem: Mapping[str, Any] | None) -> Iterator[None]:
    """Within the block, metric_label and short_label also know the problem's own labels
    (`Problem.describe()`: metric_labels, short_labels)."""
    problem = problem or {}
    _labels.maps.insert(0, dict(problem.get("metric_labels") or {}))
    _short_labels.maps.insert(0, dict(problem.get("short_labels") or {}))
    try:
        yield
    finally:
        del _labels.maps[0], _short_labels.maps[0]


def metric_label(name: str) -> str:
    """Human-readable name of a summary column (metric names spelled out for figures)."""
    return _labels.get(name, name.replace("_", " "))


def short_label(name: str) -> str:
    """Short name of a swept setting in figure titles (β for beta; else the name itself)."""
    return _short_labels.get(name, name)


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


@dataclass(frozen=True)
class RunSpec:
    """What the summary needs to know about a run without reading its files (so a run whose
    files are all missing still gets a row): where it sits in the sweep and the paths of its
    files (keys train_metrics, hessian, landscape, topology and, for figures, profile)."""

    experiment: str
    point: str
    seed: int
    swept: dict[str, Any] = field(hash=False)
    files: dict[str, Path] = field(hash=False)

    @property
    def name(self) -> str:
        """`<experiment>/<point>/seed~<seed>`, the run's name in messages and tables."""
        return run_name(self.experiment, self.point, self.seed)

    @classmethod
    def from_dict(cls, run: dict[str, Any]) -> "RunSpec":
        """From a dict with experiment, point, seed, swept and files (as the workflow's summary
        rule passes it)."""
        missing = [key for key in ("experiment", "point", "seed", "swept", "files") if key not in run]
        if missing:
            raise ValueError(f"run description {run!r} lacks the keys {missing}")
        return cls(run["experiment"], run["point"], int(run["seed"]), dict(run["swept"]),
                   {key: Path(path) for key, path in run["files"].items()})


# A finished run is flagged (numbers kept) when most of its landscape is not finite, or when its
# final training loss is orders of magnitude above its initial one.
NONFINITE_WARNING_FRACTION = 0.5
LOSS_GROWTH_WARNING = 100.0


def _train_columns(path: Path) -> tuple[str, dict[str, Any], str | None]:
    metrics = read_json(path)
    row = {
        key: value
        for key, value in metrics.items()
        if key not in NOT_IN_TABLE | {"status", "message", "experiment", "point", "seed", "problem"}
        and not isinstance(value, (dict, list))
    }
    row = {("train_" + key if key in ("wall_time_s", "device", "device_name") else key): value
           for key, value in row.items()}
    return (metrics.get("status", "ok"), {"problem": metrics.get("problem"), **row},
            metrics.get("checkpoint_hash"))


def _hessian_columns(path: Path) -> tuple[str, dict[str, Any], str | None]:
    hessian = read_json(path)
    status = hessian.get("status", "ok")
    if status != "ok":
        return status, {}, hessian.get("checkpoint_hash")
    eigenvalues = hessian.get("eigenvalues") or []
    row: dict[str, Any] = {f"eigenvalue_{i + 1}": value for i, value in enumerate(eigenvalues)}
    row["top_eigenvalue"] = hessian.get("top_eigenvalue", eigenvalues[0] if eigenvalues else None)
    row["trace"] = hessian.get("trace")
    row["trace_standard_error"] = hessian.get("trace_standard_error")
    return status, row, hessian.get("checkpoint_hash")


def _landscape_columns(path: Path) -> tuple[str, dict[str, Any], str | None]:
    from .io import json_attribute, read_landscape

    landscape = read_landscape(path)
    checkpoint_hash = json_attribute(landscape.attrs.get("provenance")).get("checkpoint_hash")
    status = str(landscape.attrs.get("status", "ok"))
    if status != "ok" or landscape.loss.size == 0:
        return status, {}, checkpoint_hash
    loss = landscape.loss
    finite = loss[np.isfinite(loss)]
    if landscape.scattered:  # sample 0 is the trained weights
        dimensions, resolution, centre = landscape.samples.shape[1], math.nan, loss[0]
    else:
        dimensions, resolution = loss.ndim, loss.shape[0]
        centre = loss[tuple(n // 2 for n in loss.shape)]
    return status, {
        "landscape_dimensions": dimensions,
        "landscape_resolution": resolution,
        "landscape_points": int(loss.size),
        "landscape_min": float(finite.min()) if finite.size else math.nan,
        "landscape_max": float(finite.max()) if finite.size else math.nan,
        "landscape_centre": float(centre),
        "landscape_n_nonfinite": int(loss.size - finite.size),
        "landscape_nonfinite_fraction": float(1 - finite.size / loss.size),
    }, checkpoint_hash


def _topology_columns(path: Path) -> tuple[str, dict[str, Any], str | None]:
    topology = read_json(path)
    status = topology.get("status", "ok")
    checkpoint_hash = topology.get("provenance", {}).get("checkpoint_hash")
    if status != "ok":
        return status, {}, checkpoint_hash
    return status, dict(topology.get("metrics", {})), checkpoint_hash


STAGE_READERS = {
    "train_metrics": ("train", _train_columns),
    "hessian": ("hessian", _hessian_columns),
    "landscape": ("landscape", _landscape_columns),
    "topology": ("topology", _topology_columns),
}


def run_row(run: RunSpec) -> dict[str, Any]:
    """One summary row: identity, overall status, per-stage status, warnings, then every stage's
    numbers.

    Overall `status` is `ok` when every stage finished, `missing` when a file is absent (named in
    `missing_files`), `inconsistent` when the stage files do not all come from the same
    checkpoint (named with their hashes in `inconsistent_files`), else the first unfinished
    stage's status (e.g. `diverged`, `skipped`). `warnings` flags a finished run whose numbers
    deserve doubt (mostly non-finite landscape, exploding training loss); nothing is dropped.
    """
    row: dict[str, Any] = {"experiment": run.experiment, "point": run.point, **run.swept,
                           "seed": run.seed}
    statuses: dict[str, str] = {}
    numbers: dict[str, Any] = {}
    hashes: dict[str, str] = {}
    missing = []
    for key, (stage, reader) in STAGE_READERS.items():
        path = run.files.get(key)
        if path is None or not path.exists():
            missing.append(str(path.name if path is not None else key))
            statuses[stage] = "missing"
            continue
        statuses[stage], columns, checkpoint_hash = reader(path)
        numbers.update(columns)
        if checkpoint_hash is not None:
            hashes[str(path)] = checkpoint_hash
    unfinished = [status for status in statuses.values() if status != "ok"]
    inconsistent = len(set(hashes.values())) > 1
    if missing:
        overall = "missing"
    elif inconsistent:
        overall = "inconsistent"
    else:
        overall = unfinished[0] if unfinished else "ok"
    row["status"] = overall
    row["missing_files"] = " ".join(missing)
    row["inconsistent_files"] = (" ".join(f"{path} ({value[:12]})" for path, value in hashes.items())
                                 if inconsistent else "")
    row["warnings"] = "; ".join(run_warnings(numbers))
    row["profile_file"] = str(run.files["profile"]) if "profile" in run.files else None
    row["landscape_file"] = str(run.files["landscape"]) if "landscape" in run.files else None
    row.update({f"{stage}_status": status for stage, status in statuses.items()})
    problem = numbers.pop("problem", None)
    row["problem"] = problem
    row.update(numbers)
    return row


def run_warnings(numbers: dict[str, Any]) -> list[str]:
    """Why a run's numbers deserve doubt: a mostly non-finite landscape, a training loss that
    grew by orders of magnitude."""
    warnings_ = []
    fraction = numbers.get("landscape_nonfinite_fraction")
    if fraction is not None and fraction > NONFINITE_WARNING_FRACTION:
        warnings_.append(f"landscape {100 * fraction:.0f} % non-finite")
    initial, final = numbers.get("initial_train_loss"), numbers.get("final_train_loss")
    if (isinstance(initial, (int, float)) and isinstance(final, (int, float))
            and math.isfinite(initial) and initial > 0 and final > LOSS_GROWTH_WARNING * initial):
        warnings_.append(f"final training loss {final:.3g} is {final / initial:.3g}x the "
                         f"initial {initial:.3g}")
    return warnings_


def summary_table(runs: Sequence[RunSpec]) -> pd.DataFrame:
    """One row per run of an experiment (see `run_row`), in the given order. Missing and
    unfinished runs are rows too, with empty metrics, so the table shows every run's fate."""
    if not runs:
        raise ValueError("summary_table needs at least one run")
    rows = [run_row(run) for run in runs]
    frame = pd.DataFrame(rows)
    swept_keys = list(dict.fromkeys(key for run in runs for key in run.swept))
    leading = ["experiment", "point", *swept_keys, "seed", "status", "missing_files",
               "inconsistent_files", "warnings", "train_status", "hessian_status",
               "landscape_status", "topology_status", "problem"]
    return frame[leading + [c for c in frame.columns if c not in leading]]


def missing_runs(table: pd.DataFrame) -> list[str]:
    """Names (`experiment/point/seed~s: files`) of the runs with missing files."""
    missing = table[table["status"] == "missing"]
    return [f"{row.experiment}/{row.point}/seed~{row.seed}: {row.missing_files}"
            for row in missing.itertuples()]


def flagged_runs(table: pd.DataFrame) -> list[str]:
    """Names and warnings of the runs flagged in the summary (their numbers are kept)."""
    flagged = table[table["warnings"].fillna("") != ""]
    return [f"{row.experiment}/{row.point}/seed~{row.seed}: {row.warnings}"
            for row in flagged.itertuples()]


def unfinished_runs(table: pd.DataFrame) -> list[str]:
    """Names and statuses of the runs that are present but did not finish every stage."""
    other = table[~table["status"].isin(["ok", "missing"])]
    return [f"{row.experiment}/{row.point}/seed~{row.seed}: {row.status}"
            for row in other.itertuples()]


def swept_parameters(table: pd.DataFrame) -> list[str]:
    """The swept hyperparameter columns of a summary (between `point` and `seed`)."""
    columns = list(table.columns)
    return columns[columns.index("point") + 1 : columns.index("seed")]


def finished(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of runs that finished every stage."""
    return table[table["status"] == "ok"]


def evaluation_metrics(table: pd.DataFrame) -> list[str]:
    """The test metrics present in a summary (columns `test_*`), in table order."""
    return [c for c in table.columns if c.startswith("test_")]


def main_test_metric(table: pd.DataFrame, declared: str | None = None) -> str | None:
    """The one test metric shown where a single one is needed: the problem's declared
    `test_metric` when the table has it, else the first test metric of the table."""
    present = evaluation_metrics(table)
    if declared in present:
        return declared
    return present[0] if present else None


def default_ml_metrics(table: pd.DataFrame) -> list[str]:
    """ML/Hessian metrics correlated by default: the test metrics, final training loss, λ₁ and
    the Hessian trace (those present in the table)."""
    candidates = [*evaluation_metrics(table), "final_train_loss", *HESSIAN_METRICS]
    return [c for c in candidates if c in table.columns]


CORRELATED_LOOP_METRICS = ("n_loops", "total_loop_persistence")


@dataclass
class CorrelationRequest:
    """Which columns to correlate: each topology metric against each other metric."""

    topology_metrics: list[str]
    other_metrics: list[str]
    min_runs: int


def correlation_request(
    table: pd.DataFrame,
    topology_metrics: Sequence[str] | None = None,
    ml_metrics: Sequence[str] | None = None,
    min_runs: int | None = None,
) -> CorrelationRequest:
    """Resolve the metric lists and min_runs (None: the schema's defaults of the `aggregate`
    section) and append the swept hyperparameters.
    Names that are not columns of the table are an error naming them (except that a table
    without any finished run has no metric columns at all: then every pair says so)."""
    given = {"topology_metrics": topology_metrics, "ml_metrics": ml_metrics, "min_runs": min_runs}
    settings = stage_settings("aggregate", {key: (list(value) if isinstance(value, (list, tuple)) else value)
                                            for key, value in given.items() if value is not None})
    topology, min_runs = settings["topology_metrics"], settings["min_runs"]
    ml = settings["ml_metrics"] if settings["ml_metrics"] is not None else default_ml_metrics(table)
    if not finished(table).empty:
        unknown = [name for name in [*topology, *ml] if name not in table.columns]
        if unknown:
            raise ValueError(f"metrics {unknown} are not columns of the summary; "
                             f"available: {sorted(c for c in table.columns if is_numeric_column(table, c))}")
    # Loops, where the topology stage computed them, join the correlations without being named.
    topology += [name for name in CORRELATED_LOOP_METRICS
                 if name not in topology and is_numeric_column(table, name)]
    parameters = [p for p in swept_parameters(table) if is_numeric_column(table, p)]
    return CorrelationRequest(topology, ml + [p for p in parameters if p not in ml], min_runs)


def is_numeric_column(table: pd.DataFrame, column: str) -> bool:
    return column in table.columns and pd.api.types.is_numeric_dtype(table[column])


def correlations(
    table: pd.DataFrame,
    topology_metrics: Sequence[str] | None = None,
    ml_metrics: Sequence[str] | None = None,
    min_runs: int | None = None,
) -> pd.DataFrame:
    """Pearson and Spearman coefficients with p-values and n, between every topology metric and
    every ML/Hessian metric and numeric swept hyperparameter, over the finished runs (seeds are
    replicates: every run is one point). p-values are exact permutation ones up to
    statistics.EXACT_MAX_N runs (`p_method`), with a bootstrap interval of rho and
    Benjamini-Hochberg q-values over the table's pairs (`significant`: q < 0.05 for Spearman).
    A pair with fewer than `min_runs` runs where both values are finite gets NaN coefficients and
    a `note` saying "not enough runs"; a constant column gets NaN and a note saying which."""
    from .statistics import SIGNIFICANCE, benjamini_hochberg, correlation_test

    request = correlation_request(table, topology_metrics, ml_metrics, min_runs)
    done = finished(table)
    parameters = set(swept_parameters(table))
    rows = []
    for topology_metric in request.topology_metrics:
        for other in request.other_metrics:
            kind = "hyperparameter" if other in parameters else "metric"
            row = {"topology_metric": topology_metric, "other": other, "other_kind": kind}
            if topology_metric not in done.columns or other not in done.columns:
                pair = pd.DataFrame(columns=["x", "y"])
            else:
                pair = pd.DataFrame({"x": pd.to_numeric(done[topology_metric], errors="coerce"),
                                     "y": pd.to_numeric(done[other], errors="coerce")})
                pair = pair[np.isfinite(pair["x"]) & np.isfinite(pair["y"])]
            n = len(pair)
            row["n"] = n
            if n < request.min_runs:
                row["note"] = (f"not enough runs: {n} finished with both values, "
                               f"need at least {request.min_runs}")
            elif pair["x"].nunique() < 2 or pair["y"].nunique() < 2:
                constant = topology_metric if pair["x"].nunique() < 2 else other
                row["note"] = f"{constant} is constant over the {n} runs"
            else:
                row.update(correlation_test(pair["x"].to_numpy(), pair["y"].to_numpy()), note="")
            rows.append(row)
    result = pd.DataFrame(rows, columns=CORRELATION_COLUMNS[:-3])
    result["pearson_q"] = benjamini_hochberg(result["pearson_p"])
    result["spearman_q"] = benjamini_hochberg(result["spearman_p"])
    result["significant"] = result["spearman_q"] < SIGNIFICANCE
    return result[CORRELATION_COLUMNS]


CORRELATION_COLUMNS = ["topology_metric", "other", "other_kind", "n", "pearson_r", "pearson_p",
                       "spearman_rho", "spearman_p", "spearman_low", "spearman_high", "p_method",
                       "note", "pearson_q", "spearman_q", "significant"]


def seed_statistics(table: pd.DataFrame, parameter: str, metric: str) -> pd.DataFrame:
    """Mean, standard deviation (ddof 1; NaN for one seed), min, max and count over the finished seeds of
    `metric` at each value of `parameter` (other swept parameters as extra group keys)."""
    others = [p for p in swept_parameters(table) if p != parameter]
    done = finished(table)
    if metric not in done.columns:
        return pd.DataFrame(columns=[*others, parameter, "mean", "sd", "min", "max", "n"])
    values = done[[*others, parameter, metric]].copy()
    values[metric] = pd.to_numeric(values[metric], errors="coerce")
    values = values[np.isfinite(values[metric])]
    grouped = values.groupby([*others, parameter], sort=True)[metric]
    return grouped.agg(mean="mean", sd="std", min="min", max="max", n="count").reset_index()


def is_log_spaced(values: Iterable[float]) -> bool:
    """True when positive values are closer to evenly spaced in log than in linear scale (for
    two values: when they differ by a factor of 10 or more). Decides log axes in figures."""
    distinct = np.unique(np.asarray([v for v in values if v is not None], dtype=float))
    distinct = distinct[np.isfinite(distinct)]
    if distinct.size < 2 or distinct.min() <= 0:
        return False
    if distinct.size == 2:
        return bool(distinct[1] / distinct[0] >= 10)

    def spread(steps: np.ndarray) -> float:
        return float(np.std(steps) / np.mean(steps))

    return bool(spread(np.diff(np.log(distinct))) < spread(np.diff(distinct)))
