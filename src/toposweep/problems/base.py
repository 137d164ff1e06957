"""The Problem seam: every model family builds, trains, evaluates, and exposes a pure loss."""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..io import atomic_path

log = logging.getLogger(__name__)

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


def seeded_subset(n: int, size: int, seed: int) -> torch.Tensor:
    """Indices of a fixed subset: the first `size` of a seeded permutation of range(n)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:size]


def detached_parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's parameters as a plain dict of detached tensors (the seam's `params`)."""
    return {name: param.detach() for name, param in model.named_parameters()}


def mini_batch_optimizer(model: nn.Module, settings: dict[str, Any]) -> torch.optim.Optimizer:
    """SGD (momentum, optional Nesterov) or Adam from a problem's `optimizer`, `lr`,
    `momentum`, `nesterov` and `weight_decay` settings."""
    if settings["optimizer"] == "sgd":
        return torch.optim.SGD(model.parameters(), lr=settings["lr"], momentum=settings["momentum"],
                               weight_decay=settings["weight_decay"],
                               nesterov=settings.get("nesterov", False))
    return torch.optim.Adam(model.parameters(), lr=settings["lr"], weight_decay=settings["weight_decay"])


def train_epochs(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler | None,
    batch_loss: Callable[[torch.Tensor, torch.Generator], tuple[torch.Tensor, dict[str, float]]],
    n_samples: int,
    epochs: int,
    batch_size: int,
    seed: int,
    state_key: str,
    curve: TrainingCurve,
    resume_path: Path | None = None,
) -> None:
    """Shuffled mini-batch epochs: `batch_loss(sample_index, generator)` gives a batch's loss and
    its extra curve columns; NaN/inf raises Diverged. After every epoch the whole state (model,
    optimizer, schedule, RNG, curve) goes to `resume_path`, so a killed run picks up there and
    ends bit-identical to one never interrupted; a state saved under another `state_key` (other
    settings) is ignored."""
    generator = torch.Generator().manual_seed(seed)
    start_epoch, step = 0, 0
    if resume_path is not None and resume_path.exists():
        state = torch.load(resume_path, map_location="cpu", weights_only=False)
        if state["key"] == state_key:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            if schedule is not None:
                schedule.load_state_dict(state["schedule"])
            generator.set_state(state["generator"])
            curve.rows[:] = state["curve"]
            start_epoch, step = state["epoch"], state["step"]
            log.info("resumed from %s at epoch %d", resume_path, start_epoch)
        else:
            log.warning("ignoring %s: it belongs to other settings", resume_path)
    epoch_bar = tqdm(range(start_epoch, epochs), desc="epochs", initial=start_epoch, total=epochs,
                     disable=None)  # silent when stderr is no terminal
    for epoch in epoch_bar:
        model.train()
        order = torch.randperm(n_samples, generator=generator)
        for begin in range(0, n_samples, batch_size):
            loss, extra = batch_loss(order[begin : begin + batch_size], generator)
            value = check_finite(loss, step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            curve.record(step=step, epoch=epoch, lr=optimizer.param_groups[0]["lr"], loss=value,
                         **extra)
            step += 1
        if schedule is not None:
            schedule.step()
        epoch_bar.set_postfix(loss=f"{value:.3g}")
        if resume_path is not None:
            with atomic_path(resume_path) as tmp:
                torch.save({"key": state_key, "epoch": epoch + 1, "step": step,
                            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                            "schedule": schedule.state_dict() if schedule is not None else None,
                            "generator": generator.get_state(), "curve": curve.rows}, tmp)
