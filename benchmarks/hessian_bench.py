"""Benchmark: time to accuracy of PyHessian 0.1 and toposweep.hessian, in one process, on the same
model, data and loss.

Cases: the PINN (beta = 10, L-BFGS for 300 iterations) and ResNet-20 w = 16 on one batch of 128
(CIFAR-10 is not available on this machine: the digits data set upsampled to 32 x 32, briefly
trained for 5 epochs). `--quick` uses a 2 x 20 PINN and ResNet-20 w = 4 on 16 x 16 digits, batch 32;
`--smoke` a 2 x 10 PINN and ResNet-20 w = 2 on 8 x 8 digits with a few probes (seconds: it checks
that the benchmark runs on a device, e.g. in benchmarks/gpu_check.sh; its speed-ups mean little).
`--device` trains and measures on cpu (the default, as the numbers in the docs), cuda or auto.

* lambda_1: PyHessian's power iteration (`eigenvalues(top_n=1)`) and our Lanczos (stage defaults:
  k = 4, tol = 1e-4); each HVP is timestamped with its Rayleigh quotient / top Ritz value; the
  time to accuracy is the time from which the estimate stays within 1e-3 relative of a
  converged reference (our Lanczos to tol 1e-6, checked against PyHessian's last iterate).
* trace: PyHessian's Hutchinson (`trace()`, as many probes as the cap allows) and ours (the
  Lanczos run above, then deflated Hutchinson probes, batched); the time to accuracy is the time
  from which the running estimate stays within 1 % of the reference: the exact trace (sum of
  e_i^T H e_i) where the model is small enough. Without an exact trace (ResNet), the time a
  1 % standard error would take is extrapolated from the measured per-probe spread and time.
* setup (building the gradient graph) is counted once in each total.

Writes results/benchmarks/hessian.json and prints a table.

    python benchmarks/hessian_bench.py [--quick | --smoke] [--device cpu|cuda|auto]
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from toposweep.config import expand_runs, validate_config  # noqa: E402
from toposweep.hessian import HessianOperator, top_eigenpairs, trace_samples  # noqa: E402
from toposweep.hessian.pyhessian_backend import pyhessian_shim  # noqa: E402
from toposweep.io import write_json  # noqa: E402
from toposweep.training import load_trained, train_run  # noqa: E402

EIGEN_RTOL = 1e-3
TRACE_RTOL = 1e-2


def cases(quick: bool, smoke: bool = False) -> list[dict]:
    if smoke:
        return [
            dict(name="pinn", label="PINN beta=10, 2x10 tanh (smoke)", problem="pinn_convection",
                 settings={"beta": 10.0, "max_iter": 20, "hidden_layers": 2, "hidden_width": 10,
                           "x_points": 32, "t_points": 16, "n_collocation": 50},
                 power_iterations=10, pyhessian_probes=40, our_probes=20, exact_trace=True,
                 reference_iterations=60),
            dict(name="resnet20", label="ResNet-20 w=2, digits 8x8, batch 16 (smoke)",
                 problem="resnet20",
                 settings={"dataset": "digits", "input_size": 8, "width": 2, "epochs": 1,
                           "milestones": [], "lr": 0.05, "max_train_samples": 64,
                           "eval_batch_size": 16},
                 power_iterations=5, pyhessian_probes=10, our_probes=10, exact_trace=False,
                 reference_iterations=60),
        ]
    if quick:
        return [
            dict(name="pinn", label="PINN beta=10, 2x20 tanh (quick)", problem="pinn_convection",
                 settings={"beta": 10.0, "max_iter": 100, "hidden_layers": 2, "hidden_width": 20},
                 power_iterations=30, pyhessian_probes=3000, our_probes=400, exact_trace=True),
            dict(name="resnet20", label="ResNet-20 w=4, digits 16x16, batch 32 (quick)",
                 problem="resnet20",
                 settings={"dataset": "digits", "input_size": 16, "width": 4, "epochs": 1,
                           "milestones": [], "lr": 0.05, "eval_batch_size": 32},
                 power_iterations=20, pyhessian_probes=100, our_probes=100, exact_trace=False),
        ]
    return [
        dict(name="pinn", label="PINN beta=10, 4x50 tanh, 300 L-BFGS iterations",
             problem="pinn_convection", settings={"beta": 10.0, "max_iter": 300},
             power_iterations=50, pyhessian_probes=12000, our_probes=400, exact_trace=True),
        dict(name="resnet20", label="ResNet-20 w=16, digits 32x32, batch 128, 5 epochs",
             problem="resnet20",
             settings={"dataset": "digits", "input_size": 32, "width": 16, "epochs": 5,
                       "milestones": [], "lr": 0.05, "eval_batch_size": 128},
             power_iterations=25, pyhessian_probes=48, our_probes=48, exact_trace=False),
    ]


def first_settled(estimates: np.ndarray, reference: float, rtol: float) -> int | None:
    """Index from which every later estimate is within rtol of reference (None: never)."""
    good = np.abs(estimates - reference) <= rtol * abs(reference)
    if not good.size or not good[-1]:
        return None
    bad = np.flatnonzero(~good)
    return int(bad[-1] + 1) if bad.size else 0


def stays_within(times: np.ndarray, estimates: np.ndarray, reference: float, rtol: float
                 ) -> float | None:
    """Time from which every later estimate is within rtol of reference (None: never)."""
    index = first_settled(estimates, reference, rtol)
    return None if index is None else float(times[index])


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously), so a timestamp means done."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def exact_trace(operator: HessianOperator) -> float:
    """sum_i e_i^T H e_i, with batched HVPs of identity rows."""
    total, n = 0.0, operator.n_params
    for begin in range(0, n, 64):
        rows = torch.arange(begin, min(begin + 64, n), device=operator.device)
        index = torch.arange(len(rows), device=operator.device)
        unit = torch.zeros((len(rows), n), dtype=operator.dtype, device=operator.device)
        unit[index, rows] = 1
        total += float(operator.matmat(unit)[index, rows].double().sum())
    return total


class Recorder:
    """Wraps PyHessian's HVP: (time, v . Hv) per product."""

    def __init__(self, module):
        self.module, self.rows = module, []

    def __enter__(self):
        self.inner = self.module.hessian_vector_product

        def recording(gradsH, params, v):
            hv = self.inner(gradsH, params, v)
            value = float(sum(torch.sum(a * b) for a, b in zip(v, hv)))
            self.rows.append((time.perf_counter(), value))
            return hv

        self.module.hessian_vector_product = recording
        return self

    def __exit__(self, *exc):
        self.module.hessian_vector_product = self.inner


def run_pyhessian(problem, model, loss_fn, case, device: torch.device) -> dict:
    module = importlib.import_module("pyhessian.hessian")
    target, criterion, data = problem.pyhessian_inputs(model, loss_fn)
    model.zero_grad(set_to_none=True)
    with pyhessian_shim():
        start = time.perf_counter()
        # cuda=True: PyHessian draws its vectors on (and moves its batch to) the GPU
        engine = module.hessian(target, criterion, data=data, cuda=device.type == "cuda")
        sync(device)
        setup = time.perf_counter() - start
        torch.manual_seed(0)
        with Recorder(module) as eig:
            start = time.perf_counter()
            # tol=0: never stops early, so every iterate is seen (time to accuracy from the log)
            values, _ = engine.eigenvalues(maxIter=case["power_iterations"], tol=0.0, top_n=1)
        eig_times = np.array([t for t, _ in eig.rows]) - start
        eig_values = np.array([v for _, v in eig.rows])
        torch.manual_seed(1)
        with Recorder(module) as tr:
            start = time.perf_counter()
            # tol=-inf: as many probes as the cap (a negative running mean would stop it at tol>=0)
            samples = engine.trace(maxIter=case["pyhessian_probes"], tol=-math.inf)
        trace_times = np.array([t for t, _ in tr.rows]) - start
    model.zero_grad(set_to_none=True)
    samples = np.asarray(samples, dtype=np.float64)
    return {"setup_s": setup, "eig_times": eig_times, "eig_values": eig_values,
            "lambda_1_final": float(values[0]), "trace_times": trace_times,
            "trace_running": np.cumsum(samples) / np.arange(1, len(samples) + 1),
            "trace_samples": samples}


def run_ours(loss_fn, params, case) -> dict:
    start = time.perf_counter()
    operator = HessianOperator(loss_fn, params)
    sync(operator.device)
    setup = time.perf_counter() - start
    steps: list[tuple[float, float]] = []

    def record(run):
        steps.append((time.perf_counter(), float(run.ritz()[0].max())))

    start = time.perf_counter()
    pairs = top_eigenpairs(None, None, 4, operator=operator, callback=record)
    eig_times = np.array([t for t, _ in steps]) - start
    lanczos_s = time.perf_counter() - start
    times, samples = [], []
    for batch in trace_samples(operator, case["our_probes"], seed=1, deflation=pairs.krylov_basis):
        samples.extend(batch.tolist())
        times.extend([time.perf_counter()] * len(batch))
    samples = np.asarray(samples)
    return {"setup_s": setup, "eig_times": eig_times, "eig_values": np.array([v for _, v in steps]),
            "lambda_1_final": float(pairs.eigenvalues[0]), "lanczos_s": lanczos_s,
            "lanczos_steps": len(steps), "deflation_rank": int(pairs.krylov_basis.shape[0]),
            "trace_times": np.asarray(times) - start,
            "trace_running": pairs.krylov_trace + np.cumsum(samples) / np.arange(1, len(samples) + 1),
            "trace_samples": samples, "operator": operator, "batch_size": operator.batch_size}


def measure(case: dict, workdir: Path, device: torch.device) -> dict:
    settings = {**case["settings"], "device": device.type}
    config = validate_config({"experiments": [{"name": "bench", "problem": case["problem"],
                                                "settings": settings}]})
    run = expand_runs(config)[0].to_dict()
    started = time.perf_counter()
    train_run(run, workdir / case["name"])
    train_s = time.perf_counter() - started
    problem, model, _ = load_trained(workdir / case["name"] / "checkpoint.pt", device)
    loss_fn, params = problem.loss_function(model)
    n_params = sum(p.numel() for p in params.values())
    print(f"{case['label']}: {n_params} parameters, trained in {train_s:.0f} s", flush=True)

    theirs = run_pyhessian(problem, model, loss_fn, case, device)
    ours = run_ours(loss_fn, params, case)
    reference = top_eigenpairs(None, None, 1, tol=1e-6, max_iter=case.get("reference_iterations", 300),
                               operator=ours["operator"])
    lambda_1 = float(reference.eigenvalues[0])
    result = {"label": case["label"], "n_params": n_params, "loss": ours["operator"].loss,
              "train_s": train_s, "lambda_1_reference": lambda_1,
              "lambda_1_reference_residual": float(reference.residuals[0]),
              "hvp_batch_size": ours["batch_size"], "deflation_rank": ours["deflation_rank"]}
    for name, data in (("pyhessian", theirs), ("ours", ours)):
        result[name] = {
            "setup_s": data["setup_s"],
            "lambda_1_final": data["lambda_1_final"],
            "lambda_1_time_s": stays_within(data["eig_times"], data["eig_values"], lambda_1, EIGEN_RTOL),
            "lambda_1_hvps": (None if (index := first_settled(data["eig_values"], lambda_1, EIGEN_RTOL)) is None
                              else index + 1),
            "trace_estimate": float(data["trace_running"][-1]),
            "trace_standard_error": float(data["trace_samples"].std(ddof=1) / math.sqrt(len(data["trace_samples"]))),
            "trace_probes": len(data["trace_samples"]),
            "trace_seconds_per_probe": float(data["trace_times"][-1] - (data["trace_times"][0] if name == "pyhessian" else data.get("lanczos_s", 0.0))) / max(len(data["trace_samples"]) - (1 if name == "pyhessian" else 0), 1),
        }
    result["ours"]["lanczos_s"] = ours["lanczos_s"]
    result["ours"]["lanczos_steps"] = ours["lanczos_steps"]
    if case["exact_trace"]:
        trace = exact_trace(ours["operator"])
        result["trace_reference"], result["trace_reference_kind"] = trace, "exact"
        for name, data in (("pyhessian", theirs), ("ours", ours)):
            index = first_settled(data["trace_running"], trace, TRACE_RTOL)
            if index is None:  # not settled within the cap: the whole capped run is a lower bound
                result[name]["trace_time_s"] = float(data["trace_times"][-1])
                result[name]["trace_time_kind"] = f"lower bound: not within 1 % after {len(data['trace_samples'])} probes"
            else:
                result[name]["trace_time_s"] = float(data["trace_times"][index])
                result[name]["trace_time_kind"] = f"measured: {index + 1} probes"
    else:
        trace = result["ours"]["trace_estimate"]
        result["trace_reference"], result["trace_reference_kind"] = trace, "ours (deflated), not exact"
        for name, data in (("pyhessian", theirs), ("ours", ours)):
            spread = float(data["trace_samples"].std(ddof=1))
            probes = (spread / (TRACE_RTOL * abs(trace))) ** 2
            offset = ours["lanczos_s"] if name == "ours" else 0.0
            result[name]["trace_time_s"] = offset + probes * result[name]["trace_seconds_per_probe"]
            result[name]["trace_time_kind"] = f"extrapolated: {probes:.0f} probes for a 1 % standard error"
    for name in ("pyhessian", "ours"):
        part = result[name]
        part["total_s"] = (None if part["lambda_1_time_s"] is None or part["trace_time_s"] is None
                           else part["setup_s"] + part["lambda_1_time_s"] + part["trace_time_s"])
    ratio = lambda key: (None if result["pyhessian"][key] is None or result["ours"][key] in (None, 0)
                         else result["pyhessian"][key] / result["ours"][key])
    result["speedup"] = {"lambda_1": ratio("lambda_1_time_s"), "trace": ratio("trace_time_s"),
                         "total": ratio("total_s")}
    lower = any(result[name]["trace_time_kind"].startswith("lower") for name in ("pyhessian", "ours"))
    result["speedup_kind"] = ("lower bound (PyHessian did not reach 1 %)" if lower
                              else "measured" if case["exact_trace"]
                              else "extrapolated trace times (no exact trace)")
    if result["ours"]["trace_time_kind"].startswith("lower"):
        result["speedup"]["trace"] = result["speedup"]["total"] = None
    del ours["operator"]
    return result


def fmt(value, digits=3):
    return "not reached" if value is None else f"{value:.{digits}g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small models, under a minute")
    size.add_argument("--smoke", action="store_true",
                      help="tiny models and few probes, seconds: checks that it runs (speed-ups mean little)")
    parser.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu",
                        help="where to train and measure (auto: CUDA when available; default cpu)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--output", default=str(REPO / "results" / "benchmarks" / "hessian.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device cuda, but this torch ({torch.__version__}) sees no CUDA device")
    device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and
                                                             torch.cuda.is_available()) else "cpu")
    load_before = os.getloadavg()
    started = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory() as workdir:
        for case in cases(args.quick, args.smoke):
            results.append(measure(case, Path(workdir), device))
    summary = {
        "quick": args.quick, "smoke": args.smoke, "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "data_note": "ResNet-20 on scikit-learn digits upsampled to 32x32 "
        "(16x16 with --quick, 8x8 with --smoke): CIFAR-10 is not available on this machine",
        "eigen_rtol": EIGEN_RTOL, "trace_rtol": TRACE_RTOL, "threads": args.threads,
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "torch_version": torch.__version__, "wall_s": time.perf_counter() - started,
        "cases": results,
    }
    write_json(args.output, summary)
    print(f"\nDevice {summary['device']} ({summary['device_name']}). {summary['data_note']}. "
          f"Load average before/after: "
          f"{load_before[0]:.1f}/{summary['load_average_after'][0]:.1f} on {os.cpu_count()} cores.\n")
    print("| case | what | PyHessian 0.1 | toposweep | speed-up |")
    print("|---|---|---|---|---|")
    for r in results:
        p, o, s = r["pyhessian"], r["ours"], r["speedup"]
        print(f"| {r['label']} | λ₁ to 1e-3 (ref {r['lambda_1_reference']:.6g}) | "
              f"{fmt(p['lambda_1_time_s'])} s | {fmt(o['lambda_1_time_s'])} s | {fmt(s['lambda_1'])}× |")
        kind = "exact" if r["trace_reference_kind"] == "exact" else "extrapolated"
        bound = ">" if r["speedup_kind"].startswith("lower") else ""
        print(f"| | trace to 1 % ({kind} ref {r['trace_reference']:.6g}) | {bound}{fmt(p['trace_time_s'])} s "
              f"({p['trace_time_kind']}; after {p['trace_probes']}: {p['trace_estimate']:.5g} ± {p['trace_standard_error']:.2g}) | "
              f"{fmt(o['trace_time_s'])} s ({r['deflation_rank']} Lanczos steps, then {o['trace_time_kind']}; "
              f"after {o['trace_probes']}: {o['trace_estimate']:.5g} ± {o['trace_standard_error']:.2g}) | "
              f"{bound}{fmt(s['trace'])}× |")
        print(f"| | total incl. setup | {bound}{fmt(p['total_s'])} s | {fmt(o['total_s'])} s | **{bound}{fmt(s['total'])}×** |")
    print(f"\nwrote {args.output} ({summary['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
