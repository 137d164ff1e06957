"""CIFAR-style ResNet-20 (He et al. 2016) with a width multiplier, on CIFAR-10 or digits."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import lazy_loader
import numpy as np

from ..datasets import ImageData, load_cifar10, load_digits, random_crop_flip
from ..io import config_hash
from .base import (Problem, TrainingCurve, check_finite, detached_parameters,
                   mini_batch_optimizer, seeded_subset, settings_from_yaml, train_epochs)

if TYPE_CHECKING:
    from torch import nn

torch = lazy_loader.load("torch")  # imported on first use: validating a config needs no torch


class ResNet20Classification(Problem):
    """ResNet-20 trained with SGD (momentum, weight decay, step schedule) on CIFAR-10 or digits."""

    name = "resnet20"
    settings_schema = settings_from_yaml("""
      width: {description: "Channels of the first stage w; stages have (w, 2w, 4w).", type: integer, minimum: 1, default: 16}
      shortcut: {description: "A = parameter-free zero-padded shortcut, B = 1x1 conv + BN.", enum: [A, B], default: A}
      dataset: {description: "cifar10 (from data_root) or digits (scikit-learn's 8x8 digits, upsampled).", enum: [cifar10, digits], default: cifar10}
      data_root: {description: "Folder holding cifar-10-batches-py/.", type: string, default: data}
      download: {description: "Download CIFAR-10 into data_root if it is missing.", type: boolean, default: false}
      input_size: {description: "Side of the digits images after bilinear upsampling from 8.", type: integer, minimum: 8, maximum: 64, default: 32}
      test_fraction: {description: "Held-out fraction of the digits (stratified split).", type: number, exclusiveMinimum: 0, exclusiveMaximum: 1, default: 0.2}
      split_seed: {description: "Seed of the digits split and of max_train_samples' subset.", type: integer, minimum: 0, default: 0}
      max_train_samples: {description: "Train on a fixed subset of this size (null = all).", type: [integer, "null"], minimum: 1, default: null}
      augment: {description: "Random crop (pad 4) for both datasets, plus horizontal flips for cifar10.", type: boolean, default: true}
      optimizer: {description: "sgd (momentum, optional Nesterov) or adam.", enum: [sgd, adam], default: sgd}
      lr: {description: "Initial learning rate.", type: number, exclusiveMinimum: 0, default: 0.1}
      momentum: {description: "SGD momentum.", type: number, minimum: 0, maximum: 1, default: 0.9}
      nesterov: {description: "Nesterov momentum (SGD).", type: boolean, default: false}
      weight_decay: {description: "L2 weight decay.", type: number, minimum: 0, default: 1.0e-4}
      epochs: {description: "Training epochs.", type: integer, minimum: 1, default: 200}
      batch_size: {description: "Mini-batch size.", type: integer, minimum: 1, default: 128}
      milestones: {description: "Epochs at which the learning rate is multiplied by gamma.", type: array, items: {type: integer, minimum: 1}, default: [100, 150]}
      gamma: {description: "Learning-rate factor at each milestone.", type: number, exclusiveMinimum: 0, maximum: 1, default: 0.1}
      eval_batch_size: {description: "Batch size of the fixed evaluation batch (landscape and Hessian loss).", type: integer, minimum: 1, default: 128}
      eval_batches: {description: "Number of such batches.", type: integer, minimum: 1, default: 1}
      eval_seed: {description: "Seed that picks the evaluation batch from the training set.", type: integer, minimum: 0, default: 0}
    """)
    sweepable = ("width", "lr", "optimizer", "momentum", "weight_decay", "batch_size", "epochs",
                 "shortcut")
    test_metric = "test_accuracy"
    metrics = ("final_train_loss", "final_train_accuracy", "test_loss", "test_accuracy",
               "test_error")
    metric_labels = {"test_accuracy": "test accuracy", "test_loss": "test loss",
                     "test_error": "test error", "width": "width w", "lr": "learning rate"}
    short_labels = {"width": "w"}

    def __init__(self, settings: dict[str, Any], seed: int, device: Any = "cpu"):
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
        from ..models.resnet import ResNet20

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
            return torch.nn.functional.cross_entropy(logits, labels), {"accuracy": accuracy}

        train_epochs(model, optimizer, schedule, batch_loss, len(data.train_labels), s["epochs"],
                     s["batch_size"], self.seed, config_hash({"settings": s, "seed": self.seed}),
                     curve, resume_path)
        loss, accuracy = self._loss_accuracy(model, data.train_images, data.train_labels)
        check_finite(torch.tensor(loss), len(curve.rows))
        return {"final_train_loss": loss, "final_train_accuracy": accuracy}

    def _loss_accuracy(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                       batch_size: int = 1000) -> tuple[float, float]:
        """Mean cross-entropy and accuracy in eval mode (BatchNorm running statistics)."""
        model.eval()
        total_loss, correct = 0.0, 0
        with torch.no_grad():
            for begin in range(0, len(labels), batch_size):
                x = images[begin : begin + batch_size].to(self.device)
                y = labels[begin : begin + batch_size].to(self.device)
                logits = model(x)
                total_loss += float(torch.nn.functional.cross_entropy(logits, y, reduction="sum"))
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
            logits = torch.func.functional_call(model, {**params, **buffers}, (images,))
            return torch.nn.functional.cross_entropy(logits, labels)

        return loss, detached_parameters(model)

    def pyhessian_inputs(self, model: nn.Module, loss_fn):
        """PyHessian's own classification form: cross-entropy on the evaluation batch."""
        return model, torch.nn.functional.cross_entropy, self.evaluation_batch()

    def predictions(self, model: nn.Module) -> dict[str, np.ndarray]:
        model.eval()
        with torch.no_grad():
            predicted = [model(self.data.test_images[i : i + 1000].to(self.device)).argmax(1).cpu()
                         for i in range(0, len(self.data.test_labels), 1000)]
        return {"test_labels": self.data.test_labels.numpy(),
                "test_predicted": torch.cat(predicted).numpy()}
