"""The Problem seam: every model family builds, trains, evaluates, and exposes a pure loss."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
import torch
from torch import nn

LossFunction = Callable[[dict[str, torch.Tensor]], torch.Tensor]


class Diverged(RuntimeError):
    """Raised inside training when the loss stops being finite."""

    def __init__(self, step: int, value: float):
        super().__init__(f"training loss became {value} at step {step}")
        self.step = step
        self.value = value


def check_finite(loss: torch.Tensor, step: int) -> float:
    """Return the loss as a float, or raise Diverged if it is NaN or infinite."""
    value = float(loss.detach())
    if not math.isfinite(value):
        raise Diverged(step, value)
    return value


@dataclass
class TrainingCurve:
    """Rows of the per-step training curve (one dict per optimizer step or loss evaluation)."""

    rows: list[dict[str, Any]] = field(default_factory=list)

    def record(self, **values: Any) -> None:
        self.rows.append(values)


class Problem(ABC):
    """One model family. Subclasses take the run's resolved settings and seed.

    Stages after training use only `build_model`, `loss_function` and the checkpoint, so a new
    problem needs one module and its schema entry, nothing else.
    """

    name: ClassVar[str]

    def __init__(self, settings: dict[str, Any], seed: int, device: torch.device | str = "cpu"):
        self.settings = dict(settings)
        self.seed = int(seed)
        self.device = torch.device(device)

    @classmethod
    def settings_errors(cls, settings: dict[str, Any]) -> list[tuple[str, str]]:
        """(key, message) for settings that conflict with each other; checked before any job."""
        return []

    @abstractmethod
    def build_model(self) -> nn.Module:
        """A freshly initialised model (initialisation drawn from the current torch seed)."""

    @abstractmethod
    def train(
        self, model: nn.Module, curve: TrainingCurve, resume_path: Path | None = None
    ) -> dict[str, float]:
        """Train in place; return final training-loss numbers. Raises Diverged on NaN/inf.

        Problems whose training is long save their state to `resume_path` as they go and pick it
        up from there when a killed run is started again.
        """

    @abstractmethod
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Test metrics of a trained model."""

    @abstractmethod
    def loss_function(self, model: nn.Module) -> tuple[LossFunction, dict[str, torch.Tensor]]:
        """The training loss on a fixed, seeded evaluation batch as a pure function of a
        parameter dict (torch.func-friendly), and the model's current parameters."""

    def predictions(self, model: nn.Module) -> dict[str, np.ndarray]:
        """Arrays saved for later figures (e.g. the PINN's predicted field)."""
        return {}


def detached_parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's parameters as a plain dict of detached tensors (the seam's `params`)."""
    return {name: param.detach() for name, param in model.named_parameters()}
