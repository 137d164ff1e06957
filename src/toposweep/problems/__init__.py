"""Registry of problems: the config's `problem` name -> Problem class (the schema's enum)."""

from __future__ import annotations

from .base import Diverged, LossFunction, Problem, TrainingCurve
from .pinn_convection import PinnConvection
from .resnet20 import ResNet20Classification
from .unet_crf import UNetCRFSegmentation

PROBLEMS: dict[str, type[Problem]] = {
    cls.name: cls for cls in (PinnConvection, ResNet20Classification, UNetCRFSegmentation)
}


def get_problem(name: str) -> type[Problem]:
    try:
        return PROBLEMS[name]
    except KeyError:
        raise ValueError(f"unknown problem {name!r}; allowed: {sorted(PROBLEMS)}") from None


__all__ = ["PROBLEMS", "Diverged", "LossFunction", "Problem", "TrainingCurve", "get_problem"]
