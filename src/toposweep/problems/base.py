"""The Problem seam: every model family builds, trains, evaluates, exposes a pure loss, and
declares what the workflow needs to know about it (settings, sweepable keys, metrics, figures).

This module and the built-in problems import torch only on first use (lazy_loader), so validating
a configuration (`snakemake -n`) reads every declaration without importing torch.
"""

from __future__ import annotations

import logging
import math
import textwrap
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar

import lazy_loader
import numpy as np
import yaml
from tqdm.auto import tqdm

from ..io import CorruptFile, UnsafeFile, load_torch_file, save_torch_file
from ..progress import ProgressLog

if TYPE_CHECKING:
    from torch import Tensor, nn

torch = lazy_loader.load("torch")  # imported on first use

log = logging.getLogger(__name__)

LossFunction = Callable[[dict[str, "Tensor"]], "Tensor"]
RUN_PANEL_PLOTS = ("field", "segmentation", "scatter")


def settings_from_yaml(text: str) -> dict[str, dict[str, Any]]:
    """A `settings_schema` written as YAML (one flow mapping per setting reads like a table)."""
    return yaml.safe_load(textwrap.dedent(text))


class Diverged(RuntimeError):
    """Raised inside training when the loss stops being finite."""

    def __init__(self, step: int, value: float):
        super().__init__(f"training loss became {value} at step {step}")
        self.step = step
        self.value = value


def check_finite(loss: "Tensor", step: int) -> float:
    """Return the loss as a float, or raise Diverged if it is NaN or infinite."""
    value = float(loss.detach())
    if not math.isfinite(value):
        raise Diverged(step, value)
    return value


@dataclass
class TrainingCurve:
    """Rows of the per-step training curve (one dict per optimizer step or loss evaluation), and
    the parameter snapshots of the optimiser's trajectory when the experiment asks for them
    (`snapshots: {every: N, unit: epoch | step}`; the initial weights are always the first)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    snapshot_every: int | None = None
    snapshot_unit: str = "epoch"
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0
    epochs: int = 0

    def record(self, **values: Any) -> None:
        self.rows.append(values)

    def start(self, model: "nn.Module") -> None:
        """Called once before training: the trajectory's first point."""
        if self.snapshot_every is not None and not self.snapshots:
            self._snapshot(model)

    def end_step(self, model: "nn.Module") -> None:
        """Called after every optimizer step (or loss evaluation of a full-batch optimiser)."""
        self.steps += 1
        if self.snapshot_unit == "step":
            self._maybe_snapshot(model, self.steps)

    def end_epoch(self, model: "nn.Module") -> None:
        """Called after every epoch of mini-batch training."""
        self.epochs += 1
        if self.snapshot_unit == "epoch":
            self._maybe_snapshot(model, self.epochs)

    def _maybe_snapshot(self, model: "nn.Module", count: int) -> None:
        if self.snapshot_every is not None and count % self.snapshot_every == 0:
            self._snapshot(model)

    def _snapshot(self, model: "nn.Module") -> None:
        flat = torch.cat([p.detach().reshape(-1).cpu() for p in model.parameters()]).clone()
        self.snapshots.append({"step": self.steps, "epoch": self.epochs, "parameters": flat})


class Problem(ABC):
    """One model family: builds, trains and evaluates a model and gives its loss as a pure
    function of the parameters. Subclasses take the run's resolved settings and seed.

    A problem also declares what the workflow needs about it, as class attributes: the
    workflow assembles its config schema from them, and stages and figures read them, so a
    new problem is this one class (in the package, or the user's own file named in the config
    as `path/to/file.py:Class` or `package.module:Class`) and nothing else.
    """

    #: Name in tables and titles.
    name: ClassVar[str]
    #: JSON-Schema `properties` of the experiment's `settings`: every key with a `default` and a
    #: `description`. The workflow adds `device` (auto, cpu, cuda) to every problem.
    settings_schema: ClassVar[dict[str, dict[str, Any]]] = {}
    #: Settings that may be swept in the experiment's `grid`.
    sweepable: ClassVar[tuple[str, ...]] = ()
    #: The main test metric (a key of `evaluate`'s result): heat maps and captions show it.
    test_metric: ClassVar[str | None] = None
    #: Names of the numbers `train` and `evaluate` return (final_train_*, test_*): a config's
    #: metric names (aggregate, figures) are checked against them before any job. Empty: the
    #: problem does not say, and those names are checked when the tables are built.
    metrics: ClassVar[tuple[str, ...]] = ()
    #: Readable names of its metrics and settings for tables and figures.
    metric_labels: ClassVar[dict[str, str]] = {}
    #: Short names of swept settings in figure titles (e.g. beta -> β).
    short_labels: ClassVar[dict[str, str]] = {}
    #: What the per-run panel draws from `predictions` (one of RUN_PANEL_PLOTS, or None):
    #: "field" (x, t, u_pred, u_exact), "segmentation" (segmentation_images, _masks,
    #: _predicted, class_names) or "scatter" (y_true, y_pred).
    run_panel_plot: ClassVar[str | None] = None
    #: Whether training runs in epochs (snapshots `unit: epoch` needs it).
    has_epochs: ClassVar[bool] = True

    def __init__(self, settings: dict[str, Any], seed: int, device: Any = "cpu"):
        self.settings = dict(settings)
        self.seed = int(seed)
        self.device = torch.device(device)

    @classmethod
    def settings_errors(cls, settings: dict[str, Any]) -> list[tuple[str, str]]:
        """(key, message) for settings that conflict with each other; checked before any job."""
        return []

    @classmethod
    def declaration_errors(cls) -> list[str]:
        """What is wrong with the class's declarations (checked when a config names it)."""
        errors = []
        if not isinstance(getattr(cls, "name", None), str) or not cls.name:
            errors.append("`name` must be a non-empty string")
        if not isinstance(cls.settings_schema, dict):
            return errors + ["`settings_schema` must be a mapping of setting name -> JSON Schema"]
        for key, schema in cls.settings_schema.items():
            if not isinstance(schema, dict) or "default" not in schema:
                errors.append(f"settings_schema.{key} needs a `default`")
        if "device" in cls.settings_schema:
            errors.append("settings_schema.device: the workflow adds `device` to every problem")
        unknown = [key for key in cls.sweepable if key not in cls.settings_schema]
        if unknown:
            errors.append(f"sweepable names {unknown}, which are not in settings_schema")
        if cls.metrics and cls.test_metric is not None and cls.test_metric not in cls.metrics:
            errors.append(f"test_metric {cls.test_metric!r} is not one of `metrics` {list(cls.metrics)}")
        if cls.run_panel_plot not in (None, *RUN_PANEL_PLOTS):
            errors.append(f"run_panel_plot must be one of {RUN_PANEL_PLOTS} or None, got "
                          f"{cls.run_panel_plot!r}")
        return errors

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """The declarations the figures need, as JSON (figure jobs never import the problem)."""
        return {"name": cls.name, "test_metric": cls.test_metric,
                "metric_labels": dict(cls.metric_labels), "short_labels": dict(cls.short_labels),
                "run_panel_plot": cls.run_panel_plot}

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
        """Arrays saved for later figures (see `run_panel_plot`)."""
        return {}

    def pyhessian_inputs(self, model: nn.Module, loss_fn: LossFunction) -> tuple[Any, Any, Any]:
        """(module, criterion, (inputs, targets)) for `hessian.backend: pyhessian`, which takes
        `criterion(module(inputs), targets)`. By default the seam's loss wrapped as a module,
        which is exact for any problem; classifiers override it with their plain batch."""
        from ..hessian.pyhessian_backend import loss_as_pyhessian_inputs

        return loss_as_pyhessian_inputs(model, loss_fn)


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
    state = _resume_state(resume_path)
    if state is not None:
        if state.get("key") == state_key:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            if schedule is not None:
                schedule.load_state_dict(state["schedule"])
            generator.set_state(state["generator"])
            curve.rows[:] = state["curve"]
            curve.snapshots[:] = state.get("snapshots", [])
            curve.steps, curve.epochs = state["step"], state["epoch"]
            start_epoch, step = state["epoch"], state["step"]
            log.info("resumed from %s at epoch %d", resume_path, start_epoch)
        else:
            log.warning("ignoring %s: it belongs to other settings", resume_path)
    epoch_bar = tqdm(range(start_epoch, epochs), desc="epochs", initial=start_epoch, total=epochs,
                     disable=None)  # silent when stderr is no terminal
    lines = ProgressLog(log, "training", epochs, "epochs", fraction=0, initial=start_epoch)
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
            curve.end_step(model)
            step += 1
        if schedule is not None:
            schedule.step()
        curve.end_epoch(model)
        epoch_bar.set_postfix(loss=f"{value:.3g}")
        lines.update(1, loss=value, lr=optimizer.param_groups[0]["lr"])
        if resume_path is not None:
            save_torch_file(resume_path, {
                "key": state_key, "epoch": epoch + 1, "step": step, "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict() if schedule is not None else None,
                "generator": generator.get_state(), "curve": curve.rows,
                "snapshots": curve.snapshots})


def _resume_state(path: Path | None) -> dict | None:
    """A killed run's saved state, if there is one. A truncated or corrupt one (a kill while
    writing cannot leave one: writes are atomic, but a copy can) is reported and set aside, and
    training starts from epoch 0; one holding code-running objects is refused (UnsafeFile,
    naming the file): nothing in it is executed."""
    if path is None or not path.exists():
        return None
    try:
        state = load_torch_file(path, "training resume state",
                                remedy="delete it to restart this run from its first epoch")
    except UnsafeFile:
        raise
    except CorruptFile as error:
        log.warning("%s; starting from the first epoch", error)
        path.unlink(missing_ok=True)
        return None
    if not isinstance(state, dict):
        log.warning("ignoring %s: not a training resume state", path)
        return None
    return state
