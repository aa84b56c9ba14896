"""Boundaries pinned exactly (issue 8, "Done when"): at a limit succeeds, one unit past fails.

Every limit here is a literal of the 2020 platform (128 MiB, 60 MiB runtime, 256 KiB, 6 MB,
409,600 bytes, 1 MiB, 256 KiB), never read from the profile under test: a profile that said
400,000 for DynamoDB's item limit would fail these tests.
"""
from __future__ import annotations

import pytest

from sls_ray import errors
from sls_ray.invoker import WarmPool

MiB = 1 << 20
RUNTIME = 60 * MiB  # aws_2020 runtime_base_mb


def _hold(extra_bytes: int):
    def victim(ctx, p):
        with ctx.memory.hold(128 * MiB - RUNTIME + extra_bytes, "exactly the rest"):
            ctx.log("held")

    return victim


@pytest.mark.parametrize("extra,status", [(0, "ok"), (1, "MemoryLimitExceeded")])
def test_a_working_set_equal_to_the_memory_size_fits_and_one_byte_more_does_not(sim, extra, status):
    r = sim({"main": lambda ctx, p: ctx.invoke("v", None), "v": _hold(extra)}, ("main", None), memory={"v": 128},
            profile={"functions": {"async_retries": 0}})
    row = r.invocations[r.invocations["handler"] == "v"].iloc[0]
    assert row["status"] == status
    assert len(r.metric("held")) == (1 if status == "ok" else 0)


@pytest.mark.parametrize("extra,ok", [(0, True), (1, False)])
def test_a_fetched_object_exactly_filling_the_memory_fits_and_one_byte_more_does_not(sim, extra, ok):
    n = 128 * MiB - RUNTIME + extra

    def main(ctx, p):
        ctx.storage("s3").put("blob", b"x" * n)
        ctx.now
        ctx.invoke("v", None)

    def reader(ctx, p):
        ctx.storage("s3").get("blob")
        ctx.log("read")

    r = sim({"main": main, "v": reader}, ("main", None), memory={"v": 128},
            profile={"functions": {"nic_mbs": 1000.0, "async_retries": 0}})
    row = r.invocations[r.invocations["handler"] == "v"].iloc[0]
    assert (row["status"] == "ok") is ok
    assert len(r.metric("read")) == int(ok)


@pytest.mark.parametrize("service,limit", [("dynamodb", 409_600), ("memcached", 1_048_576), ("sqs", 262_144)])
def test_an_item_exactly_at_the_service_limit_is_stored_and_one_byte_more_is_refused(sim, service, limit):
    def main(ctx, p):
        store = ctx.storage(service)
        for n in (limit, limit + 1):
            try:
                if service == "sqs":
                    store.send("q", b"x" * n)
                else:
                    store.put(f"k{n}", b"x" * n)
                ctx.log("size", n=n, ok=True)
            except errors.ItemTooLarge as e:
                ctx.log("size", n=n, ok=False, message=str(e))

    r = sim({"main": main}, ("main", None))
    rows = r.metric("size").set_index("n")
    assert bool(rows.loc[limit, "ok"]) and not bool(rows.loc[limit + 1, "ok"])
    assert str(limit) in rows.loc[limit + 1, "message"]


@pytest.mark.parametrize("sync,limit", [(False, 262_144), (True, 6_000_000)])
def test_an_invoke_payload_at_the_limit_goes_and_one_byte_more_is_refused(sim, sync, limit):
    def main(ctx, p):
        for n in (limit, limit + 1):
            try:
                ctx.invoke("echo", b"x" * n, sync=sync)
                ctx.log("size", n=n, ok=True)
            except errors.PayloadTooLarge:
                ctx.log("size", n=n, ok=False)

    r = sim({"main": main, "echo": lambda ctx, p: None}, ("main", None))
    rows = r.metric("size").set_index("n")
    assert bool(rows.loc[limit, "ok"]) and not bool(rows.loc[limit + 1, "ok"])


# ------------------------------------------------------------------ the warm pool
def test_the_warm_pool_reuses_the_most_recently_used_container():
    pool = WarmPool(keep_alive_ns=10)
    pool.release("h", 128, 0)   # older: idle since t=0, expired by t=12
    pool.release("h", 128, 8)   # newer: idle since t=8, warm until t=18
    assert pool.take("h", 128, 12) is True
    assert pool.take("h", 128, 12) is False  # the older one expired; only one was warm


def test_with_two_idle_containers_only_the_older_expired_the_next_call_starts_warm(sim):
    """A ends at ~1.5 s, B at ~8.5 s; keep-alive 10 s; a call at 15 s finds A expired, B warm."""

    def main(ctx, p):
        ctx.invoke("w", 1.0)
        ctx.invoke("w", 8.0)
        ctx.sleep(15.0 - ctx.now)
        ctx.invoke("w", 0.0)

    r = sim({"main": main, "w": lambda ctx, s: ctx.compute(seconds=s)}, ("main", None),
            profile={"functions": {"keep_alive_s": 10.0}})
    w = r.invocations[r.invocations["handler"] == "w"].sort_values("start_s")
    assert list(w["cold"]) == [True, True, False]
    assert r.summary["counts"]["cold_starts"] == 3  # main, and the two first workers


def test_a_container_exactly_at_its_keep_alive_is_still_warm():
    pool = WarmPool(keep_alive_ns=10)
    pool.release("h", 128, 0)
    assert pool.take("h", 128, 10) is True
    pool.release("h", 128, 0)
    assert pool.take("h", 128, 11) is False


@pytest.mark.parametrize("seconds", [0.0, -1.0])
def test_a_handler_timeout_of_zero_or_less_is_refused(sim, seconds):
    from sls_ray.errors import ConfigError

    with pytest.raises(ConfigError, match="timeout of handler 'main'"):
        sim({"main": lambda ctx, p: None}, ("main", None), timeouts={"main": seconds})
