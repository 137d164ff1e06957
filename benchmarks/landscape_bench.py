"""Landscape evaluation, side by side in one process: the per-point loop of established tools,
toposweep's `sample_grid(method="auto")` (probe and adaptation included), and loss-landscapes
3.0.6 (`random_plane`) as an optional reference, on four models: the PINN of the papers, a PINN
of another shape, an MLP on digits and ResNet-20; quiet, and with a CPU burner (a subprocess
spinning on one core) during the measurement.

The loop copies the perturbed weights into the model in place and runs the ordinary loss (for
the PINN: module forward and torch.autograd.grad for u_x, u_t). The process is set up as every
workflow job (toposweep.stage.configure_process): torch threads pinned (`--threads`, default 1),
glibc's allocator keeping freed memory; all three ways run in it. Every time is the median of
`--repeats` runs, the methods interleaved. The machine's load (os.getloadavg) is recorded before
each condition. For each model the loop's time is also split by operator (torch.profiler, self
time): an operator that costs the same per point whatever the batching (tanh, log_softmax)
bounds what batching can gain, and the report names the largest.

loss-landscapes is imported only if present, never a dependency: install it beside, e.g.
`pip install --no-deps --target /work/venvs/loss-landscapes-3.0.6 loss-landscapes==3.0.6`, and
point LOSS_LANDSCAPES_PATH (or --loss-landscapes) at that folder.

Writes results/benchmarks/landscape.json (`--output`) and prints a table. `--quick` (smaller
models and grids, quiet only, one repeat) finishes in under 60 s; `--device cuda` runs on a GPU.
Without --quick on a CPU it also runs the real landscape script under `mpiexec -n 1` and `-n 2`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests"))
from conftest import make_runs  # noqa: E402  (validated run configs)
from toposweep.directions import flatten, random_directions  # noqa: E402
from toposweep.io import read_json, write_json  # noqa: E402
from toposweep.landscape import grid_axes, grid_coefficients, sample_grid  # noqa: E402
from toposweep.layout import TrainFiles  # noqa: E402
from toposweep.stage import configure_process  # noqa: E402
from toposweep.training import load_trained, train_run  # noqa: E402

LOSS_LANDSCAPES = os.environ.get("LOSS_LANDSCAPES_PATH", "/work/venvs/loss-landscapes-3.0.6")
IDLE_LOAD = 0.8  # 1-minute load average below which the machine counts as idle
GOALS = {"pinn_speedup": 4.0, "mlp_over_loss_landscapes": 1.0, "never_slower_than_loop": 1.0}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def import_loss_landscapes(path: str | None):
    """The loss_landscapes module if importable (from the environment or `path`), else None."""
    if path and Path(path).is_dir() and path not in sys.path:
        sys.path.append(path)
    try:
        import loss_landscapes
        import loss_landscapes.metrics  # noqa: F401
    except ImportError:
        return None
    return loss_landscapes


# --- the models ----------------------------------------------------------------------------------
class Case:
    """One model: its pure loss and parameters (toposweep), the module and the loop's loss."""

    def __init__(self, name, model, loss_fn, params, loop_loss, metric_loss, description):
        self.name, self.model, self.loss_fn, self.params = name, model, loss_fn, params
        self.loop_loss, self.metric_loss, self.description = loop_loss, metric_loss, description


def pinn_case(name: str, settings: dict, folder: Path, device: torch.device) -> Case:
    train_run(make_runs("pinn_convection", {"beta": 10.0, "max_iter": 300, **settings})[0], folder)
    problem, model, _ = load_trained(folder / TrainFiles.checkpoint, device)
    model.eval()
    loss_fn, params = problem.loss_function(model)

    def loop_loss(module) -> float:
        """The established PINN loss: module forward, u_x and u_t by torch.autograd.grad."""
        points = problem.collocation_points.clone().requires_grad_(True)
        u = module(points)
        (du,) = torch.autograd.grad(u.sum(), points)
        residual = du[:, 1:2] + problem.beta * du[:, 0:1]
        with torch.no_grad():
            initial = torch.mean((module(problem.initial_points) - problem.initial_values) ** 2)
            boundary = torch.mean((module(problem.lower_boundary) - module(problem.upper_boundary)) ** 2)
        return float(initial + boundary + torch.mean(residual.detach() ** 2))

    shape = (f"{settings.get('hidden_layers', 4)} x {settings.get('hidden_width', 50)} tanh, "
             f"N_f {settings.get('n_collocation', 100)}")
    return Case(name, model, loss_fn, params, loop_loss, loop_loss, f"PINN beta = 10, {shape}")


def classifier_case(name, model, images, labels, description) -> Case:
    buffers = {n: b.detach() for n, b in model.named_buffers()}

    def loss_fn(params):
        logits = torch.func.functional_call(model, {**params, **buffers}, (images,))
        return F.cross_entropy(logits, labels)

    def loop_loss(module) -> float:
        with torch.no_grad():
            return float(F.cross_entropy(module(images), labels))

    def metric_loss(module) -> float:  # loss_landscapes.metrics.Loss: no no_grad
        return F.cross_entropy(module(images), labels).item()

    params = {n: p.detach() for n, p in model.named_parameters()}
    return Case(name, model, loss_fn, params, loop_loss, metric_loss, description)


def digits_mlp_case(device: torch.device) -> Case:
    """A plain classifier: MLP 64 -> 24 -> 10 (1,810 parameters) on scikit-learn's digits."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    images = torch.tensor(x / 16.0, dtype=torch.float32, device=device)
    labels = torch.tensor(y, device=device)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 24), torch.nn.ReLU(), torch.nn.Linear(24, 10)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(200):
        optimizer.zero_grad()
        F.cross_entropy(model(images), labels).backward()
        optimizer.step()
    model.eval()
    return classifier_case("mlp_digits", model, images, labels,
                           "MLP 64-24-10 (1,810 parameters), 1,797 digits")


def resnet_case(folder: Path, device: torch.device, quick: bool) -> Case:
    width, batch = (8, 64) if quick else (16, 32)
    run = make_runs("resnet20", {"dataset": "digits", "input_size": 32, "width": width, "epochs": 1,
                                 "max_train_samples": 512, "eval_batch_size": batch})[0]
    train_run(run, folder)
    problem, model, _ = load_trained(folder / TrainFiles.checkpoint, device)
    model.eval()
    images, labels = problem.evaluation_batch()
    n = sum(p.numel() for p in model.parameters())
    return classifier_case("resnet20", model, images, labels,
                           f"ResNet-20 w = {width} ({n:,} parameters), batch {batch}, digits 32 x 32")


# --- the three ways ------------------------------------------------------------------------------
def loop_landscape(case: Case, directions, axes) -> np.ndarray:
    """Per point: theta + sum a_i d_i copied into the model in place, then the ordinary loss."""
    names = list(case.params)
    theta = flatten(case.params, names)
    matrix = torch.stack([flatten(d, names) for d in directions])
    coefficients = torch.as_tensor(grid_coefficients(axes)).to(theta)
    out = np.empty(len(coefficients))
    module_params = [dict(case.model.named_parameters())[n] for n in names]
    for index, row in enumerate(coefficients):
        with torch.no_grad():
            torch.nn.utils.vector_to_parameters(theta + row @ matrix, module_params)
        out[index] = case.loop_loss(case.model)
    with torch.no_grad():
        torch.nn.utils.vector_to_parameters(theta, module_params)
    return out.reshape([len(a) for a in axes])


def loss_landscapes_plane(ll, case: Case, steps: int) -> np.ndarray:
    """loss-landscapes' random_plane (its own random filter-normalised directions), the model
    restored afterwards (random_plane moves the weights in place)."""
    class Metric(ll.metrics.Metric):
        def __call__(self, model_wrapper):
            return case.metric_loss(model_wrapper.modules[0])

    saved = {k: v.clone() for k, v in case.model.state_dict().items()}
    try:
        return np.asarray(ll.random_plane(case.model, Metric(), distance=1, steps=steps,
                                          normalization="filter", deepcopy_model=False))
    finally:
        case.model.load_state_dict(saved)


def loop_profile(case: Case, directions, points: int = 32, top: int = 4) -> dict:
    """The established loop's time per operator (self CPU time, torch.profiler) over `points`
    points: the `top` operators' shares, and the batching bound 1 / (the largest share), which
    holds where that operator costs the same per point in any batch (elementwise kernels)."""
    from torch.profiler import ProfilerActivity, profile

    axes = grid_axes(2, int(points**0.5), 1.0)
    loop_landscape(case, directions, axes)
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        loop_landscape(case, directions, axes)
    times = {e.key: e.self_cpu_time_total for e in profiler.key_averages()}
    total = sum(times.values())
    shares = dict(sorted(((k, v / total) for k, v in times.items()), key=lambda kv: -kv[1])[:top])
    return {"shares": shares, "largest": next(iter(shares)),
            "bound_if_largest_is_per_point": 1 / next(iter(shares.values()))}


def timed(function, device) -> tuple[float, object]:
    sync(device)
    start = time.perf_counter()
    value = function()
    sync(device)
    return time.perf_counter() - start, value


def measure(case: Case, resolution: int, repeats: int, ll, device) -> dict:
    """Median seconds of the loop, toposweep and loss-landscapes over `repeats` interleaved runs."""
    directions = random_directions(case.params, 2, seed=0)
    axes = grid_axes(2, resolution, 1.0)
    warm = grid_axes(2, 3, 1.0)  # each way once, untimed: a fresh process runs slow at first
    loop_landscape(case, directions, warm)
    sample_grid(case.loss_fn, case.params, directions, warm)
    times: dict[str, list[float]] = {"loop": [], "ours": [], "loss_landscapes": []}
    records, reference, ours, error = [], None, None, None
    for _ in range(repeats):
        seconds, reference = timed(lambda: loop_landscape(case, directions, axes), device)
        times["loop"].append(seconds)
        record = {}
        seconds, ours = timed(lambda: sample_grid(case.loss_fn, case.params, directions, axes,
                                                  record=record), device)
        times["ours"].append(seconds)
        records.append({k: record[k] for k in ("method", "chunk_size", "units", "unit_size")})
        if ll is not None and error is None:
            try:
                seconds, _ = timed(lambda: loss_landscapes_plane(ll, case, resolution), device)
                times["loss_landscapes"].append(seconds)
            except Exception as failure:  # noqa: BLE001  (a reference that cannot run here)
                error = f"{type(failure).__name__}: {failure}"
    points = resolution**2
    out = {"seconds": times, "points": points, "evaluation": records,
           "max_relative_difference": float(np.max(np.abs(ours - reference) / np.maximum(np.abs(reference), 1e-12)))}
    for way, values in times.items():
        if values:
            out[f"{way}_median_s"] = statistics.median(values)
            out[f"{way}_points_per_s"] = points / out[f"{way}_median_s"]
    out["speedup_over_loop"] = out["loop_median_s"] / out["ours_median_s"]
    if "loss_landscapes_median_s" in out:
        out["speedup_over_loss_landscapes"] = out["loss_landscapes_median_s"] / out["ours_median_s"]
    if error:
        out["loss_landscapes_error"] = error
    return out


# --- conditions, MPI, report ---------------------------------------------------------------------
def start_burner() -> subprocess.Popen:
    """A subprocess spinning on one core (core 0 where affinity can be set)."""
    code = ("import os\ntry:\n    os.sched_setaffinity(0, {0})\nexcept (AttributeError, OSError):\n"
            "    pass\nwhile True:\n    pass\n")
    burner = subprocess.Popen([sys.executable, "-c", code])
    time.sleep(0.5)
    return burner


def mpi_scaling(checkpoint: Path, dimensions: int, resolution: int) -> dict:
    """The real landscape script under mpiexec with 1 and 2 ranks, one torch thread each."""
    settings = {"dimensions": dimensions, "resolution": resolution, "extent": 1.0, "seed": 0,
                "method": "auto", "device": "cpu"}
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


def goals(models: dict) -> dict:
    """Which goals the measurement meets, per condition."""
    out = {}
    for condition in ("quiet", "burner"):
        rows = {name: m["conditions"][condition] for name, m in models.items() if condition in m["conditions"]}
        if not rows:
            continue
        pinns = [r["speedup_over_loop"] for n, r in rows.items() if n.startswith("pinn")]
        mlp = rows.get("mlp_digits", {}).get("speedup_over_loss_landscapes")
        out[condition] = {
            "pinn_speedups": pinns, "pinn_goal_met": bool(pinns) and min(pinns) >= GOALS["pinn_speedup"],
            "mlp_over_loss_landscapes": mlp,
            "mlp_goal_met": None if mlp is None else mlp >= GOALS["mlp_over_loss_landscapes"],
            "slowest_over_loop": min(r["speedup_over_loop"] for r in rows.values()),
            "never_slower_met": min(r["speedup_over_loop"] for r in rows.values()) >= 1.0,
        }
    return out


def print_table(report: dict) -> None:
    m = report["machine"]
    print(f"device {report['device']}, torch threads {report['torch_threads']}, repeats "
          f"{report['repeats']}, load at start {m['loadavg_start'][0]:.2f} ({'idle' if m['idle'] else 'NOT idle'}); "
          f"loss-landscapes: {report['loss_landscapes'] or 'not installed'}")
    print("| model | condition | grid | loop pt/s | toposweep pt/s | loss-landscapes pt/s | ours/loop | ours/loss-landscapes | load |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, model in report["models"].items():
        for condition, r in model["conditions"].items():
            ll = r.get("loss_landscapes_points_per_s")
            over_ll = r.get("speedup_over_loss_landscapes")
            print(f"| {name} | {condition} | {model['grid']} | {r['loop_points_per_s']:,.0f} | "
                  f"{r['ours_points_per_s']:,.0f} | {'-' if ll is None else f'{ll:,.0f}'} | "
                  f"{r['speedup_over_loop']:.2f}x | {'-' if over_ll is None else f'{over_ll:.2f}x'} | "
                  f"{r['loadavg'][0]:.2f} |")
    for name, model in report["models"].items():
        if "loop_profile" not in model:
            continue
        shares = ", ".join(f"{op} {share:.0%}" for op, share in model["loop_profile"]["shares"].items())
        print(f"{name}: the loop's time by operator: {shares}")
    for condition, g in report["goals"].items():
        print(f"goals, {condition}: PINNs >= 4x: {g['pinn_goal_met']} {[round(s, 2) for s in g['pinn_speedups']]}; "
              f"MLP >= 1.0x loss-landscapes: {g['mlp_goal_met']}; never slower than the loop: "
              f"{g['never_slower_met']} (slowest {g['slowest_over_loop']:.2f}x)")
    if "mpi_pinn" in report:
        r = report["mpi_pinn"]
        print(f"MPI on the PINN {r['grid']} grid: 1 rank {r['ranks_1_points_per_s']:.0f} points/s, "
              f"2 ranks {r['ranks_2_points_per_s']:.0f} points/s: {r['ranks_2_over_1']:.2f}x")


MODELS = ("pinn", "pinn_32x6_nf1000", "mlp_digits", "resnet20")


def build_cases(folder: Path, device: torch.device, quick: bool,
                names: tuple[str, ...] = MODELS) -> list[tuple[Case, int]]:
    """(case, grid resolution) of the models named."""
    other = {"hidden_width": 32, "hidden_layers": 6, "n_collocation": 1000}
    grids = dict(zip(MODELS, (31, 31, 21, 5) if quick else (61, 41, 41, 13)))
    make = {"pinn": lambda: pinn_case("pinn", {}, folder / "pinn", device),
            "pinn_32x6_nf1000": lambda: pinn_case("pinn_32x6_nf1000", other, folder / "pinn2", device),
            "mlp_digits": lambda: digits_mlp_case(device),
            "resnet20": lambda: resnet_case(folder / "resnet", device, quick)}
    return [(make[name](), grids[name]) for name in MODELS if name in names]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small grids, quiet only, one repeat (< 60 s)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--output", default=str(REPO / "results" / "benchmarks" / "landscape.json"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as a workflow job)")
    parser.add_argument("--repeats", type=int, help="runs per way (median; default 3, --quick 1)")
    parser.add_argument("--no-burner", action="store_true", help="skip the loaded condition")
    parser.add_argument("--loss-landscapes", default=LOSS_LANDSCAPES, help="folder holding loss_landscapes")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {MODELS}")
    args = parser.parse_args()
    configure_process(args.threads)  # as every workflow job: threads, and malloc keeps freed memory
    device = torch.device(args.device)
    repeats = args.repeats or (1 if args.quick else 3)
    ll = import_loss_landscapes(args.loss_landscapes)
    load = os.getloadavg()
    report = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch_threads": torch.get_num_threads(), "torch_version": torch.__version__,
              "quick": args.quick, "repeats": repeats,
              "loss_landscapes": getattr(ll, "__version__", "3.0.6" if ll else None),
              "machine": {"cpu_count": os.cpu_count(), "loadavg_start": load, "idle": load[0] < IDLE_LOAD},
              "models": {}}
    print(f"loss-landscapes {'found' if ll else 'not found (reference skipped)'}; load {load[0]:.2f}", flush=True)
    conditions = ("quiet",) if args.quick or args.no_burner else ("quiet", "burner")
    with tempfile.TemporaryDirectory() as tmp:
        cases = build_cases(Path(tmp), device, args.quick, tuple(args.models.split(",")))
        for case, resolution in cases:
            report["models"][case.name] = {"description": case.description, "grid": f"{resolution}x{resolution}",
                                           "parameters": sum(p.numel() for p in case.params.values()),
                                           "conditions": {}}
        for case, _ in cases if device.type == "cpu" else ():  # CPU time says little of a GPU's
            report["models"][case.name]["loop_profile"] = loop_profile(
                case, random_directions(case.params, 2, seed=0))
        for condition in conditions:
            burner = start_burner() if condition == "burner" else None
            try:
                for case, resolution in cases:
                    result = measure(case, resolution, repeats, ll, device)
                    result["loadavg"] = os.getloadavg()
                    report["models"][case.name]["conditions"][condition] = result
                    print(f"{case.name} {condition}: {result['speedup_over_loop']:.2f}x the loop", flush=True)
            finally:
                if burner is not None:
                    burner.kill()
                    burner.wait()
        if device.type == "cpu" and not args.quick and "pinn" in args.models.split(","):
            report["mpi_pinn"] = mpi_scaling(Path(tmp) / "pinn" / TrainFiles.checkpoint, 3, 41)
    report["goals"] = goals(report["models"])
    report["machine"]["loadavg_end"] = os.getloadavg()
    write_json(args.output, report)
    print_table(report)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
