"""The Ray transport reproduces the in-process transport bit for bit, and isolated mode
catches memory that accounting misses (docs/design.md, "Transports", "Memory")."""
from __future__ import annotations

import subprocess
import sys

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


def test_warm_actors_serve_the_next_run_with_the_same_result(ray_session):
    from sls_ray.actors import ray_transport

    first = simulate(_cfg("ray", 2, workers=6))
    assert len(ray_transport._WARM) == 1  # the run ended cleanly: its actors wait for the next one
    warm = next(iter(ray_transport._WARM.values()))
    kernel, hosts = warm.kernel, list(warm.hosts)
    second = simulate(_cfg("ray", 2, workers=6, service="s3"))
    assert warm.kernel == kernel and warm.hosts[:2] == hosts[:2]  # the same actors ran it
    assert second.summary["trace_hash"] == simulate(_cfg("local", workers=6, service="s3")).summary["trace_hash"]
    assert first.summary["trace_hash"] == simulate(_cfg("local", workers=6)).summary["trace_hash"]
    ray_transport.release_warm_actors()
    assert not ray_transport._WARM


def test_inline_handlers_run_on_ray_with_their_closures(ray_session):
    from sls_ray.runtime import simulate_handlers

    scale = 3.0  # captured by the handler: travels with the plan

    def main(ctx, p):
        s3 = ctx.storage("s3")
        s3.put("x", [scale * i for i in range(4)])
        ctx.log("got", total=sum(s3.get_each(["x", "x"])[1]))

    runs = [simulate_handlers({"main": main}, ("main", None), services=["s3"], run={"transport": t})
            for t in ("local", "ray")]
    assert runs[1].metric("got")["total"].iloc[0] == 18.0
    assert runs[0].summary["trace_hash"] == runs[1].summary["trace_hash"]


def test_the_actors_never_import_the_runtime():
    """runtime -> actors only: the actors get a RunPlan instead (no import cycle, lazy or not)."""
    code = ("import sys, sls_ray.actors.ray_transport, sls_ray.actors.kernel_actor, sls_ray.actors.function_host; "
            "print('sls_ray.runtime' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"
