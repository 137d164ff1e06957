"""The landscape stage: directions, batched evaluation against exact answers, MPI, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest
import torch

from toposweep.directions import cosine, flatten, normalize_direction, random_directions
from toposweep.io import read_landscape
from toposweep.landscape import (
    PointEvaluator, build_directions, grid_axes, sample_grid, sample_landscape, write_vti,
)
from toposweep.layout import TrainFiles
from toposweep.schema import stage_settings
from toposweep.stage import WrongRun
from toposweep.training import load_trained, train_run

CHECKPOINT = TrainFiles.checkpoint

from conftest import REPO, TINY_RESNET, make_runs

VENV_BIN = Path(sys.executable).parent
SETTINGS = {"dimensions": 2, "allow_high_dimensions": False, "directions": "random",
            "normalization": "auto", "ignore_bias_and_norm": True, "resolution": 21,
            "extent": 1.0, "seed": 0, "method": "vmap", "chunk_size": 16,
            "memory_budget_mb": 4096, "device": "cpu"}


@pytest.fixture(scope="module")
def pinn_checkpoint(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pinn")
    train_run(make_runs("pinn_convection", {"beta": 5.0, "max_iter": 50})[0], out)
    return out / CHECKPOINT


def test_landscape_of_a_quadratic_is_exact():
    generator = torch.Generator().manual_seed(1)
    a = torch.randn(9, 9, generator=generator, dtype=torch.float64)
    a = a @ a.T
    params = {"weight": torch.randn(2, 3, generator=generator, dtype=torch.float64),
              "bias": torch.randn(3, generator=generator, dtype=torch.float64)}

    def loss(p):
        w = torch.cat([p["weight"].reshape(-1), p["bias"]])
        return w @ (a @ w)

    directions = random_directions(params, 2, seed=3, normalization="none")
    axes = grid_axes(2, 7, 2.0)
    grid = sample_grid(loss, params, directions, axes, method="vmap", chunk_size=4)
    theta = flatten(params, list(params))
    d0, d1 = (flatten(d, list(params)) for d in directions)
    for i, x in enumerate(axes[0]):
        for j, y in enumerate(axes[1]):
            w = theta + x * d0 + y * d1
            assert grid[i, j] == pytest.approx(float(w @ (a @ w)), rel=1e-12)
    assert grid[3, 3] == pytest.approx(float(loss(params)), rel=1e-14)


def test_random_directions_are_orthogonal_filter_normalised_and_seeded():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4),
                                torch.nn.Flatten(), torch.nn.Linear(4, 2))
    params = {n: p.detach() for n, p in model.named_parameters()}
    first = random_directions(params, 3, seed=7)
    again = random_directions(params, 3, seed=7)
    assert all(torch.equal(first[0][n], again[0][n]) for n in params)
    for i in range(3):
        for j in range(i):
            assert abs(cosine(first[i], first[j])) < 1e-6
    for name in ("0.bias", "1.weight", "1.bias", "3.bias"):  # biases and BatchNorm zeroed
        assert torch.count_nonzero(first[0][name]) == 0
    raw = {n: torch.randn(p.shape, generator=torch.Generator().manual_seed(0)) for n, p in params.items()}
    filtered = normalize_direction(raw, params, "filter")
    for name in ("0.weight", "3.weight"):
        expected = params[name].reshape(params[name].shape[0], -1).norm(dim=1)
        got = filtered[name].reshape(params[name].shape[0], -1).norm(dim=1)
        torch.testing.assert_close(got, expected)
    layered = normalize_direction(raw, params, "layer")
    torch.testing.assert_close(layered["0.weight"].norm(), params["0.weight"].norm())
    unit = normalize_direction(raw, params, "none")
    assert float(flatten(unit, list(params)).norm()) == pytest.approx(1.0)


@pytest.mark.parametrize("which", ["pinn", "resnet"])
def test_batched_evaluation_equals_plain_evaluation(which, pinn_checkpoint, tmp_path):
    if which == "pinn":
        checkpoint = pinn_checkpoint
    else:
        train_run(make_runs("resnet20", TINY_RESNET)[0], tmp_path)
        checkpoint = tmp_path / CHECKPOINT
    problem, model, _ = load_trained(checkpoint)
    loss_fn, params = problem.loss_function(model)
    directions = random_directions(params, 2, seed=0)
    axes = grid_axes(2, 5, 0.5)
    batched = sample_grid(loss_fn, params, directions, axes, method="vmap", chunk_size=8)
    for i, x in enumerate(axes[0]):
        for j, y in enumerate(axes[1]):
            perturbed = {n: params[n] + x * directions[0][n] + y * directions[1][n] for n in params}
            with torch.no_grad():
                plain = float(loss_fn(perturbed))
            assert batched[i, j] == pytest.approx(plain, rel=1e-5)
    assert batched[2, 2] == pytest.approx(float(loss_fn(params)), rel=1e-6)


def test_nonfinite_losses_are_kept_and_counted(tmp_path):
    params = {"w": torch.tensor([0.0, 0.0], dtype=torch.float64)}
    loss = lambda p: torch.log(1.0 - p["w"].sum())  # NaN where sum(w) > 1, -inf at 1
    directions = [{"w": torch.tensor([1.0, 0.0], dtype=torch.float64)}]
    grid = sample_grid(loss, params, directions, [np.linspace(-2, 2, 5)], method="vmap", chunk_size=2)
    assert np.isnan(grid[4]) and np.isneginf(grid[3]) and grid[2] == 0.0
    assert grid[0] == pytest.approx(np.log(3.0))


def test_bad_landscape_inputs_fail_before_evaluation(pinn_checkpoint, tmp_path):
    with pytest.raises(ValueError, match=r"landscape.resolution: 2 is less than the minimum of 3"):
        sample_landscape(pinn_checkpoint, tmp_path / "l.h5", {**SETTINGS, "resolution": 2})
    problem, model, checkpoint = load_trained(pinn_checkpoint)
    loss_fn, params = problem.loss_function(model)
    wrong = {n: torch.zeros(3) for n in params}
    with pytest.raises(ValueError, match=r"direction 0: 0.weight has shape \(3,\), the model's is \(50, 2\)"):
        PointEvaluator(loss_fn, params, [wrong])
    eigenvectors = [{n: torch.randn_like(p) for n, p in params.items()}]
    with pytest.raises(ValueError, match="dimensions is 2 but the Hessian stage computed only 1"):
        build_directions({**SETTINGS, "directions": "hessian"}, params, eigenvectors)
    other_run = make_runs("resnet20", TINY_RESNET)[0]
    with pytest.raises(WrongRun, match=r"belongs to another run: it was trained for t/default/seed~0 \(problem 'pinn_convection'\)"):
        sample_landscape(pinn_checkpoint, tmp_path / "l.h5", SETTINGS, run=other_run)
    assert not (tmp_path / "l.h5").exists()
    own = sample_landscape(pinn_checkpoint, tmp_path / "own.h5", {**SETTINGS, "resolution": 3},
                           run=checkpoint["run_config"])
    assert own["status"] == "ok"


def test_sample_landscape_writes_the_documented_file(pinn_checkpoint, tmp_path):
    out = tmp_path / "landscape.h5"
    result = sample_landscape(pinn_checkpoint, out, SETTINGS)
    landscape = read_landscape(out)
    assert result["status"] == "ok" and landscape.attrs["status"] == "ok"
    assert landscape.loss.shape == (21, 21) and landscape.attrs["n_nonfinite"] == 0
    np.testing.assert_array_equal(landscape.axes[0], np.linspace(-1, 1, 21))
    problem, model, checkpoint = load_trained(pinn_checkpoint)
    loss_fn, params = problem.loss_function(model)
    assert landscape.loss[10, 10] == pytest.approx(float(loss_fn(params)), rel=1e-6)
    assert landscape.loss.min() == landscape.loss[10, 10]  # a trained PINN sits in a minimum
    provenance = json.loads(landscape.attrs["provenance"])
    assert provenance["checkpoint_hash"] == checkpoint["hash"]
    assert json.loads(landscape.attrs["settings"]) == stage_settings("landscape", SETTINGS)
    assert json.loads(landscape.attrs["settings"])["max_points"] == 100_000_000  # schema default
    assert not out.with_name("landscape.h5.parts").exists()


def test_vti_export(tmp_path):
    loss = np.arange(12, dtype=float).reshape(3, 4)
    axes = [np.linspace(-1, 1, 3), np.linspace(0, 3, 4)]
    write_vti(tmp_path / "l.vti", loss, axes)
    root = ElementTree.parse(tmp_path / "l.vti").getroot()
    image = root.find("ImageData")
    assert image.get("WholeExtent") == "0 2 0 3 0 0"
    assert image.get("Origin") == "-1.0 0.0 0.0" and image.get("Spacing") == "1.0 1.0 1.0"
    values = [float(v) for v in image.find("Piece/PointData/DataArray").text.split()]
    # VTK order: x (axis 0) fastest
    assert values == [loss[i, j] for j in range(4) for i in range(3)]
    with pytest.raises(ValueError, match="2-D or 3-D"):
        write_vti(tmp_path / "x.vti", np.zeros(5), [np.arange(5)])


def mpi_command(ranks: int, checkpoint: Path, output: Path, settings: dict) -> list[str]:
    return [str(VENV_BIN / "mpiexec"), "-n", str(ranks), sys.executable, "-m", "mpi4py",
            str(REPO / "scripts" / "sample_landscape.py"), "--checkpoint", str(checkpoint),
            "--output", str(output), "--settings", json.dumps(settings), "--threads", "1"]


def test_two_mpi_ranks_give_the_same_bits_as_one(pinn_checkpoint, tmp_path):
    for ranks in (1, 2):
        result = subprocess.run(mpi_command(ranks, pinn_checkpoint, tmp_path / f"n{ranks}.h5", SETTINGS),
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
    one, two = read_landscape(tmp_path / "n1.h5"), read_landscape(tmp_path / "n2.h5")
    assert np.array_equal(one.loss, two.loss)
    assert (tmp_path / "n1.h5").read_bytes() == (tmp_path / "n2.h5").read_bytes()


def test_a_failing_rank_ends_the_job_without_hanging(tmp_path):
    result = subprocess.run(mpi_command(2, tmp_path / "missing.pt", tmp_path / "x.h5", SETTINGS),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "missing.pt" in result.stderr


def wait_until_gone(argument: str, timeout: float = 60) -> None:
    """Wait until no process has ``argument`` on its command line."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = []
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                alive.append(argument in cmdline.read_bytes().decode(errors="replace"))
            except OSError:
                continue
        if not any(alive):
            return
        time.sleep(0.05)
    raise AssertionError(f"a process with {argument} is still running")


def test_a_killed_landscape_job_resumes_bit_identically(pinn_checkpoint, tmp_path):
    settings = {**SETTINGS, "resolution": 31, "method": "loop", "chunk_size": 1}
    reference = tmp_path / "reference.h5"
    sample_landscape(pinn_checkpoint, reference, settings)
    output = tmp_path / "killed.h5"
    parts = tmp_path / "killed.h5.parts"
    process = subprocess.Popen(mpi_command(1, pinn_checkpoint, output, settings),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(parts.glob("unit_*.npy"))) < 60:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    wait_until_gone(str(output))  # the rank runs in its own session and outlives mpiexec briefly
    done = len(list(parts.glob("unit_*.npy")))
    assert 60 <= done < 961 and not output.exists(), "the job must be killed mid-run"
    result = sample_landscape(pinn_checkpoint, output, settings)
    assert result["points_computed"] == 961 - done  # one point per work unit below 1,000 points
    assert output.read_bytes() == reference.read_bytes()


def test_hessian_directions_show_the_top_eigenvalue_as_curvature(pinn_checkpoint, tmp_path):
    """Along the top Hessian eigenvector (unit norm, absolute units), the second difference of
    the landscape at the centre is lambda_1."""
    from toposweep.hessian import hessian_of_checkpoint, load_eigenvectors

    hessian = hessian_of_checkpoint(pinn_checkpoint, tmp_path, k=2, trace_probes=2,
                                    density_runs=1, density_steps=8)
    eigenvalues, vectors = load_eigenvectors(tmp_path / "eigenvectors.pt")
    assert eigenvalues[0] == pytest.approx(hessian["eigenvalues"][0])
    h = 2e-3
    settings = {**SETTINGS, "dimensions": 1, "directions": "hessian", "resolution": 3,
                "extent": h, "method": "loop", "chunk_size": 1}
    sample_landscape(pinn_checkpoint, tmp_path / "landscape.h5", settings,
                     eigenvectors_path=tmp_path / "eigenvectors.pt")
    loss = read_landscape(tmp_path / "landscape.h5").loss.astype(np.float64)
    curvature = (loss[0] - 2 * loss[1] + loss[2]) / h**2
    assert curvature == pytest.approx(float(eigenvalues[0]), rel=0.02)
    stored = read_landscape(tmp_path / "landscape.h5")
    assert json.loads(stored.attrs["provenance"])["eigenvectors_sha256"]


def test_auto_keeps_the_probed_points_and_matches_explicit_methods(pinn_checkpoint):
    problem, model, _ = load_trained(pinn_checkpoint)
    loss_fn, params = problem.loss_function(model)
    directions = random_directions(params, 2, seed=0)
    axes = grid_axes(2, 31, 1.0)
    auto = sample_grid(loss_fn, params, directions, axes, method="auto")
    loop = sample_grid(loss_fn, params, directions, axes, method="loop")
    np.testing.assert_allclose(auto, loop, rtol=1e-5)
    assert np.isfinite(auto).all()


def test_a_skipped_hessian_gives_a_skipped_landscape(pinn_checkpoint, tmp_path):
    from toposweep.io import load_checkpoint

    own_hash = load_checkpoint(pinn_checkpoint)["hash"]
    torch.save({"status": "skipped", "eigenvalues": torch.zeros(0), "vectors": torch.zeros(0, 0),
                "names": [], "shapes": [], "checkpoint_hash": own_hash}, tmp_path / "eigenvectors.pt")
    result = sample_landscape(pinn_checkpoint, tmp_path / "landscape.h5",
                              {**SETTINGS, "directions": "hessian"},
                              eigenvectors_path=tmp_path / "eigenvectors.pt")
    assert result["status"] == "skipped" and "skipped this run" in result["message"]
    assert read_landscape(tmp_path / "landscape.h5").attrs["status"] == "skipped"


def test_trajectory_pca_plane_and_the_projected_path(tmp_path):
    """Snapshots every epoch: the plane is the top principal components of (snapshot - final
    weights) (checked against numpy's SVD), the path ends at the centre, and the landscape's
    centre is the trained loss."""
    from sklearn.decomposition import PCA  # noqa: F401  (the library's PCA; compared with SVD)

    run = make_runs("resnet20", {**TINY_RESNET, "epochs": 4}, snapshots={"every": 1, "unit": "epoch"})[0]
    metrics = train_run(run, tmp_path)
    assert metrics["n_snapshots"] == 5  # the initial weights and one per epoch
    settings = {**SETTINGS, "directions": "trajectory_pca", "resolution": 5, "extent": "auto",
                "method": "loop"}
    result = sample_landscape(tmp_path / CHECKPOINT, tmp_path / "trajectory.h5", settings,
                              trajectory_path=tmp_path / TrainFiles.trajectory, run=run)
    assert result["status"] == "ok"
    landscape = read_landscape(tmp_path / "trajectory.h5")
    path = landscape.datasets["trajectory"]
    assert path.shape == (5, 2)
    np.testing.assert_allclose(path[-1], 0.0, atol=1e-6)  # the last snapshot is the final weights
    snapshots = torch.load(tmp_path / TrainFiles.trajectory, weights_only=True)["parameters"].double().numpy()
    offsets = snapshots - snapshots[-1]
    _, singular, rows = np.linalg.svd(offsets - offsets.mean(0), full_matrices=False)
    np.testing.assert_allclose(np.abs(path), np.abs(offsets @ rows[:2].T), rtol=1e-5, atol=1e-7)
    explained = json.loads(landscape.attrs["explained_variance_ratio"]) if isinstance(
        landscape.attrs["explained_variance_ratio"], str) else landscape.attrs["explained_variance_ratio"]
    np.testing.assert_allclose(explained, singular[:2] ** 2 / (singular ** 2).sum(), rtol=1e-6)
    assert landscape.axes[0][-1] == pytest.approx(1.2 * np.abs(path).max())
    problem, model, _ = load_trained(tmp_path / CHECKPOINT)
    loss_fn, params = problem.loss_function(model)
    assert landscape.loss[2, 2] == pytest.approx(float(loss_fn(params)), rel=1e-6)


def test_grid_coefficients_are_made_per_work_unit():
    """A slice of the grid's coefficients equals the same rows of the full meshgrid, and a huge
    grid costs nothing until a slice is asked for (201^4 points would be 12 GiB at once)."""
    from toposweep.landscape import GridCoefficients

    axes = [np.linspace(-1, 1, 3), np.linspace(0, 2, 4), np.array([5.0, 6.0])]
    mesh = np.meshgrid(*axes, indexing="ij")
    full = np.stack([m.reshape(-1) for m in mesh], axis=1)
    grid = GridCoefficients(axes)
    assert len(grid) == 24 and np.array_equal(grid[:], full) and np.array_equal(grid[5:17], full[5:17])
    huge = GridCoefficients(grid_axes(4, 201, 1.0))
    assert len(huge) == 201**4
    np.testing.assert_allclose(huge[201**4 - 2 :], [[1.0, 1.0, 1.0, 0.99], [1.0, 1.0, 1.0, 1.0]])


# --- scattered samples -------------------------------------------------------------------------
SCATTERED = {**SETTINGS, "dimensions": 3, "sampling": "sobol", "n_samples": 64, "extent": 0.5}


@pytest.mark.parametrize("sampling", ["sobol", "latin_hypercube", "uniform"])
def test_scattered_samples_are_seeded_in_the_cube_with_the_origin_first(sampling):
    from toposweep.sampling import scattered_samples

    samples = scattered_samples(sampling, 257, 10, 0.5, seed=3)
    assert samples.shape == (257, 10)
    assert np.array_equal(samples[0], np.zeros(10))
    assert np.abs(samples).max() <= 0.5 and np.abs(samples[1:]).min() > 0
    assert np.array_equal(samples, scattered_samples(sampling, 257, 10, 0.5, seed=3))
    assert not np.array_equal(samples, scattered_samples(sampling, 257, 10, 0.5, seed=4))


def test_sobol_and_latin_hypercube_samples_are_scipys_and_stratified():
    from scipy.stats import qmc

    from toposweep.sampling import scattered_samples

    sobol = scattered_samples("sobol", 129, 6, 2.0, seed=0)
    expected = qmc.Sobol(6, scramble=True, seed=np.random.default_rng([0, 1])).random_base2(7)
    assert np.array_equal(sobol[1:], 4.0 * expected - 2.0)
    latin = scattered_samples("latin_hypercube", 101, 4, 1.0, seed=0)[1:]
    strata = np.floor((latin + 1.0) / 2.0 * 100).astype(int)  # one sample per 1/100 of each axis
    assert all(np.array_equal(np.sort(strata[:, axis]), np.arange(100)) for axis in range(4))


def test_a_scattered_landscape_holds_its_samples_and_their_exact_losses(pinn_checkpoint, tmp_path):
    result = sample_landscape(pinn_checkpoint, tmp_path / "s.h5", SCATTERED)
    stored = read_landscape(tmp_path / "s.h5")
    assert result["points_computed"] == 64 and stored.scattered and stored.axes == []
    assert stored.loss.shape == (64,) and stored.samples.shape == (64, 3)
    assert stored.attrs["sampling"] == "sobol"
    problem, model, checkpoint = load_trained(pinn_checkpoint, torch.device("cpu"))
    loss_fn, params = problem.loss_function(model)
    names = list(params)
    directions = [{name: torch.as_tensor(vector).reshape(params[name].shape)
                   for name, vector in zip(names, np.split(
                       stored_direction, np.cumsum([params[n].numel() for n in names])[:-1]))}
                  for stored_direction in _stored_directions(tmp_path / "s.h5")]
    evaluator = PointEvaluator(loss_fn, params, directions)
    assert np.allclose(evaluator(stored.samples, "loop", 1), stored.loss, rtol=1e-6, atol=0)
    assert stored.loss[0] == pytest.approx(float(loss_fn(params)), rel=1e-6)


def _stored_directions(path: Path) -> list[np.ndarray]:
    import h5py

    with h5py.File(path, "r") as handle:
        return [handle["directions"][f"d{i}"][()] for i in range(len(handle["directions"]))]


def interrupt_after(monkeypatch, calls: int, run) -> None:
    """Run `run` with PointEvaluator interrupted (KeyboardInterrupt) after `calls` calls, as a
    killed job is; the evaluator is restored afterwards."""
    count, original = [0], PointEvaluator.__call__

    def failing(self, *args, **kwargs):
        count[0] += 1
        if count[0] > calls:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(PointEvaluator, "__call__", failing)
    with pytest.raises(KeyboardInterrupt):
        run()
    monkeypatch.setattr(PointEvaluator, "__call__", original)

def test_scattered_landscapes_resume_and_share_ranks_bit_identically(pinn_checkpoint, tmp_path,
                                                                   monkeypatch):
    settings = {**SCATTERED, "n_samples": 600, "method": "loop", "chunk_size": 1}
    reference = tmp_path / "reference.h5"
    sample_landscape(pinn_checkpoint, reference, settings)
    # an interruption after 200 of the 600 work units
    interrupt_after(monkeypatch, 200, lambda: sample_landscape(pinn_checkpoint,
                                                              tmp_path / "resumed.h5", settings))
    result = sample_landscape(pinn_checkpoint, tmp_path / "resumed.h5", settings)
    assert result["points_computed"] == 600 - 200  # one sample per unit below 1,000 samples
    assert (tmp_path / "resumed.h5").read_bytes() == reference.read_bytes()
    run = subprocess.run(mpi_command(2, pinn_checkpoint, tmp_path / "two.h5", settings),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    two = read_landscape(tmp_path / "two.h5")
    one = read_landscape(reference)
    assert np.array_equal(two.loss, one.loss) and np.array_equal(two.samples, one.samples)


# --- the adaptive choice of (method, chunk) ----------------------------------------------------
def sleepy_loss(loop_ms: float, vmap_ms_per_point: float, outliers: set[int], outlier_ms: float,
                vmap_ms_per_call: float = 0.0):
    """A loss whose cost is slept: `loop_ms` a point alone, `vmap_ms_per_call` plus
    `vmap_ms_per_point` a point for a vmapped chunk; the calls numbered in `outliers` of the
    method that is truly faster sleep `outlier_ms` more (another job taking the core a while)."""
    from torch._C._functorch import is_batchedtensor

    calls = {"loop": 0, "vmap": 0}
    faster = "loop" if loop_ms < vmap_ms_per_point + vmap_ms_per_call else "vmap"

    def loss(p):
        w = p["w"]
        method = "vmap" if is_batchedtensor(w) else "loop"
        calls[method] += 1
        chunk = torch._C._functorch.get_unwrapped(w).shape[0] if method == "vmap" else 1
        pause = loop_ms if method == "loop" else vmap_ms_per_call + vmap_ms_per_point * chunk
        if method == faster and calls[method] in outliers:
            pause += outlier_ms
        time.sleep(pause / 1e3)
        return (w**2).sum()

    return loss, calls


def sleepy_grid(loss, resolution: int, **kwargs):
    params = {"w": torch.zeros(3, dtype=torch.float64)}
    directions = [{"w": torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)},
                  {"w": torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)}]
    record = {}
    grid = sample_grid(loss, params, directions, grid_axes(2, resolution, 1.0), record=record,
                       **kwargs)
    return grid, record


def points_by_method(record: dict, n_points: int) -> dict[str, int]:
    from toposweep.evaluation import units_of

    units, out = units_of(record, n_points), {}
    for first, last, method, chunk in record["units"]:
        out[method] = out.get(method, 0) + units[last][1] - units[first][0]
    return out


def test_the_probe_takes_medians_so_outliers_do_not_pick_the_slower_method():
    # The loop is 3x faster, but two of its eight probe calls are 40x slower: their mean says
    # vmap (11 ms a point against 3), their median says loop.
    loss, _ = sleepy_loss(loop_ms=1.0, vmap_ms_per_point=3.0, outliers={2, 5}, outlier_ms=40.0)
    grid, record = sleepy_grid(loss, 11)
    assert record["method"] == "loop" and record["units"][0] == [0, 0, "loop", 1]
    assert points_by_method(record, 121)["loop"] >= 121 - 8 - 16 - 32  # vmap: probe, <= one unit
    assert grid[5, 5] == 0.0 and grid[0, 0] == pytest.approx(2.0)
    # vmap is faster (a call costs 2 ms, whatever the chunk), but one call of each of its first
    # probe units is 20x slower: the chunk still grows, and vmap computes most points.
    loss, calls = sleepy_loss(loop_ms=2.0, vmap_ms_per_point=0.0, outliers={2, 6, 9}, outlier_ms=40.0,
                              vmap_ms_per_call=2.0)
    grid, record = sleepy_grid(loss, 15)
    assert record["method"] == "vmap" and record["chunk_size"] >= 32
    assert points_by_method(record, 225)["vmap"] >= 200


def test_the_chunk_grows_past_a_tenth_of_the_grid_and_a_small_grid_takes_one_chunk():
    """Where a call costs the same for any chunk, the chunk grows as far as the grid allows: on
    31 x 31 points the last probe unit, 449 points, is one call; vmap with a chunk as large as
    the grid evaluates it in one call."""
    loss, calls = sleepy_loss(loop_ms=1.0, vmap_ms_per_point=0.0, outliers=set(), outlier_ms=0,
                              vmap_ms_per_call=1.0)
    _, record = sleepy_grid(loss, 31, memory_budget_mb=1e6)
    chunks = [chunk for *_, method, chunk in record["units"] if method == "vmap"]
    assert max(chunks) == 512 and record["units"][-1][2:] == ["vmap", 512]
    assert max(chunks) > 961 // 10
    calls["vmap"] = 0
    _, record = sleepy_grid(loss, 31, method="vmap", chunk_size=1024)
    assert calls["vmap"] == 1 and record["units"] == [[0, 0, "vmap", 1024]]


def test_the_memory_budget_caps_the_chunk():
    from toposweep.scheduling import MemoryGauge

    gauge = MemoryGauge(torch.device("cpu"), budget_mb=100.0)
    gauge.base_mb, gauge.per_point_mb, gauge.measured_chunk = 50.0, 0.5, 64
    assert gauge.allows(64) and gauge.allows(100) and not gauge.allows(101)
    assert gauge.largest(4096) == 64
    gauge.start()
    buffer = torch.ones(64, 2**18)  # 64 MiB
    gauge.stop(128)
    del buffer
    assert 0.4 < gauge.per_point_mb < 0.6  # 64 MiB over 128 points, measured from the peak


def test_the_scheduler_switches_over_a_window_with_hysteresis():
    from toposweep.scheduling import LOOP, Scheduler

    scheduler = Scheduler(("loop", "vmap"))
    scheduler.record(LOOP, 8, 0.08, 0.01)  # probe: loop 10 ms/point
    for chunk, rate in ((2, 0.004), (4, 0.002), (8, 0.0021), (16, 0.0022)):
        assert scheduler.next(0, 4 * chunk, 10**6) == ("vmap", chunk) and scheduler.growing
        scheduler.record(("vmap", chunk), 4 * chunk, 4 * chunk * rate, rate)
    assert not scheduler.growing and scheduler.current == ("vmap", 4)  # two misses: stop
    chosen = []
    for unit in range(400):
        choice = scheduler.next(unit * 256, (unit + 1) * 256, 10**6)
        chosen.append(choice)
        # the machine changes at unit 100: chunk 8 becomes clearly faster; +-4 % noise
        noise = 1 + 0.04 * ((unit * 7919) % 3 - 1)
        rate = {("vmap", 4): 0.002, ("vmap", 8): 0.0021 if unit < 100 else 0.0012,
                ("vmap", 2): 0.004, ("vmap", 16): 0.0013, LOOP: 0.01}[choice] * noise
        scheduler.record(choice, 256, 256 * rate, rate)
    assert set(chosen[:100]) <= {("vmap", 4), ("vmap", 2), ("vmap", 8), LOOP}
    assert chosen[:100].count(("vmap", 4)) > 80  # alternatives get a small share of the time
    assert scheduler.current in (("vmap", 8), ("vmap", 16))
    switches = sum(a != b for a, b in zip(chosen[150:], chosen[151:]) if {a, b} <= {("vmap", 8), ("vmap", 16)})
    assert chosen[-100:].count(scheduler.current) > 80 and switches < 30  # no flip-flopping
    assert chosen.count(LOOP) * 256 * 0.01 < 0.15 * scheduler.total  # the loop's cost stays small


def test_every_unit_of_an_adaptive_run_equals_its_method_and_chunk_fixed(pinn_checkpoint):
    """Auto mixes methods and chunks across units; each unit's losses are bit-identical to the
    same points of a run with that unit's (method, chunk) fixed for the whole grid."""
    from toposweep.evaluation import units_of

    problem, model, _ = load_trained(pinn_checkpoint)
    loss_fn, params = problem.loss_function(model)
    directions = random_directions(params, 2, seed=0)
    axes = grid_axes(2, 31, 1.0)
    record = {}
    auto = sample_grid(loss_fn, params, directions, axes, record=record).reshape(-1)
    units = units_of(record, auto.size)
    choices = {(method, chunk) for *_, method, chunk in record["units"]}
    assert len(choices) >= 2 and ("loop", 1) in choices
    fixed = {choice: sample_grid(loss_fn, params, directions, axes, method=choice[0],
                                 chunk_size=choice[1]).reshape(-1) for choice in choices}
    for first, last, method, chunk in record["units"]:
        begin, end = units[first][0], units[last][1]
        assert np.array_equal(auto[begin:end], fixed[(method, chunk)][begin:end]), (method, chunk)
    loop, vmap8 = fixed.get(("loop", 1)), sample_grid(loss_fn, params, directions, axes, "vmap", 8)
    assert not np.array_equal(loop, vmap8.reshape(-1))  # the methods do differ in the last bits


def test_an_interrupted_auto_landscape_resumes_without_recomputing_its_probe(
        pinn_checkpoint, tmp_path, monkeypatch):
    from toposweep.evaluation import units_of

    settings = {**SETTINGS, "resolution": 31, "method": "auto", "chunk_size": None}
    # one call per work unit: stop after four units
    interrupt_after(monkeypatch, 4, lambda: sample_landscape(pinn_checkpoint, tmp_path / "auto.h5",
                                                            settings))
    result = sample_landscape(pinn_checkpoint, tmp_path / "auto.h5", settings)
    assert result["points_computed"] == 961 - (8 + 8 + 16 + 32)  # the probe's first four units
    stored = read_landscape(tmp_path / "auto.h5")
    evaluation = json.loads(stored.attrs["provenance"])["evaluation"]
    assert evaluation["units"][0] == [0, 0, "loop", 1] and evaluation["units"][1][2:] == ["vmap", 2]
    problem, model, _ = load_trained(pinn_checkpoint)
    loss_fn, params = problem.loss_function(model)
    evaluator = PointEvaluator(loss_fn, params, build_directions(stage_settings("landscape", settings), params))
    coefficients = np.stack(np.meshgrid(stored.axes[0], stored.axes[1], indexing="ij"), -1).reshape(-1, 2)
    units, loss = units_of(evaluation, 961), stored.loss.reshape(-1)
    for first, last, method, chunk in evaluation["units"]:
        for begin, end in units[first : last + 1]:
            assert np.array_equal(evaluator(coefficients[begin:end], method, chunk), loss[begin:end])


def test_two_mpi_ranks_share_an_adaptive_landscape(pinn_checkpoint, tmp_path):
    settings = {**SETTINGS, "resolution": 61, "method": "auto", "chunk_size": None}
    command = mpi_command(2, pinn_checkpoint, tmp_path / "auto.h5", settings)
    result = subprocess.run(command + ["--report", str(tmp_path / "report.json")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["points_computed"] == 61**2 and report["ranks"] == 2
    stored = read_landscape(tmp_path / "auto.h5")
    evaluation = json.loads(stored.attrs["provenance"])["evaluation"]
    assert evaluation["mode"] == "auto" and evaluation["n_units"] > 8  # probe units, then shared
    assert np.isfinite(stored.loss).all() and stored.loss[30, 30] == stored.loss.min()


def test_the_thread_setting_is_honoured(pinn_checkpoint, tmp_path):
    settings = {**SETTINGS, "resolution": 3, "method": "loop"}
    for threads in (1, 2):
        command = mpi_command(1, pinn_checkpoint, tmp_path / f"t{threads}.h5", settings)
        command[command.index("--threads") + 1] = str(threads)
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        provenance = json.loads(read_landscape(tmp_path / f"t{threads}.h5").attrs["provenance"])
        assert provenance["torch_threads"] == threads
    for rule in ("landscape", "train", "hessian"):
        text = (REPO / "workflow" / "rules" / f"{rule}.smk").read_text()
        assert "threads: 1" in text and "--threads {threads}" in text  # 1 per job, --set-threads


def test_stage_processes_pin_threads_and_keep_freed_memory():
    """Every stage script starts with configure_process: the threads asked for, and glibc's
    allocator took the settings (a fresh interpreter: both are per process)."""
    code = ("import torch; from toposweep.stage import configure_process; "
            "print(configure_process(3), torch.get_num_threads())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["True", "3"]
    for script in ("train", "hessian", "sample_landscape"):
        text = (REPO / "scripts" / f"{script}.py").read_text()
        assert "configure_process(args.threads)" in text and "set_num_threads" not in text


def test_a_probe_misled_by_noise_is_corrected_during_the_sweep():
    """The probe saw vmap slower than the loop (noise), but vmap at larger chunks is 3x faster:
    exploring the best vmap chunk and its double in the sweep finds it and switches."""
    from toposweep.scheduling import LOOP, Scheduler

    scheduler = Scheduler(("loop", "vmap"))
    scheduler.next(0, 8, 10**6)
    scheduler.record(LOOP, 8, 0.008, 0.001)
    scheduler.next(8, 16, 10**6)
    scheduler.record(("vmap", 2), 8, 0.08, 0.01)  # 10x slower: the probe stops
    assert not scheduler.growing and scheduler.current == LOOP
    truth = lambda choice: 0.001 if choice == LOOP else 0.0003 if choice[1] >= 8 else 0.0015
    for unit in range(300):
        choice = scheduler.next(unit * 64, (unit + 1) * 64, 10**6)
        scheduler.record(choice, 64, 64 * truth(choice), truth(choice))
    assert scheduler.current[0] == "vmap" and scheduler.current[1] >= 8
