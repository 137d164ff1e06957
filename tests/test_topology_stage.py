"""The topology stage on landscape files: HDF5 layout, outputs, skipped landscapes."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pytest

from toposweep.io import read_json, read_landscape, write_landscape
from toposweep.topology import topology_of_landscape_file


def two_wells(n: int = 41) -> tuple[np.ndarray, list[np.ndarray]]:
    """Wells of depth 1 at (-0.5, -0.5) and depth 1.5 at (0.5, 0.5) on [-1, 1]^2 (both on the grid)."""
    axis = np.linspace(-1.0, 1.0, n)
    x, y = np.meshgrid(axis, axis, indexing="ij")
    loss = -1.0 * np.exp(-((x + 0.5) ** 2 + (y + 0.5) ** 2) / 0.05)
    loss -= 1.5 * np.exp(-((x - 0.5) ** 2 + (y - 0.5) ** 2) / 0.05)
    return loss, [axis, axis]


def test_landscape_file_round_trip(tmp_path):
    loss, axes = two_wells()
    loss[0, 0] = np.nan
    path = tmp_path / "landscape.h5"
    write_landscape(path, loss, axes, attrs={"status": "ok", "settings": {"resolution": 41}},
                    directions={"d0": np.ones(5)})
    landscape = read_landscape(path)
    np.testing.assert_array_equal(landscape.loss, loss)  # NaN kept where it was
    np.testing.assert_array_equal(landscape.axes[1], axes[1])
    assert landscape.attrs["n_nonfinite"] == 1 and landscape.attrs["status"] == "ok"
    assert json.loads(landscape.attrs["settings"]) == {"resolution": 41}
    with h5py.File(path) as handle:
        assert sorted(handle) == ["axis_0", "axis_1", "directions", "loss"]
        assert handle["loss"].shape == (41, 41)


def test_landscape_shape_must_match_axes(tmp_path):
    with pytest.raises(ValueError, match=r"loss shape \(3, 4\) does not match axes of lengths \[3, 3\]"):
        write_landscape(tmp_path / "x.h5", np.zeros((3, 4)), [np.arange(3), np.arange(3)])
    assert not (tmp_path / "x.h5").exists()


def test_topology_of_a_landscape_file(tmp_path):
    loss, axes = two_wells()
    write_landscape(tmp_path / "landscape.h5", loss, axes, attrs={"status": "ok"})
    summary = topology_of_landscape_file(tmp_path / "landscape.h5", tmp_path, connectivity="axis")
    on_disk = read_json(tmp_path / "topology.json")
    assert on_disk["status"] == "ok" and on_disk["settings"]["connectivity"] == "axis"
    assert on_disk["metrics"]["n_minima"] == 2 and on_disk["metrics"]["n_saddles"] == 1
    # the shallower well (depth 1) dies at the saddle between the wells, just below 0
    assert 0.99 < on_disk["metrics"]["max_persistence"] < 1.0
    assert on_disk["global_minimum"]["position"] == pytest.approx([0.5, 0.5], abs=1e-12)
    assert len(on_disk["provenance"]["landscape_sha256"]) == 64
    assert summary["metrics"] == on_disk["metrics"]


def test_a_landscape_of_a_diverged_run_gives_skipped_topology(tmp_path):
    loss, axes = two_wells(5)
    write_landscape(tmp_path / "landscape.h5", loss, axes, attrs={"status": "skipped"})
    summary = topology_of_landscape_file(tmp_path / "landscape.h5", tmp_path)
    assert summary["status"] == "skipped" and "'skipped'" in summary["message"]
    for name in ("topology.json", "merge_tree.json", "profile.json"):
        assert read_json(tmp_path / name)["status"] == "skipped"
    assert (tmp_path / "persistence.csv").read_text().count("\n") == 1


def test_a_foreign_hdf5_file_is_refused(tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as handle:
        handle.create_dataset("loss", data=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="not a toposweep landscape file"):
        read_landscape(tmp_path / "other.h5")


def test_the_topology_stage_needs_no_torch():
    """Its conda env (envs/analysis.yaml) has no torch: importing the stage must not need it."""
    import subprocess
    import sys

    code = "import sys, toposweep.topology, toposweep.io; print(sorted({'torch', 'pandas'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_topology_of_scattered_samples_on_their_graph(tmp_path):
    """The same two wells, sampled at 4,096 Sobol points (plus the origin): two minima on the
    Gabriel graph, positions from the samples, the shallow well's persistence as on the grid."""
    from toposweep.sampling import scattered_samples

    samples = scattered_samples("sobol", 4097, 2, 1.0, seed=0)
    x, y = samples[:, 0], samples[:, 1]
    loss = (-1.0 * np.exp(-((x + 0.5) ** 2 + (y + 0.5) ** 2) / 0.05)
            - 1.5 * np.exp(-((x - 0.5) ** 2 + (y - 0.5) ** 2) / 0.05))
    write_landscape(tmp_path / "landscape.h5", loss, None, attrs={"status": "ok"}, samples=samples)
    landscape = read_landscape(tmp_path / "landscape.h5")
    assert landscape.scattered and landscape.axes == [] and landscape.loss.shape == (4097,)
    summary = topology_of_landscape_file(tmp_path / "landscape.h5", tmp_path, neighbours=12,
                                         threshold=0.01, relative_threshold=True)
    assert summary["settings"]["graph"] == "gabriel" and summary["settings"]["neighbours"] == 12
    assert 4 < summary["settings"]["mean_degree"] < 12
    metrics = summary["metrics"]
    assert metrics["n_vertices"] == 4097 and metrics["n_minima"] == 2 and metrics["n_saddles"] == 1
    # on the grid 0.99 < persistence < 1 (depth 1 up to the pass near 0); samples miss both the
    # well's bottom and the pass by up to half their spacing (about 0.016 here)
    assert metrics["max_persistence"] == pytest.approx(0.995, abs=0.01)
    minimum = summary["global_minimum"]
    assert minimum["coordinates"] is None
    assert minimum["position"] == pytest.approx(samples[minimum["vertex"]].tolist())
    assert np.hypot(*(np.array(minimum["position"]) - 0.5)) < 0.05
    pairs = pd.read_csv(tmp_path / "persistence.csv")
    assert list(pairs.columns) == ["birth", "death", "persistence", "birth_vertex", "death_vertex",
                                   "birth_x0", "birth_x1", "death_x0", "death_x1", "dimension"]
    np.testing.assert_array_equal(pairs[["birth_x0", "birth_x1"]].to_numpy(),
                                  samples[pairs["birth_vertex"]])
    nodes = read_json(tmp_path / "merge_tree.json")["nodes"]
    assert all(node["position"] == samples[node["vertex"]].tolist() for node in nodes)
    assert read_json(tmp_path / "profile.json")["n_vertices"] == 4097
