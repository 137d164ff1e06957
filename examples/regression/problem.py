"""Your own model: an MLP regressing a generated 2-D function (examples/regression/config.yaml)."""

import numpy as np
import torch
from torch import nn

from toposweep.problems import Problem
from toposweep.problems.base import check_finite, detached_parameters, settings_from_yaml


class SineRegression(Problem):
    name = "sine_regression"
    settings_schema = settings_from_yaml("""
      width: {type: integer, minimum: 1, default: 16, description: Hidden tanh units.}
      lr: {type: number, exclusiveMinimum: 0, default: 0.01, description: Adam learning rate.}
      steps: {type: integer, minimum: 1, default: 200, description: Full-batch Adam steps.}
      samples: {type: integer, minimum: 8, default: 256, description: Points; half held out.}
      data_seed: {type: integer, minimum: 0, default: 0, description: Seed of the data.}
    """)
    sweepable = ("width", "lr", "steps")  # what a config's `grid` may sweep
    test_metric = "test_mse"  # the main test metric of heat maps and captions
    run_panel_plot = "scatter"  # the run panel draws predictions["y_pred"] against ["y_true"]
    has_epochs = False  # full-batch steps: trajectory snapshots count steps

    def __init__(self, settings, seed, device="cpu"):
        super().__init__(settings, seed, device)  # self.settings (defaults filled), .seed, .device
        rng = np.random.default_rng(self.settings["data_seed"])
        x = rng.uniform(-2, 2, (self.settings["samples"], 2))
        y = np.sin(2 * x[:, :1]) + 0.5 * x[:, 1:] ** 2 + 0.05 * rng.standard_normal((len(x), 1))
        x, y = (torch.tensor(a, dtype=torch.float32, device=self.device) for a in (x, y))
        n = len(x) // 2  # the first half trains, the second half is the test set
        self.train_xy, self.test_xy = (x[:n], y[:n]), (x[n:], y[n:])

    def build_model(self):  # initialised from the run's seed (the workflow seeds torch first)
        w = self.settings["width"]
        return nn.Sequential(nn.Linear(2, w), nn.Tanh(), nn.Linear(w, 1)).to(self.device)

    def train(self, model, curve, resume_path=None):
        optimizer = torch.optim.Adam(model.parameters(), lr=self.settings["lr"])
        for step in range(self.settings["steps"]):
            loss = nn.functional.mse_loss(model(self.train_xy[0]), self.train_xy[1])
            curve.record(step=step, loss=check_finite(loss, step))  # NaN/inf: run "diverged"
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            curve.end_step(model)  # trajectory snapshots, when the config asks for them
        return {"final_train_loss": float(self.loss_function(model)[0](detached_parameters(model)))}

    @torch.no_grad()
    def evaluate(self, model):
        return {"test_mse": float(nn.functional.mse_loss(model(self.test_xy[0]), self.test_xy[1]))}

    def loss_function(self, model):  # the loss as a pure function of the parameters
        (x, y), call = self.train_xy, torch.func.functional_call
        return (lambda p: nn.functional.mse_loss(call(model, p, (x,)), y)), detached_parameters(model)

    @torch.no_grad()
    def predictions(self, model):
        return {"y_true": self.test_xy[1].cpu().numpy(), "y_pred": model(self.test_xy[0]).cpu().numpy()}
