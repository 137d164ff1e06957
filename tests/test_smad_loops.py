"""SMAD (Landscaper's saddle–minimum average distance) on merge trees, and the opt-in loops
(1-dimensional pairs from gudhi's cubical complex): hand-computed values, outputs, config."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import matplotlib
import numpy as np
import pandas as pd
import pytest

from toposweep.config import ConfigError, validate_config
from toposweep.io import write_landscape
from toposweep.sizes import LOOP_METRICS, TOPOLOGY_METRICS
from toposweep.topology import merge_tree, simplify, tree_metrics, write_topology_outputs
from toposweep.topology.loops import loop_metrics, loop_pairs, validate_homology_dimensions
from toposweep.topology.metrics import smad
from toposweep.topology.outputs import topology_of_landscape_file

matplotlib.use("Agg")

# minima 1 (idx 1), 0 (idx 3), 2 (idx 5), 2.5 (idx 7); saddles 4, 5, 6; root 7 (idx 8)
HAND_1D = np.array([3.0, 1.0, 4.0, 0.0, 5.0, 2.0, 6.0, 2.5, 7.0])
TWO_WELLS = np.array([2.0, 0.0, 3.0, 1.0, 4.0])  # minima 0 and 1, saddle 3


# --- SMAD --------------------------------------------------------------------------------------
def test_smad_of_two_wells_counts_the_global_minimums_arc():
    tree = merge_tree(TWO_WELLS)
    # arcs min 0 -> saddle 3 (gap 3) and min 1 -> saddle 3 (gap 2); one elder-rule pair (1, 3)
    assert smad(tree) == 2.5
    assert tree_metrics(tree)["avg_persistence"] == 2.0
    assert smad(tree, normalize=True) == 2.5 / 4.0  # finite range 4 - 0
    # basins (leaf arc regions): {0, 2} around the global minimum, {1} around the other; N = 5
    assert tree.arc_size.tolist() == [2, 1, 2]
    assert smad(tree, weighted=True) == pytest.approx((3 * 2 / 5 + 2 * 1 / 5) / 2)
    assert smad(tree, normalize=True, weighted=True) == pytest.approx((3 * 2 + 2 * 1) / 5 / 4 / 2)


def test_smad_of_the_hand_made_1d_field():
    tree = merge_tree(HAND_1D)
    # leaf arcs: 1 -> 4, 0 -> 4, 2 -> 5, 2.5 -> 6; the arcs 4 -> 5, 5 -> 6, 6 -> root do not count
    assert smad(tree) == (3 + 4 + 3 + 3.5) / 4
    assert smad(tree, normalize=True) == pytest.approx(13.5 / 4 / 7)
    assert tree.arc_size.tolist() == [1, 2, 1, 1, 1, 1, 2]  # minimum 1's arc holds the 3 at idx 0
    assert smad(tree, weighted=True) == pytest.approx((4 * 1 + 3 * 2 + 3 * 1 + 3.5 * 1) / 9 / 4)
    metrics = tree_metrics(tree)
    assert (metrics["smad"], metrics["smad_normalized"], metrics["smad_weighted"]) == (
        smad(tree), smad(tree, normalize=True), smad(tree, weighted=True))


def test_smad_is_computed_on_the_simplified_tree():
    # threshold 3.2 removes the pairs (1, 4) and (2, 5): saddles 4 and 5 become regular, and the
    # global minimum's arc runs to saddle 6, holding vertices 0..5
    tree = simplify(HAND_1D, 3.2)
    assert tree.n_minima == 2 and tree.arc_size.tolist() == [6, 1, 2]
    assert smad(tree) == ((6 - 0) + (6 - 2.5)) / 2
    assert smad(tree, weighted=True) == pytest.approx((6 * 6 + 3.5 * 1) / 9 / 2)


@pytest.mark.parametrize("values", [np.arange(6.0), np.add.outer(np.arange(4.0), np.arange(5.0)),
                                    np.full((3, 3), 2.0)])
def test_smad_is_zero_without_a_branch_node(values):
    tree = merge_tree(values)
    assert tree.n_saddles == 0
    assert smad(tree) == smad(tree, normalize=True) == smad(tree, weighted=True) == 0.0


def test_smad_counts_a_global_maximum_that_merges_as_the_branch_node():
    assert smad(merge_tree(np.array([0.0, 5.0, 1.0]))) == (5 + 4) / 2


def test_smad_leaves_out_arcs_that_end_at_a_nonfinite_saddle():
    # minima 0, 1 meet at 3; the basin of 2 only meets them through NaN (death +inf)
    tree = merge_tree(np.array([0.0, 3.0, 1.0, np.nan, 2.0]))
    assert smad(tree) == ((3 - 0) + (3 - 1)) / 2
    assert smad(tree, normalize=True) == pytest.approx(2.5 / 3.0)  # finite range


def test_topology_metrics_catalogue_is_tree_metrics_then_loop_metrics():
    assert (*tree_metrics(merge_tree(HAND_1D)), *LOOP_METRICS) == TOPOLOGY_METRICS
    assert tuple(loop_metrics(loop_pairs(np.zeros((3, 3))))) == LOOP_METRICS


# --- loops -------------------------------------------------------------------------------------
AXIS = np.linspace(-1.0, 1.0, 41)  # step 0.05, centre index 20
X, Y = np.meshgrid(AXIS, AXIS, indexing="ij")


def ring(cx: float, cy: float, radius: float) -> np.ndarray:
    return (np.hypot(X - cx, Y - cy) - radius) ** 2


def tilted_ring() -> np.ndarray:
    """Annular valley r = 0.6, tilted so its highest point is on the negative x axis, with a
    bump in the centre (the field's maximum inside the ring)."""
    return ring(0.0, 0.0, 0.6) - 0.2 * X + 0.3 * np.exp(-(X**2 + Y**2) / 0.02)


def test_a_ring_valley_has_one_loop_born_where_the_ring_closes_and_filled_at_the_bump():
    values = tilted_ring()
    loops = loop_pairs(values)
    assert loops.births.size == 1
    # Every loop around the centre crosses the half row i < 20, j = 20 (axis edges change one
    # index by one), so the ring closes at that half row's lowest vertex, x = -0.5 (value 0.11)
    birth_index = int(np.argmin(values[:20, 20]))
    assert loops.births[0] == values[birth_index, 20] == values[:20, 20].min()
    assert loops.birth_vertex[0] == np.ravel_multi_index((birth_index, 20), values.shape)
    # the hole is filled when its highest vertex enters: the bump at the centre
    inside = np.hypot(X, Y) < 0.5
    assert loops.deaths[0] == values[20, 20] == values[inside].max()
    assert loops.death_vertex[0] == np.ravel_multi_index((20, 20), values.shape)
    metrics = loop_metrics(loops)
    assert metrics == {"n_loops": 1, "n_loops_infinite_death": 0,
                       "total_loop_persistence": values[20, 20] - values[birth_index, 20],
                       "max_loop_persistence": values[20, 20] - values[birth_index, 20]}
    assert loop_pairs(values, threshold=metrics["max_loop_persistence"]).births.size == 1
    assert loop_pairs(values, threshold=0.6).births.size == 0


def test_two_ring_valleys_have_two_loops_and_a_torus_valley_in_3d_has_one():
    two = np.minimum(ring(-0.45, 0.0, 0.3), ring(0.45, 0.0, 0.3))
    loops = loop_pairs(two)
    assert loops.births.size == 2
    assert sorted(loops.deaths) == sorted([two[11, 20], two[29, 20]])  # the rings' centres
    a, b, c = np.meshgrid(*[np.linspace(-1, 1, 21)] * 3, indexing="ij")
    torus = (np.hypot(a, b) - 0.5) ** 2 + c**2 - 0.05 * a
    loops = loop_pairs(torus)
    assert loops.births.size == 1 and loops.deaths[0] == torus[10, 10, 10] == 0.25


def test_loops_keep_the_nonfinite_policy():
    values = tilted_ring()
    values[20, 20] = np.inf  # the hole is only filled through the non-finite vertex
    loops = loop_pairs(values)
    assert loops.deaths.tolist() == [np.inf]
    metrics = loop_metrics(loops)
    assert metrics["n_loops_infinite_death"] == 1 and metrics["n_loops"] == 0
    values[20, 20] = np.nan
    assert loop_pairs(values).deaths.tolist() == [np.inf]  # NaN is ordered like +inf


def test_loops_need_2_to_4_dimensions_and_homology_dimensions_contain_0():
    assert loop_pairs(np.array([0.0, 2.0, 1.0, 3.0])).births.size == 0
    with pytest.raises(ValueError, match="at most 4 dimensions"):
        loop_pairs(np.zeros((2,) * 5))
    assert validate_homology_dimensions([1, 0]) == (0, 1)
    for bad in ([1], [0, 2], []):
        with pytest.raises(ValueError, match="must contain 0"):
            validate_homology_dimensions(bad)


def test_stage_with_loops_writes_h1_rows_and_metrics(tmp_path):
    values = tilted_ring()
    write_landscape(tmp_path / "landscape.h5", values, [AXIS, AXIS], {"status": "ok"})
    summary = topology_of_landscape_file(tmp_path / "landscape.h5", tmp_path / "loops",
                                         homology_dimensions=[0, 1], threshold=0.001)
    metrics = summary["metrics"]
    assert summary["settings"]["homology_dimensions"] == [0, 1]
    assert metrics["n_loops"] == 1
    assert metrics["max_loop_persistence"] == values[20, 20] - values[10, 20]  # 0.66 - 0.11
    assert metrics["n_minima"] == 1 + metrics["n_pairs"]
    rows = list(csv.DictReader((tmp_path / "loops" / "persistence.csv").open()))
    assert [row["dimension"] for row in rows] == ["0"] * metrics["n_pairs"] + ["1"]
    assert (rows[-1]["birth_i0"], rows[-1]["birth_i1"], rows[-1]["death_i0"]) == ("10", "20", "20")
    assert float(rows[-1]["birth_x0"]) == pytest.approx(-0.5)
    plain = topology_of_landscape_file(tmp_path / "landscape.h5", tmp_path / "plain",
                                       threshold=0.001)
    assert not set(LOOP_METRICS) & set(plain["metrics"])  # not asked: not in the summary
    assert plain["settings"]["homology_dimensions"] == [0]
    assert {k: v for k, v in metrics.items() if k not in LOOP_METRICS} == plain["metrics"]
    plain_rows = pd.read_csv(tmp_path / "plain" / "persistence.csv")
    assert plain_rows.columns[-1] == "dimension" and len(plain_rows) == plain["metrics"]["n_pairs"]


def test_the_library_imports_gudhi_only_for_loops(tmp_path):
    code = ("import sys, numpy as np; from toposweep.topology import write_topology_outputs; "
            f"write_topology_outputs(np.arange(6.0).reshape(2, 3), {str(tmp_path)!r}); "
            "print('gudhi' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.split() == ["False"]


def test_persistence_diagram_draws_loops_with_their_own_marker(tmp_path):
    values = tilted_ring()
    values[20, 20] = np.inf  # the loop dies at +inf: drawn on the top line
    summary = write_topology_outputs(values, tmp_path, homology_dimensions=[0, 1])
    pairs = pd.read_csv(tmp_path / "persistence.csv")
    import matplotlib.pyplot as plt

    from toposweep.figures.common import LossScale
    from toposweep.figures.drawing import draw_persistence_diagram

    figure, ax = plt.subplots()
    draw_persistence_diagram(ax, pairs, summary["global_minimum"]["value"], LossScale(False),
                             summary["metrics"]["value_max"])
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert "1 loop (H1)" in labels and "global min. (dies at ∞)" in labels
    assert ax.get_title().startswith("persistence diagram (0- and 1-dimensional)")
    assert np.isfinite(ax.get_ylim()).all()
    figure.savefig(tmp_path / "diagram.png")
    plt.close(figure)


# --- configuration -----------------------------------------------------------------------------
def experiment(**changes) -> dict:
    return {"experiments": [{"name": "e", "problem": "pinn_convection", "grid": {"beta": [1, 10]},
                             **changes}]}


def test_config_refuses_loops_on_landscapes_of_more_than_4_dimensions():
    landscapes = [{"name": "flat", "dimensions": 2},
                  {"name": "wide", "dimensions": 5, "resolution": 5, "allow_high_dimensions": True}]
    config = validate_config(experiment(landscapes=landscapes))
    assert config["experiments"][0]["topology"]["homology_dimensions"] == [0]
    with pytest.raises(ConfigError) as error:
        validate_config(experiment(landscapes=landscapes, topology={"homology_dimensions": [0, 1]}))
    message = str(error.value)
    assert "experiments[0].topology.homology_dimensions: loops (dimension 1)" in message
    assert "landscape 'wide' has 5" in message and "'flat'" not in message
    with pytest.raises(ConfigError, match=r"homology_dimensions: \[1\] .*it must contain 0"):
        validate_config(experiment(topology={"homology_dimensions": [1]}))


def test_config_asks_for_loops_before_loop_metrics_are_correlated():
    aggregate = {"topology_metrics": ["smad", "n_loops"]}
    with pytest.raises(ConfigError, match=r"\['n_loops'\] are loop metrics; set experiments\[0\]"
                                          r"\.topology\.homology_dimensions: \[0, 1\]"):
        validate_config(experiment(aggregate=aggregate))
    validate_config(experiment(aggregate=aggregate, topology={"homology_dimensions": [0, 1]}))
    json.dumps(validate_config(experiment(aggregate={"topology_metrics": ["smad_weighted"]})))
