"""Job sizes: small landscapes join their run's group job, large ones are MPI jobs of their own
with GPUs, QOS, launcher and a runtime from their points; the command follows the resources."""

from __future__ import annotations

import pytest

from toposweep.config import validate_config
from toposweep.jobs import RUN_GROUP, TOPOLOGY_GROUP, landscape_command, landscape_job

PERLMUTTER = {"gpus_per_rank": 1, "landscape_ranks": 4, "landscape_mpi_points": 1_000_000,
              "qos": "shared", "mpi_qos": "regular"}


def cluster(**settings):
    """The validated `cluster` section (the schema's defaults under `settings`)."""
    config = {"experiments": [{"name": "x", "problem": "pinn_convection"}], "cluster": settings}
    return validate_config(config)["cluster"]


def grid(resolution, dimensions):
    return {"sampling": "grid", "resolution": resolution, "dimensions": dimensions}


def test_a_small_landscape_runs_in_its_runs_group_job_as_one_serial_rank():
    job = landscape_job(grid(41, 2), cluster(**PERLMUTTER), 16, True, "mpiexec")
    assert (job.points, job.own_job, job.group, job.topology_group) == (1681, False, RUN_GROUP, RUN_GROUP)
    assert (job.tasks, job.mpi, job.gpus, job.qos) == (None, None, 1, "shared")
    assert job.runtime == 11  # 10 + 3 x 1681 / 500 / 60 = 10.17 min, rounded up
    assert landscape_command("S", "s", job.tasks, job.mpi, "srun") == "s --serial"


def test_a_large_landscape_is_a_whole_node_mpi_job_of_its_own():
    job = landscape_job(grid(41, 4), cluster(**PERLMUTTER), 16, True, "mpiexec")
    assert (job.points, job.own_job, job.group, job.topology_group) == (2_825_761, True, None, TOPOLOGY_GROUP)
    assert (job.tasks, job.mpi, job.gpus, job.qos) == (4, "srun", 4, "regular")
    assert job.runtime == 10 + 3 * 2_825_761 // (500 * 4 * 60) + 1  # 80.6 -> 81 min
    assert landscape_command("S", "s", job.tasks, job.mpi, "srun") == "srun -n 4 S"


def test_locally_large_landscapes_use_the_local_mpiexec_and_small_ones_one_rank():
    defaults = cluster()
    assert (defaults["gpus_per_rank"], defaults["qos"], defaults["mpi_launcher"]) == (0, None, "srun")
    small = landscape_job(grid(21, 2), defaults, 16, False, "/venv/bin/mpiexec")
    assert (small.tasks, small.mpi, small.gpus, small.qos) == (1, None, 0, None)
    large = landscape_job(grid(101, 3), defaults, 16, False, "/venv/bin/mpiexec")
    assert (large.tasks, large.mpi) == (4, "/venv/bin/mpiexec")
    # the local profile's tasks: 2 for every landscape
    assert landscape_command("S", "s", 2, None, "/venv/bin/mpiexec") == "/venv/bin/mpiexec -n 2 S"


def test_scattered_samples_count_their_samples():
    spec = {"sampling": "sobol", "n_samples": 4096, "dimensions": 10}
    job = landscape_job(spec, cluster(landscape_mpi_points=4000, landscape_ranks=2), 16, True, "m")
    assert (job.points, job.own_job, job.tasks, job.mpi) == (4096, True, 2, "srun")


def test_mpi_qos_falls_back_to_the_groups_qos():
    job = landscape_job(grid(41, 4), cluster(qos="shared"), 16, True, "m")
    assert job.qos == "shared"


@pytest.mark.parametrize("settings, message", [
    ({"landscape_ranks": 0}, "cluster.landscape_ranks: 0 is less than the minimum of 1"),
    ({"gpus_per_rank": 1.0}, "cluster.gpus_per_rank: 1.0 is not of type 'integer'"),
    ({"landscape_points_per_second": 0}, "cluster.landscape_points_per_second: 0 is less than or equal"),
    ({"ranks": 4}, "cluster: Additional properties are not allowed ('ranks' was unexpected)"),
])
def test_bad_cluster_settings_are_named(settings, message):
    from toposweep.config import ConfigError

    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        cluster(**settings)
