"""The MPI/ScaLAPACK cluster model and the single machine, on DAGs small enough to check by hand."""
from __future__ import annotations

import pytest

from sls_ray.numpywren.baselines import ClusterParams, Placement, grid_shape, run_mpi, single_machine
from sls_ray.numpywren.job import JobSpec
from sls_ray.numpywren.lambdapack import BlockRef
from sls_ray.numpywren.programs import PROGRAMS

B = 1024
BLOCK = B * B * 8


def test_one_rank_runs_the_whole_dag_at_its_flop_rate_with_no_network():
    spec = JobSpec.make("cholesky", 4, 4, B)
    one = ClusterParams(nodes=1, vcpus_per_node=2)  # one physical core
    r = run_mpi(spec, one)
    flops = sum(spec.plans()[1].task_flops(t) for t in spec.plans()[1].dag.all_tasks())
    assert r["ranks"] == 1 and r["network_bytes"] == 0
    assert r["completion_s"] == pytest.approx(flops / 28e9, rel=1e-12)
    assert r["core_s"] == pytest.approx(r["completion_s"]) and r["utilisation"] == pytest.approx(1.0)


def test_a_gemm_block_crosses_the_network_once_per_reading_node():
    """2 x 2 blocks on two 1-core nodes (grid 1 x 2): C[i, j] and its partial sums live on node j,
    A[i, k] on node k, B[k, j] on node j. Each node reads the other node's two A blocks: four
    blocks cross, each once, while the node multiplies its local ones."""
    spec = JobSpec.make("gemm", 2, 4, B)
    cluster = ClusterParams(nodes=2, vcpus_per_node=2, nic_gbits=8.0, latency_s=0.0)
    r = run_mpi(spec, cluster)
    assert r["grid"] == "1x2" and r["network_bytes"] == 4 * BLOCK
    matmul, add = 2 * B ** 3 / 28e9, 3 * B ** 2 / 28e9  # add: 4-ary tree node, two operands missing (zeros)
    assert 2 * BLOCK / 1e9 < 2 * matmul  # the remote blocks arrive while the local products run
    assert r["completion_s"] == pytest.approx(4 * matmul + 2 * add, rel=1e-9)


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_every_block_of_every_program_has_a_block_cyclic_home(name):
    spec = JobSpec.make(name, 5, 4, 64)
    place = Placement(name, ClusterParams())
    dag = spec.plans()[0].dag
    for task in dag.all_tasks():
        for ref in dag.reads(task) + dag.writes(task):
            assert 0 <= place.rank(ref) < 256
    r = run_mpi(spec)
    assert r["tasks"] == dag.num_tasks() and r["completion_s"] > 0


def test_grids_and_the_single_machine():
    assert grid_shape(256) == (16, 16) and grid_shape(64) == (8, 8) and grid_shape(12) == (3, 4)
    m = single_machine()
    r = run_mpi(JobSpec.make("cholesky", 6, 4, B), m)
    assert r["ranks"] == 64 and r["network_bytes"] == 0 and r["instance_type"] == "x1.32xlarge"
    assert Placement("cholesky", ClusterParams()).rank(BlockRef("T", (3, 17, 2))) == 1 * 16 + 2
