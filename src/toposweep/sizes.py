"""What a configuration's landscapes will cost, known before any job: grid points, memory, and
the names of the metrics every stage produces (for checking a config's metric names). Light:
no numpy-heavy, numba or torch import, so validation stays fast."""

from __future__ import annotations

import math
import os
from typing import Any

# Columns of a run's summary row that the topology stage produces (topology.metrics.tree_metrics,
# then the loop metrics of topology.loops, written only when `homology_dimensions` has 1; a test
# keeps them equal).
LOOP_MAX_NDIM = 4  # loops (gudhi's cubical complex) are computed for grids of at most 4-D
LOOP_METRICS = ("n_loops", "n_loops_infinite_death", "total_loop_persistence",
                "max_loop_persistence")
TOPOLOGY_METRICS = (
    "n_vertices", "n_nonfinite", "n_minima", "n_saddles", "n_pairs", "n_pairs_infinite_death",
    "avg_persistence", "max_persistence", "total_persistence", "median_persistence",
    "avg_persistence_ttk_csv", "smad", "smad_normalized", "smad_weighted", "value_min",
    "value_max", "threshold_absolute", *LOOP_METRICS,
)
HESSIAN_METRICS = ("top_eigenvalue", "trace", "trace_standard_error")  # and eigenvalue_1..k
LANDSCAPE_METRICS = ("landscape_dimensions", "landscape_resolution", "landscape_points", "landscape_min",
                     "landscape_max", "landscape_centre", "landscape_n_nonfinite",
                     "landscape_nonfinite_fraction")
TRAINING_METRICS = ("initial_train_loss", "n_steps", "n_snapshots", "train_wall_time_s")

# Memory per grid point: the float64 loss array (8 B), the coefficients of one work unit only,
# and the topology stage's merge tree and profile, measured at about 41 B per vertex on a 41^4
# grid (benchmarks/topology_bench.py: 275 MB peak against 159 MB for a 41^2 grid).
LOSS_BYTES_PER_POINT = 8
TOPOLOGY_BYTES_PER_POINT = 48
# Scattered samples also hold their coordinates (8 B per dimension) and, per neighbour, the
# k-nearest-neighbour query's distance and index and the symmetric graph's two int64 entries.
GRAPH_BYTES_PER_NEIGHBOUR = 32
# Loops: gudhi's cubical complex (3^d cells per vertex) peaked at 1919 MB for a 41^4 grid
# (benchmarks/topology_bench.py), about 680 B per vertex.
LOOP_BYTES_PER_POINT = 700


def summary_columns(problem_metrics: tuple[str, ...], k: int, swept: list[str],
                    loops: bool = True) -> set[str]:
    """Every metric column a summary of this experiment will have (with the problem's declared
    metrics, the Hessian's k eigenvalues, the swept settings; the loop metrics if `loops`)."""
    topology = set(TOPOLOGY_METRICS) - (set() if loops else set(LOOP_METRICS))
    return (topology | set(HESSIAN_METRICS) | set(LANDSCAPE_METRICS)
            | set(TRAINING_METRICS) | {f"eigenvalue_{i + 1}" for i in range(k)}
            | set(problem_metrics) | set(swept))


def landscape_cost(spec: dict[str, Any], neighbours: int = 16) -> dict[str, float]:
    """Points of one landscape (grid or scattered samples) and the memory its landscape and
    topology steps need (`neighbours`: topology.neighbours, for scattered samples)."""
    per_point = LOSS_BYTES_PER_POINT + TOPOLOGY_BYTES_PER_POINT
    if spec.get("sampling", "grid") == "grid":
        points = spec["resolution"] ** spec["dimensions"]
        landscape_bytes = points * LOSS_BYTES_PER_POINT
    else:
        points = spec["n_samples"]
        landscape_bytes = points * LOSS_BYTES_PER_POINT * (1 + spec["dimensions"])
        per_point += 8 * spec["dimensions"] + GRAPH_BYTES_PER_NEIGHBOUR * neighbours
    return {"points": points, "landscape_bytes": landscape_bytes,
            "topology_bytes": points * per_point}


def machine_memory_bytes() -> int | None:
    """This machine's physical memory (None where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def readable_bytes(count: float) -> str:
    if count <= 0:
        return "0 B"
    power = min(int(math.log(count, 1024)), 4)
    return f"{count / 1024 ** power:.3g} {('B', 'KiB', 'MiB', 'GiB', 'TiB')[power]}"
