"""Storage routing (sls_ray/storage_calls.py) alone: a real service on a bare event loop.

The chain runner is a fake that records the answers; the services are the profile's own,
given an environment made of the loop and the routing part itself (``ServiceEnv``). No
kernel, no transport, no threads.
"""
from __future__ import annotations

from typing import Any

from sls_ray import simcall as sc
from sls_ray.config import load_profile
from sls_ray.events import EventLoop
from sls_ray.functions import LambdaFunction
from sls_ray.invoker import Invoker
from sls_ray.network import FlowNetwork, Link
from sls_ray.storage import build_services
from sls_ray.storage.base import Outcome, Ticket
from sls_ray.storage_calls import StorageCalls
from sls_ray.vtime import RANK_COMMIT

ONE_WAY = 250_000  # Memcached: 0.5 ms round trip
NIC = 70e6  # a function's NIC, 70 MB/s: narrower than the node's 1.25 GB/s


class FakeChains:
    def __init__(self) -> None:
        self.answers: list[tuple[int, int, Any, Any, tuple[str, str] | None]] = []

    def finish_op(self, rec: LambdaFunction, t: int, value: Any = None, handle: Any = None,
                  error: tuple[str, str] | None = None, nbytes: int = 0) -> None:
        self.answers.append((rec.fid, t, value, handle, error))

    def gone(self, rec: LambdaFunction, t: int) -> bool:
        return rec.dead_ns is not None and t > rec.dead_ns


class Env:
    """The loop, the profile's services and the routing part, wired as the kernel wires them."""

    def __init__(self) -> None:
        profile = load_profile("aws_2020")
        self.loop = EventLoop(lookahead_ns=1)
        self.services = build_services(profile, self)
        self.network = FlowNetwork(lambda t, flow, version: self.loop.schedule(
            t, RANK_COMMIT, -1, flow.id, lambda tt: self.network.complete(flow, version, tt)))
        self.chains = FakeChains()
        self.storage = StorageCalls(self.loop, self.services, self.network, Invoker(profile.functions, 0),
                                    {"throttles": 0}, self.chains)  # type: ignore[arg-type]

    # ServiceEnv: what a service may ask of the kernel
    def schedule(self, t_ns: int, rank: int, fid: int, seq: int, fn, passive: bool = False) -> None:
        self.loop.schedule(t_ns, rank, fid, seq, fn, passive)

    def resume(self, ticket: Ticket, t_ns: int, outcome: Outcome) -> None:
        self.storage.resume(ticket, t_ns, outcome)

    def function(self, fid: int) -> LambdaFunction:
        rec = LambdaFunction(fid, "h", 1024)
        rec.nic = Link(f"fn{fid}", NIC)
        return rec


def test_a_put_then_a_get_take_latency_plus_bytes_over_the_narrowest_link():
    env = Env()
    rec = env.function(1)
    env.storage.request(rec, 1, sc.Op(sc.STORAGE, "memcached", "put", ("k",), 700_000, b"v"), 0)
    env.loop.run_ready()
    transfer = 10_000_000  # 700 KB at 70 MB/s
    assert env.chains.answers == [(1, ONE_WAY + transfer + ONE_WAY, None, None, None)]
    t = env.chains.answers[0][1]
    env.storage.request(rec, 2, sc.Op(sc.STORAGE, "memcached", "get", ("k",)), t)
    env.loop.run_ready()
    fid, t_get, _, handle, error = env.chains.answers[1]
    assert (fid, t_get, handle, error) == (1, t + ONE_WAY + transfer + ONE_WAY, b"v", None)
    assert rec.flows == set()  # the finished flows left the function's NIC


def test_two_readers_of_one_node_each_keep_their_own_nic_rate():
    env = Env()
    env.services["memcached"].preload("k", b"v", 700_000)
    for fid in (1, 2):
        env.storage.request(env.function(fid), 1, sc.Op(sc.STORAGE, "memcached", "get", ("k",)), 0)
    env.loop.run_ready()
    # 2 x 70 MB/s is far below the node's 1.25 GB/s: max-min sharing leaves each its own NIC rate
    assert [(a[0], a[1]) for a in env.chains.answers] == [(1, 2 * ONE_WAY + 10_000_000), (2, 2 * ONE_WAY + 10_000_000)]


def test_a_parked_wait_is_answered_when_the_write_commits():
    env = Env()
    waiter, writer = env.function(1), env.function(2)
    # poll every 10 ms: a literal poll reads at arrival + k x (10 ms + one round trip)
    env.storage.request(waiter, 1, sc.Op(sc.STORAGE, "memcached", "get_wait", ("k", 0.01, None)), 0)
    env.loop.run_ready()
    assert env.chains.answers == [] and len(waiter.tickets) == 1  # parked inside the service
    env.storage.request(writer, 1, sc.Op(sc.STORAGE, "memcached", "put", ("k",), 70_000, b"v"), 5_000_000)
    env.loop.run_ready()
    committed = 5_000_000 + ONE_WAY + 1_000_000  # 70 KB at 70 MB/s
    (put,) = [a for a in env.chains.answers if a[0] == 2]
    (got,) = [a for a in env.chains.answers if a[0] == 1]
    assert put[1] == committed + ONE_WAY
    first_poll_after = ONE_WAY + 10_500_000  # the second poll's read: the first one missed the commit
    assert got[3] == b"v" and waiter.tickets == []
    assert got[1] == first_poll_after + 1_000_000 + ONE_WAY  # then the value's transfer and the reply


def test_an_unknown_service_fails_the_request_at_once_naming_the_known_ones():
    env = Env()
    env.storage.request(env.function(1), 1, sc.Op(sc.STORAGE, "nope", "get", ("k",)), 42)
    (answer,) = env.chains.answers
    assert answer[1] == 42 and answer[4] is not None and answer[4][0] == "NotSupported"
    assert "known: [" in answer[4][1] and "'memcached'" in answer[4][1]
