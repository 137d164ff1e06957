"""CIFAR-style ResNet-20 (He et al. 2016) with a width multiplier, on CIFAR-10 or digits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..datasets import ImageData, load_cifar10, load_digits, random_crop_flip
from ..io import config_hash
from .base import (Problem, TrainingCurve, check_finite, detached_parameters,
                   mini_batch_optimizer, seeded_subset, train_epochs)


class ShortcutA(nn.Module):
    """Parameter-free shortcut: stride by subsampling, extra channels zero-padded."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.stride = stride
        extra = out_channels - in_channels
        self.padding = (0, 0, 0, 0, extra // 2, extra - extra // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, :: self.stride, :: self.stride], self.padding)


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, shortcut: str):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            if shortcut == "A":
                self.shortcut = ShortcutA(in_channels, out_channels, stride)
            else:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                    nn.BatchNorm2d(out_channels),
                )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet20(nn.Module):
    """3x3 conv to w channels, 3 stages of 3 basic blocks at (w, 2w, 4w), global pool, linear."""

    def __init__(self, width: int = 16, shortcut: str = "A", num_classes: int = 10,
                 in_channels: int = 3, blocks_per_stage: int = 3):
        super().__init__()
        if shortcut not in ("A", "B"):
            raise ValueError(f"shortcut must be 'A' or 'B', got {shortcut!r}")
        self.conv = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        stages, channels = [], width
        for stage, out_channels in enumerate((width, 2 * width, 4 * width)):
            blocks = []
            for block in range(blocks_per_stage):
                stride = 2 if stage > 0 and block == 0 else 1
                blocks.append(BasicBlock(channels, out_channels, stride, shortcut))
                channels = out_channels
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(channels, num_classes)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.stages(F.relu(self.bn(self.conv(x))))
        return self.head(out.mean(dim=(2, 3)))


class ResNet20Classification(Problem):
    """ResNet-20 trained with SGD (momentum, weight decay, step schedule) on CIFAR-10 or digits."""

    name = "resnet20"

    def __init__(self, settings: dict[str, Any], seed: int, device: torch.device | str = "cpu"):
        super().__init__(settings, seed, device)
        self._data: ImageData | None = None

    @property
    def data(self) -> ImageData:
        """Loaded once, on first use (the landscape stage may need only the evaluation batch)."""
        if self._data is None:
            s = self.settings
            if s["dataset"] == "cifar10":
                self._data = load_cifar10(s["data_root"], download=s["download"])
            else:
                self._data = load_digits(s["input_size"], s["test_fraction"], s["split_seed"])
            limit = s["max_train_samples"]
            if limit is not None and limit < len(self._data.train_labels):
                keep = seeded_subset(len(self._data.train_labels), limit, s["split_seed"])
                self._data.train_images = self._data.train_images[keep]
                self._data.train_labels = self._data.train_labels[keep]
        return self._data

    def build_model(self) -> nn.Module:
        s = self.settings
        model = ResNet20(s["width"], s["shortcut"], num_classes=10, in_channels=3)
        return model.to(self.device)

    def train(
        self, model: nn.Module, curve: TrainingCurve, resume_path: Path | None = None
    ) -> dict[str, float]:
        """Mini-batch training; after every epoch the full state (model, optimizer, schedule,
        RNG, curve) is saved to `resume_path`, so a killed run continues bit-identically."""
        s = self.settings
        data = self.data
        optimizer = mini_batch_optimizer(model, s)
        schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, s["milestones"], s["gamma"])

        def batch_loss(index: torch.Tensor, generator: torch.Generator):
            images = data.train_images[index]
            if s["augment"]:
                images = random_crop_flip(images, generator, flip=s["dataset"] == "cifar10")
            labels = data.train_labels[index].to(self.device)
            logits = model(images.to(self.device))
            accuracy = float((logits.argmax(1) == labels).float().mean())
            return F.cross_entropy(logits, labels), {"accuracy": accuracy}

        train_epochs(model, optimizer, schedule, batch_loss, len(data.train_labels), s["epochs"],
                     s["batch_size"], self.seed, config_hash({"settings": s, "seed": self.seed}),
                     curve, resume_path)
        loss, accuracy = self._loss_accuracy(model, data.train_images, data.train_labels)
        check_finite(torch.tensor(loss), len(curve.rows))
        return {"final_train_loss": loss, "final_train_accuracy": accuracy}

    @torch.no_grad()
    def _loss_accuracy(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                       batch_size: int = 1000) -> tuple[float, float]:
        """Mean cross-entropy and accuracy in eval mode (BatchNorm running statistics)."""
        model.eval()
        total_loss, correct = 0.0, 0
        for begin in range(0, len(labels), batch_size):
            x = images[begin : begin + batch_size].to(self.device)
            y = labels[begin : begin + batch_size].to(self.device)
            logits = model(x)
            total_loss += float(F.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
        return total_loss / len(labels), correct / len(labels)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        loss, accuracy = self._loss_accuracy(model, self.data.test_images, self.data.test_labels)
        return {"test_loss": loss, "test_accuracy": accuracy, "test_error": 1.0 - accuracy}

    def evaluation_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """`eval_batches` x `eval_batch_size` training images (no augmentation), fixed by
        `eval_seed`: the batch every landscape and Hessian evaluation uses."""
        s = self.settings
        count = min(s["eval_batches"] * s["eval_batch_size"], len(self.data.train_labels))
        order = seeded_subset(len(self.data.train_labels), count, s["eval_seed"])
        return (self.data.train_images[order].to(self.device),
                self.data.train_labels[order].to(self.device))

    def loss_function(self, model: nn.Module):
        """Cross-entropy on the evaluation batch, BatchNorm in eval mode (running statistics),
        so the loss is a deterministic function of the parameters alone."""
        model.eval()
        images, labels = self.evaluation_batch()
        buffers = {name: b.detach() for name, b in model.named_buffers()}

        def loss(params: dict[str, torch.Tensor]) -> torch.Tensor:
            logits = functional_call(model, {**params, **buffers}, (images,))
            return F.cross_entropy(logits, labels)

        return loss, detached_parameters(model)

    @torch.no_grad()
    def predictions(self, model: nn.Module) -> dict[str, np.ndarray]:
        model.eval()
        predicted = [model(self.data.test_images[i : i + 1000].to(self.device)).argmax(1).cpu()
                     for i in range(0, len(self.data.test_labels), 1000)]
        return {"test_labels": self.data.test_labels.numpy(),
                "test_predicted": torch.cat(predicted).numpy()}
