"""The unet_crf problem: UNet sizes, the CRF layer against a dense mean-field computation, the
segmentation data (generated shapes, Oxford-IIIT Pet's layout), metrics and the loss seam."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from toposweep.config import ConfigError, validate_config
from toposweep.datasets import PET_CLASSES, SHAPES_CLASSES, generate_shapes, load_oxford_pet, load_shapes
from toposweep.directions import random_directions
from toposweep.io import read_json
from toposweep.landscape import sample_grid
from toposweep.problems import get_problem
from toposweep.models.unet_crf import MeanFieldCRF, UNet
from toposweep.problems.unet_crf import mean_iou
from toposweep.training import load_trained, train_run

from conftest import make_runs

TINY_UNET = {
    "dataset": "shapes", "image_size": 16, "depth": 2, "width": 4, "crf_iterations": 2,
    "shapes_train_samples": 48, "shapes_test_samples": 16, "epochs": 3, "batch_size": 8,
    "eval_batch_size": 4, "lr": 0.01,
}


def n_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def expected_unet_parameters(width: int, depth: int, in_channels: int, classes: int,
                             batch_norm: bool) -> int:
    """Counted layer by layer: 3x3 convs (bias only without BatchNorm; BN has 2 per channel),
    2x2 transposed convs with bias, the 1x1 head with bias."""
    def conv3(i, o):
        return 9 * i * o + (2 * o if batch_norm else o)

    channels = [width * 2**level for level in range(depth)]
    total, previous = 0, in_channels
    for c in channels:
        total += conv3(previous, c) + conv3(c, c)
        previous = c
    for level in range(depth - 1):
        c = channels[level]
        total += 4 * channels[level + 1] * c + c + conv3(2 * c, c) + conv3(c, c)
    return total + channels[0] * classes + classes


def test_original_unet_has_its_published_parameter_count():
    # Ronneberger et al.'s network (1 input channel, 2 classes, no BatchNorm): 31,030,658 in
    # Keras summaries; with 3 input channels and 3 classes 31,031,875.
    assert n_parameters(UNet(1, 2, depth=5, width=64, batch_norm=False)) == 31_030_658
    assert n_parameters(UNet(3, 3, depth=5, width=64, batch_norm=False)) == 31_031_875


@pytest.mark.parametrize("width, expected", [(32, 7_763_107), (4, 122_103)])
def test_unet_parameter_count_at_the_paper_widths(width, expected):
    unet = UNet(3, 3, depth=5, width=width, batch_norm=True)
    assert n_parameters(unet) == expected == expected_unet_parameters(width, 5, 3, 3, True)


def test_problem_model_is_unet_plus_the_crf_parameters():
    problem = get_problem("unet_crf")(make_runs("unet_crf", {"width": 8})[0]["settings"], 0)
    model = problem.build_model()
    # The CRF adds the 3x3 compatibility matrix and its two kernel weights.
    assert n_parameters(model) == expected_unet_parameters(8, 5, 3, 3, True) + 9 + 2


def test_unet_keeps_the_image_size():
    out = UNet(3, 3, depth=3, width=4)(torch.randn(2, 3, 20, 12))
    assert out.shape == (2, 3, 20, 12)


def random_crf(seed: int = 0, classes: int = 3, iterations: int = 3, window: int = 3):
    torch.manual_seed(seed)
    crf = MeanFieldCRF(classes, iterations, window, theta_spatial=1.5, theta_bilateral=2.0,
                       theta_color=0.7)
    with torch.no_grad():
        crf.compatibility.copy_(torch.randn(classes, classes))
        crf.spatial_weight.fill_(0.8)
        crf.bilateral_weight.fill_(1.7)
    return crf


def test_crf_output_is_a_distribution_over_classes():
    crf = random_crf()
    logits, image = 3 * torch.randn(2, 3, 9, 7), torch.randn(2, 3, 9, 7)
    log_q = crf(logits, image)
    q = log_q.exp()
    assert torch.isfinite(log_q).all() and (q >= 0).all()
    assert torch.allclose(q.sum(dim=1), torch.ones(2, 9, 7), atol=1e-6)
    # and not the trivial distribution: the pairwise term changed the unaries' softmax
    assert (q - F.softmax(logits, dim=1)).abs().max() > 1e-2


def test_crf_with_zero_compatibility_is_the_identity():
    crf = random_crf(iterations=5)
    with torch.no_grad():
        crf.compatibility.zero_()
    logits, image = 3 * torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    assert torch.allclose(crf(logits, image), F.log_softmax(logits, dim=1), atol=1e-6)


def dense_mean_field(logits, image, crf, theta_spatial, theta_bilateral, theta_color):
    """The same mean-field iterations with explicit N x N kernel matrices (numpy, float64)."""
    classes, height, width = logits.shape
    radius = crf.radius
    offsets = [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)
               if (dy, dx) != (0, 0)]
    z_spatial = sum(np.exp(-(dy * dy + dx * dx) / (2 * theta_spatial**2)) for dy, dx in offsets)
    z_position = sum(np.exp(-(dy * dy + dx * dx) / (2 * theta_bilateral**2)) for dy, dx in offsets)
    n = height * width
    spatial, bilateral = np.zeros((n, n)), np.zeros((n, n))
    for y in range(height):
        for x in range(width):
            for dy, dx in offsets:
                yy, xx = y + dy, x + dx
                if 0 <= yy < height and 0 <= xx < width:
                    i, j = y * width + x, yy * width + xx
                    d2 = dy * dy + dx * dx
                    spatial[i, j] = np.exp(-d2 / (2 * theta_spatial**2)) / z_spatial
                    colour = ((image[:, y, x] - image[:, yy, xx]) ** 2).sum()
                    bilateral[i, j] = (np.exp(-d2 / (2 * theta_bilateral**2)) / z_position
                                       * np.exp(-colour / (2 * theta_color**2)))
    kernel = crf.spatial_weight.item() * spatial + crf.bilateral_weight.item() * bilateral
    unary = logits.reshape(classes, n).T  # (N, C)
    mu = crf.compatibility.detach().double().numpy()

    def log_softmax(a):
        a = a - a.max(axis=1, keepdims=True)
        return a - np.log(np.exp(a).sum(axis=1, keepdims=True))

    log_q = log_softmax(unary)
    for _ in range(crf.iterations):
        messages = kernel @ np.exp(log_q)  # (N, C)
        log_q = log_softmax(unary - messages @ mu.T)
    return log_q.T.reshape(classes, height, width)


def test_crf_equals_dense_mean_field_inference():
    crf = random_crf(iterations=3, window=5)
    logits, image = 2 * torch.randn(1, 3, 6, 5), torch.randn(1, 3, 6, 5)
    expected = dense_mean_field(logits[0].double().numpy(), image[0].double().numpy(), crf,
                                1.5, 2.0, 0.7)
    np.testing.assert_allclose(crf(logits, image)[0].detach().numpy(), expected, atol=2e-5)


def test_crf_window_must_be_odd():
    with pytest.raises(ValueError, match="odd"):
        MeanFieldCRF(3, window=4)


def test_shapes_are_deterministic_per_seed():
    images, masks = generate_shapes(6, 24, seed=7)
    again_images, again_masks = generate_shapes(6, 24, seed=7)
    other_images, other_masks = generate_shapes(6, 24, seed=8)
    assert images.shape == (6, 3, 24, 24) and images.dtype == np.uint8
    assert masks.shape == (6, 24, 24) and masks.dtype == np.uint8
    np.testing.assert_array_equal(images, again_images)
    np.testing.assert_array_equal(masks, again_masks)
    assert (images != other_images).mean() > 0.5 and (masks != other_masks).any()
    assert set(np.unique(generate_shapes(32, 24, seed=0)[1])) == {0, 1, 2}


def test_shapes_split_keeps_the_training_images_when_the_test_count_changes():
    small = load_shapes(16, train_samples=10, test_samples=2, seed=3)
    large = load_shapes(16, train_samples=10, test_samples=7, seed=3)
    assert small.class_names == SHAPES_CLASSES and len(large.test_masks) == 7
    assert torch.equal(small.train_images, large.train_images)
    normalised = small.normalised(small.train_images)
    assert torch.allclose(normalised.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(normalised.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)


def write_pet_tree(root, splits: dict[str, list[str]], seed: int = 0) -> dict[str, np.ndarray]:
    """A miniature Oxford-IIIT Pet in torchvision's layout: JPEG images (one greyscale) and PNG
    trimaps constant on 2x2 blocks, so nearest-neighbour halving has a known answer."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = root / "oxford-iiit-pet"
    (base / "images").mkdir(parents=True)
    (base / "annotations" / "trimaps").mkdir(parents=True)
    labels = {}
    for split, names in splits.items():
        lines = ["#Image CLASS-ID SPECIES BREED ID"] + [f"{name} 1 1 1" for name in names]
        (base / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")
        for k, name in enumerate(names):
            small = rng.integers(1, 4, size=(8, 8)).astype(np.uint8)
            labels[name] = small - 1
            Image.fromarray(np.kron(small, np.ones((2, 2), np.uint8))).save(
                base / "annotations" / "trimaps" / f"{name}.png")
            pixels = rng.integers(0, 256, size=(16, 16, 3)).astype(np.uint8)
            image = Image.fromarray(pixels[..., 0], "L") if k == 0 else Image.fromarray(pixels)
            image.save(base / "images" / f"{name}.jpg")
    return labels


def test_oxford_pet_loader_reads_the_official_splits(tmp_path, monkeypatch):
    labels = write_pet_tree(tmp_path, {"trainval": ["cat_1", "dog_2", "cat_3"], "test": ["dog_9"]})
    data = load_oxford_pet(tmp_path, image_size=8)
    assert data.class_names == PET_CLASSES
    assert data.train_images.shape == (3, 3, 8, 8) and data.train_images.dtype == torch.uint8
    assert data.test_masks.shape == (1, 8, 8)
    for index, name in enumerate(["cat_1", "dog_2", "cat_3"]):
        np.testing.assert_array_equal(data.train_masks[index].numpy(), labels[name])
    np.testing.assert_array_equal(data.test_masks[0].numpy(), labels["dog_9"])
    grey = data.train_images[0]
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])  # greyscale -> RGB
    cache = tmp_path / "oxford-iiit-pet" / "toposweep-cache" / "trainval_8.npz"
    assert cache.exists()

    import PIL.Image

    def no_decoding(*args, **kwargs):
        raise AssertionError("the cached split should not be decoded again")

    monkeypatch.setattr(PIL.Image, "open", no_decoding)
    again = load_oxford_pet(tmp_path, image_size=8)
    assert torch.equal(again.train_images, data.train_images)


def test_oxford_pet_loader_names_what_is_missing_and_bad_trimaps(tmp_path):
    with pytest.raises(FileNotFoundError, match="oxford-iiit-pet.*download: true"):
        load_oxford_pet(tmp_path, image_size=8)
    write_pet_tree(tmp_path, {"trainval": ["cat_1"], "test": ["dog_9"]})
    from PIL import Image

    bad = tmp_path / "oxford-iiit-pet" / "annotations" / "trimaps" / "cat_1.png"
    Image.fromarray(np.full((16, 16), 7, np.uint8)).save(bad)
    with pytest.raises(ValueError, match="cat_1.png.*1, 2, 3"):
        load_oxford_pet(tmp_path, image_size=8)


def test_mean_iou_of_a_known_confusion_matrix():
    confusion = np.array([[5, 1, 0], [2, 3, 0], [0, 0, 0]])  # class 2 never occurs
    # IoU_0 = 5 / (6 + 7 - 5), IoU_1 = 3 / (5 + 4 - 3)
    assert mean_iou(confusion) == pytest.approx((5 / 8 + 3 / 6) / 2)
    assert np.isnan(mean_iou(np.zeros((3, 3), int)))


@pytest.mark.parametrize("settings, key", [
    ({"image_size": 20, "depth": 4}, "settings.image_size: must be divisible by 2^(depth - 1) = 8"),
    ({"crf_window": 6}, "settings.crf_window: must be odd"),
])
def test_inconsistent_settings_are_rejected_before_any_job(settings, key):
    with pytest.raises(ConfigError, match=key.replace("(", r"\(").replace(")", r"\)")
                       .replace("^", r"\^").replace(".", r"\.")):
        validate_config({"experiments": [{"name": "u", "problem": "unet_crf", "settings": settings}]})


def test_tiny_unet_crf_trains_and_exposes_its_loss(tmp_path):
    run = make_runs("unet_crf", TINY_UNET)[0]
    metrics = train_run(run, tmp_path)
    assert metrics["status"] == "ok"
    assert 0 <= metrics["test_pixel_accuracy"] <= 1 and 0 <= metrics["test_mean_iou"] <= 1
    curve = read_json(tmp_path / "train_metrics.json")
    assert curve["final_train_loss"] < np.log(3)  # better than the uniform prediction
    with np.load(tmp_path / "predictions.npz") as npz:
        assert npz["segmentation_images"].shape == (4, 3, 16, 16)
        assert npz["segmentation_predicted"].shape == npz["segmentation_masks"].shape == (4, 16, 16)
        assert list(npz["class_names"]) == list(SHAPES_CLASSES)

    problem, model, _ = load_trained(tmp_path / "checkpoint.pt")
    loss_fn, params = problem.loss_function(model)
    images, masks = problem.evaluation_batch()
    with torch.no_grad():
        direct = F.nll_loss(model(images), masks)
    assert float(loss_fn(params)) == pytest.approx(float(direct), rel=1e-6)
    directions = random_directions(params, 2, seed=0)
    axes = [np.linspace(-0.5, 0.5, 3)] * 2
    looped = sample_grid(loss_fn, params, directions, axes, method="loop")
    batched = sample_grid(loss_fn, params, directions, axes, method="vmap", chunk_size=4)
    np.testing.assert_allclose(batched, looped, rtol=1e-5)
    assert looped[1, 1] == pytest.approx(float(direct), rel=1e-6)


def test_unet_crf_training_is_reproducible_and_crf_free_when_asked(tmp_path):
    run = make_runs("unet_crf", {**TINY_UNET, "epochs": 1})[0]
    hashes = [train_run(run, tmp_path / name)["checkpoint_hash"] for name in ("a", "b")]
    assert hashes[0] == hashes[1]
    plain = get_problem("unet_crf")(make_runs("unet_crf", {**TINY_UNET, "crf_iterations": 0})[0]["settings"], 0)
    model = plain.build_model().eval()
    assert model.crf is None
    x = torch.randn(1, 3, 16, 16)
    assert torch.allclose(model(x), F.log_softmax(model.unet(x), dim=1))
