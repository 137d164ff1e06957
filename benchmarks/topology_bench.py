"""Benchmark: gudhi cubical persistence vs toposweep's merge tree on random-smooth grids.

For each grid (41², 41³, 41⁴; 31⁴ instead of 41⁴ with --quick) one seeded field — Gaussian-
filtered white noise — is saved once, and every measurement runs in a fresh child process that
loads that same array:

* gudhi:      CubicalComplex(vertices=field) + compute_persistence() (all dimensions);
* toposweep:  merge_tree(field, "freudenthal") + persistence pairs + metrics, after a warm-up call
              so numba compilation is excluded (it is measured separately);
* check:      toposweep with connectivity "axis", whose 0-dim pairs must equal gudhi's (the
              vertex-filtered cubical complex has the same 1-skeleton).

Beyond four dimensions, one 11⁶ field (1,771,561 vertices; the same in --quick) is timed with each
connectivity (axis: 12 neighbours, freudenthal: 126, full: 728): merge tree + metrics, median of
3 calls after the warm-up, in one child per connectivity with its BLAS/OpenMP/numba threads
pinned to 1 (the sweep is single-threaded anyway). Goal: ≤ 10 s each. gudhi is not run there (its
6-D cubical complex has 21⁶ = 86 million cells); the tests compare axis pairs with gudhi in 5-D
and 6-D.

Peak memory is the child's peak resident set size (getrusage(RUSAGE_SELF).ru_maxrss at its end):
the whole process, interpreter and imports included; the RSS before the computation is reported
too. Writes results/benchmarks/topology.json (atomically) and prints a markdown table.

    PYTHONPATH=src python benchmarks/topology_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from toposweep.io import write_json  # noqa: E402

SMOOTHING_SIGMA = 2.0  # grid cells
SEED = 0
ND_SHAPE = (11,) * 6
ND_CONNECTIVITIES = ("axis", "freudenthal", "full")
ND_REPEATS = 3
ND_GOAL_SECONDS = 10.0
PINNED_THREADS = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                         "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")}


def random_smooth_field(shape: tuple[int, ...], seed: int = SEED) -> np.ndarray:
    """Seeded white noise smoothed with a periodic Gaussian filter (many minima of all sizes)."""
    from scipy.ndimage import gaussian_filter

    noise = np.random.default_rng(seed).normal(size=shape)
    return gaussian_filter(noise, SMOOTHING_SIGMA, mode="wrap")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


# --- child-process measurements ----------------------------------------------------------------
def child(kind: str, field_path: str, pairs_path: str | None) -> dict:
    field = np.load(field_path)
    if kind == "gudhi":
        import gudhi

        baseline = peak_rss_mb()
        start = time.perf_counter()
        cubical = gudhi.CubicalComplex(vertices=field)
        cubical.compute_persistence()
        intervals = cubical.persistence_intervals_in_dimension(0)
        seconds = time.perf_counter() - start
        finite = intervals[np.isfinite(intervals[:, 1]) & (intervals[:, 1] > intervals[:, 0])]
        finite = finite[np.lexsort((finite[:, 1], finite[:, 0]))]
        if pairs_path:
            np.save(pairs_path, finite)
        return {
            "seconds": seconds,
            "peak_rss_mb": peak_rss_mb(),
            "rss_before_mb": baseline,
            "n_pairs_dim0": int(finite.shape[0]),
        }
    if kind == "compile":  # first call in a process with an empty numba cache: JIT compile time
        start = time.perf_counter()
        from toposweep.topology import merge_tree

        merge_tree(field[(slice(0, 3),) * field.ndim])
        return {"seconds": time.perf_counter() - start}

    from toposweep.topology import merge_tree, tree_metrics

    if kind.startswith("nd_"):
        return nd_child(kind[3:], field)
    connectivity = "axis" if kind == "toposweep_axis" else "freudenthal"
    start = time.perf_counter()
    merge_tree(np.random.default_rng(1).normal(size=(4,) * field.ndim), connectivity)
    warmup = time.perf_counter() - start  # numba: cache load (or compile when the cache is cold)
    baseline = peak_rss_mb()
    start = time.perf_counter()
    tree = merge_tree(field, connectivity)
    tree_seconds = time.perf_counter() - start
    pairs = tree.pairs
    metrics = tree_metrics(tree)
    seconds = time.perf_counter() - start
    if pairs_path:
        np.save(pairs_path, pairs)
    return {
        "seconds": seconds,
        "merge_tree_seconds": tree_seconds,
        "warmup_seconds": warmup,
        "peak_rss_mb": peak_rss_mb(),
        "rss_before_mb": baseline,
        "n_minima": metrics["n_minima"],
        "n_saddles": metrics["n_saddles"],
        "avg_persistence": metrics["avg_persistence"],
        "n_pairs_dim0": int(pairs.shape[0]),
    }


def nd_child(connectivity: str, field: np.ndarray, repeats: int = ND_REPEATS) -> dict:
    """Median of `repeats` timed merge tree + metrics calls with one connectivity."""
    from toposweep.topology import merge_tree, tree_metrics
    from toposweep.topology.merge_tree import neighbour_stencil

    start = time.perf_counter()
    merge_tree(np.random.default_rng(1).normal(size=(4,) * field.ndim), connectivity)
    warmup = time.perf_counter() - start
    baseline = peak_rss_mb()
    totals, trees = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        tree = merge_tree(field, connectivity)
        trees.append(time.perf_counter() - start)
        metrics = tree_metrics(tree)
        totals.append(time.perf_counter() - start)
    return {
        "connectivity": connectivity,
        "neighbours": int(neighbour_stencil(field.shape, connectivity)[1].size),
        "seconds": float(np.median(totals)),
        "merge_tree_seconds": float(np.median(trees)),
        "all_seconds": totals,
        "warmup_seconds": warmup,
        "peak_rss_mb": peak_rss_mb(),
        "rss_before_mb": baseline,
        "n_minima": metrics["n_minima"],
        "n_saddles": metrics["n_saddles"],
    }


def run_child(
    kind: str, field_path: Path, pairs_path: Path | None = None, env: dict | None = None
) -> dict:
    command = [sys.executable, __file__, "--child", kind, str(field_path)]
    if pairs_path is not None:
        command.append(str(pairs_path))
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{kind} child failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- driver ------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="31⁴ instead of 41⁴")
    parser.add_argument("--output", type=Path, default=REPO / "results/benchmarks/topology.json")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, field_path, *rest = args.child
        print(json.dumps(child(kind, field_path, rest[0] if rest else None)))
        return

    shapes = [(41, 41), (41, 41, 41), (31,) * 4 if args.quick else (41,) * 4]
    rows = []
    with tempfile.TemporaryDirectory(prefix="topology_bench_") as scratch:
        scratch = Path(scratch)
        cold_env = dict(os.environ, NUMBA_CACHE_DIR=str(scratch / "numba_cache"))
        tiny = scratch / "tiny.npy"
        np.save(tiny, random_smooth_field((8, 8)))
        compile_seconds = run_child("compile", tiny, env=cold_env)["seconds"]
        for shape in shapes:
            field_path = scratch / "field.npy"
            np.save(field_path, random_smooth_field(shape))
            label = "×".join(str(n) for n in shape)
            print(f"{label}: gudhi ...", file=sys.stderr, flush=True)
            gudhi = run_child("gudhi", field_path, scratch / "gudhi_pairs.npy")
            print(f"{label}: toposweep ...", file=sys.stderr, flush=True)
            ours = run_child("toposweep", field_path)
            axis = run_child("toposweep_axis", field_path, scratch / "axis_pairs.npy")
            agree = bool(
                np.array_equal(
                    np.load(scratch / "gudhi_pairs.npy"), np.load(scratch / "axis_pairs.npy")
                )
            )
            rows.append(
                {
                    "shape": list(shape),
                    "n_vertices": int(np.prod(shape)),
                    "gudhi": gudhi,
                    "toposweep": ours,
                    "toposweep_axis_check": {
                        "seconds": axis["seconds"],
                        "pairs_equal_gudhi_dim0": agree,
                        "n_pairs_dim0": axis["n_pairs_dim0"],
                    },
                    "time_ratio": ours["seconds"] / gudhi["seconds"],
                    "peak_rss_ratio": ours["peak_rss_mb"] / gudhi["peak_rss_mb"],
                }
            )
        field_path = scratch / "field_nd.npy"
        np.save(field_path, random_smooth_field(ND_SHAPE))
        label = "×".join(str(n) for n in ND_SHAPE)
        pinned_env = dict(os.environ, **PINNED_THREADS)
        nd_rows = []
        for connectivity in ND_CONNECTIVITIES:
            print(f"{label}: toposweep {connectivity} ...", file=sys.stderr, flush=True)
            nd_rows.append(run_child(f"nd_{connectivity}", field_path, env=pinned_env))

    report = {
        "benchmark": "topology",
        "field": f"Gaussian-filtered white noise, sigma={SMOOTHING_SIGMA} cells, periodic, seed {SEED}",
        "toposweep_connectivity": "freudenthal",
        "gudhi": "CubicalComplex(vertices=field).compute_persistence() (all dimensions)",
        "memory_method": "peak RSS of the measuring child process (getrusage RUSAGE_SELF ru_maxrss "
        "at its end; includes interpreter, numpy, numba/gudhi imports and the "
        "loaded field); rss_before_mb is the peak before the measured call",
        "numba_compile_seconds": compile_seconds,
        "goal": "41^4 merge tree <= 10% of gudhi's time and <= 1.5 GB peak",
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
        },
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "results": rows,
        "nd": {
            "shape": list(ND_SHAPE),
            "n_vertices": int(np.prod(ND_SHAPE)),
            "measured": f"merge_tree(field, connectivity) + tree_metrics, median of {ND_REPEATS} "
            "calls after a warm-up call, threads pinned: " + ", ".join(PINNED_THREADS),
            "goal_seconds": ND_GOAL_SECONDS,
            "load_average": list(os.getloadavg()),
            "results": nd_rows,
        },
    }
    write_json(args.output, report)
    print(markdown_table(report))
    print(f"\nwrote {args.output}")


def seconds_text(seconds: float) -> str:
    return f"{1000 * seconds:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def markdown_table(report: dict) -> str:
    lines = [
        "| grid | vertices | gudhi time | gudhi peak RSS | toposweep time | toposweep peak RSS "
        "(increase) | time ratio | minima | saddles | axis pairs = gudhi |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["results"]:
        g, t = row["gudhi"], row["toposweep"]
        lines.append(
            f"| {'×'.join(map(str, row['shape']))} | {row['n_vertices']:,} "
            f"| {seconds_text(g['seconds'])} | {g['peak_rss_mb']:.0f} MB "
            f"| {seconds_text(t['seconds'])} | {t['peak_rss_mb']:.0f} MB "
            f"(+{t['peak_rss_mb'] - t['rss_before_mb']:.0f} MB) "
            f"| {100 * row['time_ratio']:.1f} % | {t['n_minima']} | {t['n_saddles']} "
            f"| {'yes' if row['toposweep_axis_check']['pairs_equal_gudhi_dim0'] else 'NO'} |"
        )
    warmup = max(r["toposweep"]["warmup_seconds"] for r in report["results"])
    lines.append(
        f"\nnumba JIT compile (first call with an empty cache, import included): "
        f"{report['numba_compile_seconds']:.1f} s; warm-up call loading the on-disk cache: "
        f"{warmup:.2f} s (both excluded from the times above)"
    )
    nd = report.get("nd")
    if nd:
        lines += [
            f"\n{'×'.join(map(str, nd['shape']))} ({nd['n_vertices']:,} vertices), merge tree + "
            f"metrics, median of {len(nd['results'][0]['all_seconds'])} (goal ≤ "
            f"{nd['goal_seconds']:.0f} s; load average {nd['load_average'][0]:.2f}):\n",
            "| connectivity | neighbours | time (median) | merge tree | all runs | peak RSS "
            "(increase) | minima | saddles |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in nd["results"]:
            lines.append(
                f"| {row['connectivity']} | {row['neighbours']} | {seconds_text(row['seconds'])} "
                f"| {seconds_text(row['merge_tree_seconds'])} "
                f"| {', '.join(f'{t:.2f}' for t in row['all_seconds'])} s "
                f"| {row['peak_rss_mb']:.0f} MB "
                f"(+{row['peak_rss_mb'] - row['rss_before_mb']:.0f} MB) "
                f"| {row['n_minima']} | {row['n_saddles']} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
