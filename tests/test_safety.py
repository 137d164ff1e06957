"""Trust: files on disk are data, never code, and every bad file is named.

A planted resume state, checkpoint or CIFAR-10 batch whose pickle would run code must be refused
without running anything (a marker file that the payload would create must never appear), with
an error naming the file; a truncated or empty checkpoint raises an error naming the file and
what to do; a full disk while writing raises an OSError naming the output and leaves no
temporary file behind.
"""

from __future__ import annotations

import errno
import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY_RESNET, make_runs
from toposweep import datasets, io
from toposweep.training import train_run


class Planted:
    """Unpickling this runs `open(marker, "w")` through builtins.exec: arbitrary code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def _tiny_checkpoint(path: Path) -> Path:
    state = {"weight": torch.arange(600, dtype=torch.float32).reshape(20, 30), "bias": torch.ones(20)}
    io.save_checkpoint(path, state, {"experiment": "t", "seed": 0}, "resnet20", "ok")
    return path


# --- (a) a planted resume state ----------------------------------------------------------------
@pytest.fixture
def planted_resume(tmp_path):
    run = make_runs("resnet20", TINY_RESNET)[0]
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    marker = tmp_path / "marker"
    resume = run_dir / ".train_state.pt"
    torch.save({"key": Planted(marker)}, resume)
    return run, run_dir, resume, marker


def _raised(call, *args) -> BaseException | None:
    try:
        call(*args)
    except Exception as error:
        return error
    return None


def test_planted_resume_state_runs_no_code(planted_resume):
    """Today (problems/base.py: weights-only torch.load) the run is refused with torch's
    UnpicklingError and nothing is written."""
    run, run_dir, _, marker = planted_resume
    error = _raised(train_run, run, run_dir)
    assert not marker.exists(), "unpickling the planted resume state ran its code"
    assert error is not None, "training went on over a planted resume state"
    assert not (run_dir / "train_metrics.json").exists()


def test_planted_resume_state_error_names_the_file(planted_resume):
    run, run_dir, resume, marker = planted_resume
    with pytest.raises(Exception) as caught:
        train_run(run, run_dir)
    assert not marker.exists()
    assert str(resume) in str(caught.value)


# --- (b) a planted checkpoint -------------------------------------------------------------------
def test_planted_checkpoint_is_refused_unrun(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "checkpoint.pt"
    torch.save({"state_dict": {}, "hash": Planted(marker)}, path)
    error = _raised(io.load_checkpoint, path)
    assert not marker.exists(), "unpickling the planted checkpoint ran its code"
    assert isinstance(error, io.UnsafeFile)
    message = str(error)
    assert str(path) in message
    assert re.search(r"refused global (builtins\.)?exec\b", message)
    assert "do not load it with torch.load's weights_only turned off" in message  # never the advice to retry unsafely
    assert isinstance(error, ValueError)


# --- (c) a planted CIFAR-10 batch ---------------------------------------------------------------
def _cifar_batch(n: int, seed: int, label: str) -> dict:
    rng = np.random.default_rng(seed)
    return {b"batch_label": label.encode(), b"labels": rng.integers(0, 10, n).tolist(),
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"filenames": [f"img_{seed}_{i}.png".encode() for i in range(n)]}


def _synthetic_cifar(root: Path, n: int = 4) -> Path:
    directory = root / datasets.CIFAR10_DIR
    directory.mkdir(parents=True)
    for index, name in enumerate(datasets.CIFAR10_TRAIN_FILES + datasets.CIFAR10_TEST_FILES):
        with open(directory / name, "wb") as handle:
            pickle.dump(_cifar_batch(n, index, f"batch {index}"), handle, protocol=2)
    return directory


def test_load_cifar10_reads_synthetic_batches(tmp_path):
    directory = _synthetic_cifar(tmp_path)
    # the official files were written by numpy 1.x (numpy.core.multiarray); numpy 2 writes
    # numpy._core: both must load. Protocol 2 GLOBAL opcodes are text, so the rename is exact.
    old_style = (directory / "data_batch_1").read_bytes().replace(b"numpy._core.multiarray",
                                                                   b"numpy.core.multiarray")
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in old_style
    (directory / "data_batch_1").write_bytes(old_style)
    data = datasets.load_cifar10(tmp_path)
    assert tuple(data.train_images.shape) == (20, 3, 32, 32)
    assert tuple(data.test_images.shape) == (4, 3, 32, 32)
    expected = np.concatenate([_cifar_batch(4, i, "")[b"labels"] for i in range(5)])
    np.testing.assert_array_equal(data.train_labels.numpy(), expected)
    batch = datasets.read_cifar_batch(directory / "test_batch")
    np.testing.assert_array_equal(batch[b"data"], _cifar_batch(4, 5, "")[b"data"])
    assert batch[b"filenames"][0] == b"img_5_0.png"


def test_planted_cifar_batch_is_refused_unrun(tmp_path):
    directory = _synthetic_cifar(tmp_path)
    marker = tmp_path / "marker"
    planted = {**_cifar_batch(4, 9, "batch 3"), b"data": Planted(marker)}
    target = directory / "data_batch_3"
    with open(target, "wb") as handle:
        pickle.dump(planted, handle, protocol=2)
    error = _raised(datasets.load_cifar10, tmp_path)
    assert not marker.exists(), "unpickling the planted CIFAR batch ran its code"
    assert isinstance(error, pickle.UnpicklingError)
    assert str(target) in str(error)
    assert re.search(r"refused global (__builtin__\.|builtins\.)?exec\b", str(error))


def test_cifar_encode_is_latin1_only(tmp_path):
    """_codecs.encode is admitted (Python 3 writes bytes into protocol-2 pickles with it) but
    only for latin-1, so it cannot reach other codecs."""
    target = tmp_path / "batch"
    target.write_bytes(b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00xX\x04\x00\x00\x00zlib\x86R.")
    with pytest.raises(ValueError, match="corrupt") as caught:
        datasets.read_cifar_batch(target)
    assert str(target) in str(caught.value)


# --- (d) truncated and empty checkpoints --------------------------------------------------------
@pytest.mark.parametrize("cut", ["half", "empty", "garbage"])
def test_bad_checkpoint_raises_a_named_error(tmp_path, cut):
    path = _tiny_checkpoint(tmp_path / "checkpoint.pt")
    assert io.load_checkpoint(path)["status"] == "ok"
    data = path.read_bytes()
    path.write_bytes({"half": data[: len(data) // 2], "empty": b"",
                      "garbage": b"\x80\x02not a checkpoint" * 7}[cut])
    with pytest.raises(io.CorruptFile) as caught:
        io.load_checkpoint(path)
    message = str(caught.value)
    assert str(path) in message
    assert ("empty" if cut == "empty" else "truncated or corrupt") in message
    assert "delete it to retrain" in message
    assert isinstance(caught.value, ValueError)


def test_load_torch_file_names_the_file(tmp_path):
    path = tmp_path / "eigenvectors.pt"
    path.write_bytes(b"")
    with pytest.raises(io.CorruptFile, match="eigenvectors"):
        io.load_torch_file(path, "eigenvectors")
    with pytest.raises(FileNotFoundError):
        io.load_torch_file(tmp_path / "missing.pt", "trajectory")
    torch.save({"parameters": torch.zeros(2, 3)}, path)
    assert io.load_torch_file(path, "trajectory")["parameters"].shape == (2, 3)


# --- (e) a full disk ----------------------------------------------------------------------------
def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_write_error_names_the_target_and_leaves_no_temp(tmp_path):
    """Simulated: the writer raises OSError(EDQUOT) inside the atomic block."""
    target = tmp_path / "out" / "table.csv"
    quota = getattr(errno, "EDQUOT", errno.ENOSPC)
    with pytest.raises(OSError) as caught:
        with io.atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise OSError(quota, os.strerror(quota))
    assert caught.value.errno == quota
    assert str(target) in str(caught.value)
    assert _leftovers(target.parent) == []


@pytest.fixture
def full_disk(tmp_path, monkeypatch):
    """Real ENOSPC from the kernel: atomic_path's temporary file becomes a symlink to /dev/full
    (every write to it fails with ENOSPC), made where mkstemp would have made the file."""
    if not os.access("/dev/full", os.W_OK):
        pytest.skip("no writable /dev/full")
    made = []

    def mkstemp(prefix="", suffix="", dir=None, text=False):
        link = Path(dir) / f"{prefix}full{suffix}"
        link.symlink_to("/dev/full")
        made.append(link)
        return os.open(link, os.O_WRONLY), str(link)

    monkeypatch.setattr(io.tempfile, "mkstemp", mkstemp)
    return made


@pytest.mark.parametrize("writer", ["text", "npz", "checkpoint"])
def test_full_disk_names_the_target_and_leaves_no_temp(tmp_path, full_disk, writer):
    target = tmp_path / {"text": "metrics.json", "npz": "predictions.npz", "checkpoint": "checkpoint.pt"}[writer]
    with pytest.raises(OSError) as caught:
        if writer == "text":
            io.write_json(target, {"loss": 1.0})
        elif writer == "npz":
            io.write_npz(target, {"x": np.zeros(1000)})
        else:
            _tiny_checkpoint(target)
    assert full_disk, "the write did not go through atomic_path"
    assert caught.value.errno == errno.ENOSPC
    assert str(target) in str(caught.value)
    assert not target.exists()
    assert _leftovers(tmp_path) == []
