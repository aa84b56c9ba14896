"""Fault injection in virtual time, deterministic with the seed: kills (one function, a fraction),
a volatile node losing its data, a service slowing down."""
from __future__ import annotations

import pytest

from sls_ray import errors
from sls_ray.errors import ConfigError

EPS = 1e-9


def sleep_until(ctx, t_s: float) -> None:
    ctx.sleep(t_s - ctx.now)


def kill_main(ctx, p):
    ctx.invoke("victim", None)
    sleep_until(ctx, 100.0)
    ctx.log("after", keys=ctx.storage("s3").list("after/"))


def kill_victim(ctx, p):
    ctx.compute(seconds=5.0)
    ctx.storage("s3").put(f"after/{ctx.attempt}", b"done")
    ctx.now


def test_a_killed_function_ends_at_the_kill_time_and_its_async_retry_reruns_it(sim):
    r = sim({"main": kill_main, "victim": kill_victim}, ("main", None),
            faults=[{"kind": "kill", "fid": 2, "at_s": 3.0}])
    inv = r.invocations.set_index("id")
    killed = inv.loc[2]
    assert (killed["handler"], killed["attempt"], killed["status"]) == ("victim", 0, "FunctionKilled")
    assert killed["end_s"] == pytest.approx(3.0, abs=EPS)
    assert "fault #0" in killed["error"]
    retry = r.invocations[(r.invocations["handler"] == "victim") & (r.invocations["attempt"] == 1)].iloc[0]
    assert retry["status"] == "ok"
    assert retry["invocation"] == killed["invocation"]
    assert retry["start_s"] >= 3.0 + 60.0  # Lambda's first retry delay
    assert bool(retry["cold"])  # a killed sandbox is not reused
    # the killed attempt's put (scheduled after its death) never happened; the retry's did
    assert r.metric("after")["keys"].iloc[0] == ["after/1"]
    assert r.summary["counts"]["retries"] == 1
    assert r.summary["failures"] == {"FunctionKilled": 1}


def test_killing_a_function_blocked_in_a_transfer_cancels_it(sim):
    def victim(ctx, p):
        ctx.storage("s3").put("big", b"x" * 50_000_000)  # 5 s at 10 MB/s
        ctx.now

    def main(ctx, p):
        ctx.invoke("victim", None)
        sleep_until(ctx, 50.0)
        ctx.log("seen", exists=ctx.storage("s3").exists("big"))

    r = sim({"main": main, "victim": victim}, ("main", None),
            faults=[{"kind": "kill", "fid": 2, "at_s": 3.0}], profile={"functions": {"async_retries": 0}})
    row = r.invocations.set_index("id").loc[2]
    assert row["status"] == "FunctionKilled" and row["end_s"] == pytest.approx(3.0, abs=EPS)
    assert not r.metric("seen")["exists"].iloc[0]


def test_kill_fraction_is_deterministic_with_the_seed(sim):
    def main(ctx, p):
        for i in range(20):
            ctx.invoke("w", i)

    def w(ctx, i):
        ctx.compute(seconds=10.0)

    fault = {"kind": "kill_fraction", "fraction": 0.25, "t0_s": 2.0, "t1_s": 6.0, "handler": "w"}
    runs = [sim({"main": main, "w": w}, ("main", None), faults=[fault], seed=s,
                profile={"functions": {"async_retries": 0}}) for s in (1, 1, 2)]
    killed = []
    for r in runs:
        k = r.invocations[r.invocations["status"] == "FunctionKilled"]
        assert len(k) == 5
        assert ((k["end_s"] >= 2.0 - EPS) & (k["end_s"] <= 6.0 + EPS)).all()
        killed.append(list(zip(k["id"], k["end_s"])))
    assert killed[0] == killed[1]
    assert killed[0] != killed[2]


def test_a_memcached_node_that_loses_its_data_forgets_every_key(sim):
    def main(ctx, p):
        mc = ctx.storage("memcached")
        mc.put("k", b"value")
        sleep_until(ctx, 1.5)
        ctx.log("before", v=mc.get("k"))
        sleep_until(ctx, 3.0)
        try:
            mc.get("k")
        except errors.KeyNotFound:
            ctx.log("lost")
        mc.put("k2", b"new")  # the node serves again after the failure
        ctx.log("after", v=mc.get("k2"))

    r = sim({"main": main}, ("main", None), faults=[{"kind": "lose_data", "service": "memcached", "at_s": 2.0}])
    assert r.metric("before")["v"].iloc[0] == b"value"
    assert len(r.metric("lost")) == 1
    assert r.metric("after")["v"].iloc[0] == b"new"


def test_redis_can_lose_its_data_too(sim):
    def main(ctx, p):
        redis = ctx.storage("redis")
        redis.incr("n")
        sleep_until(ctx, 3.0)
        ctx.log("after", v=redis.incr("n"))

    r = sim({"main": main}, ("main", None), faults=[{"kind": "lose_data", "service": "redis", "at_s": 2.0}])
    assert r.metric("after")["v"].iloc[0] == 1


@pytest.mark.parametrize("service", ["s3", "dynamodb", "sqs"])
def test_durable_services_refuse_a_lose_data_fault_as_a_config_error(sim, service):
    with pytest.raises(ConfigError, match=service):
        sim({"main": lambda ctx, p: None}, ("main", None),
            faults=[{"kind": "lose_data", "service": service, "at_s": 1.0}])


# ------------------------------------------------------------------ slowdown
def slow_reader(ctx, p):
    ctx.storage("memcached").put("blob", b"b" * 1_000_000)
    sleep_until(ctx, 5.0)
    ctx.storage("memcached").get("blob")
    ctx.log("read", dt=ctx.now - 5.0)
    sleep_until(ctx, 20.0)
    ctx.storage("memcached").get("blob")
    ctx.log("read", dt=ctx.now - 20.0)


SLOW_PROFILE = {"functions": {"nic_mbs": 1000.0},
                "services": {"memcached": {"nic_gbs": 0.01, "latency_s": 0.002}}}  # a 10 MB/s node NIC


def test_a_slowdown_doubles_latency_and_transfer_time(sim):
    base = sim({"main": slow_reader}, ("main", None), profile=SLOW_PROFILE)
    slow = sim({"main": slow_reader}, ("main", None), profile=SLOW_PROFILE,
               faults=[{"kind": "slowdown", "service": "memcached", "factor": 2.0, "t0_s": 4.0, "t1_s": 10.0}])
    b, s = base.metric("read")["dt"].tolist(), slow.metric("read")["dt"].tolist()
    assert b == pytest.approx([0.002 + 0.1] * 2, abs=EPS)
    assert s[0] == pytest.approx(2 * b[0], abs=EPS)   # 4 ms latency + 1 MB at 5 MB/s
    assert s[1] == pytest.approx(b[1], abs=EPS)       # the window is over


def test_a_slowdown_that_starts_mid_transfer_slows_only_the_rest(sim):
    # latency 2 ns (1 ns each way; 0 is refused): the transfer alone, to 10 ns
    profile = {"functions": {"nic_mbs": 1000.0}, "services": {"memcached": {"nic_gbs": 0.01, "latency_s": 2e-9}}}
    r = sim({"main": slow_reader}, ("main", None), profile=profile,
            faults=[{"kind": "slowdown", "service": "memcached", "factor": 2.0, "t0_s": 5.05, "t1_s": 5.1}])
    # 0.5 MB at 10 MB/s by 5.05, 0.25 MB at 5 MB/s by 5.10, the last 0.25 MB at 10 MB/s: 0.125 s
    assert r.metric("read")["dt"].iloc[0] == pytest.approx(0.125, abs=1e-8)


def test_a_kill_fault_that_finds_no_running_function_says_so_in_the_summary(sim):
    """A kill naming an id that never ran (or ran and ended) changes nothing, and the summary's
    notes say it killed nothing, so a user does not read the run as "it survived the fault"."""
    faults = [{"kind": "kill", "fid": 2, "at_s": 3.0}, {"kind": "kill", "fid": 99, "at_s": 1.0}]
    r = sim({"main": kill_main, "victim": kill_victim}, ("main", None), faults=faults)
    assert r.summary["failures"] == {"FunctionKilled": 1}  # fault #0 hit fid 2
    missed = [n for n in r.summary["notes"] if n.startswith("fault #")]
    assert len(missed) == 1 and missed[0].startswith("fault #1 (kill fid 99 at 1 s) killed nothing")
    clean = sim({"main": kill_main, "victim": kill_victim}, ("main", None), faults=faults[:1])
    assert not [n for n in clean.summary["notes"] if n.startswith("fault #")]
