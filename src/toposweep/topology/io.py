"""Small file helpers for the topology stage: atomic writes and JSON-safe floats."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any


def json_float(value: float) -> float | None:
    """A float for strict JSON: non-finite values become None (null)."""
    value = float(value)
    return value if math.isfinite(value) else None


def json_safe(obj: Any) -> Any:
    """Recursively replace non-finite floats with None and numpy scalars with Python ones."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        obj = obj.item()
    if isinstance(obj, float):
        return json_float(obj)
    return obj


def write_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write text to a temp file in the target's directory, then rename it over the target."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp_name, path)
    except BaseException:
        if os.path.exists(temp_name):
            os.unlink(temp_name)
        raise
    return path


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """Write obj as strict JSON (non-finite floats → null) atomically."""
    return write_atomic(path, json.dumps(json_safe(obj), indent=1, allow_nan=False) + "\n")
