"""The Problem seam: model sizes, PINN physics, data loading, and the pure loss functions."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch
from torch.func import functional_call, grad, vmap

from toposweep.datasets import load_cifar10, load_digits, random_crop_flip
from toposweep.problems import BUILT_IN, get_problem
from toposweep.problems.pinn_convection import PinnConvection, convection_mlp, convection_residual
from toposweep.models.resnet import ResNet20

from conftest import TINY_RESNET, make_runs


def n_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_pinn_has_7851_parameters():
    assert n_parameters(convection_mlp()) == 7851


@pytest.mark.parametrize(
    "width, option_a, option_b",
    [(4, 17326, 17534), (8, 68050, 68786), (16, 269722, 272474), (32, 1073962, 1084586)],
)
def test_resnet20_parameter_counts(width, option_a, option_b):
    assert n_parameters(ResNet20(width, "A")) == option_a
    assert n_parameters(ResNet20(width, "B")) == option_b


def test_resnet20_takes_small_inputs():
    logits = ResNet20(2).eval()(torch.zeros(3, 3, 8, 8))
    assert logits.shape == (3, 10)


def test_unknown_problem_names_the_allowed_ones():
    with pytest.raises(ValueError, match=r"'mlp' is not a built-in problem \(pinn_convection, resnet20, unet_crf\)"):
        get_problem("mlp")


def pinn(beta=5.0, **settings) -> PinnConvection:
    run = make_runs("pinn_convection", {"beta": beta, **settings})[0]
    return PinnConvection(run["settings"], seed=0)


def test_pinn_residual_vanishes_for_the_exact_solution():
    problem = pinn(beta=7.0)
    points = problem.grid_points
    exact = lambda xt: torch.sin(xt[:, :1] - 7.0 * xt[:, 1:])
    assert convection_residual(exact, points, 7.0).abs().max() < 1e-6
    # and is beta * cos(x) for u = sin(x), which is no solution
    stationary = lambda xt: torch.sin(xt[:, :1])
    residual = convection_residual(stationary, points, 7.0)
    assert torch.allclose(residual, 7.0 * torch.cos(points[:, :1]), atol=1e-5)


def test_pinn_residual_equals_the_forward_mode_directional_derivative():
    """The reverse-mode residual (one vjp) is u's derivative along (beta, 1), as a forward-mode
    jvp computes it (the residual before issue 16), on a network's fixed weights: alone, vmapped
    over parameter sets (the landscape path) and differentiated (training, Hessians)."""
    torch.manual_seed(3)
    model = convection_mlp(3, 20)
    points = pinn(beta=7.0).collocation_points
    params = {name: p.detach() for name, p in model.named_parameters()}

    def field(p):
        return lambda xt: functional_call(model, p, (xt,))

    def forward_mode(p):
        direction = points.new_tensor([7.0, 1.0]).expand_as(points)
        return torch.func.jvp(field(p), (points,), (direction,))[1]

    reverse = convection_residual(field(params), points, 7.0)
    torch.testing.assert_close(reverse, forward_mode(params), rtol=1e-5, atol=1e-6)
    assert reverse.abs().max() > 0.1  # a field with a residual to compare
    stacked = {n: torch.stack([p, 1.1 * p]) for n, p in params.items()}
    torch.testing.assert_close(vmap(lambda p: convection_residual(field(p), points, 7.0))(stacked),
                               vmap(forward_mode)(stacked), rtol=1e-5, atol=1e-6)
    gradient = grad(lambda p: convection_residual(field(p), points, 7.0).square().mean())(params)
    expected = grad(lambda p: forward_mode(p).square().mean())(params)
    for name in params:
        torch.testing.assert_close(gradient[name], expected[name], rtol=1e-4, atol=1e-6)


def test_pinn_loss_terms_of_the_exact_solution():
    problem = pinn(beta=3.0)
    exact = lambda xt: torch.sin(xt[:, :1] - 3.0 * xt[:, 1:])
    terms = problem.loss_terms(exact)
    # IC is exact; periodic boundary agrees up to float32 rounding of 2*pi
    assert float(terms["loss_initial"]) < 1e-12
    assert float(terms["loss_boundary"]) < 1e-10
    assert float(terms["loss_residual"]) < 1e-12


def test_pinn_grid_matches_the_reference():
    problem = pinn()
    assert problem.x.shape == (256,) and problem.t.shape == (100,)
    assert problem.x[0] == 0.0 and math.isclose(problem.x[-1], 2 * math.pi * 255 / 256)
    assert problem.t[0] == 0.0 and problem.t[-1] == 1.0
    assert problem.grid_points.shape == (25600, 2)
    assert problem.u_exact.shape == (100, 256)
    np.testing.assert_allclose(problem.u_exact[0], np.sin(problem.x))


def test_collocation_is_interior_distinct_and_seeded():
    a = pinn(n_collocation=1000).collocation_points.numpy()
    b = pinn(n_collocation=1000).collocation_points.numpy()
    c = pinn(n_collocation=1000, collocation_seed=1).collocation_points.numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert len(np.unique(a, axis=0)) == 1000
    assert (a[:, 0] > 0).all() and (a[:, 1] > 0).all()
    assert a[:, 0].max() < 2 * math.pi and a[:, 1].max() <= 1.0


def test_pinn_loss_function_is_the_training_loss_and_torch_func_friendly():
    problem = pinn(beta=10.0)
    torch.manual_seed(0)
    model = problem.build_model()
    loss_fn, params = problem.loss_function(model)
    expected = problem.loss_terms(model)["loss"]
    assert torch.allclose(loss_fn(params), expected, rtol=1e-6)
    gradient = grad(loss_fn)(params)
    model.zero_grad()
    problem.loss_terms(model)["loss"].backward()
    for name, param in model.named_parameters():
        assert torch.allclose(gradient[name], param.grad, rtol=1e-4, atol=1e-7), name
    stacked = {k: torch.stack([v, v * 1.01]) for k, v in params.items()}
    batched = vmap(loss_fn)(stacked)
    assert torch.allclose(batched[0], expected, rtol=1e-6)
    scaled = loss_fn({k: v * 1.01 for k, v in params.items()})
    assert torch.allclose(batched[1], scaled, rtol=1e-5)


def test_digits_split_is_deterministic_and_stratified():
    a = load_digits(input_size=16, test_fraction=0.2, split_seed=0)
    b = load_digits(input_size=16, test_fraction=0.2, split_seed=0)
    c = load_digits(input_size=16, test_fraction=0.2, split_seed=1)
    assert torch.equal(a.train_images, b.train_images) and torch.equal(a.test_labels, b.test_labels)
    assert not torch.equal(a.test_labels, c.test_labels)
    assert a.train_images.shape[1:] == (3, 16, 16)
    assert len(a.train_labels) + len(a.test_labels) == 1797
    assert len(a.test_labels) == 360
    counts = torch.bincount(a.test_labels, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37
    # normalised with the training set's statistics
    assert abs(float(a.train_images.mean())) < 1e-5
    assert abs(float(a.train_images.std()) - 1.0) < 1e-3


def write_fake_cifar(root, n_per_batch=20):
    """Files in CIFAR-10's own python format, with generated pixels."""
    directory = root / "cifar-10-batches-py"
    directory.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8),
                 b"labels": rng.integers(0, 10, n_per_batch).tolist()}
        with open(directory / name, "wb") as handle:
            pickle.dump(batch, handle)
    return directory


def test_cifar10_loader_reads_the_python_batches(tmp_path):
    directory = write_fake_cifar(tmp_path)
    data = load_cifar10(tmp_path)
    assert data.train_images.shape == (100, 3, 32, 32)
    assert data.test_images.shape == (20, 3, 32, 32)
    batches = []
    for i in range(1, 6):
        with open(directory / f"data_batch_{i}", "rb") as handle:
            batches.append(pickle.load(handle, encoding="bytes"))
    raw = np.concatenate([b[b"data"] for b in batches]).reshape(-1, 3, 32, 32) / 255.0
    mean = raw.mean(axis=(0, 2, 3), keepdims=True)
    std = raw.std(axis=(0, 2, 3), ddof=1, keepdims=True)
    np.testing.assert_allclose(data.train_images.numpy(), (raw - mean) / std, rtol=1e-4, atol=1e-4)
    assert data.train_labels.tolist() == sum((b[b"labels"] for b in batches), [])


def test_missing_cifar10_says_where_and_what(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"cifar-10-batches-py lacks .*data_batch_1.*settings.data_root.*download: true"):
        load_cifar10(tmp_path / "nowhere")


def test_random_crop_flip_is_a_shifted_window_and_seeded():
    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    out_a = random_crop_flip(images, torch.Generator().manual_seed(0), padding=2, flip=False)
    out_b = random_crop_flip(images, torch.Generator().manual_seed(0), padding=2, flip=False)
    assert torch.equal(out_a, out_b)
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for i in range(2):
        windows = [padded[i, :, r:r + 8, c:c + 8] for r in range(5) for c in range(5)]
        assert any(torch.equal(out_a[i], w) for w in windows)
    flipped = random_crop_flip(images, torch.Generator().manual_seed(1), padding=0, flip=True)
    for i in range(2):
        assert torch.equal(flipped[i], images[i]) or torch.equal(flipped[i], images[i].flip(2))


def test_resnet_loss_function_uses_eval_mode_and_a_fixed_batch():
    run = make_runs("resnet20", TINY_RESNET)[0]
    problem = get_problem("resnet20")(run["settings"], seed=0)
    torch.manual_seed(0)
    model = problem.build_model()
    loss_fn, params = problem.loss_function(model)
    images, labels = problem.evaluation_batch()
    assert images.shape[0] == TINY_RESNET["eval_batch_size"]
    again_images, _ = problem.evaluation_batch()
    assert torch.equal(images, again_images)
    with torch.no_grad():
        direct = torch.nn.functional.cross_entropy(model.eval()(images), labels)
    assert torch.allclose(loss_fn(params), direct, rtol=1e-6)
    # pure: the BatchNorm running statistics are not updated by evaluating it
    before = {k: v.clone() for k, v in model.named_buffers()}
    loss_fn({k: v + 0.01 for k, v in params.items()})
    assert all(torch.equal(before[k], v) for k, v in model.named_buffers())
    assert set(params) == {name for name, _ in model.named_parameters()}


def test_every_registered_problem_implements_the_seam():
    for name, cls in ((name, get_problem(name)) for name in BUILT_IN):
        assert cls.name == name
        for method in ("build_model", "train", "evaluate", "loss_function", "predictions"):
            assert callable(getattr(cls, method))
