"""Image data: CIFAR-10 from its python batches and scikit-learn's digits (classification);
Oxford-IIIT Pet trimaps and a generated `shapes` set (segmentation).

No torchvision (it does not import beside the CPU torch wheel here): CIFAR-10's standard
`cifar-10-batches-py` files are pickled numpy arrays, read directly; Oxford-IIIT Pet is JPEG images
and PNG trimaps, which pillow decodes.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import lazy_loader
import numpy as np
from tqdm.auto import tqdm

torch = lazy_loader.load("torch")  # imported on first use: validating a config needs no torch

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
        batch = read_cifar_batch(directory / name)
        try:
            images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels.append(np.asarray(batch[b"labels"], dtype=np.int64))
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{directory / name}: not a CIFAR-10 batch ({type(error).__name__}: "
                             f"{error}); delete {directory} and unpack the archive again") from error
    return np.concatenate(images), np.concatenate(labels)


class RefusedPickle(pickle.UnpicklingError):
    """A CIFAR batch that names a global other than numpy's array reconstruction and plain
    builtins: refused before anything in it runs."""


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """`_codecs.encode` as Python 3 writes bytes into protocol-2 pickles, latin-1 only."""
    if not isinstance(text, str) or encoding.lower().replace("_", "-") not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode({type(text).__name__}, {encoding!r}) refused")
    return text.encode("latin-1")


def _cifar_globals() -> dict[tuple[str, str], object]:
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct

    allowed: dict[tuple[str, str], object] = {}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = _reconstruct
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    allowed[("_codecs", "encode")] = _latin1_encode
    for builtin in (list, dict, tuple, set, frozenset, bytes, bytearray, str, int, float, bool):
        allowed[("builtins", builtin.__name__)] = builtin
        allowed[("__builtin__", builtin.__name__)] = builtin  # Python 2 pickles (fix_imports maps most)
    return allowed


class CifarUnpickler(pickle.Unpickler):
    """Unpickles the python version of CIFAR-10's batches (a dict of a uint8 ndarray, lists of
    ints and bytes) and nothing else: any other global is refused, so a planted batch file cannot
    run code. The official files hold only numpy.core.multiarray._reconstruct, numpy.ndarray and
    numpy.dtype."""

    def __init__(self, file, path: Path, **kwargs):
        super().__init__(file, **kwargs)
        self.path = path
        self.allowed = _cifar_globals()

    def find_class(self, module: str, name: str):
        found = self.allowed.get((module, name))
        if found is None:
            raise RefusedPickle(
                f"{self.path}: refused global {module}.{name}: a CIFAR-10 batch holds only numpy "
                f"arrays, lists, bytes and ints, so this file is not one (it could run code if "
                f"unpickled; nothing in it was executed). Delete it and unpack the official archive "
                f"again")
        return found


def read_cifar_batch(path: Path) -> dict:
    """One `cifar-10-batches-py` file, through CifarUnpickler (encoding="bytes", as they were
    written by Python 2). A refused global raises RefusedPickle, a truncated or corrupt file a
    ValueError; both name the file."""
    try:
        with open(path, "rb") as handle:
            batch = CifarUnpickler(handle, path, encoding="bytes").load()
    except RefusedPickle:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError,
            AttributeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: this CIFAR-10 batch is truncated or corrupt ({type(error).__name__}: "
                         f"{error}); delete it and unpack the archive again") from error
    if not isinstance(batch, dict):
        raise ValueError(f"{path}: not a CIFAR-10 batch (holds a {type(batch).__name__}, not a dict)")
    return batch


def download_archive(url: str, md5: str, data_root: Path) -> None:
    """Fetch `url` into `data_root` (unless already there), check its MD5 and unpack it."""
    data_root.mkdir(parents=True, exist_ok=True)
    archive = data_root / url.rsplit("/", 1)[-1]
    if not archive.exists():
        log.info("downloading %s to %s", url, archive)
        partial = archive.with_name(archive.name + ".part")
        urllib.request.urlretrieve(url, partial)
        partial.rename(archive)
    digest = hashlib.md5(archive.read_bytes()).hexdigest()
    if digest != md5:
        raise ValueError(f"{archive}: MD5 {digest} does not match the published {md5}")
    with tarfile.open(archive) as tar:
        tar.extractall(data_root, filter="data")


def load_cifar10(data_root: str | Path, download: bool = False) -> ImageData:
    """CIFAR-10 from `data_root/cifar-10-batches-py`, normalised per channel with train stats."""
    data_root = Path(data_root)
    directory = data_root / CIFAR10_DIR
    expected = CIFAR10_TRAIN_FILES + CIFAR10_TEST_FILES
    missing = [name for name in expected if not (directory / name).exists()]
    if missing and download:
        download_archive(CIFAR10_URL, CIFAR10_MD5, data_root)
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
            tensor = torch.nn.functional.interpolate(tensor, size=(input_size, input_size), mode="bilinear",
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
    padded = torch.nn.functional.pad(images, (padding, padding, padding, padding))
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


# --- segmentation ----------------------------------------------------------------------------

SHAPES_CLASSES = ("background", "ellipse", "rectangle")
PET_CLASSES = ("pet", "background", "border")  # the trimap's values 1, 2, 3
PET_DIR = "oxford-iiit-pet"
PET_ARCHIVES = (
    ("https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz",
     "5c4f3ee8e5d25df40f4fd59a7f44e54c"),
    ("https://www.robots.ox.ac.uk/~vgg/data/pets/data/annotations.tar.gz",
     "95a8c909bbe2e81eed6a22bccdf3f68f"),
)


@dataclass
class SegmentationData:
    """uint8 RGB images (N, 3, H, W) and uint8 class masks (N, H, W), split into train and test.

    Kept as bytes and normalised per batch (`normalised`) with the training set's channel
    statistics: a 224-pixel Oxford-IIIT Pet then holds 1.1 GB in memory instead of 4.4 GB.
    """

    train_images: torch.Tensor
    train_masks: torch.Tensor
    test_images: torch.Tensor
    test_masks: torch.Tensor
    class_names: tuple[str, ...]
    mean: torch.Tensor = None  # type: ignore[assignment]  # (1, 3, 1, 1), set from the train set
    std: torch.Tensor = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.mean is None:
            self.mean, self.std = channel_statistics(self.train_images)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def normalised(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images -> float32, zero mean and unit variance per channel (train statistics)."""
        return (images.float() / 255.0 - self.mean.to(images.device)) / self.std.to(images.device)


def channel_statistics(images: torch.Tensor, chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation of uint8 images scaled to [0, 1], accumulated in
    float64 over chunks (no float copy of the whole set)."""
    total = torch.zeros(3, dtype=torch.float64)
    squares = torch.zeros(3, dtype=torch.float64)
    for begin in range(0, len(images), chunk):
        batch = images[begin : begin + chunk].double() / 255.0
        total += batch.sum(dim=(0, 2, 3))
        squares += (batch**2).sum(dim=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = (squares / count - mean**2).clamp_min(0).sqrt().clamp_min(1e-6)
    return mean.float().reshape(1, 3, 1, 1), std.float().reshape(1, 3, 1, 1)


def generate_shapes(count: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` images of 1-3 random ellipses (class 1) and rectangles (class 2) on a striped,
    noisy background (class 0), each shape with its own colour and stripes, later shapes
    occluding earlier ones. Returns uint8 images (count, 3, size, size) and uint8 masks
    (count, size, size); the same seed gives the same arrays (one numpy Generator)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) / size
    images = np.empty((count, size, size, 3), dtype=np.float64)
    masks = np.zeros((count, size, size), dtype=np.uint8)
    for i in range(count):
        image = _striped_texture(rng, x, y)
        for _ in range(rng.integers(1, 4)):
            kind = int(rng.integers(1, 3))
            centre_x, centre_y = rng.uniform(0.2, 0.8, 2)
            half_x, half_y = rng.uniform(0.1, 0.25, 2)
            if kind == 1:  # ellipse, rotated
                angle = rng.uniform(0.0, np.pi)
                u = (x - centre_x) * np.cos(angle) + (y - centre_y) * np.sin(angle)
                v = -(x - centre_x) * np.sin(angle) + (y - centre_y) * np.cos(angle)
                inside = (u / half_x) ** 2 + (v / half_y) ** 2 <= 1.0
            else:  # rectangle, axis-aligned
                inside = (np.abs(x - centre_x) <= half_x) & (np.abs(y - centre_y) <= half_y)
            image[inside] = _striped_texture(rng, x, y)[inside]
            masks[i][inside] = kind
        images[i] = image + rng.normal(0.0, 0.03, image.shape)
    pixels = np.round(np.clip(images, 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.ascontiguousarray(pixels.transpose(0, 3, 1, 2)), masks


def _striped_texture(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A random colour modulated by sinusoidal stripes of random frequency, angle and phase."""
    colour = rng.uniform(0.15, 0.85, 3)
    frequency, angle = rng.uniform(2.0, 8.0), rng.uniform(0.0, np.pi)
    phase, amplitude = rng.uniform(0.0, 2 * np.pi), rng.uniform(0.05, 0.2)
    stripes = amplitude * np.sin(2 * np.pi * frequency * (x * np.cos(angle) + y * np.sin(angle)) + phase)
    return np.clip(colour + stripes[..., None], 0.0, 1.0)


def load_shapes(image_size: int, train_samples: int, test_samples: int, seed: int) -> SegmentationData:
    """The generated shapes set: the first `train_samples` images of `seed` train, the next
    `test_samples` are held out (so the training images do not depend on the test count)."""
    images, masks = generate_shapes(train_samples + test_samples, image_size, seed)
    images, masks = torch.from_numpy(images), torch.from_numpy(masks)
    return SegmentationData(images[:train_samples], masks[:train_samples],
                            images[train_samples:], masks[train_samples:], SHAPES_CLASSES)


def load_oxford_pet(data_root: str | Path, image_size: int, download: bool = False) -> SegmentationData:
    """Oxford-IIIT Pet trimaps from `data_root/oxford-iiit-pet` (torchvision's layout: images/*.jpg,
    annotations/trimaps/*.png, annotations/trainval.txt and test.txt): the official trainval split
    trains, test is held out. Images are resized bilinearly and trimaps by nearest neighbour to
    `image_size`; classes pet / background / border. Decoded splits are cached beside the data
    (`toposweep-cache/<split>_<size>.npz`), so later jobs skip the JPEG decoding."""
    directory = Path(data_root) / PET_DIR
    required = [directory / "images", directory / "annotations" / "trimaps",
                directory / "annotations" / "trainval.txt", directory / "annotations" / "test.txt"]
    missing = [str(path) for path in required if not path.exists()]
    if missing and download:
        for url, md5 in PET_ARCHIVES:
            download_archive(url, md5, directory)
        missing = [str(path) for path in required if not path.exists()]
    if missing:
        raise FileNotFoundError(
            f"Oxford-IIIT Pet not found: missing {missing}. Unpack images.tar.gz and "
            f"annotations.tar.gz into {directory} (settings.data_root), or set settings.download: "
            f"true on a machine with internet.")
    train_images, train_masks = _pet_split(directory, "trainval", image_size)
    test_images, test_masks = _pet_split(directory, "test", image_size)
    return SegmentationData(torch.from_numpy(train_images), torch.from_numpy(train_masks),
                            torch.from_numpy(test_images), torch.from_numpy(test_masks), PET_CLASSES)


def _pet_split(directory: Path, split: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    from .io import write_npz

    names = [line.split()[0] for line in (directory / "annotations" / f"{split}.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    cache = directory / "toposweep-cache" / f"{split}_{size}.npz"
    if cache.exists():
        with np.load(cache) as stored:
            if stored["names"].tolist() == names:
                return stored["images"], stored["masks"]
        log.warning("%s does not match %s.txt; decoding again", cache, split)
    images = np.empty((len(names), 3, size, size), dtype=np.uint8)
    masks = np.empty((len(names), size, size), dtype=np.uint8)
    for i, name in enumerate(tqdm(names, desc=f"Oxford-IIIT Pet {split}", disable=None)):
        image_path = directory / "images" / f"{name}.jpg"
        trimap_path = directory / "annotations" / "trimaps" / f"{name}.png"
        with Image.open(image_path) as image:  # a few are greyscale, CMYK or RGBA
            rgb = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        with Image.open(trimap_path) as trimap:
            labels = np.asarray(trimap.resize((size, size), Image.Resampling.NEAREST), dtype=np.int64)
        if labels.ndim != 2 or not np.isin(labels, (1, 2, 3)).all():
            raise ValueError(f"{trimap_path}: a trimap holds the values 1, 2, 3 in one channel; "
                             f"found {np.unique(labels).tolist()[:10]} with shape {labels.shape}")
        images[i] = np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)
        masks[i] = labels - 1
    write_npz(cache, {"names": np.asarray(names), "images": images, "masks": masks})
    return images, masks
