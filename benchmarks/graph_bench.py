"""Benchmark: topology of scattered samples on neighbourhood graphs, and Landscaper's graph.

10^5 Sobol points in [0, 1]^10 (3·10^4 with --quick) of a smooth multi-well function (a gentle
bowl minus 8 Gaussian wells of width 0.3 at seeded centres). In one child process with its
BLAS/OpenMP/numba threads pinned to 1 (the kNN query and the sweep are single-threaded anyway),
after a warm-up call that loads the numba cache, median of 3 calls each of:

* graph construction: the symmetric kNN graph (k=15, scikit-learn KD-tree), and the Gabriel and
  relative neighbourhood graphs (kNN graph plus pruning; reported as the total per prune rule);
* merge tree + simplify (1 % of the value range) + tree_metrics, on each graph;
* landscape profile of the simplified tree, on each graph.

Landscaper 1.3.1 (run only when its separate venv exists, LANDSCAPER_PYTHON; it is never a
toposweep dependency) builds its merge tree on nglpy's EmptyRegionGraph(beta=1, relaxed=False,
p=2) with no neighbour limit: the exact Gabriel graph by brute force. That construction is timed
in a child process of the Landscaper venv's python (threads pinned to 1) on the same points for
n in 10^3, 3·10^3, 10^4 (500, 10^3 with --quick), skipping any size whose time, predicted
from the measured power law of the smaller ones, exceeds 2 minutes (reported as skipped, with the
prediction labelled as an extrapolation). Ours is timed at those sizes both as used here (k=15
kNN-approximated Gabriel) and exact (k = n - 1), whose edges must equal nglpy's.

Writes results/benchmarks/graph.json (atomically) and prints a markdown table.

    PYTHONPATH=src python benchmarks/graph_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from toposweep.io import write_json  # noqa: E402
from topology_bench import seconds_text  # noqa: E402  (benchmarks/ is this script's folder)

NDIM, K, REPEATS, SEED = 10, 15, 3, 0
N_WELLS, WELL_WIDTH = 8, 0.3
SIMPLIFY_RELATIVE = 0.01
GOAL_SECONDS = 60.0
# The separate venv's interpreter (docs/topology.md says how to make it): LANDSCAPER_PYTHON.
LANDSCAPER_PYTHON = Path(os.environ.get("LANDSCAPER_PYTHON", "/work/venvs/landscaper/bin/python"))
LANDSCAPER_LIMIT_SECONDS = 120.0
PRUNES = ("none", "gabriel", "relative_neighbourhood")
PINNED_THREADS = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                         "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")}
# Landscaper's own graph (landscaper.tda.merge_tree / topopy TopologicalObject.build -> graph.build)
LANDSCAPER_CHILD = """
import json, sys, time
import numpy as np
import nglpy as ngl
points = np.load(sys.argv[1])
start = time.perf_counter()
graph = ngl.EmptyRegionGraph(beta=1.0, relaxed=False, p=2.0)
graph.build(points)
seconds = time.perf_counter() - start
edges = sorted({(min(a, b), max(a, b)) for a, near in graph.neighbors().items() for b in near})
np.save(sys.argv[2], np.array(edges, dtype=np.int64).reshape(-1, 2))
print(json.dumps({"seconds": seconds, "n_edges": len(edges)}))
"""


def sample_points(n: int, seed: int = SEED) -> np.ndarray:
    from scipy.stats import qmc

    with warnings.catch_warnings():  # n need not be a power of 2 here
        warnings.simplefilter("ignore", UserWarning)
        return qmc.Sobol(NDIM, scramble=True, seed=seed).random(n)


def multi_well(points: np.ndarray) -> np.ndarray:
    """A gentle bowl minus N_WELLS Gaussian wells (depths 0.5..1.5) at seeded centres."""
    rng = np.random.default_rng(SEED)
    centres = rng.uniform(0.15, 0.85, size=(N_WELLS, points.shape[1]))
    depths = np.linspace(0.5, 1.5, N_WELLS)
    values = 0.05 * ((points - 0.5) ** 2).sum(axis=1)
    for centre, depth in zip(centres, depths):
        values -= depth * np.exp(-((points - centre) ** 2).sum(axis=1) / (2 * WELL_WIDTH**2))
    return values


def median_time(function, repeats: int = REPEATS):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), times, result


# --- child-process measurements ----------------------------------------------------------------
def ours_child(points_path: str) -> dict:
    from toposweep.topology import graph_merge_tree, landscape_profile, simplify, tree_metrics
    from toposweep.topology.graph import GRAPH_NAMES, neighbourhood_graph, prune_graph

    points = np.load(points_path)
    values = multi_well(points)
    small = points[:200]  # warm-up: numba cache load (compile when cold), excluded
    start = time.perf_counter()
    graph_merge_tree(values[:200], *neighbourhood_graph(small, K, "gabriel"))
    warmup = time.perf_counter() - start
    knn_seconds, knn_all, knn = median_time(lambda: neighbourhood_graph(points, K))
    rows = []
    for prune in PRUNES:
        prune_seconds, _, graph = median_time(lambda: prune_graph(points, *knn, prune))

        def topology(graph=graph, prune=prune):
            tree = graph_merge_tree(values, *graph, GRAPH_NAMES[prune])
            simplified = simplify(tree, SIMPLIFY_RELATIVE, relative_threshold=True)
            return tree, simplified, tree_metrics(simplified)

        tree_seconds, _, (tree, simplified, metrics) = median_time(topology)
        profile_seconds, _, profile = median_time(lambda: landscape_profile(simplified))
        graph_seconds = knn_seconds + (prune_seconds if prune != "none" else 0.0)
        minima_by_threshold = {  # untimed: how many minima survive coarser simplifications
            str(t): simplify(tree, t, relative_threshold=True).n_minima for t in (0.05, 0.1)
        }
        rows.append({
            "prune": prune,
            "graph_seconds": graph_seconds,
            "prune_seconds": prune_seconds if prune != "none" else 0.0,
            "tree_simplify_metrics_seconds": tree_seconds,
            "profile_seconds": profile_seconds,
            "total_seconds": graph_seconds + tree_seconds + profile_seconds,
            "mean_degree": float(np.diff(graph[0]).mean()),
            "n_minima_unsimplified": tree.n_minima,
            "n_minima": metrics["n_minima"],
            "n_saddles": metrics["n_saddles"],
            "max_persistence": metrics["max_persistence"],
            "n_basins": profile.n_basins,
            "n_minima_at_relative_threshold": minima_by_threshold,
        })
    return {"warmup_seconds": warmup, "knn_seconds": knn_seconds, "knn_all_seconds": knn_all,
            "results": rows}


def comparison_child(points_path: str, edges_path: str) -> dict:
    """Ours at a Landscaper size: k=15 Gabriel, and exact Gabriel (k = n - 1) with its edges."""
    from toposweep.topology.graph import neighbourhood_graph

    points = np.load(points_path)
    neighbourhood_graph(points[:50], 10, "gabriel")  # warm-up (numba cache)
    approx_seconds, _, _ = median_time(lambda: neighbourhood_graph(points, K, "gabriel"))
    n = len(points)
    exact_seconds, _, (indptr, indices) = median_time(
        lambda: neighbourhood_graph(points, n - 1, "gabriel"))
    rows = np.repeat(np.arange(n), np.diff(indptr))
    upper = rows < indices
    np.save(edges_path, np.column_stack([rows[upper], indices[upper]]))
    return {"knn_gabriel_seconds": approx_seconds, "exact_gabriel_seconds": exact_seconds,
            "exact_n_edges": int(upper.sum())}


def run_child(command: list[str], timeout: float | None = None) -> dict | None:
    env = dict(os.environ, **PINNED_THREADS)
    try:
        result = subprocess.run(command, capture_output=True, text=True, env=env, check=False,
                                timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    if result.returncode != 0:
        raise RuntimeError(f"child {command[:3]} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def landscaper_rows(sizes: list[int], scratch: Path) -> list[dict]:
    """Landscaper's graph vs ours at each size, skipping sizes predicted to exceed the limit."""
    rows, measured = [], []
    for n in sizes:
        if len(measured) >= 2:  # power law through the two largest measured sizes
            (n1, t1), (n2, t2) = measured[-2:]
            exponent = np.log(t2 / t1) / np.log(n2 / n1)
            predicted = t2 * (n / n2) ** exponent
            if predicted > LANDSCAPER_LIMIT_SECONDS:
                rows.append({"n": n, "skipped": True, "extrapolated_seconds": predicted,
                             "extrapolation_exponent": exponent})
                continue
        points_path = scratch / f"points_{n}.npy"
        np.save(points_path, sample_points(n))
        print(f"landscaper n={n} ...", file=sys.stderr, flush=True)
        theirs = run_child([str(LANDSCAPER_PYTHON), "-c", LANDSCAPER_CHILD, str(points_path),
                            str(scratch / "theirs.npy")], timeout=2 * LANDSCAPER_LIMIT_SECONDS)
        if theirs is None:
            rows.append({"n": n, "skipped": True, "timed_out_after": 2 * LANDSCAPER_LIMIT_SECONDS})
            break
        measured.append((n, theirs["seconds"]))
        ours = run_child([sys.executable, __file__, "--child", "compare", str(points_path),
                          str(scratch / "ours.npy")])
        same = np.array_equal(np.load(scratch / "theirs.npy"), np.load(scratch / "ours.npy"))
        rows.append({"n": n, "skipped": False, "landscaper_seconds": theirs["seconds"],
                     "landscaper_n_edges": theirs["n_edges"], **ours,
                     "exact_edges_equal_landscaper": bool(same),
                     "ratio_knn_gabriel": theirs["seconds"] / ours["knn_gabriel_seconds"],
                     "ratio_exact_gabriel": theirs["seconds"] / ours["exact_gabriel_seconds"]})
    return rows


# --- driver ------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="3·10^4 points; Landscaper at 500 and 10^3"
    )
    parser.add_argument("--output", type=Path, default=REPO / "results/benchmarks/graph.json")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *paths = args.child
        result = ours_child(*paths) if kind == "ours" else comparison_child(*paths)
        print(json.dumps(result))
        return

    n = 30_000 if args.quick else 100_000
    sizes = [500, 1000] if args.quick else [1000, 3000, 10_000]
    with tempfile.TemporaryDirectory(prefix="graph_bench_") as scratch:
        scratch = Path(scratch)
        points_path = scratch / "points.npy"
        np.save(points_path, sample_points(n))
        print(f"toposweep n={n} ...", file=sys.stderr, flush=True)
        ours = run_child([sys.executable, __file__, "--child", "ours", str(points_path)])
        if LANDSCAPER_PYTHON.exists():
            comparison, skipped_why = landscaper_rows(sizes, scratch), None
        else:
            comparison, skipped_why = [], f"{LANDSCAPER_PYTHON} not found"
            print(f"Landscaper comparison skipped: {skipped_why}", file=sys.stderr)

    report = {
        "benchmark": "graph",
        "points": f"{n} scrambled Sobol points in [0, 1]^{NDIM} (seed {SEED})",
        "function": f"0.05 |x - 0.5|^2 minus {N_WELLS} Gaussian wells (width {WELL_WIDTH}, "
        "depths 0.5..1.5, centres uniform in [0.15, 0.85]^10, seed 0)",
        "k": K,
        "simplify_relative_threshold": SIMPLIFY_RELATIVE,
        "measured": f"median of {REPEATS} after a warm-up call; threads pinned to 1: "
        + ", ".join(PINNED_THREADS),
        "goal_total_seconds": GOAL_SECONDS,
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "python": platform.python_version(),
                    "load_average": list(os.getloadavg())},
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "n_points": n,
        "toposweep": ours,
        "landscaper": {
            "graph": "nglpy.EmptyRegionGraph(beta=1.0, relaxed=False, p=2.0).build(points) "
            "(exact Gabriel graph, brute force), as landscaper.tda.merge_tree builds it",
            "limit_seconds": LANDSCAPER_LIMIT_SECONDS,
            "skipped_why": skipped_why,
            "results": comparison,
        },
    }
    write_json(args.output, report)
    print(markdown_table(report))
    print(f"\nwrote {args.output}")


def markdown_table(report: dict) -> str:
    ours = report["toposweep"]
    lines = [
        f"{report['n_points']:,} Sobol points in 10-D, k={report['k']}, median of {REPEATS}, "
        f"1 thread (kNN graph {ours['knn_seconds']:.2f} s, runs "
        f"{', '.join(f'{t:.2f}' for t in ours['knn_all_seconds'])} s):\n",
        "| graph | mean degree | graph construction | merge tree + simplify + metrics | profile "
        "| total | minima: raw → 1 % (5 %, 10 %) of range | saddles |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in ours["results"]:
        coarser = row["n_minima_at_relative_threshold"]
        lines.append(
            f"| {row['prune']} | {row['mean_degree']:.1f} | {seconds_text(row['graph_seconds'])} "
            f"| {seconds_text(row['tree_simplify_metrics_seconds'])} "
            f"| {seconds_text(row['profile_seconds'])} | {seconds_text(row['total_seconds'])} "
            f"| {row['n_minima_unsimplified']} → {row['n_minima']} ({coarser['0.05']}, "
            f"{coarser['0.1']}) | {row['n_saddles']} |"
        )
    comparison = report["landscaper"]
    if comparison["skipped_why"]:
        lines.append(f"\nLandscaper comparison skipped: {comparison['skipped_why']}")
        return "\n".join(lines)
    lines += [
        "\nGraph construction vs Landscaper 1.3.1 (nglpy exact Gabriel, brute force), 10-D:\n",
        "| n | Landscaper | ours k=15 Gabriel | ratio | ours exact Gabriel (k=n-1) | ratio "
        "| exact edges = Landscaper's |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in comparison["results"]:
        if row["skipped"]:
            why = (f"extrapolated {row['extrapolated_seconds']:.0f} s (n^"
                   f"{row['extrapolation_exponent']:.2f}, not measured)"
                   if "extrapolated_seconds" in row else f"> {row['timed_out_after']:.0f} s")
            lines.append(f"| {row['n']:,} | skipped: {why} | | | | | |")
            continue
        lines.append(
            f"| {row['n']:,} | {row['landscaper_seconds']:.2f} s "
            f"| {1000 * row['knn_gabriel_seconds']:.1f} ms | {row['ratio_knn_gabriel']:.0f}× "
            f"| {row['exact_gabriel_seconds']:.2f} s | {row['ratio_exact_gabriel']:.1f}× "
            f"| {'yes' if row['exact_edges_equal_landscaper'] else 'NO'} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
