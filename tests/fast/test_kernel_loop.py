"""The event loop alone: ordering, causality, horizon, progress (no threads, no kernel)."""
from __future__ import annotations

import pytest

from sls_ray.events import EventLoop
from sls_ray.vtime import INF_NS, RANK_ARRIVE, RANK_COMMIT, RANK_FAULT, RANK_REPLY


def test_events_run_in_total_order_whatever_the_order_they_were_queued():
    loop = EventLoop()
    seen: list[str] = []
    # (time, rank, fid, seq): time first, then rank, then function id, then sequence
    queued = [("reply@5", (5, RANK_REPLY, 1, 0)), ("arrive@5 fid2", (5, RANK_ARRIVE, 2, 0)),
              ("arrive@5 fid1 seq1", (5, RANK_ARRIVE, 1, 1)), ("arrive@5 fid1 seq0", (5, RANK_ARRIVE, 1, 0)),
              ("commit@5", (5, RANK_COMMIT, 9, 0)), ("fault@5", (5, RANK_FAULT, 9, 0)), ("x@3", (3, RANK_REPLY, 0, 0))]
    for name, key in queued:
        loop.schedule(*key, lambda t, n=name: seen.append(n))
    assert loop.run_ready() is True
    assert seen == ["x@3", "fault@5", "commit@5", "arrive@5 fid1 seq0", "arrive@5 fid1 seq1", "arrive@5 fid2",
                    "reply@5"]
    assert loop.now_ns == 5


def test_equal_keys_run_in_the_order_they_were_scheduled():
    loop = EventLoop()
    seen: list[int] = []
    for i in range(5):
        loop.schedule(7, RANK_ARRIVE, 1, 1, lambda t, i=i: seen.append(i))
    loop.run_ready()
    assert seen == [0, 1, 2, 3, 4]


def test_an_event_before_the_clock_is_a_causality_error():
    loop = EventLoop(lookahead_ns=10)
    loop.schedule(100, RANK_ARRIVE, 1, 0, lambda t: None)
    loop.run_ready()
    assert loop.now_ns == 100
    loop.schedule(100, RANK_ARRIVE, 1, 1, lambda t: None)  # at the clock: allowed
    with pytest.raises(RuntimeError, match=r"causality: an event for t=99 ns \(fid 3, rank 2\).*t=100 ns.*\(10 ns\)"):
        loop.schedule(99, RANK_ARRIVE, 3, 0, lambda t: None)


def test_horizon_is_the_slowest_running_clock_plus_the_lookahead():
    loop = EventLoop(lookahead_ns=10)
    assert loop.horizon() == INF_NS
    loop.set_running(1, 50)
    loop.set_running(2, 30)
    assert loop.horizon() == 40 and loop.running_count() == 2
    loop.set_stopped(2)
    assert loop.horizon() == 60
    loop.set_running(2, 80)  # a new running spell of fid 2, later than fid 1
    assert loop.horizon() == 60
    loop.set_stopped(1)
    assert loop.horizon() == 90
    loop.set_stopped(2)
    loop.set_stopped(2)  # stopping twice is harmless
    assert loop.horizon() == INF_NS and loop.running_count() == 0


def test_only_events_below_the_horizon_run_until_the_function_moves():
    loop = EventLoop(lookahead_ns=10)
    seen: list[int] = []
    for t in (5, 19, 20, 35):
        loop.schedule(t, RANK_ARRIVE, 1, 0, lambda tt: seen.append(tt))
    loop.set_running(7, 10)  # horizon 20: the event at 20 must wait (the function may act at 20)
    assert loop.run_ready() is False
    assert seen == [5, 19] and loop.now_ns == 19
    loop.set_stopped(7)  # it blocked: nothing holds the clock back
    assert loop.run_ready() is True
    assert seen == [5, 19, 20, 35]


def test_a_handler_may_schedule_at_its_own_instant_and_later():
    loop = EventLoop()
    seen: list[tuple[int, str]] = []

    def first(t: int) -> None:
        seen.append((t, "first"))
        loop.schedule(t, RANK_REPLY, 1, 0, lambda tt: seen.append((tt, "same instant, later rank")))
        loop.schedule(t + 3, RANK_FAULT, 1, 0, lambda tt: seen.append((tt, "later")))

    loop.schedule(4, RANK_ARRIVE, 1, 0, first)
    loop.run_ready()
    assert seen == [(4, "first"), (4, "same instant, later rank"), (7, "later")]


def test_passive_events_alone_end_the_run_and_stay_queued():
    loop = EventLoop()
    seen: list[int] = []
    loop.schedule(1_000, RANK_FAULT, 1, 0, lambda t: seen.append(t), passive=True)
    assert loop.run_ready() is True  # a deadline alone is no progress: nothing more can happen
    assert seen == [] and loop.pending() == 1
    loop.schedule(10, RANK_ARRIVE, 1, 0, lambda t: seen.append(t))
    loop.set_running(2, 0)
    loop.set_stopped(2)
    assert loop.run_ready() is True
    assert seen == [10] and loop.pending() == 1  # the progress event ran; the deadline still waits
    loop.clear()
    assert loop.pending() == 0


def test_max_events_stops_early_and_after_runs_after_each_event():
    loop = EventLoop()
    after: list[int] = []
    for t in range(1, 6):
        loop.schedule(t, RANK_ARRIVE, 1, 0, lambda tt: None)
    assert loop.run_ready(max_events=2, after=lambda: after.append(loop.now_ns)) is False
    assert after == [1, 2] and loop.pending() == 3
