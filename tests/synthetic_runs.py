"""A small experiment written to disk with the stages' own writers (no training): analytic
landscapes whose topology is known, so aggregation and figures are tested on real files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from toposweep.aggregate import RunSpec
from toposweep.io import write_csv, write_json, write_landscape, write_npz
from toposweep.topology import write_topology_outputs
from toposweep.topology.outputs import write_skipped_topology

AXIS = np.linspace(-1.0, 1.0, 11)
RUN_FILES = {"train_metrics": "train_metrics.json", "hessian": "hessian.json",
             "landscape": "landscape.h5", "topology": "topology.json", "profile": "profile.json"}
PANEL_FILES = {"train_metrics": "train_metrics.json", "curve": "curve.csv",
               "predictions": "predictions.npz", "hessian": "hessian.json",
               "density": "density.csv", "landscape": "landscape.h5", "topology": "topology.json",
               "merge_tree": "merge_tree.json", "persistence": "persistence.csv",
               "profile": "profile.json"}


@dataclass(frozen=True)
class SyntheticRun(RunSpec):
    """A run whose files (of every stage, its one landscape's too) sit in one folder."""

    directory: Path = Path()


def synthetic_run(directory: Path, experiment: str, point: str, seed: int, swept: dict) -> SyntheticRun:
    files = {key: directory / name for key, name in RUN_FILES.items()}
    return SyntheticRun(experiment, point, seed, swept, files, directory)


def panel_files(directory: Path) -> dict[str, Path]:
    """The run panel's files of a synthetic run (all in its folder)."""
    return {key: directory / name for key, name in PANEL_FILES.items()}


def wells(n_wells: int, depth: float) -> np.ndarray:
    """A 2-D landscape with `n_wells` separated Gaussian wells on a bowl (n_wells minima)."""
    x, y = np.meshgrid(AXIS, AXIS, indexing="ij")
    loss = 1.0 + 0.5 * (x**2 + y**2)
    centres = [(-0.6, -0.6), (0.6, 0.6), (-0.6, 0.6), (0.6, -0.6), (0.0, 0.0)][:n_wells]
    for k, (cx, cy) in enumerate(centres):
        loss -= depth * (1 + 0.1 * k) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 0.02)
    return loss


def write_run(results: Path, experiment: str, beta: float, seed: int, n_wells: int,
              status: str = "ok") -> RunSpec:
    """All stage files of one PINN-like run; `status` "diverged" writes skipped later stages."""
    point = f"beta~{beta:g}"
    run = synthetic_run(results / experiment / point / f"seed~{seed}", experiment, point, seed, {"beta": beta})
    run.directory.mkdir(parents=True, exist_ok=True)
    ok = status == "ok"
    write_json(run.directory / "train_metrics.json", {
        "status": status, "message": "" if ok else "training loss became nan at step 3",
        "experiment": experiment, "problem": "pinn_convection", "point": point, "seed": seed,
        "swept": {"beta": beta}, "final_train_loss": 1e-3 * beta if ok else float("nan"),
        "test_relative_l2": 0.01 * beta + 0.001 * seed if ok else float("nan"),
        "test_mean_abs_error": 0.005 * beta if ok else float("nan"), "n_steps": 10,
        "wall_time_s": 1.0, "settings": {"beta": beta},
    })
    write_csv(run.directory / "curve.csv", _curve())
    t, x = np.linspace(0, 1, 8), np.linspace(0, 2 * np.pi, 16, endpoint=False)
    exact = np.sin(x[None, :] - beta * t[:, None])
    write_npz(run.directory / "predictions.npz", {"x": x, "t": t, "u_exact": exact,
                                                  "u_pred": 0.9 * exact})
    if ok:
        eigenvalues = [100.0 * beta + seed, 10.0 * beta]
        write_json(run.directory / "hessian.json", {
            "status": "ok", "message": "", "eigenvalues": eigenvalues,
            "top_eigenvalue": eigenvalues[0], "trace": 150.0 * beta, "trace_standard_error": 1.0,
        })
        grid = np.linspace(-10, 110 * beta, 200)
        density = np.exp(-((grid - eigenvalues[0]) ** 2) / 50) + np.exp(-(grid**2) / 50)
        import pandas as pd

        write_csv(run.directory / "density.csv", pd.DataFrame({"eigenvalue": grid, "density": density}))
        loss = wells(n_wells, depth=0.2 * beta)
        write_landscape(run.directory / "landscape.h5", loss, [AXIS, AXIS],
                        attrs={"status": "ok", "settings": {"directions": "random"}})
        write_topology_outputs(loss, run.directory, axes=[AXIS, AXIS])
    else:
        write_json(run.directory / "hessian.json", {"status": "skipped", "message": "training status is 'diverged'"})
        write_landscape(run.directory / "landscape.h5", np.zeros((0, 0)), [np.zeros(0), np.zeros(0)],
                        attrs={"status": "skipped", "message": "training status is 'diverged'"})
        write_skipped_topology(run.directory, "landscape status is 'skipped'")
    return run


def _curve():
    import pandas as pd

    return pd.DataFrame({"step": range(10), "loss": np.geomspace(1.0, 1e-3, 10)})


def write_experiment(results: Path, experiment: str = "pinn") -> list[RunSpec]:
    """β ∈ {1, 2, 4} × seeds {0, 1}: more wells (minima) at larger β, plus one diverged run at
    β = 8 (seed 0) and one run at β = 8 (seed 1) whose files were never written (missing)."""
    runs = []
    for beta, n_wells in ((1, 1), (2, 2), (4, 4)):
        for seed in (0, 1):
            runs.append(write_run(results, experiment, beta, seed, n_wells))
    runs.append(write_run(results, experiment, 8, 0, 4, status="diverged"))
    runs.append(synthetic_run(results / experiment / "beta~8" / "seed~1", experiment, "beta~8", 1, {"beta": 8}))
    return runs
