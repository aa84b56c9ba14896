"""LambdaML's channels and collectives behave alike over S3, Memcached, DynamoDB and the VM (LambdaML §4.2)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from sls_ray.config import load_config
from sls_ray.errors import WaitTimeout
from sls_ray.lambdaml.channels import Channel, ChannelUnsupported
from sls_ray.lambdaml.protocols import ParameterServerClient, SyncCollective, pull_key, serve_step
from sls_ray.runtime import simulate, simulate_handlers
from sls_ray.storage.base import per_second_billing

SERVICES = ["s3", "memcached", "dynamodb", "vm"]


# ---------------------------------------------------------------- the paper's channel interface
def channel_probe(ctx, p):
    ch = Channel(ctx, p["service"], "t/", chunked=p["service"] != "dynamodb")
    ch.save("a", b"hello")
    ch.save("b", {"x": 1})
    got = (ch.load("a"), ch.load_or_wait("b", timeout=1.0))
    listed = sorted(ch.list(candidates=["a", "b", "c"]))
    ch.delete("a")
    after_delete = sorted(ch.list(candidates=["a", "b", "c"]))
    try:
        ch.load_or_wait("never", timeout=0.5)
        timed_out = False
    except WaitTimeout:
        timed_out = True
    vec = np.arange(p["n"], dtype=np.float64)
    ch.save_array("v", vec)
    back = ch.load_array("v", p["n"], np.float64)
    ch.clear()
    after_clear = ch.list(candidates=["b", "v/c0"])
    ctx.log("probe", a=got[0], b=got[1]["x"], listed=listed, after_delete=after_delete, timed_out=timed_out,
            roundtrip=bool(np.array_equal(vec, back)), after_clear=after_clear, chunks=ch.arrays.n_chunks(vec.nbytes))


@pytest.mark.parametrize("service", SERVICES)
def test_channel_save_load_wait_delete_list_clear_on_every_service(service):
    r = simulate_handlers({"probe": channel_probe}, ("probe", {"service": service, "n": 20_000}),
                          services=[service])
    row = r.metric("probe").iloc[0]
    assert r.summary["status"] == "ok"
    assert (row["a"], row["b"]) == (b"hello", 1)
    assert row["listed"] == ["a", "b"] and row["after_delete"] == ["b"]
    assert row["timed_out"] and row["roundtrip"]
    assert row["after_clear"] == []


def test_memcached_chunks_values_over_1mb_and_a_raised_limit_stores_them_whole():
    n = 300_000  # 2.4 MB of float64
    r = simulate_handlers({"probe": channel_probe}, ("probe", {"service": "memcached", "n": n}),
                          services=["memcached"])
    row = r.metric("probe").iloc[0]
    assert row["roundtrip"] and row["chunks"] == 3
    raised = simulate_handlers({"probe": channel_probe}, ("probe", {"service": "memcached", "n": n}),
                               services=["memcached"],
                               profile={"services": {"memcached": {"item_limit_bytes": 4 << 20}}})
    assert raised.metric("probe").iloc[0]["chunks"] == 1


def reject_probe(ctx, p):
    ch = Channel(ctx, p["service"], "t/", chunked=False)
    try:
        ch.save_array("big", np.zeros(p["n"]))
        ctx.log("reject", raised=False, message="")
    except ChannelUnsupported as e:
        ctx.log("reject", raised=True, message=str(e))


@pytest.mark.parametrize("service,n", [("dynamodb", 60_000), ("memcached", 200_000)])
def test_a_channel_that_does_not_chunk_rejects_an_oversized_value_with_a_clear_error(service, n):
    r = simulate_handlers({"reject": reject_probe}, ("reject", {"service": service, "n": n}), services=[service])
    row = r.metric("reject").iloc[0]
    assert row["raised"]
    assert f"{n * 8} bytes" in row["message"] and "item limit" in row["message"] and "N/A" in row["message"]


def test_dynamodb_cannot_carry_mobilenet_so_the_run_reports_na():
    cfg = load_config(data={"experiment": "lambdaml", "platform": "aws_2020_lambdaml",
                            "params": {"model": "mobilenet", "dataset": "cifar10", "rows": 200, "workers": 2,
                                       "batch_size": 256, "channel": "dynamodb", "epochs": 1}})
    r = simulate(cfg)
    assert r.summary["status"] == "ok"
    assert r.summary["channel_supported"] is False
    assert "409600" in r.summary["na_reason"] and "N/A" in r.summary["na_reason"]
    assert list(r.invocations["handler"]) == ["trigger"]  # no executor ran


# ---------------------------------------------------------------- collectives give the same mean
def vector(step: int, rank: int, n: int) -> np.ndarray:
    return np.random.default_rng([step, rank]).standard_normal(n)


def reduce_trigger(ctx, p):
    if p["mode"] == "ps":
        ctx.start_vm_process("ps", p, service=p["service"])
    for rank in range(p["workers"]):
        ctx.invoke("reducer", {**p, "rank": rank})


def reducer(ctx, p):
    ch = Channel(ctx, p["service"], "c/", chunked=p["service"] != "dynamodb",
                 list_waits=p["service"] != "dynamodb")
    if p["mode"] == "ps":
        ex = ParameterServerClient(ch, p["rank"], p["workers"], applies_update=False)
    else:
        ex = SyncCollective(ch, p["rank"], p["workers"], p["mode"], keep_steps=2)
    for step in range(p["steps"]):
        t0 = ctx.now
        out = ex.exchange(step, vector(step, p["rank"], p["n"]))
        ctx.log("reduced", rank=p["rank"], step=step, comm_s=ctx.now - t0,
                mean=(out / p["workers"]).tolist() if p["n"] <= 4096 else None,
                norm=float(np.linalg.norm(out)))


def ps(ctx, p):
    ch = Channel(ctx, p["service"], "c/")
    for step in range(p["steps"]):
        ch.save_array(pull_key(step), serve_step(ch, step, p["workers"], p["n"], np.float64))


def run_reduce(service: str, mode: str, workers: int = 4, n: int = 1000, steps: int = 2,
               platform: str = "aws_2020"):
    return simulate_handlers({"trigger": reduce_trigger, "reducer": reducer, "ps": ps},
                             ("trigger", {"service": service, "mode": mode, "workers": workers, "n": n,
                                          "steps": steps}),
                             services=[service], platform=platform)


@pytest.mark.parametrize("service", SERVICES)
def test_allreduce_and_scatter_reduce_give_the_same_mean_on_every_service(service):
    W, n = 4, 1000
    expected = [np.mean([vector(s, r, n) for r in range(W)], axis=0) for s in range(2)]
    modes = ["allreduce", "scatter_reduce"] + (["ps"] if service == "vm" else [])
    for mode in modes:
        r = run_reduce(service, mode, W, n)
        assert r.summary["status"] == "ok", (mode, r.summary.get("deadlock"))
        got = r.metric("reduced")
        assert len(got) == W * 2
        for row in got.itertuples():
            np.testing.assert_allclose(row.mean, expected[row.step], rtol=1e-12, atol=1e-14)


def test_memcached_collectives_reassemble_chunked_vectors():
    W, n = 3, 200_000  # 1.6 MB each: two chunks
    expected = np.linalg.norm(np.sum([vector(0, r, n) for r in range(W)], axis=0))
    for mode in ("allreduce", "scatter_reduce"):
        r = run_reduce("memcached", mode, W, n, steps=1)
        norms = r.metric("reduced")["norm"]
        np.testing.assert_allclose(norms, expected, rtol=1e-12)


def test_scatter_reduce_beats_allreduce_per_round_for_the_89mb_model_at_w10():
    """The seed's communication table: ResNet-50's 89 MB at W=10 through S3."""
    from sls_ray.lambdaml.experiment import _num_params

    n_float32 = _num_params("resnet50")  # 23.5M parameters: 89.7 MiB as float32 = 11.76M float64
    n = n_float32 // 2
    per_round = {}
    for mode in ("allreduce", "scatter_reduce"):
        r = run_reduce("s3", mode, workers=10, n=n, steps=1, platform="aws_2020_lambdaml")
        per_round[mode] = r.metric("reduced")["comm_s"].max()
    assert per_round["scatter_reduce"] < 0.6 * per_round["allreduce"]
    assert 10 < per_round["allreduce"] < 30  # the seed: 17.3 s


# ---------------------------------------------------------------- the parameter server's VM
def test_vm_parameter_server_is_billed_for_its_whole_uptime_idle_included():
    base = {"experiment": "lambdaml", "platform": "aws_2020_lambdaml",
            "params": {"model": "lr", "rows": 4000, "workers": 2, "epochs": 2, "channel": "vm"}}
    r = simulate(load_config(data=base))
    s = r.summary
    prof = r.config["profile"]["services"]["vm"]
    assert s["status"] == "ok"
    makespan = s["makespan_s"]
    assert makespan > prof["startup_s"]  # workers waited for the VM to boot
    expected = per_second_billing(int(makespan * 1e9), prof["billing_min_s"], prof["node_price_per_hour"])
    assert math.isclose(s["cost_usd"]["vm_nodes"], expected, rel_tol=1e-9)
    server = r.invocations[r.invocations["vm"]].iloc[0]
    assert server["handler"] == "parameter_server" and server["start_s"] >= prof["startup_s"]
    served = per_second_billing(int((server["end_s"] - server["start_s"]) * 1e9), 0.0, prof["node_price_per_hour"])
    assert s["cost_usd"]["vm_nodes"] > 5 * served  # mostly paid for booting and idling, not for serving
