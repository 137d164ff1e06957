"""Problems by the config's `problem` value: a built-in name, an importable
`package.module:Class`, or a file `path/to/file.py:Class` (relative to the working directory)."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path

from .base import Diverged, LossFunction, Problem, TrainingCurve

BUILT_IN: dict[str, str] = {
    "pinn_convection": "toposweep.problems.pinn_convection:PinnConvection",
    "resnet20": "toposweep.problems.resnet20:ResNet20Classification",
    "unet_crf": "toposweep.problems.unet_crf:UNetCRFSegmentation",
}


class ProblemError(ValueError):
    """A `problem` value that names no usable Problem class; the message says why."""


def get_problem(reference: str) -> type[Problem]:
    """The Problem class a config's `problem` value names (see the module docstring); raises
    ProblemError naming what is wrong (unknown name, unimportable module, missing class, not a
    toposweep Problem, bad declarations)."""
    if not isinstance(reference, str) or not reference:
        raise ProblemError(f"must be a built-in problem ({', '.join(BUILT_IN)}), "
                           "'package.module:Class' or 'path/to/file.py:Class'")
    target = BUILT_IN.get(reference, reference)
    module_name, colon, class_name = target.rpartition(":")
    if not colon or not module_name or not class_name:
        raise ProblemError(f"{reference!r} is not a built-in problem ({', '.join(BUILT_IN)}); "
                           "name your own as 'package.module:Class' or 'path/to/file.py:Class'")
    module = _import(module_name)
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ProblemError(f"{module_name} has no class {class_name!r}")
    if not (isinstance(cls, type) and issubclass(cls, Problem)):
        raise ProblemError(f"{class_name} in {module_name} is not a subclass of "
                           "toposweep.problems.Problem")
    errors = cls.declaration_errors()
    if errors:
        raise ProblemError(f"{class_name} in {module_name}: " + "; ".join(errors))
    return cls


def _import(module_name: str):
    """A module by dotted name, or a Python file by path (relative to the working directory)."""
    if module_name.endswith(".py") or "/" in module_name:
        path = Path(module_name).resolve()
        if not path.is_file():
            raise ProblemError(f"no such file {module_name} (relative to {Path.cwd()})")
        # One module per file, named by its path, so two user files may share a file name.
        name = "toposweep_user_problem_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as error:
            del sys.modules[name]
            raise ProblemError(f"importing {module_name} failed: {type(error).__name__}: "
                               f"{error}") from error
        return module
    try:
        return importlib.import_module(module_name)
    except Exception as error:
        raise ProblemError(f"cannot import {module_name}: {type(error).__name__}: "
                           f"{error}") from error


__all__ = ["BUILT_IN", "Diverged", "LossFunction", "Problem", "ProblemError", "TrainingCurve",
           "get_problem"]
