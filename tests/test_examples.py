"""The one-file example problem (examples/regression) as README shows it, and its seam: the loss
is a pure function of the parameters."""

from __future__ import annotations

import re

import torch
from torch.func import functional_call, vmap

from toposweep.config import validate_config
from toposweep.problems import get_problem

from conftest import REPO

EXAMPLE = REPO / "examples" / "regression" / "problem.py"


def test_readme_shows_the_example_as_it_is():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Your own model", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert code == EXAMPLE.read_text()
    assert len(EXAMPLE.read_text().splitlines()) < 60  # the minimal template stays minimal
    config = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    import yaml

    assert validate_config(yaml.safe_load(config))["experiments"][0]["landscapes"][1]["extent"] == "auto"


def test_the_example_loss_is_a_pure_function_of_its_parameters(monkeypatch):
    monkeypatch.chdir(REPO)
    cls = get_problem("examples/regression/problem.py:SineRegression")
    settings = validate_config({"experiments": [{"name": "r", "problem": "examples/regression/problem.py:SineRegression"}]})["experiments"][0]["settings"]
    torch.manual_seed(0)
    problem = cls(settings, seed=0)
    model = problem.build_model()
    loss_fn, params = problem.loss_function(model)
    before = {name: p.clone() for name, p in model.named_parameters()}
    first, second = float(loss_fn(params)), float(loss_fn(params))
    assert first == second
    x, y = problem.train_xy
    with torch.no_grad():
        assert first == float(torch.nn.functional.mse_loss(model(x), y))
    moved = {name: p + 0.1 for name, p in params.items()}
    assert float(loss_fn(moved)) != first
    assert all(torch.equal(p, before[name]) for name, p in model.named_parameters())
    stacked = {name: torch.stack([p, moved[name]]) for name, p in params.items()}
    torch.testing.assert_close(vmap(loss_fn)(stacked), torch.stack([loss_fn(params), loss_fn(moved)]))
    grad = torch.func.grad(loss_fn)(params)
    assert set(grad) == set(params)
