"""benchmarks/gpu_check.sh, the GPU check, in its CPU mode (what CI can run): every step is in
summary.json and table.md, passed or skipped with its reason, and the tiny workflow run twice on
the CPU gives the same numbers. The CUDA mode itself runs only on a GPU machine (docs/scaling.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import REPO

SCRIPT = REPO / "benchmarks" / "gpu_check.sh"
STEPS = ["setup", "environment", "landscape_bench", "hessian_bench", "mpi_landscape", "workflow"]
# Where a step may be skipped on CPU: nothing is installed (setup), and the landscape benchmark
# takes --device only once its rewrite is merged (the step then says so, and runs after it).
MAY_SKIP = {"setup", "landscape_bench"}


def gpu_check(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=timeout, env=environment)


def test_cpu_mode_runs_every_step_and_the_workflow_repeats_itself(tmp_path):
    out = tmp_path / "gpu_check"
    result = gpu_check("--device", "cpu", "--out", str(out))
    summary = json.loads((out / "summary.json").read_text())
    steps = {step["name"]: step for step in summary["steps"]}
    assert list(steps) == STEPS, result.stderr[-3000:]
    failed = {name: step["reason"] for name, step in steps.items() if step["status"] == "failed"}
    assert not failed, failed
    for name, step in steps.items():
        assert step["status"] in ("passed", "skipped"), (name, step)
        if step["status"] == "skipped":
            assert name in MAY_SKIP and step["reason"], (name, step["reason"])
    assert result.returncode == 0 and summary["passed"], result.stderr[-3000:]
    assert summary["device"] == "cpu" and summary["environment"]["torch"] == torch.__version__

    workflow = steps["workflow"]["metrics"]
    assert workflow["runs"] == "cpu vs cpu-repeat"
    for key in ("final_train_loss", "top_eigenvalue", "trace", "landscape"):
        assert workflow[f"{key}_relative_difference"] <= summary["tolerances"]["workflow_rtol"], key
    assert workflow["final_train_loss_cpu"] == pytest.approx(workflow["final_train_loss_cpu-repeat"])
    mpi = steps["mpi_landscape"]["metrics"]
    assert mpi["ranks_1_device"] == mpi["ranks_2_device"] == "cpu" and mpi["bitwise_equal"]
    hessian = steps["hessian_bench"]["metrics"]
    assert hessian["device"] == "cpu" and hessian["size"] == "smoke"
    if steps["landscape_bench"]["status"] == "passed":
        assert (out / "landscape.json").is_file()

    table = (out / "table.md").read_text()
    assert table.startswith("# GPU check on cpu") and "| tiny workflow, device vs CPU | passed |" in table
    assert all(step["title"] in table for step in summary["steps"])
    assert "===== workflow.log" in (out / "steps.log").read_text()


def test_bad_arguments_and_no_cuda_stop_with_a_reason(tmp_path):
    result = gpu_check("--device", "gpu")
    assert result.returncode == 2 and "--device is cuda or cpu" in result.stderr
    result = gpu_check("--device", "cpu", "--wheels", str(tmp_path))
    assert result.returncode == 2 and "--wheels is for --device cuda" in result.stderr
    if torch.cuda.is_available():
        return
    result = gpu_check("--out", str(tmp_path / "out"), timeout=300)
    assert result.returncode == 2 and "sees no CUDA device" in result.stderr
    assert "no torch wheel was given" in result.stderr


def test_a_landscape_benchmark_with_device_is_run_and_its_rates_reported(tmp_path, monkeypatch):
    """The step with a stand-in benchmark (writing the benchmark's kind of JSON): it passes the
    device and the models (the PINN alone in CPU mode), and skips a benchmark without --device."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import gpu_check

    fake = tmp_path / "repo" / "benchmarks" / "landscape_bench.py"
    fake.parent.mkdir(parents=True)
    fake.write_text(
        "import argparse, json\n"
        "p = argparse.ArgumentParser(); p.add_argument('--quick', action='store_true')\n"
        "p.add_argument('--device', choices=['cpu', 'cuda']); p.add_argument('--output')\n"
        "p.add_argument('--models')\n"
        "a = p.parse_args()\n"
        "json.dump({'device': a.device, 'results': {'pinn': {'grid': '21x21', 'loop_points_per_s': 10.0,"
        " 'ours_points_per_s': 50.0, 'speedup': 5.0, 'max_relative_difference': 1e-7}}},"
        " open(a.output, 'w'))\n")
    monkeypatch.setattr(gpu_check, "REPO", tmp_path / "repo")
    logs = tmp_path / "logs"
    metrics = gpu_check.step_landscape_bench({"device": "cpu", "out": tmp_path, "logs": logs,
                                              "limit": 60, "summary": {}})
    assert metrics["device"] == "cpu" and metrics["results.pinn.speedup"] == 5.0
    assert metrics["results.pinn.ours_points_per_s"] == 50.0 and metrics["results.pinn.grid"] == "21x21"
    assert "--quick --device cpu --models pinn --output" in (logs / "landscape_bench.log").read_text()
    fake.write_text("import argparse; argparse.ArgumentParser().parse_args()\n")
    with pytest.raises(gpu_check.Skip, match="--device is not among its options"):
        gpu_check.step_landscape_bench({"device": "cpu", "out": tmp_path, "logs": logs,
                                        "limit": 60, "summary": {}})
