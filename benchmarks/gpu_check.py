"""GPU check: the steps behind `benchmarks/gpu_check.sh` (the entry point; see docs/scaling.md).

On one device (cuda, or cpu for the same steps on a machine without a GPU), each step with a time
limit: (1) the environment (torch, CUDA, the device); (2) the landscape benchmark, quick (loop
vs vmap, points/s); (3) the Hessian benchmark (quick on cuda, smoke on cpu); (4) one landscape by
`mpiexec -n 1` and `-n 2` of scripts/sample_landscape.py, every rank on the same device, the two
results compared; (5) a tiny sweep through the real workflow (snakemake: train, Hessian,
landscape, topology, summary table) on the device and the same sweep on the CPU, its numbers
(training loss, lambda_1, trace, landscape values) compared within WORKFLOW_RTOL. Writes
summary.json and table.md in --out; exits 0 only when every step that ran passed. A step whose
packages are missing is skipped with "missing X".

    python benchmarks/gpu_check.py --device cuda|cpu --out DIR [--budget-s S]
    python benchmarks/gpu_check.py --build-wheelhouse .whl   # here, before a run on the device machine
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]

# Seconds per step: on a GPU machine the whole check (setup included) stays within 8 minutes;
# on CPU the sizes are smaller and the limits wider (shared CI cores).
STEP_LIMITS_S = {
    "cuda": {"environment": 60, "landscape_bench": 110, "hessian_bench": 85,
             "mpi_landscape": 75, "workflow": 120},
    "cpu": {"environment": 60, "landscape_bench": 240, "hessian_bench": 120,
            "mpi_landscape": 120, "workflow": 240},
}
STEP_TITLES = {
    "setup": "setup (venv, wheelhouse)",
    "environment": "environment",
    "landscape_bench": "landscape benchmark (quick)",
    "hessian_bench": "Hessian benchmark",
    "mpi_landscape": "MPI landscape, 2 ranks on one device",
    "workflow": "tiny workflow, device vs CPU",
}
# The 2-rank landscape must equal the 1-rank one (same work units, method and chunk): 0 here.
MPI_RTOL = 1e-6
# The workflow on the device vs on the CPU (float32; GPU reductions sum in another order, and 20
# L-BFGS iterations carry the difference into the weights): relative to the CPU values.
WORKFLOW_RTOL = 1e-3

# What each step imports beyond the standard library (module names) and the executables it runs.
REQUIRES = {
    "environment": ["torch"],
    "landscape_bench": ["torch", "numpy", "jsonschema", "yaml", "h5py", "pytest"],
    "hessian_bench": ["torch", "numpy", "scipy", "pandas", "jsonschema", "yaml", "h5py", "pyhessian"],
    "mpi_landscape": ["torch", "numpy", "jsonschema", "yaml", "h5py", "mpi4py"],
    "workflow": ["snakemake", "torch", "numpy", "pandas", "jsonschema", "yaml", "h5py", "numba",
                 "mpi4py"],
}
NEEDS_MPIEXEC = {"mpi_landscape", "workflow"}

# The wheelhouse for the device machine (Python 3.12, x86-64): the packages of requirements.txt
# that its image lacks (KINDS.md's package list), pinned as requirements.txt pins them; torch,
# numpy, scipy, pandas, h5py, numba, matplotlib, ... are the image's own. Development tools
# (black, snakefmt, shfmt-py) are left out. mpi4py is there, but without an MPI library: it comes
# with mpich's. SUPPORT_WHEELS go into the folder but not into its requirements.txt: pip takes
# them only where the image's version does not satisfy a requirement (snakemake: packaging<26).
DEVICE_WHEELS = [
    "annotated-types", "argparse-dataclass", "conda-inject", "ConfigArgParse", "connection_pool",
    "docutils", "dpath", "fastjsonschema", "gitdb", "GitPython", "greenlet", "gudhi",
    "humanfriendly", "immutables", "jsonschema", "jsonschema-specifications", "jupyter_core",
    "mpi4py", "mpich", "nbformat", "platformdirs", "PuLP", "pydantic", "pydantic_core",
    "pyhessian", "referencing", "rpds-py", "smart_open", "smmap", "snakemake",
    "snakemake-executor-plugin-slurm", "snakemake-executor-plugin-slurm-jobstep",
    "snakemake-interface-common", "snakemake-interface-executor-plugins",
    "snakemake-interface-logger-plugins", "snakemake-interface-report-plugins",
    "snakemake-interface-scheduler-plugins", "snakemake-interface-storage-plugins", "SQLAlchemy",
    "sqlmodel", "tenacity", "throttler", "traitlets", "typing-inspection", "tzdata", "yte",
]
SUPPORT_WHEELS = ["packaging", "typing_extensions"]
DEVICE_PYTHON = "3.12"
MANYLINUX = ["manylinux_2_35_x86_64", "manylinux_2_34_x86_64", "manylinux_2_31_x86_64",
             "manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64",
             "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_5_x86_64",
             "manylinux1_x86_64"]


# ---------------------------------------------------------------------------------------------
# processes


def child_environment() -> dict[str, str]:
    """Steps run this interpreter with this checkout's library; its bin folder (snakemake, the
    mpich wheel's mpiexec) first on PATH."""
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(REPO / "src")] + [p for p in environment.get("PYTHONPATH", "").split(os.pathsep) if p])
    environment["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), environment.get("PATH", "")])
    environment.setdefault("PYTHONUNBUFFERED", "1")
    environment.setdefault("MPLBACKEND", "Agg")
    return environment


def tail(path: Path, characters: int = 1500) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text[-characters:]


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


class Finished:
    def __init__(self, returncode: int | None, timed_out: bool, seconds: float, output: str):
        self.returncode, self.timed_out, self.seconds, self.output = returncode, timed_out, seconds, output

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def why(self, timeout: float) -> str:
        if self.timed_out:
            return f"ran past its {timeout:.0f} s"
        return f"exit code {self.returncode}: {last_line(self.output)}"


def run_command(command: list[str], log: Path, timeout: float, cwd: Path | None = None) -> Finished:
    """Run with output appended to `log`; past `timeout` its whole process group is ended."""
    log.parent.mkdir(parents=True, exist_ok=True)
    start = log.stat().st_size if log.exists() else 0
    started = time.perf_counter()
    with open(log, "ab") as handle:
        handle.write(f"\n$ {shlex.join(command)}\n".encode())
        handle.flush()
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, cwd=cwd,
                                   env=child_environment(), start_new_session=True)
        timed_out = False
        try:
            process.wait(timeout=max(timeout, 1))
        except subprocess.TimeoutExpired:
            timed_out = True
            for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
                try:
                    os.killpg(process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    process.wait(timeout=grace)
                    break
                except subprocess.TimeoutExpired:
                    continue
    with open(log, "rb") as handle:
        handle.seek(start)
        output = handle.read().decode(errors="replace")
    return Finished(None if timed_out else process.returncode, timed_out,
                    time.perf_counter() - started, output[-3000:])


def mpiexec() -> str | None:
    """The MPI launcher beside this interpreter (the mpich wheel's), else the one on PATH (as
    the workflow finds it)."""
    return (shutil.which("mpiexec", path=str(Path(sys.executable).parent))
            or shutil.which("mpiexec"))


def missing_requirements(step: str) -> list[str]:
    missing = [name for name in REQUIRES.get(step, []) if importlib.util.find_spec(name) is None]
    if step in NEEDS_MPIEXEC and mpiexec() is None:
        missing.append("mpiexec")
    return missing


# ---------------------------------------------------------------------------------------------
# steps


class Skip(Exception):
    """A step that cannot run here (its reason)."""


class Fail(Exception):
    """A step that ran and did not pass (its reason)."""


ENVIRONMENT_SCRIPT = r"""
import importlib.metadata, json, os, platform, shutil, subprocess, sys
import torch
device = sys.argv[1]
info = {"python": sys.version.split()[0], "executable": sys.executable,
        "torch": torch.__version__, "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "cuda_device_count": torch.cuda.device_count() if torch.cuda.is_available() else 0,
        "cpu_count": os.cpu_count(), "machine": platform.machine(),
        "mpiexec": shutil.which("mpiexec"),
        "matmul_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cudnn_tf32": torch.backends.cudnn.allow_tf32}
packages = {}
for name in ("numpy", "scipy", "pandas", "h5py", "numba", "mpi4py", "mpich", "snakemake",
             "jsonschema", "gudhi", "pyhessian"):
    try:
        packages[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        packages[name] = None
info["packages"] = packages
if torch.cuda.is_available():
    index = torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    info.update(device_name=props.name, capability=f"{props.major}.{props.minor}",
                memory_gib=round(props.total_memory / 2**30, 1),
                multiprocessors=props.multi_processor_count,
                cudnn=torch.backends.cudnn.version())
    if shutil.which("nvidia-smi"):
        run = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        info["driver"] = run.stdout.strip().splitlines()[0] if run.returncode == 0 and run.stdout.strip() else None
if device == "cuda" and not torch.cuda.is_available():
    info["error"] = f"torch {torch.__version__} sees no CUDA device"
else:
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(512, 512, generator=generator, dtype=torch.float64)
    on_device = (a.to(device) @ a.to(device)).cpu()
    info["matmul_max_abs_diff"] = float((on_device - a @ a).abs().max())
    info["device_used"] = str(a.to(device).device)
print("GPU_CHECK_ENVIRONMENT " + json.dumps(info))
"""


def step_environment(ctx: dict) -> dict:
    log = ctx["logs"] / "environment.log"
    done = run_command([sys.executable, "-c", ENVIRONMENT_SCRIPT, ctx["device"]], log, ctx["limit"])
    found = re.search(r"^GPU_CHECK_ENVIRONMENT (.*)$", done.output, flags=re.M)
    if not done.ok or not found:
        raise Fail(done.why(ctx["limit"]))
    info = json.loads(found.group(1))
    ctx["summary"]["environment"] = info
    if "error" in info:
        raise Fail(info["error"])
    if info["matmul_max_abs_diff"] > 1e-9:
        raise Fail(f"a float64 matmul on {ctx['device']} differs from the CPU's by "
                   f"{info['matmul_max_abs_diff']:.2g}")
    keys = ("python", "torch", "torch_cuda", "device_name", "capability", "memory_gib", "driver",
            "cuda_device_count", "cpu_count", "mpiexec")
    return {key: info[key] for key in keys if key in info}


def numbers(tree: Any, prefix: str = "") -> dict[str, Any]:
    """The rates, speed-ups and agreements of a benchmark's JSON, flattened (its layout may
    change; these names are what the table shows)."""
    out: dict[str, Any] = {}
    if isinstance(tree, dict):
        for key, value in tree.items():
            out.update(numbers(value, f"{prefix}{key}."))
    elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
        name = prefix.rstrip(".")
        leaf = name.rsplit(".", 1)[-1]
        if ("points_per_s" in leaf or "speedup" in leaf or "over" in leaf
                or "relative_difference" in leaf or leaf in ("device", "points")):
            out[name] = tree
    elif isinstance(tree, str) and prefix.rstrip(".").rsplit(".", 1)[-1] in ("device", "grid"):
        out[prefix.rstrip(".")] = tree
    return out


def step_landscape_bench(ctx: dict) -> dict:
    script = REPO / "benchmarks" / "landscape_bench.py"
    log = ctx["logs"] / "landscape_bench.log"
    probe = run_command([sys.executable, str(script), "--help"], log, min(ctx["limit"], 60))
    if not probe.ok or "--device" not in probe.output:
        why = (f"its --help failed ({probe.why(60)})" if not probe.ok
               else "--device is not among its options")
        raise Skip(f"benchmarks/landscape_bench.py of this checkout does not take --device: {why}")
    output = ctx["out"] / "landscape.json"
    # the pair on a GPU; the PINN alone in CPU mode (CI), which only checks the step runs
    models = "pinn,resnet20" if ctx["device"] == "cuda" else "pinn"
    done = run_command([sys.executable, str(script), "--quick", "--device", ctx["device"],
                        "--models", models, "--output", str(output)], log,
                       ctx["limit"] - probe.seconds)
    if not done.ok:
        raise Fail(done.why(ctx["limit"]))
    if not output.exists():
        raise Fail(f"it wrote no {output.name}")
    report = json.loads(output.read_text())
    ran_on = report.get("device")
    if ctx["device"] == "cuda" and isinstance(ran_on, str) and ran_on.lower().startswith("cpu"):
        raise Fail(f"asked for cuda, it says it ran on {ran_on!r}")
    return {"output": output.name, **numbers(report)}


def step_hessian_bench(ctx: dict) -> dict:
    output = ctx["out"] / "hessian.json"
    size = "--quick" if ctx["device"] == "cuda" else "--smoke"
    threads = str(min(4, os.cpu_count() or 1)) if ctx["device"] == "cuda" else "1"
    done = run_command([sys.executable, str(REPO / "benchmarks" / "hessian_bench.py"), size,
                        "--device", ctx["device"], "--threads", threads, "--output", str(output)],
                       ctx["logs"] / "hessian_bench.log", ctx["limit"])
    if not done.ok:
        raise Fail(done.why(ctx["limit"]))
    report = json.loads(output.read_text())
    if not report.get("device", "").startswith(ctx["device"]):
        raise Fail(f"it ran on {report.get('device')!r}, not {ctx['device']}")
    metrics: dict[str, Any] = {"output": output.name, "size": size.lstrip("-"),
                               "device": report["device"], "device_name": report.get("device_name")}
    for case in report["cases"]:
        name = case["label"]
        metrics[f"{name}: lambda_1"] = case["lambda_1_reference"]
        metrics[f"{name}: toposweep total s"] = case["ours"]["total_s"]
        metrics[f"{name}: PyHessian total s"] = case["pyhessian"]["total_s"]
        metrics[f"{name}: speed-up"] = case["speedup"]["total"]
    return metrics


TRAIN_SCRIPT = r"""
import sys
from pathlib import Path
from toposweep.config import expand_runs, validate_config
from toposweep.training import train_run
settings = __import__("json").loads(sys.argv[2])
config = validate_config({"experiments": [{"name": "gpu_check", "problem": "pinn_convection",
                                            "settings": settings}]})
train_run(expand_runs(config)[0].to_dict(), Path(sys.argv[1]))
"""

# The MPI step's PINN and landscape: the PINN of the docs' measured 41^3 grid on a GPU; a tiny one
# on a 21^2 grid on CPU (seconds).
MPI_SIZES = {
    "cuda": ({"beta": 10.0, "max_iter": 200},
             {"dimensions": 3, "resolution": 41, "extent": 1.0, "method": "vmap", "chunk_size": 1024}),
    "cpu": ({"beta": 10.0, "max_iter": 20, "hidden_layers": 2, "hidden_width": 10, "x_points": 32,
             "t_points": 16, "n_collocation": 50},
            {"dimensions": 2, "resolution": 21, "extent": 1.0, "method": "vmap", "chunk_size": 21}),
}


def read_h5(path: Path) -> tuple[Any, dict]:
    import h5py

    with h5py.File(path, "r") as handle:
        loss = handle["loss"][()]
        attrs = {}
        for key, value in handle.attrs.items():
            if isinstance(value, bytes):
                value = value.decode()
            if isinstance(value, str) and value[:1] in "{[":
                try:
                    value = json.loads(value)
                except ValueError:
                    pass
            attrs[key] = value
    return loss, attrs


def relative_difference(a, b) -> float:
    """max |a - b| / |b| elementwise (b the reference), NaN where shapes differ."""
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("nan")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))


def step_mpi_landscape(ctx: dict) -> dict:
    device, work = ctx["device"], ctx["out"] / "mpi"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log = ctx["logs"] / "mpi_landscape.log"
    deadline = time.monotonic() + ctx["limit"]
    pinn, landscape = MPI_SIZES[device]
    done = run_command([sys.executable, "-c", TRAIN_SCRIPT, str(work / "pinn"),
                        json.dumps({**pinn, "device": device})], log, ctx["limit"])
    if not done.ok:
        raise Fail(f"training the PINN: {done.why(ctx['limit'])}")
    settings = {**landscape, "device": device}
    metrics: dict[str, Any] = {"grid": "x".join([str(landscape["resolution"])] * landscape["dimensions"]),
                               "chunk_size": landscape["chunk_size"]}
    losses = {}
    for ranks in (1, 2):
        output, report = work / f"ranks{ranks}.h5", work / f"ranks{ranks}.json"
        remaining = deadline - time.monotonic()
        done = run_command([mpiexec(), "-n", str(ranks), sys.executable, "-m", "mpi4py",
                            str(REPO / "scripts" / "sample_landscape.py"),
                            "--checkpoint", str(work / "pinn" / "checkpoint.pt"),
                            "--output", str(output), "--settings", json.dumps(settings),
                            "--threads", "1", "--report", str(report)], log, remaining)
        if not done.ok:
            raise Fail(f"mpiexec -n {ranks}: {done.why(remaining)}")
        result = json.loads(report.read_text())
        losses[ranks], attrs = read_h5(output)
        used = str(attrs.get("provenance", {}).get("device", "")) if isinstance(attrs.get("provenance"), dict) else ""
        if not used.startswith(device):
            raise Fail(f"mpiexec -n {ranks}: rank 0 ran on {used!r}, not {device}")
        metrics[f"ranks_{ranks}_device"] = used
        metrics[f"ranks_{ranks}_points_per_s"] = result["points_computed"] / result["seconds"]
        metrics[f"ranks_{ranks}_wall_s"] = round(done.seconds, 2)
        metrics["points"] = int(losses[ranks].size)
    metrics["ranks_2_over_1"] = metrics["ranks_2_points_per_s"] / metrics["ranks_1_points_per_s"]
    metrics["max_relative_difference"] = relative_difference(losses[2], losses[1])
    metrics["bitwise_equal"] = bool((losses[2] == losses[1]).all())
    if not metrics["max_relative_difference"] <= MPI_RTOL:
        raise Fail(f"2 ranks differ from 1 rank by {metrics['max_relative_difference']:.3g} "
                   f"(relative; allowed {MPI_RTOL:g})")
    return metrics


def workflow_config(device: str) -> str:
    """A tiny PINN through every device stage (and the CPU's topology and summary); method and
    chunk fixed so that runs can be compared."""
    return f"""# benchmarks/gpu_check.py: the tiny workflow on {device}
experiments:
  - name: gpu_check
    problem: pinn_convection
    grid:
      beta: [5]
    seeds: [0]
    settings:
      hidden_layers: 2
      hidden_width: 10
      x_points: 32
      t_points: 16
      n_collocation: 50
      max_iter: 20
      device: {device}
    hessian:
      k: 2
      trace_probes: 8
      density_runs: 1
      density_steps: 10
      density_points: 100
      device: {device}
    landscapes:
      - name: random2d
        resolution: 9
        extent: 0.5
        method: vmap
        chunk_size: 9
        device: {device}
    figures:
      run_panels: false
"""


RUN = "results/gpu_check/beta~5/seed~0"
WORKFLOW_TARGETS = [f"{RUN}/hessian.json", f"{RUN}/random2d/topology.json",
                    "results/gpu_check/tables/random2d/summary.csv"]


def workflow_numbers(workdir: Path) -> dict[str, Any]:
    run = workdir / RUN
    train = json.loads((run / "train_metrics.json").read_text())
    hessian = json.loads((run / "hessian.json").read_text())
    topology = json.loads((run / "random2d" / "topology.json").read_text())
    loss, attrs = read_h5(run / "random2d" / "landscape.h5")
    provenance = attrs.get("provenance") if isinstance(attrs.get("provenance"), dict) else {}
    return {"train_status": train["status"], "train_device": train.get("device"),
            "final_train_loss": train["final_train_loss"],
            "hessian_status": hessian["status"], "hessian_device": hessian.get("device"),
            "top_eigenvalue": hessian["top_eigenvalue"], "trace": hessian["trace"],
            "trace_standard_error": hessian.get("trace_standard_error") or 0.0,
            "trace_deflation_rank": hessian.get("trace_deflation_rank"),
            "landscape_device": provenance.get("device"), "landscape": loss,
            "n_minima": topology["metrics"]["n_minima"], "n_saddles": topology["metrics"]["n_saddles"],
            "avg_persistence": topology["metrics"]["avg_persistence"]}


def step_workflow(ctx: dict) -> dict:
    device = ctx["device"]
    work = ctx["out"] / "workflow"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log = ctx["logs"] / "workflow.log"
    deadline = time.monotonic() + ctx["limit"]
    # On cpu the "device" run and the reference are both CPU runs: the comparison then checks
    # that the workflow repeats itself.
    labels = [(device, device), ("cpu-repeat" if device == "cpu" else "cpu", "cpu")]
    cores = str(min(4, os.cpu_count() or 1))
    found = {}
    for index, (label, run_device) in enumerate(labels):
        config = work / f"config_{label}.yaml"
        config.write_text(workflow_config(run_device))
        remaining = (deadline - time.monotonic()) / (len(labels) - index)
        done = run_command([sys.executable, "-m", "snakemake", *WORKFLOW_TARGETS,
                            "--snakefile", str(REPO / "Snakefile"), "--directory", str(work / label),
                            "--configfile", str(config), "--cores", cores], log, remaining)
        if not done.ok:
            raise Fail(f"snakemake on {run_device}: {done.why(remaining)}; logs in {work / label / 'logs'}")
        found[label] = workflow_numbers(work / label)
        found[label]["seconds"] = round(done.seconds, 1)
        for stage in ("train", "hessian", "landscape"):
            used = str(found[label][f"{stage}_device"])
            if not used.startswith(run_device):
                raise Fail(f"the {stage} step of the {label} run ran on {used!r}, not {run_device}")
    (first, _), (second, _) = labels
    a, b = found[first], found[second]
    metrics: dict[str, Any] = {"runs": f"{first} vs {second}", "rtol": WORKFLOW_RTOL,
                               f"{first}_s": a["seconds"], f"{second}_s": b["seconds"]}
    failures = []
    for status in ("train_status", "hessian_status"):
        if a[status] != "ok" or b[status] != "ok":
            failures.append(f"{status}: {a[status]} / {b[status]}")
    for key in ("final_train_loss", "top_eigenvalue", "trace", "landscape"):
        difference = relative_difference(a[key], b[key])
        metrics[f"{key}_relative_difference"] = difference
        if key != "landscape":
            metrics[f"{key}_{first}"], metrics[f"{key}_{second}"] = a[key], b[key]
        within = difference <= WORKFLOW_RTOL
        if key == "trace" and not within:
            # a Hutchinson estimate: where the Lanczos steps (its deflation) differ, the two
            # estimates differ by their sampling error, so 3 standard errors also pass
            spread = 3 * (a["trace_standard_error"] ** 2 + b["trace_standard_error"] ** 2) ** 0.5
            within = abs(a[key] - b[key]) <= spread
            metrics["trace_within_3_standard_errors"] = within
        if not within:
            failures.append(f"{key} differs by {difference:.3g} (relative; allowed {WORKFLOW_RTOL:g})")
    for key in ("trace_deflation_rank", "n_minima", "n_saddles", "avg_persistence"):  # not compared
        metrics[f"{key}_{first}"], metrics[f"{key}_{second}"] = a[key], b[key]
    if failures:
        raise Fail("; ".join(failures))
    return metrics


STEPS: list[tuple[str, Callable[[dict], dict]]] = [
    ("environment", step_environment),
    ("landscape_bench", step_landscape_bench),
    ("hessian_bench", step_hessian_bench),
    ("mpi_landscape", step_mpi_landscape),
    ("workflow", step_workflow),
]


# ---------------------------------------------------------------------------------------------
# summary


def fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def headline(name: str, metrics: dict) -> list[tuple[str, Any]]:
    """The few numbers of a step that its line in the table shows (all are below it)."""
    wanted = {"environment": ("device_name", "torch", "torch_cuda", "python"),
              "mpi_landscape": ("grid", "ranks_1_points_per_s", "ranks_2_points_per_s",
                                "ranks_2_over_1", "bitwise_equal"),
              "workflow": ("runs", "final_train_loss_relative_difference",
                           "top_eigenvalue_relative_difference", "trace_relative_difference",
                           "landscape_relative_difference")}
    if name in wanted:
        return [(key, metrics[key]) for key in wanted[name] if key in metrics]
    if name == "hessian_bench":
        return [(key, value) for key, value in metrics.items() if key.endswith("speed-up")]
    return [(key, value) for key, value in metrics.items()
            if "points_per_s" in key or "speedup" in key][:6]


def write_table(summary: dict, path: Path) -> None:
    lines = [f"# GPU check on {summary['device']}"
             + (f" ({summary['environment'].get('device_name')})"
                if summary.get("environment", {}).get("device_name") else ""),
             "",
             f"{'passed' if summary['passed'] else 'FAILED'}: {summary['wall_s']:.0f} s in all, "
             f"budget {summary['budget_s']:.0f} s; written by benchmarks/gpu_check.py.",
             "", "| step | status | seconds | limit | result |", "|---|---|---|---|---|"]
    for step in summary["steps"]:
        reason = step["reason"].replace("|", "\\|").replace("\n", " ")
        result = reason if step["status"] != "passed" else "; ".join(
            f"{key} {fmt(value)}" for key, value in headline(step["name"], step["metrics"]))
        status = step["status"] if step["status"] == "passed" else f"**{step['status']}**"
        limit = f"{step['limit_s']:.0f}" if step["limit_s"] else "-"
        lines.append(f"| {step['title']} | {status} | {step['seconds']:.1f} | {limit} | "
                     f"{result.replace('|', '/')} |")
    for step in summary["steps"]:
        if step["metrics"]:
            lines += ["", f"## {step['title']}", "", "| what | value |", "|---|---|"]
            lines += [f"| {key} | {fmt(value)} |" for key, value in step["metrics"].items()]
    path.write_text("\n".join(lines) + "\n")


def check(device: str, out: Path, budget_s: float, setup: dict | None) -> int:
    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    summary: dict[str, Any] = {
        "device": device, "budget_s": budget_s, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": sys.executable, "repository": str(REPO),
        "tolerances": {"mpi_rtol": MPI_RTOL, "workflow_rtol": WORKFLOW_RTOL},
        "step_limits_s": STEP_LIMITS_S[device], "steps": [],
    }
    if setup:
        summary["steps"].append({"name": "setup", "title": STEP_TITLES["setup"], "limit_s": 0.0,
                                 "metrics": {}, "log": "setup.log", **setup})
    for name, function in STEPS:
        left = budget_s - (time.monotonic() - started) - 5
        limit = min(STEP_LIMITS_S[device][name], left)
        step = {"name": name, "title": STEP_TITLES[name], "limit_s": max(limit, 0.0),
                "status": "passed", "reason": "", "seconds": 0.0, "metrics": {},
                "log": f"logs/{name}.log"}
        step_started = time.monotonic()
        print(f"gpu_check: {STEP_TITLES[name]} (at most {max(limit, 0):.0f} s) ...", flush=True)
        try:
            missing = missing_requirements(name)
            if missing:
                raise Skip(f"missing {', '.join(missing)} (carry the wheelhouse: docs/scaling.md)")
            if limit < 10:
                raise Skip(f"no time left in the {budget_s:.0f} s budget")
            step["metrics"] = function({"device": device, "out": out, "logs": logs,
                                        "limit": limit, "summary": summary})
        except Skip as skip:
            step.update(status="skipped", reason=str(skip))
        except Fail as fail:
            step.update(status="failed", reason=str(fail))
        except Exception as error:  # noqa: BLE001  (a broken step is a failed step, not a crash)
            step.update(status="failed", reason=f"{type(error).__name__}: {error}")
        step["seconds"] = time.monotonic() - step_started
        print(f"gpu_check: {STEP_TITLES[name]}: {step['status']} in {step['seconds']:.1f} s"
              + (f": {step['reason']}" if step["reason"] else ""), flush=True)
        summary["steps"].append(step)
        summary["wall_s"] = time.monotonic() - started
        summary["passed"] = not any(s["status"] == "failed" for s in summary["steps"])
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    write_table(summary, out / "table.md")
    with open(out / "steps.log", "w") as handle:  # every log in one file (what comes back)
        for path in [out / "setup.log"] + [logs / f"{name}.log" for name, _ in STEPS]:
            if path.exists():
                handle.write(f"===== {path.name}\n{tail(path, 20000)}\n")
        for path in sorted((out / "workflow").glob("*/logs/**/*.log")):  # the workflow's jobs
            handle.write(f"===== {path.relative_to(out)}\n{tail(path, 3000)}\n")
    print((out / "table.md").read_text(), flush=True)
    print(f"gpu_check: wrote {out / 'summary.json'} and {out / 'table.md'}", flush=True)
    return 0 if summary["passed"] else 1


# ---------------------------------------------------------------------------------------------
# the wheelhouse


def requirement_pins() -> dict[str, str]:
    normal = lambda name: re.sub(r"[-_.]+", "-", name).lower()
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.split("==", 1)
            pins[normal(name.strip())] = f"{name.strip()}=={version.strip()}"
    return {normal(name): pins[normal(name)] for name in DEVICE_WHEELS + SUPPORT_WHEELS}


def build_wheelhouse(destination: Path) -> int:
    """Download (or, for a package with no wheel, build here: pure Python only) the wheels the
    device machine lacks, for its Python; write their pinned list as requirements.txt."""
    destination.mkdir(parents=True, exist_ok=True)
    platforms = [arg for platform in MANYLINUX for arg in ("--platform", platform)]
    pins = requirement_pins()
    normal = lambda name: re.sub(r"[-_.]+", "-", name).lower()
    for key, requirement in pins.items():
        download = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "--only-binary=:all:", "--python-version", DEVICE_PYTHON, "--implementation",
                    "cp", *platforms, "--dest", str(destination), requirement]
        if subprocess.run(download, capture_output=True, text=True).returncode == 0:
            continue
        built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                                "--wheel-dir", str(destination), requirement],
                               capture_output=True, text=True)
        if built.returncode != 0:
            print(built.stderr[-2000:], file=sys.stderr)
            print(f"no wheel for {requirement}", file=sys.stderr)
            return 1
        name = requirement.split("==")[0]
        wheels = [w for w in destination.glob("*.whl") if normal(w.name.split("-")[0]) == normal(name)]
        if not any(w.name.endswith("-none-any.whl") for w in wheels):
            print(f"{requirement}: built here, but not pure Python: it would not run there", file=sys.stderr)
            return 1
    (destination / "requirements.txt").write_text(
        "# benchmarks/gpu_check.py --build-wheelhouse: what the device machine's image lacks\n"
        + "".join(pins[normal(name)] + "\n" for name in DEVICE_WHEELS))
    wheels = sorted(destination.glob("*.whl"))
    size = sum(w.stat().st_size for w in wheels)
    print(f"{destination}: {len(wheels)} wheels, {size / 2**20:.1f} MiB "
          f"(the device run carries at most 64 MiB with the working tree)")
    return 0


# ---------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "benchmarks" / "gpu_check")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="seconds for all steps (default: the sum of their limits)")
    parser.add_argument("--setup-status", choices=["passed", "failed", "skipped"],
                        help="(from gpu_check.sh) how its setup went")
    parser.add_argument("--setup-reason", default="")
    parser.add_argument("--setup-seconds", type=float, default=0.0)
    parser.add_argument("--build-wheelhouse", type=Path, metavar="DIR",
                        help="download the device machine's missing wheels into DIR and stop")
    args = parser.parse_args()
    if args.build_wheelhouse:
        return build_wheelhouse(args.build_wheelhouse)
    budget = args.budget_s if args.budget_s is not None else sum(STEP_LIMITS_S[args.device].values())
    setup = None
    if args.setup_status:
        setup = {"status": args.setup_status, "reason": args.setup_reason, "seconds": args.setup_seconds}
    return check(args.device, args.out.resolve(), budget, setup)


if __name__ == "__main__":
    sys.exit(main())
