"""File formats and atomic writes: every output appears whole or not at all.

torch, pandas and h5py are imported where they are used, so stages without them (topology,
figures) can use this module in their lighter environments.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import pickle
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    import torch

CHECKPOINT_KEYS = ("state_dict", "run_config", "problem", "status", "hash", "config_hash")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    A crash (or SIGKILL) mid-write leaves at most a stray `.tmp` file, never a truncated output
    that a later stage would trust. An OSError while writing (a full disk: ENOSPC, a quota:
    EDQUOT, ...) comes out as an OSError of the same errno whose message names `path`, and the
    temporary file is removed.
    """
    path = Path(path)
    tmp_path: Path | None = None
    try:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.close(fd)
            tmp_path = Path(tmp)
            yield tmp_path
            # mkstemp makes private (0600) files; give the output the permissions a plain open()
            # would, so collaborators on a shared file system can read results.
            os.chmod(tmp_path, 0o666 & ~_current_umask())
            os.replace(tmp_path, path)
        except OSError as error:
            if error.filename is not None and os.fspath(error.filename) not in (
                    str(tmp_path), str(path), str(path.parent)):
                raise  # about another file (an input the block read): it names that one already
            raise _write_error(error, path) from error
    finally:
        if tmp_path is not None:
            tmp_path.unlink(missing_ok=True)


def _write_error(error: OSError, path: Path) -> OSError:
    """`error` restated to name the output `path` (same errno, so the same OSError subclass)."""
    reason = error.strerror or str(error)
    hint = ""
    if error.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", None)):
        hint = f" (free space on the file system of {path.parent} and rerun; nothing was half-written)"
    message = f"could not write {path}: {reason}{hint}"
    if error.errno is None:
        return OSError(message)
    return OSError(error.errno, message)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def json_text(obj: Any, indent: int | None = 2) -> str:
    """JSON of results, numpy scalars and arrays included. Non-finite floats are kept as
    NaN/Infinity tokens (Python's json and pandas read them back): reported, never replaced."""
    return json.dumps(obj, indent=indent, default=_json_default)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON atomically (see `json_text`)."""
    write_text(path, json_text(obj) + "\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def write_csv(path: str | os.PathLike, frame: "pd.DataFrame") -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def write_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def config_hash(run_config: dict) -> str:
    """SHA-256 of the canonical JSON of a run's resolved configuration."""
    text = json.dumps(run_config, sort_keys=True, default=_json_default)
    return hashlib.sha256(text.encode()).hexdigest()


def state_dict_hash(state_dict: dict[str, "torch.Tensor"]) -> str:
    """SHA-256 over names, dtypes, shapes and raw bytes of every tensor, in name order."""
    import torch

    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_checkpoint(
    path: str | os.PathLike,
    state_dict: dict[str, "torch.Tensor"],
    run_config: dict,
    problem: str,
    status: str,
) -> str:
    """Save {state_dict, run_config, problem, status, hash, config_hash}; return the content hash."""
    cpu_state = {name: tensor.detach().cpu().clone() for name, tensor in state_dict.items()}
    content = state_dict_hash(cpu_state)
    payload = {
        "state_dict": cpu_state,
        "run_config": run_config,
        "problem": problem,
        "status": status,
        "hash": content,
        "config_hash": config_hash(run_config),
    }
    save_torch_file(path, payload)
    return content


RETRAIN = "delete it to retrain the run (the workflow then reruns the step that writes it)"


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint and verify its content hash, so a corrupted file is never used.

    A truncated, corrupt or tampered file raises CorruptFile / UnsafeFile (ValueErrors naming
    the file); nothing in the file is executed (weights-only loading)."""
    payload = load_torch_file(path, "checkpoint", remedy=RETRAIN)
    if not isinstance(payload, dict):
        raise CorruptFile(f"{path}: not a toposweep checkpoint (holds a {type(payload).__name__}, "
                          f"not a dict); {RETRAIN}")
    missing = [key for key in CHECKPOINT_KEYS if key not in payload]
    if missing:
        raise CorruptFile(f"{path}: not a toposweep checkpoint (missing keys {missing}); {RETRAIN}")
    actual = state_dict_hash(payload["state_dict"])
    if actual != payload["hash"]:
        raise CorruptFile(f"{path}: content hash mismatch (stored {payload['hash'][:12]}, got "
                          f"{actual[:12]}): the weights are corrupt; {RETRAIN}")
    return payload


# --- torch files: weights-only loading with errors that name the file -----------------------
class CorruptFile(ValueError):
    """A file that cannot be read back: truncated (a killed copy, a full disk), corrupt or not
    the kind of file expected. The message names the file and what to do."""


class UnsafeFile(CorruptFile):
    """A pickle-based file holding objects other than tensors and plain data, refused unread
    because unpickling them could run code. The message names the file and the refused global."""


REMEDY = "delete it and rerun the step that writes it"
_REFUSED_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def load_torch_file(path: str | os.PathLike, what: str, remedy: str = REMEDY) -> Any:
    """`torch.load(path, map_location="cpu", weights_only=True)`, with errors that name the file.

    `what` says what the file is ("checkpoint", "eigenvectors", "trajectory") for the messages.
    A missing file raises FileNotFoundError as usual; a truncated or corrupt one CorruptFile; one
    holding pickled objects that weights-only loading refuses (which could run code on a plain
    `torch.load`) UnsafeFile, without executing anything from it."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except pickle.UnpicklingError as error:
        text = str(error)
        found = _REFUSED_GLOBAL.search(text) if "Weights only load failed" in text else None
        if found:  # otherwise (an unknown opcode: garbage bytes) the file is corrupt
            refused = f" (refused global {found.group(1)})"
            # `from None`: torch's own message suggests retrying with the weights-only check
            # off, which would run whatever the file holds.
            raise UnsafeFile(
                f"{path}: refused to load this {what}: it holds pickled objects other than tensors "
                f"and plain data{refused}, which could run code when loaded; nothing in it was "
                f"executed. toposweep never writes such files, so it was replaced or tampered with: "
                f"{remedy}, and do not load it with torch.load's weights_only turned off") from None
        raise _corrupt(path, what, remedy, error) from error
    except OSError as error:
        if error.errno not in (None, errno.EINVAL):  # a real I/O error (EIO, ...), not the bytes
            raise OSError(error.errno, f"could not read {what} {path}: {error.strerror or error}") from error
        raise _corrupt(path, what, remedy, error) from error
    except (EOFError, RuntimeError, ValueError, KeyError, IndexError, TypeError, AttributeError,
            UnicodeDecodeError, MemoryError) as error:
        raise _corrupt(path, what, remedy, error) from error


def _corrupt(path: str | os.PathLike, what: str, remedy: str, error: BaseException) -> CorruptFile:
    size = Path(path).stat().st_size if Path(path).exists() else None
    state = "empty (0 bytes)" if size == 0 else "truncated or corrupt"
    detail = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
    return CorruptFile(f"{path}: this {what} is {state} and cannot be read ({type(error).__name__}: "
                       f"{detail}); {remedy}")


class _PythonWriter:
    """A file-like wrapper that makes torch.save write through Python, so a full disk raises the
    OSError (ENOSPC) instead of torch's RuntimeError ("unexpected pos ...")."""

    def __init__(self, handle):
        self._handle = handle

    def write(self, data) -> int:
        return self._handle.write(data)

    def flush(self) -> None:
        self._handle.flush()


def save_torch_file(path: str | os.PathLike, payload: Any) -> None:
    """`torch.save(payload)` to `path` atomically (see `atomic_path`; a full disk raises an
    OSError naming `path`)."""
    import torch

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            torch.save(payload, _PythonWriter(handle))


# --- landscapes (HDF5) ----------------------------------------------------------------------
LANDSCAPE_FORMAT = "toposweep-landscape"
LANDSCAPE_FORMAT_VERSION = 1


@dataclass
class Landscape:
    """A loss grid, `loss[i, j, ...] = loss(theta + axes[0][i] d_0 + axes[1][j] d_1 + ...)`, or
    scattered samples, `loss[i] = loss(theta + samples[i] @ D)` (then `axes` is empty)."""

    loss: np.ndarray
    axes: list[np.ndarray]
    attrs: dict[str, Any]
    datasets: dict[str, np.ndarray] = field(default_factory=dict)
    samples: np.ndarray | None = None

    @property
    def scattered(self) -> bool:
        return self.samples is not None


def write_landscape(
    path: str | os.PathLike,
    loss: np.ndarray,
    axes: list[np.ndarray] | None,
    attrs: dict[str, Any] | None = None,
    directions: dict[str, np.ndarray] | None = None,
    datasets: dict[str, np.ndarray] | None = None,
    samples: np.ndarray | None = None,
) -> None:
    """Write a landscape atomically: dataset `loss` (n_1, ..., n_d) with datasets
    `axis_0..axis_{d-1}` for a grid, or `loss` (n,) with `samples` (n, d) for scattered samples
    (then axes is None); group `directions`, further root `datasets` (e.g. the projected training
    trajectory), and attributes (settings, provenance; dicts and lists as JSON text).
    The count of non-finite losses is stored as `n_nonfinite`; the values are kept as they are."""
    import h5py

    loss = np.asarray(loss)
    if (axes is None) == (samples is None):
        raise ValueError("a landscape has either grid axes or scattered samples")
    if samples is not None:
        samples = np.asarray(samples, dtype=np.float64)
        if loss.ndim != 1 or samples.ndim != 2 or len(samples) != len(loss):
            raise ValueError(f"loss shape {loss.shape} does not match samples of shape {samples.shape}")
    elif loss.ndim != len(axes) or any(len(a) != n for a, n in zip(axes, loss.shape)):
        raise ValueError(f"loss shape {loss.shape} does not match axes of lengths {[len(a) for a in axes]}")
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as handle:
            handle.create_dataset("loss", data=loss)
            if samples is not None:
                handle.create_dataset("samples", data=samples)
            for index, axis in enumerate(axes or []):
                handle.create_dataset(f"axis_{index}", data=np.asarray(axis))
            group = handle.create_group("directions")
            for name, array in (directions or {}).items():
                group.create_dataset(name, data=np.asarray(array))
            for name, array in (datasets or {}).items():
                handle.create_dataset(name, data=np.asarray(array))
            handle.attrs["format"] = LANDSCAPE_FORMAT
            handle.attrs["format_version"] = LANDSCAPE_FORMAT_VERSION
            handle.attrs["n_nonfinite"] = int(np.count_nonzero(~np.isfinite(loss)))
            for key, value in (attrs or {}).items():
                handle.attrs[key] = json_text(value, None) if isinstance(value, (dict, list)) else value


def json_attribute(value: Any) -> dict[str, Any]:
    """A landscape attribute written as JSON text (settings, provenance) as a dict; {} when
    absent or not JSON."""
    if isinstance(value, (bytes, str)) and value:
        try:
            parsed = json.loads(value)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return value if isinstance(value, dict) else {}


def read_landscape(path: str | os.PathLike) -> Landscape:
    """Read a file written by `write_landscape` (attributes come back as Python values)."""
    import h5py

    with h5py.File(path, "r") as handle:
        if handle.attrs.get("format") != LANDSCAPE_FORMAT:
            raise ValueError(f"{path}: not a toposweep landscape file (attribute format != "
                             f"{LANDSCAPE_FORMAT!r})")
        loss = handle["loss"][()]
        samples = handle["samples"][()] if "samples" in handle else None
        n_axes = 0 if samples is not None else loss.ndim
        axes = [handle[f"axis_{index}"][()] for index in range(n_axes)]
        attrs = {key: value.item() if isinstance(value, np.generic) else value
                 for key, value in handle.attrs.items()}
        fixed = {"loss", "directions", "samples", *(f"axis_{index}" for index in range(n_axes))}
        datasets = {name: handle[name][()] for name in handle if name not in fixed}
    return Landscape(loss=loss, axes=axes, attrs=attrs, datasets=datasets, samples=samples)
