"""UNet (Ronneberger et al. 2015) followed by a mean-field CRF layer (CRF-as-RNN, Zheng et al.
2015), trained with cross-entropy for semantic segmentation: Oxford-IIIT Pet trimaps or the
generated `shapes` set (the landscape-profile paper's UNet-CRF learning-rate study)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import lazy_loader
import numpy as np

from ..datasets import (PET_CLASSES, SHAPES_CLASSES, SegmentationData, load_oxford_pet,
                        load_shapes)
from ..io import config_hash
from .base import (Problem, TrainingCurve, check_finite, detached_parameters,
                   mini_batch_optimizer, seeded_subset, settings_from_yaml, train_epochs)

if TYPE_CHECKING:
    from torch import nn

torch = lazy_loader.load("torch")  # imported on first use: validating a config needs no torch


class UNetCRFSegmentation(Problem):
    """UNet-CRF trained with pixel-wise cross-entropy (Adam or SGD, constant learning rate);
    test metrics pixel accuracy and mean IoU on the held-out split."""

    name = "unet_crf"
    settings_schema = settings_from_yaml("""
      dataset: {description: "oxford_pet (trimaps: pet / background / border) or shapes (generated ellipses and rectangles on striped backgrounds).", enum: [oxford_pet, shapes], default: oxford_pet}
      data_root: {description: "Folder holding oxford-iiit-pet/ (images/, annotations/).", type: string, default: data}
      download: {description: "Download Oxford-IIIT Pet into data_root if it is missing.", type: boolean, default: false}
      image_size: {description: "Side of the (square) images and masks after resizing.", type: integer, minimum: 8, default: 224}
      shapes_train_samples: {description: "Training images generated for the shapes dataset.", type: integer, minimum: 1, default: 512}
      shapes_test_samples: {description: "Held-out images generated for the shapes dataset.", type: integer, minimum: 1, default: 128}
      split_seed: {description: "Seed of the shapes images and of max_train_samples' subset.", type: integer, minimum: 0, default: 0}
      max_train_samples: {description: "Train on a fixed subset of this size (null = all).", type: [integer, "null"], minimum: 1, default: null}
      depth: {description: "Resolution levels of the UNet (depth - 1 poolings).", type: integer, minimum: 2, maximum: 8, default: 5}
      width: {description: "Channels of the first level w; levels have (w, 2w, 4w, ...).", type: integer, minimum: 1, default: 32}
      batch_norm: {description: "BatchNorm after every convolution (the landscape and Hessian use its running statistics).", type: boolean, default: true}
      crf_iterations: {description: "Unrolled mean-field steps of the CRF layer (0 = the UNet alone).", type: integer, minimum: 0, default: 5}
      crf_window: {description: "Side of the (odd) neighbourhood of the CRF's Gaussian kernels, in pixels.", type: integer, minimum: 3, default: 7}
      crf_theta_spatial: {description: "Standard deviation of the spatial kernel, in pixels.", type: number, exclusiveMinimum: 0, default: 3.0}
      crf_theta_bilateral: {description: "Standard deviation of the bilateral kernel's position part, in pixels.", type: number, exclusiveMinimum: 0, default: 5.0}
      crf_theta_color: {description: "Standard deviation of the bilateral kernel's colour part, in normalised intensity units.", type: number, exclusiveMinimum: 0, default: 0.5}
      optimizer: {description: "adam or sgd (with momentum).", enum: [adam, sgd], default: adam}
      lr: {description: "Learning rate (constant).", type: number, exclusiveMinimum: 0, default: 0.001}
      momentum: {description: "SGD momentum.", type: number, minimum: 0, maximum: 1, default: 0.9}
      weight_decay: {description: "L2 weight decay.", type: number, minimum: 0, default: 0.0}
      epochs: {description: "Training epochs.", type: integer, minimum: 1, default: 50}
      batch_size: {description: "Mini-batch size.", type: integer, minimum: 1, default: 8}
      augment: {description: "Random horizontal flips of image and mask together.", type: boolean, default: true}
      eval_batch_size: {description: "Images in the fixed evaluation batch (landscape and Hessian loss).", type: integer, minimum: 1, default: 16}
      eval_batches: {description: "Number of such batches.", type: integer, minimum: 1, default: 1}
      eval_seed: {description: "Seed that picks the evaluation batch from the training set.", type: integer, minimum: 0, default: 0}
      example_images: {description: "Test images saved with their true and predicted masks (predictions.npz) for the run panel.", type: integer, minimum: 0, default: 4}
    """)
    sweepable = ("lr", "width", "depth", "optimizer", "batch_size", "epochs", "weight_decay",
                 "crf_iterations", "image_size")
    test_metric = "test_mean_iou"
    metrics = ("final_train_loss", "final_train_pixel_accuracy", "test_loss",
               "test_pixel_accuracy", "test_mean_iou")
    metric_labels = {"test_mean_iou": "test mean IoU", "test_pixel_accuracy": "test pixel accuracy",
                     "test_loss": "test loss",
                     "final_train_pixel_accuracy": "final training pixel accuracy",
                     "lr": "learning rate", "width": "width w"}
    short_labels = {"width": "w"}
    run_panel_plot = "segmentation"

    def __init__(self, settings: dict[str, Any], seed: int, device: Any = "cpu"):
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
        from ..models.unet_crf import MeanFieldCRF, UNet, UNetCRF

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
            return torch.nn.functional.nll_loss(log_probabilities, masks), {"pixel_accuracy": accuracy}

        train_epochs(model, mini_batch_optimizer(model, s), None, batch_loss, len(data.train_masks),
                     s["epochs"], s["batch_size"], self.seed,
                     config_hash({"settings": s, "seed": self.seed}), curve, resume_path)
        loss, accuracy, _ = self._scores(model, data.train_images, data.train_masks)
        check_finite(torch.tensor(loss), len(curve.rows))
        return {"final_train_loss": loss, "final_train_pixel_accuracy": accuracy}

    def _scores(self, model: nn.Module, images: torch.Tensor, masks: torch.Tensor,
                batch_size: int = 16) -> tuple[float, float, np.ndarray]:
        """Mean pixel cross-entropy, pixel accuracy and the confusion matrix (rows: true class),
        in eval mode (BatchNorm running statistics)."""
        model.eval()
        classes = self.num_classes
        total_loss, confusion = 0.0, torch.zeros(classes * classes, dtype=torch.int64)
        with torch.no_grad():
            for begin in range(0, len(masks), batch_size):
                x, y = self._batch(images[begin : begin + batch_size],
                                   masks[begin : begin + batch_size])
                log_probabilities = model(x)
                total_loss += float(torch.nn.functional.nll_loss(log_probabilities, y,
                                                                 reduction="sum"))
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
            log_probabilities = torch.func.functional_call(model, {**params, **buffers}, (images,))
            return torch.nn.functional.nll_loss(log_probabilities, masks)

        return loss, detached_parameters(model)

    def pyhessian_inputs(self, model: nn.Module, loss_fn):
        """PyHessian's own form: the pixel NLL of the log-probabilities on the evaluation batch."""
        return model, torch.nn.functional.nll_loss, self.evaluation_batch()

    def predictions(self, model: nn.Module) -> dict[str, np.ndarray]:
        """The first `example_images` test images with their true and predicted masks."""
        model.eval()
        count = min(self.settings["example_images"], len(self.data.test_masks))
        images, masks = self.data.test_images[:count], self.data.test_masks[:count]
        with torch.no_grad():
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
