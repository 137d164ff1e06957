"""Image classification data: CIFAR-10 from its python batches, and scikit-learn's digits.

No torchvision (it does not import beside the CPU torch wheel here): CIFAR-10's standard
`cifar-10-batches-py` files are pickled numpy arrays, read directly.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_DIR = "cifar-10-batches-py"
CIFAR10_TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR10_TEST_FILES = ["test_batch"]


@dataclass
class ImageData:
    """Normalised float images (N, C, H, W) and integer labels, split into train and test."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    num_classes: int

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.train_images.shape[1:])  # type: ignore[return-value]


def _read_cifar_batches(directory: Path, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for name in names:
        with open(directory / name, "rb") as handle:
            batch = pickle.load(handle, encoding="bytes")
        images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.append(np.asarray(batch[b"labels"], dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def download_cifar10(data_root: Path) -> None:
    """Fetch and unpack the CIFAR-10 python archive into `data_root`, checking its MD5."""
    data_root.mkdir(parents=True, exist_ok=True)
    archive = data_root / "cifar-10-python.tar.gz"
    if not archive.exists():
        log.info("downloading %s to %s", CIFAR10_URL, archive)
        partial = archive.with_suffix(".part")
        urllib.request.urlretrieve(CIFAR10_URL, partial)
        partial.rename(archive)
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    if md5 != CIFAR10_MD5:
        raise ValueError(f"{archive}: MD5 {md5} does not match CIFAR-10's {CIFAR10_MD5}")
    with tarfile.open(archive) as tar:
        tar.extractall(data_root, filter="data")


def load_cifar10(data_root: str | Path, download: bool = False) -> ImageData:
    """CIFAR-10 from `data_root/cifar-10-batches-py`, normalised per channel with train stats."""
    data_root = Path(data_root)
    directory = data_root / CIFAR10_DIR
    expected = CIFAR10_TRAIN_FILES + CIFAR10_TEST_FILES
    missing = [name for name in expected if not (directory / name).exists()]
    if missing and download:
        download_cifar10(data_root)
        missing = [name for name in expected if not (directory / name).exists()]
    if missing:
        raise FileNotFoundError(
            f"CIFAR-10 not found: {directory} lacks {missing}. Put the python version of CIFAR-10 "
            f"there (settings.data_root), or set settings.download: true on a machine with internet."
        )
    train_x, train_y = _read_cifar_batches(directory, CIFAR10_TRAIN_FILES)
    test_x, test_y = _read_cifar_batches(directory, CIFAR10_TEST_FILES)
    return _normalised(train_x, train_y, test_x, test_y, num_classes=10)


def load_digits(input_size: int, test_fraction: float, split_seed: int) -> ImageData:
    """scikit-learn's bundled 8x8 digits: a stratified, seeded split, upsampled (bilinear) to
    `input_size` and repeated to 3 channels so the same ResNet takes it."""
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    bunch = sklearn_digits()
    images = bunch.images.astype(np.float32)[:, None] / 16.0
    labels = bunch.target.astype(np.int64)
    train_x, test_x, train_y, test_y = train_test_split(
        images, labels, test_size=test_fraction, random_state=split_seed, stratify=labels
    )

    def resize(batch: np.ndarray) -> np.ndarray:
        tensor = torch.from_numpy(batch)
        if input_size != 8:
            tensor = F.interpolate(tensor, size=(input_size, input_size), mode="bilinear",
                                   align_corners=False)
        return tensor.repeat(1, 3, 1, 1).numpy()

    return _normalised(resize(train_x), train_y, resize(test_x), test_y, num_classes=10)


def _normalised(train_x, train_y, test_x, test_y, num_classes: int) -> ImageData:
    train = torch.as_tensor(train_x, dtype=torch.float32)
    test = torch.as_tensor(test_x, dtype=torch.float32)
    if train_x.dtype == np.uint8:
        train, test = train / 255.0, test / 255.0
    mean = train.mean(dim=(0, 2, 3), keepdim=True)
    std = train.std(dim=(0, 2, 3), keepdim=True)
    return ImageData(
        train_images=(train - mean) / std,
        train_labels=torch.as_tensor(train_y),
        test_images=(test - mean) / std,
        test_labels=torch.as_tensor(test_y),
        num_classes=num_classes,
    )


def random_crop_flip(
    images: torch.Tensor, generator: torch.Generator, padding: int = 4, flip: bool = True
) -> torch.Tensor:
    """Standard CIFAR augmentation on a batch: zero-pad, random crop back to size, random
    horizontal flip; all draws from `generator`, so runs are reproducible."""
    n, _, height, width = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    offsets = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator)
    rows = offsets[:, 0, None] + torch.arange(height)  # (n, H)
    cols = offsets[:, 1, None] + torch.arange(width)  # (n, W)
    batch_index = torch.arange(n)[:, None, None]
    cropped = padded.permute(0, 2, 3, 1)[batch_index, rows[:, :, None], cols[:, None, :]]
    cropped = cropped.permute(0, 3, 1, 2)
    if flip:
        mask = torch.rand(n, generator=generator) < 0.5
        cropped = torch.where(mask[:, None, None, None], cropped.flip(3), cropped)
    return cropped.contiguous()
