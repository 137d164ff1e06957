"""The topology stage's files for one landscape: a grid, or scattered samples on their graph."""

from __future__ import annotations

import csv
import io
import os
import time
from typing import Any

import numpy as np

import toposweep
from toposweep.schema import stage_settings
from toposweep.io import file_sha256, json_attribute, read_landscape, write_json, write_text
from toposweep.layout import TopologyFiles
from toposweep.topology.graph import PRUNE_OF_GRAPH, neighbourhood_graph
from toposweep.topology.merge_tree import (
    graph_merge_tree,
    merge_tree,
    validate_axes,
    validate_values,
)
from toposweep.topology.loops import (LoopPairs, loop_metrics, loop_pairs,
                                      validate_homology_dimensions)
from toposweep.topology.metrics import tree_metrics
from toposweep.topology.profile import landscape_profile
from toposweep.topology.simplify import simplify

NONFINITE_POLICY = (
    "NaN/+inf/-inf ordered above every finite value (ties by flat index); never replaced"
)


def persistence_csv(tree, axes: list[np.ndarray] | None = None, loops: LoopPairs | None = None,
                    points: np.ndarray | None = None) -> str:
    """CSV text of the finite pairs: birth, death, persistence, vertices, grid coordinates (grid
    trees), positions (`birth_x0..`, `death_x0..`: axis values with `axes`, or the samples'
    coordinates with `points`), then `dimension`: 0 for the tree's pairs, 1 for `loops`."""
    header = ["birth", "death", "persistence", "birth_vertex", "death_vertex"]
    if not tree.on_graph:
        header += [f"birth_i{k}" for k in range(tree.ndim)] + [f"death_i{k}" for k in range(tree.ndim)]
    n_positions = points.shape[1] if points is not None else (tree.ndim if axes is not None else 0)
    header += [f"birth_x{k}" for k in range(n_positions)] + [f"death_x{k}" for k in range(n_positions)]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header + ["dimension"])
    blocks = [(0, tree.births, tree.deaths, tree.pair_birth_vertex, tree.pair_death_vertex)]
    if loops is not None:
        blocks.append((1, loops.births, loops.deaths, loops.birth_vertex, loops.death_vertex))
    for dimension, births, deaths, birth_vertex, death_vertex in blocks:
        columns = [[repr(float(b)) for b in births], [repr(float(d)) for d in deaths],
                   [repr(float(d - b)) for b, d in zip(births, deaths)],
                   birth_vertex.tolist(), death_vertex.tolist()]
        if not tree.on_graph:
            for vertices in (birth_vertex, death_vertex):
                coordinates = np.unravel_index(vertices, tree.shape)
                columns += [axis.tolist() for axis in coordinates]
        for vertices in (birth_vertex, death_vertex):
            positions = tree.positions(vertices, axes, points)
            if positions is not None:
                columns += [[repr(float(x)) for x in positions[:, k]] for k in range(n_positions)]
        columns.append([dimension] * len(births))
        writer.writerows(zip(*columns))
    return buffer.getvalue()


def write_topology_outputs(
    values: Any,
    files: TopologyFiles | str | os.PathLike,
    connectivity: str = "freudenthal",
    threshold: float = 0.0,
    relative_threshold: bool = False,
    axes: list[np.ndarray] | None = None,
    provenance: dict[str, Any] | None = None,
    homology_dimensions: tuple[int, ...] | list[int] = (0,),
    samples: np.ndarray | None = None,
    graph: str = "gabriel",
    neighbours: int = 16,
) -> dict[str, Any]:
    """Compute the merge tree, persistence, metrics and profile of one landscape and write
    topology.json, persistence.csv, merge_tree.json and profile.json to `files` (or one folder;
    each atomically: temp file in the same directory, then os.replace). `axes` (one coordinate array
    per dimension) adds axis positions next to grid coordinates. `homology_dimensions` (0, 1) adds
    the loops (H1 pairs of persistence >= the absolute threshold, from gudhi; grids up to 4-D) and
    their metrics. With `samples` (n, d), `values` holds the losses of n scattered samples and
    the tree is built on their `graph` (knn, gabriel, relative_neighbourhood) of `neighbours`
    nearest neighbours instead of a grid `connectivity`. Returns topology.json's content.
    """
    grid = validate_values(values)
    dimensions = validate_homology_dimensions(homology_dimensions)
    files = TopologyFiles.of(files)
    start = time.perf_counter()
    if samples is None:
        axes = validate_axes(axes, grid.shape)
        tree = simplify(merge_tree(grid, connectivity), threshold, relative_threshold)
        graph_settings: dict[str, Any] = {"connectivity": connectivity}
    else:
        if 1 in dimensions:
            raise ValueError("loops (homology dimension 1) are computed on grids, not on samples")
        axes, samples = None, np.asarray(samples, dtype=np.float64)
        tree, graph_settings = _graph_tree(grid, samples, graph, neighbours, start)
        tree = simplify(tree, threshold, relative_threshold)
    metrics = tree_metrics(tree)
    loops = loop_pairs(grid, tree.threshold) if 1 in dimensions else None
    if loops is not None:
        metrics.update(loop_metrics(loops))
    elapsed = time.perf_counter() - start
    profile = landscape_profile(tree)
    summary = {
        "status": "diverged" if metrics["n_nonfinite"] == metrics["n_vertices"] else "ok",
        "settings": {
            "backend": "toposweep",
            **graph_settings,
            "threshold": float(threshold),
            "relative_threshold": bool(relative_threshold),
            "homology_dimensions": list(dimensions),
            "shape": list(tree.shape),
            "nonfinite_policy": NONFINITE_POLICY,
            "code_version": toposweep.__version__,
        },
        "metrics": metrics,
        "global_minimum": _global_minimum(tree, axes, samples),
        "compute_seconds": elapsed,
        "provenance": provenance or {},
    }
    tree_dict = tree.to_dict(axes, samples)
    write_text(files.persistence, persistence_csv(tree, axes, loops, samples))
    write_json(files.merge_tree, tree_dict)
    write_text(files.profile, profile.to_json() + "\n")
    write_json(files.topology, summary)  # last: its presence marks completion
    return summary


def _graph_tree(losses: np.ndarray, samples: np.ndarray, graph: str, neighbours: int,
                start: float) -> tuple[Any, dict[str, Any]]:
    """The unsimplified merge tree of scattered samples on their neighbourhood graph, and the
    graph's settings for topology.json (its mean degree and the time to build it)."""
    if losses.ndim != 1 or len(samples) != losses.size:
        raise ValueError(f"{losses.size} losses of shape {losses.shape} for {len(samples)} samples")
    indptr, indices = neighbourhood_graph(samples, neighbours, PRUNE_OF_GRAPH[graph])
    settings = {"connectivity": graph, "graph": graph, "neighbours": int(neighbours),
                "mean_degree": float(indices.size / losses.size),
                "graph_seconds": time.perf_counter() - start}
    return graph_merge_tree(losses, indptr, indices, graph), settings


def _global_minimum(tree, axes: list[np.ndarray] | None, samples: np.ndarray | None
                    ) -> dict[str, Any]:
    """Where the landscape's lowest value is: vertex, grid coordinates (none on a graph),
    position in direction units, value."""
    vertex = tree.global_minimum_vertex
    coordinates = np.array(np.unravel_index(vertex, tree.shape)).reshape(-1)
    position = tree.positions(np.array([vertex]), axes, samples)
    return {
        "vertex": int(vertex),
        "coordinates": None if tree.on_graph else [int(c) for c in coordinates],
        "position": None if position is None else [float(x) for x in position[0]],
        "value": float(tree.values[vertex]),
    }


def topology_of_landscape_file(
    landscape_path: str | os.PathLike,
    files: TopologyFiles | str | os.PathLike,
    **settings: Any,
) -> dict[str, Any]:
    """The workflow's topology step: read a landscape HDF5 file and write the four files
    (`settings`: the config's `topology` section; the schema's defaults fill the rest).

    A landscape whose `status` attribute is not "ok" (e.g. from a diverged run) gets files with
    status "skipped" and no numbers, so aggregation keeps the run and shows why it is empty.
    """
    settings = stage_settings("topology", settings)
    files = TopologyFiles.of(files)
    landscape = read_landscape(landscape_path)
    provenance = {"landscape": str(landscape_path), "landscape_sha256": file_sha256(landscape_path),
                  "checkpoint_hash": json_attribute(landscape.attrs.get("provenance")).get("checkpoint_hash")}
    status = landscape.attrs.get("status", "ok")
    if status != "ok":
        reason = f"landscape status is {status!r}: {landscape.attrs.get('message', '')}".rstrip(": ")
        return write_skipped_topology(files, reason, provenance)
    return write_topology_outputs(landscape.loss, files, settings["connectivity"],
                                  settings["threshold"], settings["relative_threshold"],
                                  axes=None if landscape.scattered else landscape.axes,
                                  provenance=provenance,
                                  homology_dimensions=settings["homology_dimensions"],
                                  samples=landscape.samples, graph=settings["graph"],
                                  neighbours=settings["neighbours"])


def write_skipped_topology(
    files: TopologyFiles | str | os.PathLike, reason: str, provenance: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The four files for a landscape that has no topology to compute: status and reason only."""
    files = TopologyFiles.of(files)
    summary = {"status": "skipped", "message": reason, "provenance": provenance or {}}
    write_text(files.persistence, "birth,death,persistence,birth_vertex,death_vertex,dimension\n")
    write_json(files.merge_tree, {"status": "skipped", "nodes": [], "arcs": []})
    write_json(files.profile, {"status": "skipped", "basins": []})
    write_json(files.topology, summary)
    return summary
