"""UNet (Ronneberger et al. 2015) followed by a mean-field CRF layer (CRF-as-RNN, Zheng et al.
2015) whose Gaussian kernels are truncated to a window, as in ConvCRF."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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
