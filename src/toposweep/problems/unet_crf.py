"""UNet (Ronneberger et al. 2015) followed by a mean-field CRF layer (CRF-as-RNN, Zheng et al.
2015), trained with cross-entropy for semantic segmentation: Oxford-IIIT Pet trimaps or the
generated `shapes` set (the landscape-profile paper's UNet-CRF learning-rate study)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..datasets import (PET_CLASSES, SHAPES_CLASSES, SegmentationData, load_oxford_pet,
                        load_shapes)
from ..io import config_hash
from .base import (Problem, TrainingCurve, check_finite, detached_parameters,
                   mini_batch_optimizer, seeded_subset, train_epochs)


def double_conv(in_channels: int, out_channels: int, batch_norm: bool) -> nn.Sequential:
    """Two 3x3 convolutions (padding 1), each followed by BatchNorm (optional) and ReLU."""
    layers: list[nn.Module] = []
    for channels in (in_channels, out_channels):
        layers.append(nn.Conv2d(channels, out_channels, 3, padding=1, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_channels))
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class UNet(nn.Module):
    """`depth` resolution levels with (w, 2w, 4w, ...) channels: double convolutions, 2x2 max
    pooling down, 2x2 transposed convolutions up, skip connections by concatenation, and a 1x1
    convolution to class logits. depth 5, width 64, no BatchNorm is the original network."""

    def __init__(self, in_channels: int = 3, num_classes: int = 3, depth: int = 5, width: int = 32,
                 batch_norm: bool = True):
        super().__init__()
        if depth < 2:
            raise ValueError(f"UNet depth must be at least 2, got {depth}")
        channels = [width * 2**level for level in range(depth)]
        self.encoder = nn.ModuleList(
            double_conv(previous, current, batch_norm)
            for previous, current in zip([in_channels, *channels[:-1]], channels)
        )
        self.upsample = nn.ModuleList(
            nn.ConvTranspose2d(channels[level + 1], channels[level], 2, stride=2)
            for level in reversed(range(depth - 1))
        )
        self.decoder = nn.ModuleList(
            double_conv(2 * channels[level], channels[level], batch_norm)
            for level in reversed(range(depth - 1))
        )
        self.head = nn.Conv2d(channels[0], num_classes, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        skips = []
        x = images
        for level, block in enumerate(self.encoder):
            x = block(x if level == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for upsample, block in zip(self.upsample, self.decoder):
            x = block(torch.cat([skips.pop(), upsample(x)], dim=1))
        return self.head(x)


class MeanFieldCRF(nn.Module):
    """Mean-field inference of a dense CRF, unrolled for `iterations` steps as layers.

    Each step: messages = w_s (spatial Gaussian * Q) + w_b (bilateral Gaussian * Q), the
    compatibility transform mu . messages, and Q = softmax(unary logits - mu . messages). Both
    kernels are truncated to a `window` x `window` neighbourhood (as in ConvCRF, Teichmann and
    Cipolla 2019) instead of CRF-as-RNN's permutohedral lattice: exact within the window, plain
    tensor ops that vmap and differentiate twice. Each kernel's spatial part sums to one over the
    window, so a uniform neighbourhood sends a message of at most 1. The learnable parameters are
    the kernel weights w_s, w_b and the compatibility mu (initialised to the Potts model 1 - I);
    mu = 0 makes the layer the identity on the log-probabilities (log_softmax of the logits).
    Returns log-probabilities (B, C, H, W)."""

    def __init__(self, num_classes: int, iterations: int = 5, window: int = 7,
                 theta_spatial: float = 3.0, theta_bilateral: float = 5.0, theta_color: float = 0.5):
        super().__init__()
        if window < 3 or window % 2 == 0:
            raise ValueError(f"CRF window must be odd and at least 3, got {window}")
        self.iterations = iterations
        self.radius = window // 2
        self.theta_color = theta_color
        self.offsets = [(dy, dx) for dy in range(-self.radius, self.radius + 1)
                        for dx in range(-self.radius, self.radius + 1) if (dy, dx) != (0, 0)]
        squared = torch.tensor([float(dy * dy + dx * dx) for dy, dx in self.offsets])
        spatial = torch.exp(-squared / (2 * theta_spatial**2))
        position = torch.exp(-squared / (2 * theta_bilateral**2))
        # Settings, not state: fixed by the config, so not in the checkpoint's state_dict.
        self.register_buffer("spatial_kernel", spatial / spatial.sum(), persistent=False)
        self.register_buffer("bilateral_position", position / position.sum(), persistent=False)
        self.spatial_weight = nn.Parameter(torch.ones(1))
        self.bilateral_weight = nn.Parameter(torch.ones(1))
        self.compatibility = nn.Parameter(1.0 - torch.eye(num_classes))

    def _shifted(self, padded: torch.Tensor, offset: tuple[int, int], height: int, width: int):
        dy, dx = offset
        r = self.radius
        return padded[..., r + dy : r + dy + height, r + dx : r + dx + width]

    def bilateral_kernel(self, image: torch.Tensor) -> torch.Tensor:
        """(B, window^2 - 1, H, W): position Gaussian times colour Gaussian per neighbour."""
        height, width = image.shape[-2:]
        padded = F.pad(image, (self.radius,) * 4)
        colour = torch.stack([((image - self._shifted(padded, offset, height, width)) ** 2).sum(-3)
                              for offset in self.offsets], dim=-3)
        position = self.bilateral_position.reshape(-1, 1, 1)
        return position * torch.exp(-colour / (2 * self.theta_color**2))

    def neighbour_kernels(self, image: torch.Tensor) -> list[torch.Tensor]:
        """w_s spatial + w_b bilateral kernel for each neighbour offset, (B, 1, H, W) each.

        Kept as one tensor per offset (not slices of one stacked tensor): the backward pass of
        48 slices would materialise 48 full-size gradients; measured 4x faster forward, too."""
        bilateral = self.bilateral_kernel(image)
        return [self.spatial_weight * self.spatial_kernel[k]
                + self.bilateral_weight * bilateral[..., k : k + 1, :, :]
                for k in range(len(self.offsets))]

    def messages(self, q: torch.Tensor, kernels: list[torch.Tensor]) -> torch.Tensor:
        """Kernel-weighted sum over the window of the neighbours' marginals (none outside the
        image)."""
        height, width = q.shape[-2:]
        padded = F.pad(q, (self.radius,) * 4)
        total = 0
        for kernel, offset in zip(kernels, self.offsets):
            total = total + kernel * self._shifted(padded, offset, height, width)
        return total

    def forward(self, logits: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        log_q = F.log_softmax(logits, dim=-3)
        if self.iterations == 0:
            return log_q
        kernels = self.neighbour_kernels(image)
        for _ in range(self.iterations):
            messages = self.messages(log_q.exp(), kernels)
            pairwise = torch.einsum("lm,...mhw->...lhw", self.compatibility, messages)
            log_q = F.log_softmax(logits - pairwise, dim=-3)
        return log_q


class UNetCRF(nn.Module):
    """UNet logits refined by the CRF layer, which sees the (normalised) image for its bilateral
    kernel (no CRF: the UNet alone). Returns per-pixel log-probabilities (B, C, H, W)."""

    def __init__(self, unet: UNet, crf: MeanFieldCRF | None):
        super().__init__()
        self.unet = unet
        self.crf = crf

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.unet(images)
        return F.log_softmax(logits, dim=-3) if self.crf is None else self.crf(logits, images)


class UNetCRFSegmentation(Problem):
    """UNet-CRF trained with pixel-wise cross-entropy (Adam or SGD, constant learning rate);
    test metrics pixel accuracy and mean IoU on the held-out split."""

    name = "unet_crf"

    def __init__(self, settings: dict[str, Any], seed: int, device: torch.device | str = "cpu"):
        super().__init__(settings, seed, device)
        self._data: SegmentationData | None = None

    @classmethod
    def settings_errors(cls, settings: dict[str, Any]) -> list[tuple[str, str]]:
        errors = []
        factor = 2 ** (settings["depth"] - 1)
        if settings["image_size"] % factor:
            errors.append(("image_size", f"must be divisible by 2^(depth - 1) = {factor} (depth "
                           f"{settings['depth']} pools {settings['depth'] - 1} times); got "
                           f"{settings['image_size']}"))
        if settings["crf_window"] % 2 == 0:
            errors.append(("crf_window", f"must be odd (a window centred on the pixel); got "
                           f"{settings['crf_window']}"))
        return errors

    @property
    def data(self) -> SegmentationData:
        """Loaded once, on first use; `max_train_samples` keeps a fixed seeded subset."""
        if self._data is None:
            s = self.settings
            if s["dataset"] == "oxford_pet":
                self._data = load_oxford_pet(s["data_root"], s["image_size"], download=s["download"])
            else:
                self._data = load_shapes(s["image_size"], s["shapes_train_samples"],
                                         s["shapes_test_samples"], s["split_seed"])
            limit = s["max_train_samples"]
            if limit is not None and limit < len(self._data.train_masks):
                keep = seeded_subset(len(self._data.train_masks), limit, s["split_seed"])
                self._data.train_images = self._data.train_images[keep]
                self._data.train_masks = self._data.train_masks[keep]
        return self._data

    @property
    def num_classes(self) -> int:
        return len(PET_CLASSES if self.settings["dataset"] == "oxford_pet" else SHAPES_CLASSES)

    def build_model(self) -> nn.Module:
        s = self.settings
        unet = UNet(3, self.num_classes, s["depth"], s["width"], s["batch_norm"])
        crf = (MeanFieldCRF(self.num_classes, s["crf_iterations"], s["crf_window"],
                            s["crf_theta_spatial"], s["crf_theta_bilateral"], s["crf_theta_color"])
               if s["crf_iterations"] > 0 else None)
        return UNetCRF(unet, crf).to(self.device)

    def _batch(self, images: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (self.data.normalised(images.to(self.device)), masks.to(self.device).long())

    def train(
        self, model: nn.Module, curve: TrainingCurve, resume_path: Path | None = None
    ) -> dict[str, float]:
        """Mini-batch epochs with random horizontal flips (image and mask together); the state
        is saved after every epoch to `resume_path`, so a killed run resumes bit-identically."""
        s = self.settings
        data = self.data

        def batch_loss(index: torch.Tensor, generator: torch.Generator):
            images, masks = data.train_images[index], data.train_masks[index]
            if s["augment"]:
                flip = torch.rand(len(index), generator=generator) < 0.5
                images = torch.where(flip[:, None, None, None], images.flip(-1), images)
                masks = torch.where(flip[:, None, None], masks.flip(-1), masks)
            images, masks = self._batch(images, masks)
            log_probabilities = model(images)
            accuracy = float((log_probabilities.argmax(1) == masks).float().mean())
            return F.nll_loss(log_probabilities, masks), {"pixel_accuracy": accuracy}

        train_epochs(model, mini_batch_optimizer(model, s), None, batch_loss, len(data.train_masks),
                     s["epochs"], s["batch_size"], self.seed,
                     config_hash({"settings": s, "seed": self.seed}), curve, resume_path)
        loss, accuracy, _ = self._scores(model, data.train_images, data.train_masks)
        check_finite(torch.tensor(loss), len(curve.rows))
        return {"final_train_loss": loss, "final_train_pixel_accuracy": accuracy}

    @torch.no_grad()
    def _scores(self, model: nn.Module, images: torch.Tensor, masks: torch.Tensor,
                batch_size: int = 16) -> tuple[float, float, np.ndarray]:
        """Mean pixel cross-entropy, pixel accuracy and the confusion matrix (rows: true class),
        in eval mode (BatchNorm running statistics)."""
        model.eval()
        classes = self.num_classes
        total_loss, confusion = 0.0, torch.zeros(classes * classes, dtype=torch.int64)
        for begin in range(0, len(masks), batch_size):
            x, y = self._batch(images[begin : begin + batch_size], masks[begin : begin + batch_size])
            log_probabilities = model(x)
            total_loss += float(F.nll_loss(log_probabilities, y, reduction="sum"))
            pairs = (y * classes + log_probabilities.argmax(1)).flatten().cpu()
            confusion += torch.bincount(pairs, minlength=classes * classes)
        confusion_matrix = confusion.reshape(classes, classes).numpy()
        pixels = max(int(confusion_matrix.sum()), 1)
        return total_loss / pixels, float(np.trace(confusion_matrix)) / pixels, confusion_matrix

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        loss, accuracy, confusion = self._scores(model, self.data.test_images, self.data.test_masks)
        return {"test_loss": loss, "test_pixel_accuracy": accuracy,
                "test_mean_iou": mean_iou(confusion)}

    def evaluation_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """`eval_batches` x `eval_batch_size` training images (no flips), fixed by `eval_seed`:
        the batch every landscape and Hessian evaluation uses."""
        s = self.settings
        count = min(s["eval_batches"] * s["eval_batch_size"], len(self.data.train_masks))
        order = seeded_subset(len(self.data.train_masks), count, s["eval_seed"])
        return self._batch(self.data.train_images[order], self.data.train_masks[order])

    def loss_function(self, model: nn.Module):
        """Pixel cross-entropy on the evaluation batch, BatchNorm in eval mode (running
        statistics), so the loss is a deterministic function of the parameters alone."""
        model.eval()
        images, masks = self.evaluation_batch()
        buffers = {name: b.detach() for name, b in model.named_buffers()}

        def loss(params: dict[str, torch.Tensor]) -> torch.Tensor:
            return F.nll_loss(functional_call(model, {**params, **buffers}, (images,)), masks)

        return loss, detached_parameters(model)

    @torch.no_grad()
    def predictions(self, model: nn.Module) -> dict[str, np.ndarray]:
        """The first `example_images` test images with their true and predicted masks."""
        model.eval()
        count = min(self.settings["example_images"], len(self.data.test_masks))
        images, masks = self.data.test_images[:count], self.data.test_masks[:count]
        predicted = model(self._batch(images, masks)[0]).argmax(1).cpu()
        return {"segmentation_images": images.numpy(),
                "segmentation_masks": masks.long().numpy(),
                "segmentation_predicted": predicted.numpy(),
                "class_names": np.asarray(self.data.class_names)}


def mean_iou(confusion: np.ndarray) -> float:
    """Mean over classes of intersection / union (from a confusion matrix), over the classes that
    occur in the truth or the prediction; NaN when there are no pixels at all."""
    intersection = np.diag(confusion).astype(float)
    union = confusion.sum(0) + confusion.sum(1) - intersection
    present = union > 0
    return float((intersection[present] / union[present]).mean()) if present.any() else float("nan")
