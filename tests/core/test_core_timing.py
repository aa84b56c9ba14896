"""Hand-computable timing: latency before transfer, max-min fair NIC sharing, analytical polling.

Each expected figure below is worked out from the profile in conftest.py (HAND_PROFILE); the
kernel works in integer nanoseconds, so the only slack allowed is float printing (1e-9 s).
"""
from __future__ import annotations

import pytest

EPS = 1e-9


def sleep_until(ctx, t_s: float) -> None:
    ctx.sleep(t_s - ctx.now)


# ---------------------------------------------------------------- one transfer
def one_put(ctx, p):
    s3 = ctx.storage("s3")
    t0 = ctx.now
    s3.put("data/x", b"x" * p["nbytes"])
    t1 = ctx.now  # flushes the lazy put: the clock is now its reply time
    s3.get("data/x")
    t2 = ctx.now
    ctx.log("t", put_s=t1 - t0, get_s=t2 - t1)


@pytest.mark.parametrize("mb,nic_mbs,latency_s", [(1, 10.0, 0.02), (4, 70.0, 0.05), (0.25, 100.0, 0.001)])
def test_one_put_takes_latency_plus_size_over_bandwidth(sim, mb, nic_mbs, latency_s):
    """A put of X MB at B MB/s after latency L takes exactly L + X/B (the latency does not load the link)."""
    nbytes = int(mb * 1e6)
    r = sim({"main": one_put}, ("main", {"nbytes": nbytes}),
            profile={"functions": {"nic_mbs": nic_mbs}, "services": {"s3": {"latency_s": latency_s}}})
    assert r.summary["status"] == "ok"
    row = r.metric("t").iloc[0]
    assert row["put_s"] == pytest.approx(latency_s + mb / nic_mbs, abs=EPS)
    assert row["get_s"] == pytest.approx(latency_s + mb / nic_mbs, abs=EPS)


# ---------------------------------------------------------------- shared NICs
def start_readers(ctx, p):
    ctx.storage("memcached").put("blob", b"b" * p["nbytes"])
    ctx.now
    for _ in range(p["readers"]):
        ctx.invoke("reader", p)


def reader(ctx, p):
    sleep_until(ctx, p["t_read"])
    ctx.storage("memcached").get("blob")
    ctx.log("read", done_s=ctx.now)


def _readers(sim, readers: int, nbytes: int, node_gbs: float, fn_mbs: float):
    p = {"readers": readers, "nbytes": nbytes, "t_read": 5.0}
    r = sim({"main": start_readers, "reader": reader}, ("main", p),
            profile={"functions": {"nic_mbs": fn_mbs},
                     "services": {"memcached": {"latency_s": 0.0005, "nic_gbs": node_gbs}}})
    assert r.summary["status"] == "ok", r.summary
    return r.metric("read")["done_s"].to_numpy()


def test_two_concurrent_flows_over_one_shared_nic_each_take_twice_as_long(sim):
    """Two readers of 1 MB through a 10 MB/s Memcached NIC: 0.2 s each instead of 0.1 s alone."""
    one = _readers(sim, 1, 1_000_000, node_gbs=0.01, fn_mbs=1000.0)
    two = _readers(sim, 2, 1_000_000, node_gbs=0.01, fn_mbs=1000.0)
    assert one[0] == pytest.approx(5.0 + 0.0005 + 0.1, abs=EPS)
    assert two == pytest.approx([5.0 + 0.0005 + 0.2] * 2, abs=EPS)


def test_the_function_nic_is_the_bottleneck_when_it_is_smaller(sim):
    """Two readers with 10 MB/s NICs on a 1.25 GB/s node do not slow each other down."""
    two = _readers(sim, 2, 1_000_000, node_gbs=1.25, fn_mbs=10.0)
    assert two == pytest.approx([5.0 + 0.0005 + 0.1] * 2, abs=EPS)


def test_fifty_readers_share_a_memcached_nic_fairly_and_all_finish_at_40ms(sim):
    """50 readers of 1 MB on a 1.25 GB/s NIC (clients uncapped): all at 40 ms, not 0.8, 1.6 ... 40 ms (FIFO)."""
    done = _readers(sim, 50, 1_000_000, node_gbs=1.25, fn_mbs=1e6)
    transfer = done - 5.0 - 0.0005
    assert len(done) == 50
    assert transfer == pytest.approx([0.040] * 50, abs=EPS)


def test_a_reader_that_joins_late_gets_half_the_link_until_the_first_finishes(sim):
    """Max-min over time: A alone for 50 ms (0.5 MB), then A and B share 10 MB/s."""

    def main(ctx, p):
        ctx.storage("memcached").put("blob", b"b" * 1_000_000)
        ctx.now
        ctx.invoke("reader", {"t_read": 5.0})
        ctx.invoke("reader", {"t_read": 5.05})

    r = sim({"main": main, "reader": reader}, ("main", None),
            profile={"functions": {"nic_mbs": 1000.0}, "services": {"memcached": {"latency_s": 2e-9, "nic_gbs": 0.01}}})
    done = sorted(r.metric("read")["done_s"])
    # A: 0.5 MB alone (0.05 s), then 0.5 MB at 5 MB/s (0.1 s) -> 5.15; B: 0.5 MB at 5 MB/s, 0.5 MB alone -> 5.20
    # (to a few ns: the latency is 2 ns, as 0 is refused)
    assert done == pytest.approx([5.15, 5.20], abs=1e-8)


# ---------------------------------------------------------------- polling
def poll_main(ctx, p):
    ctx.invoke("writer", p)
    sleep_until(ctx, p["t_wait"])
    s3 = ctx.storage("s3")
    if p["literal"]:
        while not s3.exists("flag"):
            ctx.sleep(p["interval"])
    else:
        s3.wait("flag", poll_interval=p["interval"])
    ctx.log("resumed", t=ctx.now)


def poll_writer(ctx, p):
    sleep_until(ctx, p["t_write"])
    ctx.storage("s3").put("flag", b"f" * p["nbytes"])


@pytest.mark.parametrize("t_write,nbytes,k", [
    (2.0, 0, 1),          # empty put commits 1 ns after it arrives at 2.01: poll 0 (2.01) misses it
    (2.0, 100, 1),        # commits at 2.01001
    (2.47999, 100, 4),    # commits at 2.49 exactly = poll 4's read: a read at t sees writes committed at t
    (2.48, 0, 5),         # commits 1 ns after poll 4's read
    (3.0, 1000, 9),
    (7.777, 10, 49),
])
def test_a_wait_is_billed_and_timed_exactly_as_a_literal_polling_loop(sim, t_write, nbytes, k):
    """wait() resumes at the first poll that reads at/after the write's commit and bills k + 1 GETs,
    exactly like `while not exists(k): sleep(interval)` (polls read at 2.01 + k * 0.12 s)."""
    results = {}
    for literal in (False, True):
        p = {"t_wait": 2.0, "t_write": t_write, "nbytes": nbytes, "interval": 0.1, "literal": literal}
        r = sim({"main": poll_main, "writer": poll_writer}, ("main", p))
        assert r.summary["status"] == "ok"
        s3 = r.storage.set_index("service").loc["s3"]
        results[literal] = (r.metric("resumed")["t"].iloc[0], int(s3["req_GET"]))
    analytic, literal = results[False], results[True]
    assert analytic[0] == pytest.approx(literal[0], abs=EPS)
    assert analytic[1] == literal[1]
    # by hand: the put commits at t_write + 0.01 + nbytes / 10 MB/s (an empty one 1 ns after arriving);
    # poll k reads at 2.01 + k * 0.12 (request latency 0.02 + interval 0.1) and replies 0.01 later
    commit = t_write + 0.01 + (nbytes / 1e7 if nbytes else 1e-9)
    assert 2.01 + (k - 1) * 0.12 < commit <= 2.01 + k * 0.12 + EPS
    assert analytic[1] == k + 1
    assert analytic[0] == pytest.approx(2.01 + k * 0.12 + 0.01, abs=EPS)


def test_wait_count_and_wait_keys_poll_with_list_and_multiget(sim):
    """wait_count bills LISTs, wait_keys bills GETs per missing-key poll; both resume after the last write."""

    def main(ctx, p):
        ctx.invoke("w", None)
        s3 = ctx.storage("s3")
        sleep_until(ctx, 2.0)
        keys = s3.wait_count("pre/", 3, poll_interval=0.5)
        ctx.log("count", t=ctx.now, n=len(keys))
        s3.wait_keys(["pre/a", "pre/b", "pre/c"], poll_interval=0.5)
        ctx.log("keys", t=ctx.now)

    def w(ctx, p):
        s3 = ctx.storage("s3")
        for i, k in enumerate("abc"):
            sleep_until(ctx, 3.0 + i)
            s3.put(f"pre/{k}", b"")
        ctx.now

    r = sim({"main": main, "w": w}, ("main", None))
    # LIST polls read at 2.01 + k*0.52; last commit at 5.01 -> k = ceil(3.0/0.52) = 6 -> resume 2.01+3.12+0.01
    assert r.metric("count")["t"].iloc[0] == pytest.approx(5.14, abs=EPS)
    assert r.metric("count")["n"].iloc[0] == 3
    s3 = r.storage.set_index("service").loc["s3"]
    assert s3["req_LIST"] == 7
    # wait_keys: all present at its first poll (5.15): one multi-get of 3 keys = 3 GETs
    assert r.metric("keys")["t"].iloc[0] == pytest.approx(5.14 + 0.02, abs=EPS)
    assert s3["req_GET"] == 3


def test_a_wait_with_a_timeout_raises_waittimeout_and_bills_every_poll(sim):
    def main(ctx, p):
        from sls_ray.errors import WaitTimeout

        t0 = ctx.now
        try:
            ctx.storage("s3").wait("never", poll_interval=0.1, timeout=1.0)
        except WaitTimeout:
            ctx.log("timeout", dt=ctx.now - t0)

    r = sim({"main": main}, ("main", None))
    assert r.summary["status"] == "ok"
    dt = r.metric("timeout")["dt"].iloc[0]
    assert 1.0 <= dt <= 1.0 + 0.12 + EPS
    # polls read at 0.01 + k*0.12 up to the deadline at 1.0: k = 0..8 -> 9 GETs
    assert r.storage.set_index("service").loc["s3", "req_GET"] == 9
