"""The topology stage's files for one landscape grid."""

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
from toposweep.topology.merge_tree import (
    grid_positions,
    merge_tree,
    simplify,
    validate_axes,
    validate_values,
)
from toposweep.topology.metrics import tree_metrics
from toposweep.topology.profile import landscape_profile

NONFINITE_POLICY = (
    "NaN/+inf/-inf ordered above every finite value (ties by flat index); never replaced"
)


def persistence_csv(tree, axes: list[np.ndarray] | None = None) -> str:
    """CSV text of the finite pairs: birth, death, persistence, vertices and grid coordinates."""
    ndim = tree.ndim
    header = ["birth", "death", "persistence", "birth_vertex", "death_vertex"]
    header += [f"birth_i{k}" for k in range(ndim)] + [f"death_i{k}" for k in range(ndim)]
    if axes is not None:
        header += [f"birth_x{k}" for k in range(ndim)] + [f"death_x{k}" for k in range(ndim)]
    birth_coords = np.column_stack(np.unravel_index(tree.pair_birth_vertex, tree.shape))
    death_coords = np.column_stack(np.unravel_index(tree.pair_death_vertex, tree.shape))
    birth_pos = grid_positions(birth_coords, axes)
    death_pos = grid_positions(death_coords, axes)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    births, deaths, persistence = tree.births, tree.deaths, tree.persistence
    for k in range(births.size):
        row: list[Any] = [
            repr(float(births[k])),
            repr(float(deaths[k])),
            repr(float(persistence[k])),
        ]
        row += [int(tree.pair_birth_vertex[k]), int(tree.pair_death_vertex[k])]
        row += [int(c) for c in birth_coords[k]] + [int(c) for c in death_coords[k]]
        if axes is not None:
            row += [repr(float(x)) for x in birth_pos[k]] + [repr(float(x)) for x in death_pos[k]]
        writer.writerow(row)
    return buffer.getvalue()


def write_topology_outputs(
    values: Any,
    files: TopologyFiles | str | os.PathLike,
    connectivity: str = "freudenthal",
    threshold: float = 0.0,
    relative_threshold: bool = False,
    axes: list[np.ndarray] | None = None,
    provenance: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Compute the merge tree, persistence, metrics and profile of one landscape and write
    topology.json, persistence.csv, merge_tree.json and profile.json to `files` (or one folder;
    each atomically: temp file in the same directory, then os.replace). `axes` (one coordinate array
    per dimension) adds axis positions next to grid coordinates. Returns topology.json's content.
    """
    grid = validate_values(values)
    axes = validate_axes(axes, grid.shape)
    files = TopologyFiles.of(files)
    start = time.perf_counter()
    tree = simplify(merge_tree(grid, connectivity), threshold, relative_threshold)
    metrics = tree_metrics(tree)
    elapsed = time.perf_counter() - start
    profile = landscape_profile(tree)

    minimum_vertex = tree.global_minimum_vertex
    minimum_coords = np.array(np.unravel_index(minimum_vertex, tree.shape)).reshape(1, -1)
    minimum_position = grid_positions(minimum_coords, axes)
    all_nonfinite = metrics["n_nonfinite"] == metrics["n_vertices"]
    summary = {
        "status": "diverged" if all_nonfinite else "ok",
        "settings": {
            "backend": "toposweep",
            "connectivity": connectivity,
            "threshold": float(threshold),
            "relative_threshold": bool(relative_threshold),
            "shape": list(tree.shape),
            "nonfinite_policy": NONFINITE_POLICY,
            "code_version": toposweep.__version__,
        },
        "metrics": metrics,
        "global_minimum": {
            "vertex": int(minimum_vertex),
            "coordinates": [int(c) for c in minimum_coords[0]],
            "position": (
                None if minimum_position is None else [float(x) for x in minimum_position[0]]
            ),
            "value": float(tree.values[minimum_vertex]),
        },
        "compute_seconds": elapsed,
        "provenance": provenance or {},
    }
    tree_dict = tree.to_dict(axes)
    write_text(files.persistence, persistence_csv(tree, axes))
    write_json(files.merge_tree, tree_dict)
    write_text(files.profile, profile.to_json() + "\n")
    write_json(files.topology, summary)  # last: its presence marks completion
    return summary


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
                                  axes=landscape.axes, provenance=provenance)


def write_skipped_topology(
    files: TopologyFiles | str | os.PathLike, reason: str, provenance: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The four files for a landscape that has no topology to compute: status and reason only."""
    files = TopologyFiles.of(files)
    summary = {"status": "skipped", "message": reason, "provenance": provenance or {}}
    write_text(files.persistence, "birth,death,persistence,birth_vertex,death_vertex\n")
    write_json(files.merge_tree, {"status": "skipped", "nodes": [], "arcs": []})
    write_json(files.profile, {"status": "skipped", "basins": []})
    write_json(files.topology, summary)
    return summary
