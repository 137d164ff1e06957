"""Landscape evaluation: the per-point loop of established tools vs toposweep's batched engine.

(a) the loop: copy the perturbed weights into the model in place, run the problem's ordinary
loss (for the PINN: nn.Module forward and torch.autograd.grad for u_x, u_t), record one number;
(b) `toposweep.landscape.sample_grid` (method auto). Same weights, directions and grid, one
process. Then `mpiexec -n 1` vs `-n 2` of the real landscape script (one torch thread per rank).
Writes results/benchmarks/landscape.json and prints a table. `--quick` finishes in under 60 s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests"))
from conftest import make_runs  # noqa: E402  (validated run configs)
from toposweep.directions import flatten, random_directions  # noqa: E402
from toposweep.io import read_json, write_json  # noqa: E402
from toposweep.landscape import grid_axes, grid_coefficients, sample_grid  # noqa: E402
from toposweep.training import CHECKPOINT, load_trained, train_run  # noqa: E402


def matmul_peak_gflops(device: torch.device, n: int = 2048, repeats: int = 10) -> float:
    """Measured float32 matmul throughput of this machine (all threads)."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(device)
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def flops_per_point(loss_fn, params) -> float:
    with FlopCounterMode(display=False) as counter:
        loss_fn(params)
    return float(counter.get_total_flops())


def pinn_loop_loss(problem, model):
    """The established PINN loss: module forward, u_x and u_t by torch.autograd.grad."""
    def loss() -> float:
        points = problem.collocation_points.clone().requires_grad_(True)
        u = model(points)
        (du,) = torch.autograd.grad(u.sum(), points)
        residual = du[:, 1:2] + problem.beta * du[:, 0:1]
        with torch.no_grad():
            initial = torch.mean((model(problem.initial_points) - problem.initial_values) ** 2)
            boundary = torch.mean((model(problem.lower_boundary) - model(problem.upper_boundary)) ** 2)
        return float(initial + boundary + torch.mean(residual.detach() ** 2))
    return loss


def classification_loop_loss(problem, model):
    images, labels = problem.evaluation_batch()

    def loss() -> float:
        with torch.no_grad():
            return float(F.cross_entropy(model(images), labels))
    return loss


def loop_landscape(model, params, directions, axes, loss) -> np.ndarray:
    """Per point: theta + sum a_i d_i copied into the model in place, then the ordinary loss."""
    names = list(params)
    theta = flatten(params, names)
    matrix = torch.stack([flatten(d, names) for d in directions])
    coefficients = torch.as_tensor(grid_coefficients(axes)).to(theta)
    out = np.empty(len(coefficients))
    module_params = [dict(model.named_parameters())[n] for n in names]
    for index, row in enumerate(coefficients):
        with torch.no_grad():
            torch.nn.utils.vector_to_parameters(theta + row @ matrix, module_params)
        out[index] = loss()
    with torch.no_grad():
        torch.nn.utils.vector_to_parameters(theta, module_params)
    return out.reshape([len(a) for a in axes])


def compare(name, problem, model, resolution, device, peak):
    model.eval()
    loss_fn, params = problem.loss_function(model)
    directions = random_directions(params, 2, seed=0)
    axes = grid_axes(2, resolution, 1.0)
    loop_fn = pinn_loop_loss(problem, model) if name == "pinn" else classification_loop_loss(problem, model)
    warm_axes = grid_axes(2, 3, 1.0)  # both methods once, untimed: a fresh process runs slow at first
    loop_landscape(model, params, directions, warm_axes, loop_fn)
    sample_grid(loss_fn, params, directions, warm_axes, method="auto")
    start = time.perf_counter()
    reference = loop_landscape(model, params, directions, axes, loop_fn)
    sync(device)
    loop_seconds = time.perf_counter() - start
    start = time.perf_counter()
    ours = sample_grid(loss_fn, params, directions, axes, method="auto")
    sync(device)
    our_seconds = time.perf_counter() - start
    points = resolution**2
    flops = flops_per_point(loss_fn, params)
    agreement = float(np.max(np.abs(ours - reference) / np.maximum(np.abs(reference), 1e-12)))
    return {
        "grid": f"{resolution}x{resolution}", "points": points,
        "loop_points_per_s": points / loop_seconds, "ours_points_per_s": points / our_seconds,
        "speedup": loop_seconds / our_seconds, "max_relative_difference": agreement,
        "gflop_per_point": flops / 1e9, "ours_gflops": flops * points / our_seconds / 1e9,
        "loop_gflops": flops * points / loop_seconds / 1e9, "matmul_peak_gflops": peak,
    }


def mpi_scaling(checkpoint: Path, dimensions: int, resolution: int) -> dict:
    """The real landscape script under mpiexec with 1 and 2 ranks, one torch thread each."""
    settings = {"dimensions": dimensions, "allow_high_dimensions": False, "directions": "random",
                "normalization": "auto", "ignore_bias_and_norm": True, "resolution": resolution,
                "extent": 1.0, "seed": 0, "method": "vmap", "chunk_size": 64,
                "memory_budget_mb": 4096, "device": "cpu"}
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for ranks in (1, 2):
            report = Path(tmp) / f"report{ranks}.json"
            command = [str(Path(sys.executable).parent / "mpiexec"), "-n", str(ranks), sys.executable,
                       "-m", "mpi4py", str(REPO / "scripts" / "sample_landscape.py"),
                       "--checkpoint", str(checkpoint), "--output", str(Path(tmp) / f"l{ranks}.h5"),
                       "--settings", json.dumps(settings), "--threads", "1", "--report", str(report)]
            subprocess.run(command, check=True, capture_output=True)
            result = read_json(report)
            out[f"ranks_{ranks}_points_per_s"] = result["points_computed"] / result["seconds"]
        out["ranks_2_over_1"] = out["ranks_2_points_per_s"] / out["ranks_1_points_per_s"]
        out["grid"] = "x".join([str(resolution)] * dimensions)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller grids (under 60 s)")
    parser.add_argument("--output", default=str(REPO / "results" / "benchmarks" / "landscape.json"))
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="torch threads for the in-process comparison (default: all cores)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    peak = matmul_peak_gflops(device)
    report = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch_threads": torch.get_num_threads(), "quick": args.quick, "results": {}}
    with tempfile.TemporaryDirectory() as tmp:
        pinn_run = make_runs("pinn_convection", {"beta": 10.0, "max_iter": 300})[0]
        train_run(pinn_run, Path(tmp) / "pinn")
        problem, model, _ = load_trained(Path(tmp) / "pinn" / CHECKPOINT, device)
        report["results"]["pinn"] = compare("pinn", problem, model, 21 if args.quick else 41, device, peak)
        resnet_run = make_runs("resnet20", {"dataset": "digits", "input_size": 32, "width": 16,
                                            "epochs": 1, "max_train_samples": 512,
                                            "eval_batch_size": 128})[0]
        train_run(resnet_run, Path(tmp) / "resnet")
        problem, model, _ = load_trained(Path(tmp) / "resnet" / CHECKPOINT, device)
        report["results"]["resnet20_w16_batch128"] = compare(
            "resnet", problem, model, 7 if args.quick else 21, device, peak)
        if device.type == "cpu":
            report["results"]["mpi_pinn"] = mpi_scaling(Path(tmp) / "pinn" / CHECKPOINT,
                                                         *((2, 61) if args.quick else (3, 41)))
    write_json(args.output, report)
    print(f"device {report['device']}, torch threads {report['torch_threads']}, "
          f"float32 matmul peak {peak:.1f} GFLOP/s")
    print("| problem | grid | loop points/s | toposweep points/s | speedup | toposweep GFLOP/s | max rel. diff |")
    print("|---|---|---|---|---|---|---|")
    for name in ("pinn", "resnet20_w16_batch128"):
        r = report["results"][name]
        print(f"| {name} | {r['grid']} | {r['loop_points_per_s']:.1f} | {r['ours_points_per_s']:.1f} | "
              f"{r['speedup']:.2f}x | {r['ours_gflops']:.1f} | {r['max_relative_difference']:.1e} |")
    if "mpi_pinn" in report["results"]:
        m = report["results"]["mpi_pinn"]
        print(f"MPI on the PINN {m['grid']} grid: 1 rank {m['ranks_1_points_per_s']:.0f} points/s, "
              f"2 ranks {m['ranks_2_points_per_s']:.0f} points/s: {m['ranks_2_over_1']:.2f}x")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
