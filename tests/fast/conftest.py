"""The fast tier: plain classes driven directly, no threads, no Ray, seconds in all.

Run it first: ``pytest tests/fast`` (or ``pytest -m fast``). Every test here builds a piece
of the core (the event loop, the flow network, the warm pool, each storage service) with a
fake environment; the guard below fails a test that starts a thread or imports Ray, so the
tier keeps its promise as it grows.
"""
from __future__ import annotations

import heapq
import sys
import threading
from pathlib import Path
from typing import Callable

import pytest

from sls_ray.storage.base import Outcome, Ticket

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.fast)


@pytest.fixture(autouse=True)
def no_threads_no_ray():
    before = {t.ident for t in threading.enumerate()}
    ray_loaded = "ray" in sys.modules
    yield
    started = [t.name for t in threading.enumerate() if t.ident not in before]
    assert not started, f"a fast-tier test started threads: {started}"
    assert ray_loaded or "ray" not in sys.modules, "a fast-tier test imported Ray"


class FakeEnv:
    """The kernel's side of ``ServiceEnv`` (storage/base.py), as a bare event queue.

    Events run in the kernel's order (time, rank, function id, sequence); ``resumed`` records
    every answer a service gives a parked request.
    """

    def __init__(self) -> None:
        self.now = 0
        self._heap: list = []
        self._ctr = 0
        self.resumed: list[tuple[Ticket, int, Outcome]] = []

    def schedule(self, t_ns: int, rank: int, fid: int, seq: int, fn: Callable[[int], None],
                 passive: bool = False) -> None:
        assert t_ns >= self.now, f"an event at {t_ns} ns scheduled in the past (now {self.now} ns)"
        self._ctr += 1
        heapq.heappush(self._heap, (t_ns, rank, fid, seq, self._ctr, fn))

    def resume(self, ticket: Ticket, t_ns: int, outcome: Outcome) -> None:
        self.resumed.append((ticket, t_ns, outcome))

    def run_until(self, t_ns: int) -> None:
        while self._heap and self._heap[0][0] <= t_ns:
            t, *_, fn = heapq.heappop(self._heap)
            self.now = t
            fn(t)
        self.now = max(self.now, t_ns)


@pytest.fixture
def env() -> FakeEnv:
    return FakeEnv()
