"""The flow network (sls_ray/network.py): max-min fair sharing, exact finishing times, cancel."""
from __future__ import annotations

import pytest

from sls_ray.network import FlowNetwork, Link
from sls_ray.vtime import NS_PER_S

MB = 1e6


class Clock:
    """The kernel's part for flows: keep (t, flow, version) and complete them in time order."""

    def __init__(self) -> None:
        self.pending: list = []
        self.net = FlowNetwork(lambda t, flow, version: self.pending.append((t, flow.id, version, flow)))
        self.done: dict[str, int] = {}

    def start(self, name: str, t: int, links: list[Link], nbytes: float) -> None:
        self.net.start(t, links, nbytes, lambda te: self.done.__setitem__(name, te))

    def run(self) -> None:
        while self.pending:
            self.pending.sort(key=lambda e: (e[0], e[1], e[2]))
            t, _, version, flow = self.pending.pop(0)
            self.net.complete(flow, version, t)


def test_one_flow_takes_bytes_over_capacity():
    c = Clock()
    c.start("a", 0, [Link("nic", 100 * MB)], 10 * MB)
    c.run()
    assert c.done == {"a": NS_PER_S // 10}


def test_the_tightest_link_sets_the_rate_and_an_unbounded_link_does_not_count():
    c = Clock()
    c.start("a", 0, [Link("nic", 50 * MB), Link("s3", None), Link("node", 200 * MB)], 10 * MB)
    c.run()
    assert c.done == {"a": NS_PER_S // 5}


def test_two_flows_share_a_link_fairly_and_the_survivor_speeds_up():
    c = Clock()
    link = Link("node", 100 * MB)
    c.start("a", 0, [link], 10 * MB)
    c.start("b", 0, [link], 20 * MB)
    c.run()
    # both at 50 MB/s until a ends at 0.2 s (10 MB); b has 10 MB left, alone at 100 MB/s: 0.3 s
    assert c.done == {"a": 200_000_000, "b": 300_000_000}


def test_max_min_fairness_gives_a_bottlenecked_flow_less_and_the_other_the_rest():
    c = Clock()
    shared = Link("node", 100 * MB)
    c.start("slow", 0, [Link("slow-nic", 20 * MB), shared], 2 * MB)   # held to 20 MB/s by its own NIC
    c.start("fast", 0, [Link("fast-nic", 1000 * MB), shared], 8 * MB)  # gets the remaining 80 MB/s
    c.run()
    assert c.done == {"slow": 100_000_000, "fast": 100_000_000}


def test_an_empty_transfer_finishes_at_once_without_a_flow():
    c = Clock()
    assert c.net.start(5, [Link("nic", MB)], 0, lambda t: c.done.__setitem__("e", t)) is None
    assert c.done == {"e": 5} and c.net.active == 0


def test_a_cancelled_flow_never_finishes_and_returns_its_share():
    c = Clock()
    link = Link("node", 100 * MB)
    c.start("a", 0, [link], 10 * MB)
    flow_b = c.net.start(0, [link], 10 * MB, lambda t: c.done.__setitem__("b", t))
    c.net.cancel(flow_b, 100_000_000)  # at 0.1 s: a has 5 MB left, alone from now on
    c.run()
    assert c.done == {"a": 150_000_000}
    assert c.net.active == 0


@pytest.mark.parametrize("n", [3, 7])
def test_n_equal_flows_end_together_at_one_nanosecond(n):
    c = Clock()
    link = Link("node", 100 * MB)
    for i in range(n):
        c.start(f"f{i}", 0, [link], 1 * MB)
    c.run()
    assert set(c.done.values()) == {n * 10_000_000}
