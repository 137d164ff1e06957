"""Hessian engine against exact Hessians (autograd.functional.hessian + eigvalsh), PyHessian 0.1,
models with unused parameters, and the stage's files for ok, diverged and non-finite runs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from toposweep.config import load_schema
from toposweep.hessian import (
    HessianOperator,
    NonFiniteLoss,
    SkippedHessian,
    hessian_of_checkpoint,
    hutchinson_trace,
    hvp,
    load_eigenvectors,
    spectral_density,
    top_eigenpairs,
    trace_samples,
)
from toposweep.hessian.pyhessian_backend import PyHessianBackend
from toposweep.io import load_checkpoint, read_json, save_checkpoint, write_json
from toposweep.problems import get_problem

from conftest import make_runs

TINY_PINN = {"beta": 5.0, "hidden_layers": 2, "hidden_width": 6, "x_points": 16, "t_points": 8,
             "n_collocation": 20}


def exact_hessian(loss_fn, params) -> torch.Tensor:
    """Dense Hessian of loss_fn over the flattened parameters (dict order)."""
    names = list(params)
    numels = [p.numel() for p in params.values()]
    flat = torch.cat([p.reshape(-1) for p in params.values()])

    def of_flat(vector):
        pieces = torch.split(vector, numels)
        return loss_fn({n: piece.view(params[n].shape) for n, piece in zip(names, pieces)})

    return torch.autograd.functional.hessian(of_flat, flat)


def mlp_regression(dtype=torch.float64, extra_unused: bool = False):
    """3 -> 8 -> 2 tanh MLP, mean squared error on 40 fixed points: 50 parameters."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2)).to(dtype)
    if extra_unused:
        model.register_parameter("unused_bias", nn.Parameter(torch.ones(3, dtype=dtype)))
    x = torch.randn(40, 3, dtype=dtype)
    y = torch.randn(40, 2, dtype=dtype)

    def loss(params):
        return ((functional_call(model, params, (x,)) - y) ** 2).mean()

    return model, loss, {name: p.detach() for name, p in model.named_parameters()}


def tiny_pinn():
    run = make_runs("pinn_convection", TINY_PINN)[0]
    problem = get_problem("pinn_convection")(run["settings"], 0)
    torch.manual_seed(0)
    model = problem.build_model()
    loss, params = problem.loss_function(model)
    return run, problem, model, loss, params


@pytest.fixture(scope="module")
def regression():
    model, loss, params = mlp_regression()
    hessian = exact_hessian(loss, params)
    return loss, params, hessian, torch.linalg.eigvalsh(hessian).flip(0)


@pytest.fixture(scope="module")
def pinn():
    _, _, _, loss, params = tiny_pinn()
    hessian = exact_hessian(loss, params).double()
    return loss, params, hessian, torch.linalg.eigvalsh(hessian).flip(0)


# --- HVP ---------------------------------------------------------------------------------------
def test_hvp_matches_the_exact_hessian_for_dicts_flat_vectors_and_batches(regression):
    loss, params, hessian, _ = regression
    generator = torch.Generator().manual_seed(1)
    vectors = torch.randn((5, hessian.shape[0]), generator=generator, dtype=torch.float64)
    expected = vectors @ hessian
    as_dict = {name: t for name, t in zip(params, torch.split(vectors[0], [p.numel() for p in params.values()]))}
    as_dict = {name: t.view(params[name].shape) for name, t in as_dict.items()}
    product = hvp(loss, params, as_dict)
    assert list(product) == list(params)
    flat = torch.cat([product[name].reshape(-1) for name in params])
    torch.testing.assert_close(flat, expected[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(hvp(loss, params, vectors[1]), expected[1], rtol=1e-12, atol=1e-12)
    for batch_size in (1, 2, 16):
        operator = HessianOperator(loss, params, batch_size=batch_size)
        torch.testing.assert_close(operator.matmat(vectors), expected, rtol=1e-12, atol=1e-12)
        assert operator.n_products == 5


def test_pinn_hvp_through_its_forward_mode_residual(pinn):
    loss, params, hessian, _ = pinn
    vector = torch.randn(hessian.shape[0], generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(hvp(loss, params, vector).double(), hessian @ vector.double(),
                               rtol=1e-4, atol=1e-5)


# --- eigenpairs --------------------------------------------------------------------------------
@pytest.mark.parametrize("fixture", ["regression", "pinn"])
def test_top3_eigenvalues_match_exact_within_1e_4(fixture, request):
    loss, params, hessian, exact = request.getfixturevalue(fixture)
    pairs = top_eigenpairs(loss, params, k=3, tol=1e-6 if fixture == "regression" else 1e-4)
    values, vectors = pairs
    assert pairs.converged and values.dtype == torch.float64
    assert vectors.dtype == next(iter(params.values())).dtype and vectors.shape == (3, hessian.shape[0])
    np.testing.assert_allclose(values.numpy(), exact[:3].numpy(), rtol=1e-4)
    assert torch.all(values[:-1] >= values[1:])
    # unit rows, and H x = lambda x
    np.testing.assert_allclose(torch.linalg.vector_norm(vectors.double(), dim=1).numpy(), 1.0, rtol=1e-5)
    peaks = vectors.gather(1, vectors.abs().argmax(dim=1, keepdim=True))
    assert torch.all(peaks > 0)  # sign convention
    residual = vectors.double() @ hessian - values[:, None] * vectors.double()
    assert float(residual.norm(dim=1).max()) < 1e-3 * float(values[0])
    dicts = pairs.vector_dicts()
    assert [list(d) for d in dicts] == [list(params)] * 3
    assert all(d[name].shape == params[name].shape for d in dicts for name in params)


def test_largest_algebraic_versus_largest_magnitude():
    """A quadratic with eigenvalues {-10, 3, 2, 1, ...}: LA skips the negative one, LM leads with it."""
    spectrum = torch.tensor([-10.0, 3.0, 2.0, 1.0, 0.5, 0.25, 0.1, 0.0], dtype=torch.float64)
    basis, _ = torch.linalg.qr(torch.randn(8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    matrix = basis @ torch.diag(spectrum) @ basis.T

    def loss(params):
        x = torch.cat([params["a"], params["b"].reshape(-1)])
        return 0.5 * x @ matrix @ x

    params = {"a": torch.ones(2, dtype=torch.float64), "b": torch.ones(3, 2, dtype=torch.float64)}
    np.testing.assert_allclose(top_eigenpairs(loss, params, 2, "LA", tol=1e-8).eigenvalues.numpy(), [3, 2], rtol=1e-10)
    np.testing.assert_allclose(top_eigenpairs(loss, params, 2, "LM", tol=1e-8).eigenvalues.numpy(), [-10, 3], rtol=1e-10)
    # the trace of a quadratic: Hutchinson with the deflation of the full Krylov space is exact
    pairs = top_eigenpairs(loss, params, 3, tol=1e-12)
    mean, error = hutchinson_trace(loss, params, 4, deflation=pairs)
    assert mean == pytest.approx(float(spectrum.sum()), abs=1e-10) and error < 1e-10


def test_an_unused_parameter_has_a_zero_row_and_does_not_break_anything():
    model, loss, params = mlp_regression(extra_unused=True)
    hessian = exact_hessian(loss, params)
    exact = torch.linalg.eigvalsh(hessian).flip(0)
    operator = HessianOperator(loss, params)
    assert operator.unused == ["unused_bias"]
    pairs = top_eigenpairs(loss, params, 3, tol=1e-8)
    np.testing.assert_allclose(pairs.eigenvalues.numpy(), exact[:3].numpy(), rtol=1e-8)
    assert float(pairs.vector_dicts()[0]["unused_bias"].abs().max()) < 1e-12
    mean, error = hutchinson_trace(loss, params, 200, seed=3)
    assert abs(mean - float(hessian.trace())) < 3 * error


def test_invalid_arguments_are_named(regression):
    loss, params, _, _ = regression
    with pytest.raises(ValueError, match="k=51 exceeds the number of parameters"):
        top_eigenpairs(loss, params, 51)
    with pytest.raises(ValueError, match="which must be one of"):
        top_eigenpairs(loss, params, 1, which="SA")
    with pytest.raises(ValueError, match="tol must be a number > 0"):
        top_eigenpairs(loss, params, 1, tol=0)
    with pytest.raises(ValueError, match="n_samples must be an integer >= 2"):
        hutchinson_trace(loss, params, 1)
    with pytest.raises(ValueError, match="n_runs must be an integer >= 1"):
        spectral_density(loss, params, 0, 10)
    mixed = {**params, "0.bias": params["0.bias"].float()}
    with pytest.raises(ValueError, match=r"params\['0.bias'\] is torch.float32"):
        HessianOperator(loss, mixed)
    with pytest.raises(NonFiniteLoss, match="nan"):
        HessianOperator(lambda p: loss(p) * float("nan"), params)


# --- trace -------------------------------------------------------------------------------------
@pytest.mark.parametrize("fixture", ["regression", "pinn"])
def test_trace_within_three_standard_errors_of_exact(fixture, request):
    loss, params, hessian, _ = request.getfixturevalue(fixture)
    exact = float(hessian.trace())
    mean, error = hutchinson_trace(loss, params, 300, seed=5)
    assert error > 0 and abs(mean - exact) < 3 * error
    pairs = top_eigenpairs(loss, params, 2, tol=1e-3, max_iter=20)
    deflated, deflated_error = hutchinson_trace(loss, params, 30, seed=5, deflation=pairs)
    assert abs(deflated - exact) < 3 * deflated_error
    # the deflated estimator's spread per probe is smaller
    assert deflated_error * math.sqrt(30) < error * math.sqrt(300)


def test_trace_probes_do_not_depend_on_the_batch_size(regression):
    loss, params, _, _ = regression
    one = np.concatenate(list(trace_samples(HessianOperator(loss, params, batch_size=1), 7, seed=9)))
    four = np.concatenate(list(trace_samples(HessianOperator(loss, params, batch_size=4), 7, seed=9)))
    np.testing.assert_allclose(one, four, rtol=1e-12)


# --- density -----------------------------------------------------------------------------------
@pytest.mark.parametrize("fixture", ["regression", "pinn"])
def test_density_integrates_to_one_with_its_mass_at_the_eigenvalues(fixture, request):
    loss, params, hessian, exact = request.getfixturevalue(fixture)
    n = hessian.shape[0]
    density = spectral_density(loss, params, n_runs=6, n_iter=n, seed=1)
    grid, values = density
    assert values.min() >= 0
    assert np.trapezoid(values, grid) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(density.weights.sum(axis=1), 1.0, rtol=1e-6)
    # full-length Lanczos: the nodes are the exact eigenvalues; all mass lies within 4 sigma of them
    near = np.min(np.abs(grid[:, None] - exact.numpy()[None, :]), axis=1) <= 4 * density.sigma
    assert np.trapezoid(np.where(near, values, 0.0), grid) > 0.999
    for nodes in density.nodes:
        np.testing.assert_allclose(np.sort(nodes)[::-1], exact.numpy(), atol=1e-5 * float(exact[0]))


# --- PyHessian ---------------------------------------------------------------------------------
def classifier():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 16), nn.Tanh(), nn.Linear(16, 4))
    inputs = torch.randn(64, 10)
    targets = torch.randint(0, 4, (64,))
    return model, inputs, targets


def test_pyhessian_top_eigenvalue_agrees_within_1e_3():
    model, inputs, targets = classifier()
    removed_eig = torch.eig  # torch 2 keeps a stub that raises
    params = {name: p.detach() for name, p in model.named_parameters()}

    def loss(p):
        return nn.functional.cross_entropy(functional_call(model, p, (inputs,)), targets)

    ours = top_eigenpairs(loss, params, 1, tol=1e-5)
    with PyHessianBackend(model, nn.functional.cross_entropy, (inputs, targets)) as backend:
        theirs = backend.eigenpairs(1, max_iter=1000, tol=1e-6)
        nodes, weights = backend.density(n_iter=20, n_runs=1)  # needs the torch.eig shim
        trace, error, samples = backend.trace(max_iter=50, tol=1e-3)
    assert theirs.eigenvalues[0] == pytest.approx(float(ours.eigenvalues[0]), rel=1e-3)
    assert float(ours.eigenvectors[0] @ theirs.eigenvectors[0]) > 0.99  # same sign convention
    assert nodes.shape == weights.shape == (1, 20)
    assert weights.sum() == pytest.approx(1.0, rel=1e-4)
    assert nodes.max() == pytest.approx(float(ours.eigenvalues[0]), rel=1e-3)
    assert len(samples) >= 2 and math.isfinite(trace)
    assert torch.eig is removed_eig  # the shim is removed afterwards
    assert all(p.grad is None for p in model.parameters())


def test_pyhessian_crashes_on_an_unused_parameter_and_the_backend_freezes_it():
    from pyhessian import hessian as PyHessian

    model, inputs, targets = classifier()
    model.register_parameter("unused", nn.Parameter(torch.ones(2)))
    with pytest.raises(AssertionError, match="Expected output to be a torch.Tensor"):
        PyHessian(model, nn.functional.cross_entropy, data=(inputs, targets), cuda=False).eigenvalues(maxIter=3)
    model.zero_grad(set_to_none=True)
    with PyHessianBackend(model, nn.functional.cross_entropy, (inputs, targets)) as backend:
        pairs = backend.eigenpairs(1, max_iter=200, tol=1e-5)
        assert backend.frozen == ["unused"]
    assert model.unused.requires_grad
    assert pairs.vector_dicts()[0]["unused"].abs().max() == 0
    params = {name: p.detach() for name, p in model.named_parameters()}
    ours = top_eigenpairs(lambda p: nn.functional.cross_entropy(functional_call(model, p, (inputs,)), targets), params, 1)
    assert pairs.eigenvalues[0] == pytest.approx(float(ours.eigenvalues[0]), rel=1e-3)


# --- the stage ---------------------------------------------------------------------------------
def write_run(tmp_path, status="ok", poison=False, metrics=True):
    run, _, model, _, _ = tiny_pinn()
    state = model.state_dict()
    if poison:
        state = {name: torch.full_like(t, float("nan")) for name, t in state.items()}
    save_checkpoint(tmp_path / "checkpoint.pt", state, run, "pinn_convection", status)
    if metrics:
        write_json(tmp_path / "train_metrics.json", {"status": status, "message": "loss became nan at step 3" if status != "ok" else ""})
    return tmp_path / "checkpoint.pt", model


def test_stage_writes_the_eigenvector_contract(tmp_path):
    checkpoint, model = write_run(tmp_path, metrics=False)
    summary = hessian_of_checkpoint(checkpoint, tmp_path, k=3, trace_probes=20, density_runs=2,
                                    density_steps=20, density_points=400, device="cpu")
    on_disk = read_json(tmp_path / "hessian.json")
    assert on_disk["status"] == "ok" and on_disk["eigenvalues"] == summary["eigenvalues"]
    payload = torch.load(tmp_path / "eigenvectors.pt", weights_only=True)
    assert sorted(payload) == ["checkpoint_hash", "eigenvalues", "names", "shapes", "status", "vectors"]
    assert payload["status"] == "ok" and payload["checkpoint_hash"] == load_checkpoint(checkpoint)["hash"]
    assert payload["names"] == [name for name, _ in model.named_parameters()]
    assert payload["shapes"] == [list(p.shape) for _, p in model.named_parameters()]
    values, vectors = payload["eigenvalues"], payload["vectors"]
    assert values.dtype == torch.float64 and values.shape == (3,) and torch.all(values[:-1] >= values[1:])
    assert vectors.shape == (3, sum(p.numel() for p in model.parameters()))
    np.testing.assert_allclose(torch.linalg.vector_norm(vectors, dim=1).numpy(), 1.0, rtol=1e-5)
    _, _, _, loss, params = tiny_pinn()
    direct = top_eigenpairs(loss, params, 3)
    np.testing.assert_allclose(values.numpy(), direct.eigenvalues.numpy(), rtol=1e-6)
    eigenvalues, dicts = load_eigenvectors(tmp_path / "eigenvectors.pt")
    assert len(dicts) == 3 and all(dicts[0][n].shape == p.shape for n, p in model.named_parameters())
    import pandas as pd
    density = pd.read_csv(tmp_path / "density.csv")
    assert list(density.columns) == ["eigenvalue", "density"] and len(density) == 400
    assert np.trapezoid(density["density"], density["eigenvalue"]) == pytest.approx(1.0, abs=1e-4)
    assert on_disk["n_hvp"]["eigenpairs"] > 0 and on_disk["wall_time_s"]["total"] > 0
    assert on_disk["settings"]["k"] == 3 and on_disk["trace_deflation_rank"] >= 3


def test_stage_with_the_pyhessian_backend_on_the_pinn(tmp_path):
    checkpoint, _ = write_run(tmp_path)
    ours = hessian_of_checkpoint(checkpoint, tmp_path / "native", k=1, trace_probes=10,
                                 density_runs=1, density_steps=10)
    theirs = hessian_of_checkpoint(checkpoint, tmp_path / "pyhessian", k=1, which="LM", tol=1e-6,
                                   max_iter=500, trace_probes=10, density_runs=1,
                                   density_steps=10, backend="pyhessian")
    assert theirs["which"] == "LM" and theirs["pyhessian_frozen_parameters"] == []
    assert theirs["top_eigenvalue"] == pytest.approx(ours["top_eigenvalue"], rel=1e-3)


@pytest.mark.parametrize("case", ["diverged", "nonfinite"])
def test_diverged_or_nonfinite_runs_are_skipped(tmp_path, case):
    checkpoint, _ = write_run(tmp_path, status="diverged" if case == "diverged" else "ok",
                              poison=case == "nonfinite")
    summary = hessian_of_checkpoint(checkpoint, tmp_path)
    on_disk = read_json(tmp_path / "hessian.json")
    assert on_disk["status"] == summary["status"] == "skipped"
    expected = "training status is 'diverged'" if case == "diverged" else "the loss is nan"
    assert expected in on_disk["message"]
    assert "eigenvalues" not in on_disk and "trace" not in on_disk
    assert (tmp_path / "density.csv").read_text().strip() == "eigenvalue,density"
    payload = torch.load(tmp_path / "eigenvectors.pt", weights_only=True)
    assert payload["status"] == "skipped" and payload["eigenvalues"].numel() == 0
    with pytest.raises(SkippedHessian, match="skipped this run"):
        load_eigenvectors(tmp_path / "eigenvectors.pt")


def test_unknown_stage_setting_is_rejected(tmp_path):
    checkpoint, _ = write_run(tmp_path)
    with pytest.raises(ValueError, match=r"hessian.*'kk' was unexpected"):
        hessian_of_checkpoint(checkpoint, tmp_path, kk=3)


def test_stage_defaults_are_the_schema_defaults(tmp_path):
    """The schema is the only owner of the stage's defaults: hessian.json records them."""
    schema = load_schema()["$defs"]["experiment"]["properties"]["hessian"]["properties"]
    checkpoint, _ = write_run(tmp_path, status="diverged")
    settings = hessian_of_checkpoint(checkpoint, tmp_path)["settings"]
    assert settings == {key: spec["default"] for key, spec in schema.items()}
