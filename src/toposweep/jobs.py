"""How the workflow's jobs are sized (the `cluster` config section), so that a sweep on a
cluster is a few well-filled jobs: each run's training, Hessian, small landscapes and their
topology are one component of the group `runs` (a profile packs several into one Slurm job);
a landscape above `landscape_mpi_points` points is an MPI job of its own with
`landscape_ranks` ranks, and its topology joins the group `topology`. Light: no torch.

Every job of a Snakemake group job must ask for the same string resources (QOS, launcher), so
grouped jobs carry the group's QOS and no launcher (one rank runs without MPI).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from .sizes import landscape_cost

RUN_GROUP = "runs"
TOPOLOGY_GROUP = "topology"
# A landscape job's runtime request: this many minutes of start-up and margin, plus
# RUNTIME_FACTOR times the expected evaluation time at `landscape_points_per_second` per rank.
RUNTIME_BASE_MINUTES = 10
RUNTIME_FACTOR = 3


@dataclass(frozen=True)
class LandscapeJob:
    """The resources, group and launcher of one landscape job (and its topology's group)."""

    points: int
    own_job: bool  # an MPI job of its own rather than part of its run's group job
    tasks: int | None  # None on a cluster for one rank: the group job asks for one task
    gpus: int
    runtime: int  # minutes
    qos: str | None
    mpi: str | None  # the launcher, for more than one rank
    group: str | None
    topology_group: str


def mpi_launcher(cluster: Mapping[str, Any], on_cluster: bool, local_launcher: str) -> str:
    """The launcher of multi-rank landscape jobs: `cluster.mpi_launcher` on a cluster, else the
    local one (the mpiexec beside the Python that runs Snakemake)."""
    return cluster["mpi_launcher"] if on_cluster else local_launcher


def landscape_job(spec: Mapping[str, Any], cluster: Mapping[str, Any], neighbours: int,
                  on_cluster: bool, local_launcher: str) -> LandscapeJob:
    """Size one landscape job from its spec (an entry of `landscapes`) and the validated
    `cluster` section; `on_cluster`: jobs go to a cluster executor (groups, GPUs, QOS and
    `cluster.mpi_launcher` apply), else the local `local_launcher` runs multi-rank jobs."""
    points = int(landscape_cost(dict(spec), neighbours)["points"])
    own_job = points > cluster["landscape_mpi_points"]
    ranks = cluster["landscape_ranks"] if own_job else 1
    launcher = mpi_launcher(cluster, on_cluster, local_launcher)
    seconds = points / (cluster["landscape_points_per_second"] * ranks)
    return LandscapeJob(
        points=points,
        own_job=own_job,
        tasks=ranks if (own_job or not on_cluster) else None,
        gpus=cluster["gpus_per_rank"] * ranks,
        runtime=int(math.ceil(RUNTIME_BASE_MINUTES + RUNTIME_FACTOR * seconds / 60)),
        qos=(cluster["mpi_qos"] or cluster["qos"]) if own_job else cluster["qos"],
        mpi=launcher if ranks > 1 else None,
        group=None if own_job else RUN_GROUP,
        topology_group=TOPOLOGY_GROUP if own_job else RUN_GROUP,
    )


def landscape_command(script: str, serial_script: str, tasks: int | None, mpi: str | None,
                      launcher: str) -> str:
    """The landscape script's command for a job's `tasks` and `mpi` resources (the profile or
    --set-resources may have changed them): `<launcher> -n <tasks> <script>` for several
    ranks (`launcher` where `mpi` names none), else `<serial_script> --serial` (one rank
    without MPI)."""
    tasks = tasks or 1
    if tasks > 1:
        return f"{mpi or launcher} -n {tasks} {script}"
    return f"{serial_script} --serial"
