"""The Ray transport reproduces the in-process transport bit for bit, and isolated mode
catches memory that accounting misses (docs/design.md, "Transports", "Memory")."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from sls_ray.config import load_config
from sls_ray.runtime import simulate

pytestmark = pytest.mark.ray


def _cfg(transport: str, hosts: int = 1, **params):
    base = {"workers": 8, "service": "memcached", "rounds": 2, "floats": 40000}
    base.update(params)
    return load_config(data={"experiment": "allreduce", "seed": 3, "params": base,
                             "run": {"transport": transport, "hosts": hosts}})


def test_ray_with_one_and_three_hosts_matches_in_process_bit_for_bit(ray_session):
    local = simulate(_cfg("local"))
    one = simulate(_cfg("ray", 1))
    three = simulate(_cfg("ray", 3))
    assert local.summary["status"] == "ok"
    assert local.summary["trace_hash"] == one.summary["trace_hash"] == three.summary["trace_hash"]
    assert local.invocations.equals(three.invocations)
    assert local.summary["makespan_s"] == three.summary["makespan_s"]
    assert three.summary["nondeterministic"]["transport"] == "ray"


def test_large_payloads_travel_through_the_object_store_unchanged(ray_session):
    # 200k float64 = 1.6 MB per vector: above the 64 KB inline limit, and chunked by S3? no: S3 has no limit
    local = simulate(_cfg("local", service="s3", floats=200_000, workers=4))
    remote = simulate(_cfg("ray", 2, service="s3", floats=200_000, workers=4))
    assert remote.summary["status"] == "ok"  # every worker checked its mean against numpy
    assert remote.summary["trace_hash"] == local.summary["trace_hash"]


def test_isolated_mode_fails_an_untracked_allocation_with_the_memory_error(ray_session):
    cfg = load_config(data={"experiment": "allreduce", "params": {
        "workers": 1, "service": "s3", "rounds": 1, "floats": 1000, "memory_mb": 128, "scratch_mb": 600},
        "profile": {"functions": {"async_retries": 1}},
        "run": {"transport": "ray", "isolated": True}})
    result = simulate(cfg)
    workers = result.invocations[result.invocations["handler"] == "worker"]
    assert list(workers["attempt"]) == [0, 1]  # Lambda retried the failed event once, as configured
    assert set(workers["status"]) == {"MemoryLimitExceeded"}
    assert workers["error"].str.contains("OS memory limit").all()
    assert result.invocations.set_index("handler").loc["trigger", "status"] == "ok"
    # accounting alone (in-process) cannot see the untracked scratch array
    local = simulate(load_config(data={**cfg.model_dump(mode="json"), "run": {"transport": "local"}}))
    assert set(local.invocations["status"]) == {"ok"}


CLUSTER_SCRIPT = textwrap.dedent("""
    import os, json
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray
    from ray.cluster_utils import Cluster
    from sls_ray.config import load_config
    from sls_ray.runtime import simulate
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        nodes = len([n for n in ray.nodes() if n["Alive"]])
        cfg = load_config(data=%r)
        r = simulate(cfg)
        print(json.dumps({"nodes": nodes, "hash": r.summary["trace_hash"], "status": r.summary["status"]}))
    finally:
        ray.shutdown()
        cluster.shutdown()
""")


@pytest.mark.cluster
def test_two_node_cluster_gives_the_in_process_trace_hash():
    data = _cfg("ray", 2).model_dump(mode="json")
    local = simulate(_cfg("local"))
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    env.pop("RAY_ADDRESS", None)
    out = subprocess.run([sys.executable, "-c", CLUSTER_SCRIPT % data], capture_output=True, text=True,
                         timeout=240, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    import json

    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["nodes"] == 2
    assert got["status"] == "ok"
    assert got["hash"] == local.summary["trace_hash"]
