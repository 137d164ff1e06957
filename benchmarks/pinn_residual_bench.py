"""The PINN residual u_t + beta u_x by reverse mode (toposweep's: one torch.func.vjp, as the
reference's torch.autograd.grad) against forward mode (one torch.func.jvp along (beta, 1), what
toposweep used before issue 16), side by side in one process: the time of a training step (the
loss and its gradient with respect to the weights, as L-BFGS's closure computes it) and of one
loss evaluation at fixed weights (a landscape point), on the paper's PINN and one of another
shape. One torch thread (as a workflow job), medians of `--repeats` interleaved timings.

Writes results/benchmarks/pinn_residual.json (`--output`) and prints a table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests"))
from conftest import make_runs  # noqa: E402  (validated run settings)
from toposweep.io import write_json  # noqa: E402
from toposweep.problems import pinn_convection  # noqa: E402
from toposweep.stage import configure_process  # noqa: E402

SHAPES = {"pinn": {}, "pinn_32x6_nf1000": {"hidden_width": 32, "hidden_layers": 6, "n_collocation": 1000}}


def forward_mode_residual(u, points: torch.Tensor, beta: float) -> torch.Tensor:
    """The residual before issue 16: u's derivative along (beta, 1) by one forward-mode jvp."""
    direction = points.new_tensor([beta, 1.0]).expand_as(points)
    return torch.func.jvp(u, (points,), (direction,))[1]


def ms_per_call(function, calls: int = 20) -> float:
    """Milliseconds per call over `calls` calls, after one untimed call."""
    function()
    start = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - start) / calls * 1e3


def measure(settings: dict, repeats: int) -> dict:
    run = make_runs("pinn_convection", {"beta": 10.0, **settings})[0]
    problem = pinn_convection.PinnConvection(run["settings"], seed=0)
    torch.manual_seed(0)
    model = problem.build_model()

    def training_step():
        model.zero_grad()
        problem.loss_terms(model)["loss"].backward()

    def evaluation():
        with torch.no_grad():
            return float(problem.loss_terms(model)["loss"])

    reverse = pinn_convection.convection_residual
    times: dict[str, list[float]] = {}
    for _ in range(repeats):  # interleaved: each round times both residuals
        for name, residual in (("reverse", reverse), ("forward", forward_mode_residual)):
            pinn_convection.convection_residual = residual
            try:
                times.setdefault(f"{name}_step_ms", []).append(ms_per_call(training_step))
                times.setdefault(f"{name}_loss_ms", []).append(ms_per_call(evaluation))
            finally:
                pinn_convection.convection_residual = reverse
    out = {key: statistics.median(values) for key, values in times.items()}
    out["step_speedup"] = out["forward_step_ms"] / out["reverse_step_ms"]
    out["loss_speedup"] = out["forward_loss_ms"] / out["reverse_loss_ms"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=str(REPO / "results" / "benchmarks" / "pinn_residual.json"))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    configure_process(args.threads)
    load = os.getloadavg()
    report = {"torch_threads": torch.get_num_threads(), "torch_version": torch.__version__,
              "repeats": args.repeats, "loadavg_start": load,
              "models": {name: measure(settings, args.repeats) for name, settings in SHAPES.items()}}
    report["loadavg_end"] = os.getloadavg()
    write_json(args.output, report)
    print(f"torch threads {report['torch_threads']}, load at start {load[0]:.2f}, medians of {args.repeats}")
    print("| model | training step, forward mode | reverse mode | speed-up | loss, forward mode | reverse mode | speed-up |")
    print("|---|---|---|---|---|---|---|")
    for name, r in report["models"].items():
        print(f"| {name} | {r['forward_step_ms']:.2f} ms | {r['reverse_step_ms']:.2f} ms | {r['step_speedup']:.2f}x | "
              f"{r['forward_loss_ms']:.2f} ms | {r['reverse_loss_ms']:.2f} ms | {r['loss_speedup']:.2f}x |")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
