"""Payloads above the 64 KB inline limit on a two-node ``ray.cluster_utils.Cluster``: a
real-block NumPyWren Cholesky and a small LambdaML run give the in-process trace hash, their
functions run on both nodes, and the blocks land in both nodes' object stores
(docs/cluster.md, "Where blocks live"; benchmarks/cluster_data_bench.py runs the large ones).

The cluster's nodes are child processes of this one, bound to loopback; the fixture shuts
them down whatever the outcome.
"""
from __future__ import annotations

import pytest

from sls_ray.config import load_config
from sls_ray.runtime import simulate

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

MiB = 2**20


@pytest.fixture(scope="module")
def two_nodes():
    import ray
    from ray.cluster_utils import Cluster

    from sls_ray.actors.ray_transport import release_warm_actors

    if ray.is_initialized():  # a session's local instance: this module needs its own cluster
        release_warm_actors()
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": 128 * MiB,
                                                            "include_dashboard": False})
    try:
        worker = cluster.add_node(num_cpus=1, object_store_memory=128 * MiB)
        ray.init(address=cluster.address, log_to_driver=False)
        yield cluster.address, [cluster.head_node, worker]
    finally:
        if ray.is_initialized():
            release_warm_actors()
            ray.shutdown()
        cluster.shutdown()


def created_bytes(nodes) -> list[int]:
    """Bytes ever created in each node's object store (puts, and copies pulled from the other node)."""
    from ray._private.internal_api import node_stats

    return [node_stats(n.node_ip_address, n.node_manager_port, include_memory_info=False)
            .store_stats.cumulative_created_bytes for n in nodes]


def run_both(data: dict, address: str, nodes) -> tuple[dict, dict, list[int]]:
    local = simulate(load_config(data=data)).summary
    before = created_bytes(nodes)
    remote = simulate(load_config(data={**data, "run": {"transport": "ray", "hosts": 2, "address": address}})).summary
    return local, remote, [b - a for a, b in zip(before, created_bytes(nodes))]


def test_real_block_cholesky_on_two_nodes_is_exact_and_spread(two_nodes):
    address, nodes = two_nodes
    # 96 x 96 float64 blocks = 72 KiB: every block travels as an object ref, none inline
    data = {"experiment": "numpywren", "seed": 1,
            "params": {"program": "cholesky", "blocks": 4, "block_size": 96, "baselines": False}}
    local, remote, created = run_both(data, address, nodes)
    assert local["status"] == remote["status"] == "ok"
    assert local["correct"] is True and remote["correct"] is True  # against numpy.linalg.cholesky
    assert remote["folded"] is False
    assert remote["trace_hash"] == local["trace_hash"]
    assert remote["nondeterministic"]["host_nodes"] == 2
    # the 10 input blocks alone are 720 KiB: both stores took their share of the blocks
    assert all(c >= 4 * 96 * 96 * 8 for c in created), created


def test_lambdaml_with_large_gradients_on_two_nodes_matches_in_process(two_nodes):
    address, nodes = two_nodes
    # RCV1 logistic regression: a 47,236-float model, 378 KB per gradient, through S3
    data = {"experiment": "lambdaml", "platform": "aws_2020_lambdaml", "seed": 2,
            "params": {"model": "lr", "dataset": "rcv1", "workers": 3, "rows": 60, "epochs": 1,
                       "max_steps_per_epoch": 2, "checkpoint_every": 0}}
    local, remote, created = run_both(data, address, nodes)
    assert local["status"] == remote["status"] == "ok"
    assert local["vector_bytes"] > 64 * 1024
    assert remote["trace_hash"] == local["trace_hash"]
    assert remote["nondeterministic"]["host_nodes"] == 2
    assert all(c >= local["vector_bytes"] for c in created), created
