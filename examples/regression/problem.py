"""Your own model in one file: a small MLP regressing a generated 2-D function.
Name it in a config as `problem: examples/regression/problem.py:SineRegression`."""

import numpy as np
import torch
from torch import nn

from toposweep.problems import Problem
from toposweep.problems.base import check_finite, detached_parameters


class SineRegression(Problem):
    name = "sine_regression"
    settings_schema = {
        "width": {"type": "integer", "minimum": 1, "default": 16, "description": "Hidden units."},
        "lr": {"type": "number", "exclusiveMinimum": 0, "default": 0.01, "description": "Adam step."},
        "steps": {"type": "integer", "minimum": 1, "default": 200, "description": "Full-batch steps."},
        "samples": {"type": "integer", "minimum": 8, "default": 256, "description": "Points (half test)."},
        "data_seed": {"type": "integer", "minimum": 0, "default": 0, "description": "Seed of the data."},
    }
    sweepable = ("width", "lr", "steps")
    test_metric = "test_mse"
    metric_labels = {"test_mse": "test mean squared error"}
    run_panel_plot = "scatter"
    has_epochs = False

    def __init__(self, settings, seed, device="cpu"):
        super().__init__(settings, seed, device)
        rng = np.random.default_rng(self.settings["data_seed"])
        x = rng.uniform(-2, 2, (self.settings["samples"], 2))
        y = np.sin(2 * x[:, :1]) + 0.5 * x[:, 1:] ** 2 + 0.05 * rng.standard_normal((len(x), 1))
        x, y = (torch.tensor(a, dtype=torch.float32, device=self.device) for a in (x, y))
        half = len(x) // 2
        self.train_xy, self.test_xy = (x[:half], y[:half]), (x[half:], y[half:])

    def build_model(self):
        width = self.settings["width"]
        return nn.Sequential(nn.Linear(2, width), nn.Tanh(), nn.Linear(width, 1)).to(self.device)

    def train(self, model, curve, resume_path=None):
        optimizer = torch.optim.Adam(model.parameters(), lr=self.settings["lr"])
        for step in range(self.settings["steps"]):
            loss = nn.functional.mse_loss(model(self.train_xy[0]), self.train_xy[1])
            curve.record(step=step, loss=check_finite(loss, step))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            curve.end_step(model)  # trajectory snapshots, when the config asks for them
        return {"final_train_loss": float(nn.functional.mse_loss(model(self.train_xy[0]), self.train_xy[1]))}

    def evaluate(self, model):
        with torch.no_grad():
            return {"test_mse": float(nn.functional.mse_loss(model(self.test_xy[0]), self.test_xy[1]))}

    def loss_function(self, model):
        """The training loss as a pure function of the parameters (torch.func-friendly)."""
        x, y = self.train_xy
        return (lambda params: nn.functional.mse_loss(torch.func.functional_call(model, params, (x,)), y),
                detached_parameters(model))

    def predictions(self, model):
        with torch.no_grad():
            return {"y_true": self.test_xy[1].cpu().numpy(), "y_pred": model(self.test_xy[0]).cpu().numpy()}
