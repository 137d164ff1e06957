"""File formats and atomic writes: every output appears whole or not at all.

torch, pandas and h5py are imported where they are used, so stages without them (topology,
figures) can use this module in their lighter environments.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
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
    that a later stage would trust.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes private (0600) files; give the output the permissions a plain open()
        # would, so collaborators on a shared file system can read results.
        os.chmod(tmp_path, 0o666 & ~_current_umask())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


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
    import torch

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
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return content


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint and verify its content hash, so a corrupted file is never used."""
    import torch

    payload = torch.load(path, map_location="cpu", weights_only=True)
    missing = [key for key in CHECKPOINT_KEYS if key not in payload]
    if missing:
        raise ValueError(f"{path}: not a toposweep checkpoint (missing keys {missing})")
    actual = state_dict_hash(payload["state_dict"])
    if actual != payload["hash"]:
        raise ValueError(f"{path}: content hash mismatch (stored {payload['hash'][:12]}, got {actual[:12]})")
    return payload


# --- landscapes (HDF5) ----------------------------------------------------------------------
LANDSCAPE_FORMAT = "toposweep-landscape"
LANDSCAPE_FORMAT_VERSION = 1


@dataclass
class Landscape:
    """A loss grid: `loss[i, j, ...] = loss(theta + axes[0][i] d_0 + axes[1][j] d_1 + ...)`."""

    loss: np.ndarray
    axes: list[np.ndarray]
    attrs: dict[str, Any]
    datasets: dict[str, np.ndarray] = field(default_factory=dict)


def write_landscape(
    path: str | os.PathLike,
    loss: np.ndarray,
    axes: list[np.ndarray],
    attrs: dict[str, Any] | None = None,
    directions: dict[str, np.ndarray] | None = None,
    datasets: dict[str, np.ndarray] | None = None,
) -> None:
    """Write a landscape atomically: dataset `loss` (n_1, ..., n_d), datasets `axis_0..axis_{d-1}`,
    group `directions`, further root `datasets` (e.g. the projected training trajectory), and
    attributes (settings, provenance; dicts and lists as JSON text).
    The count of non-finite losses is stored as `n_nonfinite`; the values are kept as they are."""
    import h5py

    loss = np.asarray(loss)
    if loss.ndim != len(axes) or any(len(a) != n for a, n in zip(axes, loss.shape)):
        raise ValueError(f"loss shape {loss.shape} does not match axes of lengths {[len(a) for a in axes]}")
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as handle:
            handle.create_dataset("loss", data=loss)
            for index, axis in enumerate(axes):
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


def read_landscape(path: str | os.PathLike) -> Landscape:
    """Read a file written by `write_landscape` (attributes come back as Python values)."""
    import h5py

    with h5py.File(path, "r") as handle:
        if handle.attrs.get("format") != LANDSCAPE_FORMAT:
            raise ValueError(f"{path}: not a toposweep landscape file (attribute format != "
                             f"{LANDSCAPE_FORMAT!r})")
        loss = handle["loss"][()]
        axes = [handle[f"axis_{index}"][()] for index in range(loss.ndim)]
        attrs = {key: value.item() if isinstance(value, np.generic) else value
                 for key, value in handle.attrs.items()}
        fixed = {"loss", "directions", *(f"axis_{index}" for index in range(loss.ndim))}
        datasets = {name: handle[name][()] for name in handle if name not in fixed}
    return Landscape(loss=loss, axes=axes, attrs=attrs, datasets=datasets)
