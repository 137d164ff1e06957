"""The built-in problems' numbers do not move unnoticed: test metrics, Hessian eigenvalues and
trace, landscapes and topology metrics equal the values in tests/data/builtin_reference.json,
recorded with the code before the redesign of the problem seam (commit f289121); the PINN's
re-recorded when its residual moved from forward-mode jvp to reverse-mode vjp (issue 16: the
same derivative, other float32 rounding, which 30 L-BFGS steps grow to ~1e-4 relative;
test_problems checks the two residuals agree on fixed weights).

The comparison is to RTOL, not bit for bit: MKL picks its kernels by processor (AVX2, AVX-512),
so the same code trains to other last bits on another machine (measured: ResNet and UNet within
2.5e-6, and every checkpoint hash different). A changed model, loss or default moves these
numbers by far more than RTOL; topology counts must agree exactly."""

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

RTOL = 1e-3  # across processors (see above); a real change of a built-in problem moves far more
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
    for key, value in reference["test_metrics"].items():
        assert metrics[key] == pytest.approx(value, rel=RTOL), key
    checkpoint = tmp_path / TrainFiles.checkpoint
    hessian = hessian_of_checkpoint(checkpoint, tmp_path, run=run, **reference["hessian_settings"])
    np.testing.assert_allclose(hessian["eigenvalues"], reference["eigenvalues"], rtol=RTOL)
    assert hessian["trace"] == pytest.approx(reference["trace"], rel=RTOL)
    landscape_dir = tmp_path / "reference"
    sample_landscape(checkpoint, landscape_dir / LANDSCAPE, {"name": "reference", **landscape},
                     eigenvectors_path=tmp_path / "eigenvectors.pt", run=run)
    loss = read_landscape(landscape_dir / LANDSCAPE).loss
    assert list(loss.shape) == reference["landscape_shape"]
    np.testing.assert_allclose(loss.ravel(), np.asarray(reference["landscape"]).ravel(), rtol=RTOL)
    topology = topology_of_landscape_file(landscape_dir / LANDSCAPE, landscape_dir,
                                          **reference["topology_settings"])
    recorded_metrics = reference["topology_metrics"]
    computed = {key: topology["metrics"][key] for key in recorded_metrics}
    for key, value in recorded_metrics.items():
        if isinstance(value, int):
            assert computed[key] == value, key
        else:
            assert computed[key] == pytest.approx(value, rel=RTOL, abs=1e-6), key
    # metrics added after the reference was recorded (SMAD), not numbers that changed
    assert set(topology["metrics"]) - set(recorded_metrics) == {"smad", "smad_normalized",
                                                                "smad_weighted"}
