"""The redesign (problem declarations, run layout, stage protocol, named landscapes) changed no
number of the built-in problems: checkpoint hashes, Hessian eigenvalues and trace, landscapes
and topology metrics equal the values recorded with the code before it (commit f289121,
tests/data/builtin_reference.json); the landscapes to float32 rounding since the evaluator sums
element by element (issue 16), bit for bit before."""

from __future__ import annotations

import json

import numpy as np
import pytest

from toposweep.config import expand_runs, validate_config
from toposweep.hessian import hessian_of_checkpoint
from toposweep.io import read_landscape
from toposweep.landscape import sample_landscape
from toposweep.layout import LANDSCAPE, TrainFiles
from toposweep.topology import topology_of_landscape_file
from toposweep.training import train_run

from conftest import REPO

REFERENCE = json.loads((REPO / "tests" / "data" / "builtin_reference.json").read_text())


@pytest.mark.parametrize("case", sorted(REFERENCE))
def test_outputs_equal_the_values_recorded_before_the_redesign(case, tmp_path):
    reference = REFERENCE[case]
    recorded = reference["run"]
    landscape = {key: value for key, value in reference["landscape_settings"].items()}
    config = validate_config({"experiments": [{
        "name": recorded["experiment"], "problem": recorded["problem"],
        "settings": {k: v for k, v in recorded["settings"].items()},
        "hessian": reference["hessian_settings"], "topology": reference["topology_settings"],
        "landscapes": [{"name": "reference", **landscape}]}]})
    run = expand_runs(config)[0].to_dict()
    assert run["settings"] == recorded["settings"]  # the problem's declared defaults are the old ones
    metrics = train_run(run, tmp_path)
    assert metrics["checkpoint_hash"] == reference["checkpoint_hash"]
    for key, value in reference["test_metrics"].items():
        assert metrics[key] == value, key
    checkpoint = tmp_path / TrainFiles.checkpoint
    hessian = hessian_of_checkpoint(checkpoint, tmp_path, run=run, **reference["hessian_settings"])
    assert hessian["eigenvalues"] == reference["eigenvalues"] and hessian["trace"] == reference["trace"]
    landscape_dir = tmp_path / "reference"
    sample_landscape(checkpoint, landscape_dir / LANDSCAPE, {"name": "reference", **landscape},
                     eigenvectors_path=tmp_path / "eigenvectors.pt", run=run)
    loss = read_landscape(landscape_dir / LANDSCAPE).loss
    assert list(loss.shape) == reference["landscape_shape"]
    # The landscape evaluator now mixes theta + sum_i c_i d_i element by element (a point has the
    # same bits in any batch) where the recorded code used one matmul: float32 rounding differs
    # in the last bits, so the values compare to 1e-6 and the counts exactly, not the file's hash.
    np.testing.assert_allclose(loss.ravel(), np.asarray(reference["landscape"]).ravel(), rtol=1e-6)
    topology = topology_of_landscape_file(landscape_dir / LANDSCAPE, landscape_dir,
                                          **reference["topology_settings"])
    recorded_metrics = reference["topology_metrics"]
    computed = {key: topology["metrics"][key] for key in recorded_metrics}
    for key, value in recorded_metrics.items():
        if isinstance(value, int):
            assert computed[key] == value, key
        else:
            assert computed[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    # metrics added after the reference was recorded (SMAD), not numbers that changed
    assert set(topology["metrics"]) - set(recorded_metrics) == {"smad", "smad_normalized",
                                                                "smad_weighted"}
