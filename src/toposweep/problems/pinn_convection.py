"""1-D convection PINN of Krishnapriyan et al. (2021): u_t + beta u_x = 0, u(x, 0) = sin(x), periodic."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import lazy_loader
import numpy as np
from tqdm.auto import tqdm

from ..progress import ProgressLog
from .base import Problem, TrainingCurve, check_finite, detached_parameters, settings_from_yaml

if TYPE_CHECKING:
    from torch import nn

torch = lazy_loader.load("torch")  # imported on first use: validating a config needs no torch
log = logging.getLogger(__name__)

FieldFunction = Callable[["torch.Tensor"], "torch.Tensor"]


def convection_mlp(hidden_layers: int = 4, hidden_width: int = 50) -> nn.Sequential:
    """(x, t) -> hidden tanh layers -> u; default nn.Linear initialisation, as the reference."""
    nn = torch.nn
    layers: list[nn.Module] = []
    width_in = 2
    for _ in range(hidden_layers):
        layers += [nn.Linear(width_in, hidden_width), nn.Tanh()]
        width_in = hidden_width
    layers.append(nn.Linear(width_in, 1))
    return nn.Sequential(*layers)


def convection_residual(u: FieldFunction, points: torch.Tensor, beta: float) -> torch.Tensor:
    """f = u_t + beta u_x at `points` (rows (x, t)): each point's gradient of u by one reverse-mode
    pass (torch.func.vjp, the reference's autograd.grad in composable form: it nests in grad,
    vmap and HVPs), dotted with (beta, 1). Exact for any u whose rows do not interact (an MLP);
    1.5x faster per training step than a forward-mode jvp (issue 16, benchmarks/pinn_residual_bench.py)."""
    values, pull_back = torch.func.vjp(u, points)
    (gradient,) = pull_back(torch.ones_like(values))
    return beta * gradient[:, :1] + gradient[:, 1:]


def exact_solution(x: np.ndarray, t: np.ndarray, beta: float) -> np.ndarray:
    return np.sin(x - beta * t)


class PinnConvection(Problem):
    """Full-batch PINN training on the reference's 256 x 100 grid with N_f collocation points."""

    name = "pinn_convection"
    settings_schema = settings_from_yaml("""
      beta: {description: "Wave speed of u_t + beta u_x = 0.", type: number, minimum: 0, default: 1.0}
      x_points: {description: "Grid points in x over [0, 2 pi) (endpoint excluded).", type: integer, minimum: 2, default: 256}
      t_points: {description: "Grid points in t over [0, 1].", type: integer, minimum: 2, default: 100}
      n_collocation: {description: "Interior collocation points N_f.", type: integer, minimum: 1, default: 100}
      collocation_seed: {description: "Seed of the collocation sample (the reference always uses 0).", type: integer, minimum: 0, default: 0}
      hidden_layers: {description: "Hidden tanh layers of the MLP.", type: integer, minimum: 1, default: 4}
      hidden_width: {description: "Units per hidden layer.", type: integer, minimum: 1, default: 50}
      optimizer: {description: "lbfgs (one full-batch strong-Wolfe step, as the reference) or adam.", enum: [lbfgs, adam], default: lbfgs}
      lr: {description: "Learning rate.", type: number, exclusiveMinimum: 0, default: 1.0}
      max_iter: {description: "L-BFGS iteration cap of its single step (it normally stops on its tolerances first), or the number of Adam steps.", type: integer, minimum: 1, default: 15000}
      history_size: {description: "L-BFGS history.", type: integer, minimum: 1, default: 50}
      tolerance_grad: {description: "L-BFGS first-order optimality tolerance.", type: number, minimum: 0, default: 1.0e-7}
      tolerance_change: {description: "L-BFGS tolerance on loss and parameter changes.", type: number, minimum: 0, default: 2.220446049250313e-16}
    """)
    sweepable = ("beta", "lr", "optimizer", "max_iter", "n_collocation", "collocation_seed",
                 "hidden_width", "hidden_layers")
    test_metric = "test_relative_l2"
    metrics = ("final_train_loss", "final_train_loss_initial", "final_train_loss_boundary",
               "final_train_loss_residual", "test_relative_l2", "test_mean_abs_error")
    metric_labels = {"test_relative_l2": "test relative L2 error",
                     "test_mean_abs_error": "test mean absolute error", "beta": "wave speed β"}
    short_labels = {"beta": "β"}
    run_panel_plot = "field"
    has_epochs = False

    def __init__(self, settings: dict[str, Any], seed: int, device: Any = "cpu"):
        super().__init__(settings, seed, device)
        s = self.settings
        self.beta = float(s["beta"])
        x = np.linspace(0.0, 2.0 * math.pi, s["x_points"], endpoint=False)
        t = np.linspace(0.0, 1.0, s["t_points"])
        self.x, self.t = x, t
        grid_x, grid_t = np.meshgrid(x, t)  # shape (t_points, x_points)
        self.u_exact = exact_solution(grid_x, grid_t, self.beta)
        as_tensor = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32, device=self.device)
        self.grid_points = as_tensor(np.stack([grid_x.ravel(), grid_t.ravel()], axis=1))
        self.initial_points = as_tensor(np.stack([x, np.zeros_like(x)], axis=1))
        self.initial_values = as_tensor(np.sin(x)[:, None])
        self.lower_boundary = as_tensor(np.stack([np.zeros_like(t), t], axis=1))
        self.upper_boundary = as_tensor(np.stack([np.full_like(t, 2.0 * math.pi), t], axis=1))
        self.collocation_points = as_tensor(self.sample_collocation(x, t))

    @classmethod
    def settings_errors(cls, settings: dict[str, Any]) -> list[tuple[str, str]]:
        interior = (settings["x_points"] - 1) * (settings["t_points"] - 1)
        if settings["n_collocation"] > interior:
            return [("n_collocation", f"{settings['n_collocation']} exceeds the {interior} interior "
                     "grid points ((x_points - 1) * (t_points - 1))")]
        return []

    def sample_collocation(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        """N_f interior points (t > 0, x > 0), without replacement, from `collocation_seed`."""
        interior_x, interior_t = np.meshgrid(x[1:], t[1:])
        interior = np.stack([interior_x.ravel(), interior_t.ravel()], axis=1)
        n = self.settings["n_collocation"]
        if n > len(interior):
            raise ValueError(
                f"settings.n_collocation={n} exceeds the {len(interior)} interior grid points"
            )
        rng = np.random.default_rng(self.settings["collocation_seed"])
        return interior[rng.choice(len(interior), size=n, replace=False)]

    def build_model(self) -> nn.Module:
        model = convection_mlp(self.settings["hidden_layers"], self.settings["hidden_width"])
        return model.to(self.device)

    def loss_terms(self, u: FieldFunction) -> dict[str, torch.Tensor]:
        """Initial-condition MSE, periodic-boundary MSE and PDE-residual MSE of a field function."""
        initial = torch.mean((u(self.initial_points) - self.initial_values) ** 2)
        boundary = torch.mean((u(self.lower_boundary) - u(self.upper_boundary)) ** 2)
        residual = torch.mean(convection_residual(u, self.collocation_points, self.beta) ** 2)
        return {"loss": initial + boundary + residual, "loss_initial": initial,
                "loss_boundary": boundary, "loss_residual": residual}

    def train(
        self, model: nn.Module, curve: TrainingCurve, resume_path: Path | None = None
    ) -> dict[str, float]:
        """One full-batch L-BFGS `.step()` (strong Wolfe), or `max_iter` Adam steps.

        L-BFGS runs are seconds to minutes, so they restart from scratch rather than resume.
        """
        s = self.settings
        evaluations = 0
        # L-BFGS stops on its tolerances: no total, a line every 500 loss evaluations
        total = s["max_iter"] if s["optimizer"] == "adam" else None
        lines = ProgressLog(log, f"training ({s['optimizer']})", total, "loss evaluations",
                            every=None if total else 500)
        # silent when stderr is not a terminal (Snakemake logs)
        with tqdm(desc="loss evaluations", disable=None) as progress:
            def closure() -> torch.Tensor:
                nonlocal evaluations
                optimizer.zero_grad()
                terms = self.loss_terms(model)
                check_finite(terms["loss"], evaluations)
                terms["loss"].backward()
                values = {k: float(v.detach()) for k, v in terms.items()}
                curve.record(step=evaluations, **values)
                curve.end_step(model)
                evaluations += 1
                progress.update()
                progress.set_postfix(loss=f"{values['loss']:.3g}", refresh=False)
                lines.update(1, loss=values["loss"])
                return terms["loss"]

            if s["optimizer"] == "lbfgs":
                optimizer = torch.optim.LBFGS(
                    model.parameters(), lr=s["lr"], max_iter=s["max_iter"], max_eval=None,
                    history_size=s["history_size"], tolerance_grad=s["tolerance_grad"],
                    tolerance_change=s["tolerance_change"], line_search_fn="strong_wolfe",
                )
                optimizer.step(closure)
            else:
                optimizer = torch.optim.Adam(model.parameters(), lr=s["lr"])
                for _ in range(s["max_iter"]):
                    optimizer.step(closure)
        final = self.loss_terms(model)
        lines.finish(loss=float(final["loss"].detach()))
        check_finite(final["loss"], evaluations)
        return {f"final_train_{k}": float(v.detach()) for k, v in final.items()}

    def predict(self, model: nn.Module) -> np.ndarray:
        """Predicted u on the full grid, shape (t_points, x_points)."""
        with torch.no_grad():
            u = model(self.grid_points)
        return u.reshape(self.u_exact.shape).cpu().double().numpy()

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        error = self.predict(model) - self.u_exact
        return {
            "test_relative_l2": float(np.linalg.norm(error) / np.linalg.norm(self.u_exact)),
            "test_mean_abs_error": float(np.mean(np.abs(error))),
        }

    def loss_function(self, model: nn.Module):
        """The full training loss (IC + BC + residual on the fixed collocation set)."""
        model.eval()

        def loss(params: dict[str, torch.Tensor]) -> torch.Tensor:
            return self.loss_terms(lambda inputs: torch.func.functional_call(model, params, (inputs,)))["loss"]

        return loss, detached_parameters(model)

    def predictions(self, model: nn.Module) -> dict[str, np.ndarray]:
        return {"x": self.x, "t": self.t, "u_pred": self.predict(model), "u_exact": self.u_exact}
