"""SMAD: toposweep's merge tree against Landscaper 1.3.1's `LossLandscape.smad` on one field.

The field: three Gaussian wells (depths 1.0, 0.7, 0.5) on a 41 x 41 grid over [-2, 2]^2. Ours:
`toposweep.topology.metrics.smad` on the merge tree with connectivity freudenthal and axis.
Landscaper's: `LossLandscape(loss, [x, y]).smad(...)` as a user calls it, in a child process run
with the Landscaper venv's python (LANDSCAPER_PYTHON, default /work/venvs/landscaper/bin/python;
Landscaper is never imported here, nor a toposweep dependency). The child also reports its
graph (nglpy's Gabriel graph, `EmptyRegionGraph(beta=1)`), its saddle-minimum arcs and basin
sizes, so the script can say where the values differ:

* graph: a join tree swept on Landscaper's own Gabriel-graph edges (a small union-find below)
  gives the gaps SMAD averages; equal gaps mean the contour tree's saddle-minimum arcs are the
  join tree's leaf arcs there, and the rest of the difference is the grid connectivity;
* weights: Landscaper's basin is the minimum's steepest-descent region (topopy's Morse-Smale
  unstable manifold, up to the ridges); ours is the leaf arc's region (the minimum's sublevel
  component below its saddle).

    PYTHONPATH=src python benchmarks/smad_landscaper.py

writes results/benchmarks/smad_landscaper.json and prints a markdown table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from toposweep.io import write_json  # noqa: E402
from toposweep.topology import merge_tree  # noqa: E402
from toposweep.topology.metrics import smad  # noqa: E402

LANDSCAPER_PYTHON = os.environ.get("LANDSCAPER_PYTHON", "/work/venvs/landscaper/bin/python")
OUTPUT = REPO / "results" / "benchmarks" / "smad_landscaper.json"
N = 41
WELLS = [(-1.0, -1.0, 1.0, 0.5), (1.0, -0.8, 0.7, 0.45), (0.0, 1.1, 0.5, 0.4)]  # x, y, depth, σ

CHILD = r"""
import json, sys, time
import numpy as np
from landscaper import LossLandscape
from landscaper.tda import saddle_minima_pairs
data = np.load(sys.argv[1])
loss, x = data["loss"], data["x"]
start = time.perf_counter()
landscape = LossLandscape(loss, [x, x])
values = {"smad": landscape.smad(), "smad_normalized": landscape.smad(normalize=True),
          "smad_weighted": landscape.smad(weighted=True)}
seconds = time.perf_counter() - start
ct = landscape.get_contour_tree()
ti = landscape.get_topological_indices(ct)
msc = landscape.get_ms_complex()
basins = {int(k): len(v) for k, v in msc.get_unstable_manifolds().items()}
arcs = []
for a, b in saddle_minima_pairs(ct, ti):
    minimum, saddle = (a, b) if ti[a] == 0 else (b, a)
    # contour-tree edges run (lower, upper): a join saddle has >= 2 edges below, a split saddle
    # (where superlevel components of maxima meet) >= 2 above
    below = sum(1 for e in ct.edges if e[1] == saddle)
    above = sum(1 for e in ct.edges if e[0] == saddle)
    arcs.append({"minimum": int(minimum), "saddle": int(saddle),
                 "gap": float(abs(ct.nodes[a] - ct.nodes[b])), "basin": basins[int(minimum)],
                 "saddle_edges_below": below, "saddle_edges_above": above})
edges = sorted({(min(i, int(j)), max(i, int(j))) for i in range(loss.size)
                for j in msc.get_neighbors(i)})
print(json.dumps({**values, "seconds": seconds, "arcs": arcs, "edges": edges,
                  "n_branches": len(ct.branches), "n_contour_tree_nodes": len(ct.nodes)}))
"""


def wells_field() -> tuple[np.ndarray, np.ndarray]:
    x = np.linspace(-2.0, 2.0, N)
    a, b = np.meshgrid(x, x, indexing="ij")
    field = np.zeros_like(a)
    for cx, cy, depth, sigma in WELLS:
        field -= depth * np.exp(-((a - cx) ** 2 + (b - cy) ** 2) / (2 * sigma**2))
    return field, x


def ours(field: np.ndarray, connectivity: str) -> dict:
    """SMAD and the leaf arcs of our merge tree."""
    start = time.perf_counter()
    tree = merge_tree(field, connectivity)
    result = {"smad": smad(tree), "smad_normalized": smad(tree, normalize=True),
              "smad_weighted": smad(tree, weighted=True)}
    result["seconds"] = time.perf_counter() - start
    leaf = tree.node_type[tree.arc_child] == 0
    result["arcs"] = [{"minimum": int(tree.node_vertex[tree.arc_child[a]]),
                       "saddle": int(tree.node_vertex[tree.arc_parent[a]]),
                       "gap": float(tree.node_values[tree.arc_parent[a]]
                                    - tree.node_values[tree.arc_child[a]]),
                       "basin": int(tree.arc_size[a])} for a in np.flatnonzero(leaf)]
    return result


def join_tree_leaf_arcs(values: np.ndarray, edges: list) -> list[dict]:
    """Leaf arcs (minimum → the saddle where its component first merges) of the join tree of
    the lower-star filtration of a graph: swept in (value, index) order with union-find."""
    flat = values.reshape(-1)
    neighbours = [[] for _ in range(flat.size)]
    for i, j in edges:
        neighbours[i].append(j)
        neighbours[j].append(i)
    parent = np.full(flat.size, -1)
    bottom, size, arcs = {}, {}, []

    def find(v):
        while parent[v] != v:
            parent[v] = parent[parent[v]]
            v = parent[v]
        return v

    for v in np.lexsort((np.arange(flat.size), flat)):
        roots = sorted({find(u) for u in neighbours[v] if parent[u] >= 0})
        parent[v] = v
        if not roots:
            bottom[v], size[v] = ("minimum", v), 1
            continue
        if len(roots) == 1:
            parent[v] = roots[0]
            size[roots[0]] += 1
            continue
        for root in roots:  # a merge: each component's arc ends here
            kind, node = bottom.pop(root)
            if kind == "minimum":
                arcs.append({"minimum": int(node), "saddle": int(v),
                             "gap": float(flat[v] - flat[node]), "basin": size[root]})
            parent[root] = v
            size.pop(root)
        bottom[v], size[v] = ("saddle", v), 1
    return arcs


def landscaper(field: np.ndarray, x: np.ndarray) -> dict | None:
    """Landscaper's numbers from its own venv, or None (with the reason printed) without it."""
    if not Path(LANDSCAPER_PYTHON).exists():
        print(f"Landscaper skipped: {LANDSCAPER_PYTHON} does not exist (set LANDSCAPER_PYTHON)")
        return None
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "field.npz"
        np.savez(path, loss=field, x=x)
        run = subprocess.run([LANDSCAPER_PYTHON, "-c", CHILD, str(path)], capture_output=True,
                             text=True, env={**os.environ, "PYTHONPATH": ""})
    if run.returncode != 0:
        print(f"Landscaper skipped: its child process failed:\n{run.stderr[-2000:]}")
        return None
    return json.loads(run.stdout.strip().splitlines()[-1])


def edge_kinds(edges: list) -> dict[str, int]:
    """Gabriel-graph edges by grid step: axis, diagonal (i+1, j+1), anti-diagonal, other."""
    counts = {"axis": 0, "diagonal": 0, "anti_diagonal": 0, "other": 0}
    for i, j in edges:
        (ai, aj), (bi, bj) = divmod(i, N), divmod(j, N)
        step = (bi - ai, bj - aj)
        if abs(step[0]) + abs(step[1]) == 1:
            counts["axis"] += 1
        elif step in ((1, 1), (-1, -1)):
            counts["diagonal"] += 1
        elif step in ((1, -1), (-1, 1)):
            counts["anti_diagonal"] += 1
        else:
            counts["other"] += 1
    return counts


def summary_table(result: dict) -> str:
    """The SMAD values side by side (markdown)."""
    rows = [(f"toposweep {c}", r) for c, r in result["toposweep"].items()]
    if "landscaper" in result:
        rows += [("join tree on Landscaper's Gabriel graph",
                  {"smad": result["join_tree_on_landscapers_graph"]["smad"]}),
                 ("Landscaper 1.3.1 LossLandscape.smad", result["landscaper"])]
    lines = ["| method | smad | smad_normalized | smad_weighted | seconds |",
             "|---|---|---|---|---|"]
    for name, r in rows:
        cells = [f"{r[k]:.7f}" if k in r else "" for k in ("smad", "smad_normalized",
                                                              "smad_weighted")]
        seconds = f"{r['seconds']:.3g}" if "seconds" in r else ""
        lines.append(f"| {name} | {' | '.join(cells)} | {seconds} |")
    for arc in result.get("landscaper", {}).get("arcs", []):
        lines.append(f"Landscaper arc: minimum {arc['minimum']} -> saddle {arc['saddle']} "
                     f"(gap {arc['gap']:.7f}, basin {arc['basin']}, contour-tree edges below/above "
                     f"{arc['saddle_edges_below']}/{arc['saddle_edges_above']})")
    for c, r in result["toposweep"].items():
        for arc in r["arcs"]:
            lines.append(f"toposweep {c} arc: minimum {arc['minimum']} -> saddle {arc['saddle']} "
                         f"(gap {arc['gap']:.7f}, basin {arc['basin']})")
    return "\n".join(lines)


def main() -> None:
    field, x = wells_field()
    result = {"field": f"{len(WELLS)} Gaussian wells (x, y, depth, sigma) {WELLS} on a {N}x{N} "
                       "grid over [-2, 2]^2",
              "toposweep": {c: ours(field, c) for c in ("freudenthal", "axis")}}
    # the reference sweep on our own axis edges must give our axis tree's leaf arcs
    index = np.arange(field.size).reshape(field.shape)
    axis_edges = [*zip(index[:-1].ravel(), index[1:].ravel()),
                  *zip(index[:, :-1].ravel(), index[:, 1:].ravel())]
    reference = sorted((a["minimum"], a["saddle"], a["basin"])
                       for a in join_tree_leaf_arcs(field, axis_edges))
    assert reference == sorted((a["minimum"], a["saddle"], a["basin"])
                               for a in result["toposweep"]["axis"]["arcs"]), reference
    theirs = landscaper(field, x)
    if theirs is not None:
        edges = theirs.pop("edges")
        theirs["graph_edges"] = edge_kinds(edges)
        gabriel = join_tree_leaf_arcs(field, edges)
        gaps = np.array([arc["gap"] for arc in gabriel])
        result["join_tree_on_landscapers_graph"] = {"smad": float(gaps.mean()), "arcs": gabriel}
        basins = {arc["minimum"]: arc["basin"] for arc in theirs["arcs"]}
        if all(arc["minimum"] in basins for arc in gabriel):
            result["join_tree_on_landscapers_graph"]["smad_weighted_with_landscaper_basins"] = (
                float(np.mean([a["gap"] * basins[a["minimum"]] / field.size for a in gabriel])))
        result["landscaper"] = theirs
    write_json(OUTPUT, result)
    print(summary_table(result))
    print(f"wrote {OUTPUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
