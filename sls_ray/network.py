"""Flow-level network model: max-min fair sharing of concurrent transfers.

Each transfer is a *flow* over a few *links* (the function's NIC, the service's NIC or
aggregate limit). Rates follow max-min fairness (progressive filling), recomputed only over
the connected component of links a starting or ending flow touches. Unbounded links (S3's
aggregate, which PyWren saw scale to 60-80 GB/s) do not couple flows, so with S3 a component
is just one function's NIC: O(1) per event. A shared node NIC (Memcached, Redis, a VM)
couples its clients: O(F log F) in that node's flows, which are few per node in practice.
Request latency is paid before a flow starts and does not load the link (SimGrid's LV08
convention, docs/design.md).
"""
from __future__ import annotations

import math
from typing import Callable

from sls_ray.vtime import ceil_ns

#: bytes left below this are float noise: the flow is done (two flows that end together end at one ns)
_NOISE_BYTES = 1e-6


class Link:
    """A capacity in bytes per second shared by the flows crossing it; None = unbounded."""

    __slots__ = ("name", "capacity", "flows", "slowdown")

    def __init__(self, name: str, capacity: float | None) -> None:
        self.name = name
        self.capacity = capacity
        self.flows: dict[int, "Flow"] = {}
        self.slowdown = 1.0  # fault injection: capacity is divided by this

    @property
    def effective(self) -> float | None:
        return None if self.capacity is None else self.capacity / self.slowdown


class Flow:
    __slots__ = ("id", "links", "remaining", "rate", "updated_ns", "version", "on_done")

    def __init__(self, fid: int, links: list[Link], nbytes: float, on_done: Callable[[int], None] | None) -> None:
        self.id = fid
        self.links = links
        self.remaining = float(nbytes)
        self.rate = 0.0  # bytes per ns
        self.updated_ns = 0
        self.version = 0
        self.on_done = on_done


class FlowNetwork:
    """Keeps flows and tells the kernel when each one will finish.

    ``schedule(t_ns, flow, version)`` is the kernel's hook: it must call
    ``complete(flow, version, t_ns)`` at that time; stale versions are ignored.
    """

    def __init__(self, schedule: Callable[[int, Flow, int], None]) -> None:
        self._schedule = schedule
        self._next_id = 0
        self.active = 0

    def start(self, t_ns: int, links: list[Link], nbytes: float, on_done: Callable[[int], None]) -> Flow | None:
        """Start a transfer at t; returns None (and calls on_done(t)) for an empty one."""
        if nbytes <= 0:
            on_done(t_ns)
            return None
        self._next_id += 1
        flow = Flow(self._next_id, links, nbytes, on_done)
        flow.updated_ns = t_ns
        alone = True
        for link in links:
            link.flows[flow.id] = flow
            if link.capacity is not None and len(link.flows) > 1:
                alone = False
        self.active += 1
        if alone:  # fast path: nothing to share with, the tightest link sets the rate
            caps = [c for l in links if (c := l.effective) is not None]
            if not caps:
                self._remove(flow, t_ns)
                on_done(t_ns)
                return None
            flow.rate = min(caps) / 1e9
            flow.version = 1
            self._schedule(t_ns + max(1, ceil_ns(flow.remaining / flow.rate)), flow, flow.version)
            return flow
        self._reshare(t_ns, flow)
        return flow

    def complete(self, flow: Flow, version: int, t_ns: int) -> None:
        if version != flow.version or flow.remaining < 0:
            return
        self._remove(flow, t_ns)
        # drop the callback before calling it: it usually refers back to this flow, and a cycle
        # per transfer would leave every one of them to the garbage collector
        on_done, flow.on_done = flow.on_done, None
        assert on_done is not None, "a live flow keeps its callback until it completes"
        on_done(t_ns)

    def cancel(self, flow: Flow, t_ns: int) -> None:
        """Drop a flow whose function died; its bandwidth goes back to the others."""
        if flow.remaining >= 0 and any(flow.id in l.flows for l in flow.links):
            self._remove(flow, t_ns)
            flow.on_done = None

    def _remove(self, flow: Flow, t_ns: int) -> None:
        for link in flow.links:
            link.flows.pop(flow.id, None)
        flow.remaining = -1.0
        flow.version += 1
        self.active -= 1
        if any(l.flows for l in flow.links if l.capacity is not None):
            self._reshare(t_ns, flow)

    def reshare_link(self, t_ns: int, link: Link) -> None:
        """Recompute after a link's capacity changed (a service slow-down fault)."""
        for flow in list(link.flows.values()):
            self._reshare(t_ns, flow)
            break

    def _component(self, seed: Flow) -> tuple[list[Flow], list[Link]]:
        flows: dict[int, Flow] = {}
        links: dict[str, Link] = {}
        stack = [l for l in seed.links if l.capacity is not None]
        while stack:
            link = stack.pop()
            if link.name in links:
                continue
            links[link.name] = link
            for f in link.flows.values():
                if f.id not in flows:
                    flows[f.id] = f
                    stack.extend(l for l in f.links if l.capacity is not None and l.name not in links)
        ordered = sorted(flows.values(), key=lambda f: f.id)
        return ordered, sorted(links.values(), key=lambda l: l.name)

    def _reshare(self, t_ns: int, seed: Flow) -> None:
        flows, links = self._component(seed)
        if not flows:
            return
        # bring every flow's remaining bytes up to date at the old rates
        for f in flows:
            if f.rate > 0:
                f.remaining = f.remaining - f.rate * (t_ns - f.updated_ns)
                if f.remaining < _NOISE_BYTES:
                    f.remaining = 0.0
            f.updated_ns = t_ns
        # progressive filling
        cap = {l.name: (l.effective or 0.0) / 1e9 for l in links}  # bytes per ns (component links are bounded)
        unfrozen = {l.name: sum(1 for f in l.flows.values()) for l in links}
        rates: dict[int, float] = {}
        pending = set(f.id for f in flows)
        while pending:
            best, share = None, math.inf
            for l in links:
                n = unfrozen[l.name]
                if n > 0:
                    s = cap[l.name] / n
                    if s < share:
                        best, share = l, s
            if best is None:
                break
            for f in sorted(best.flows.values(), key=lambda f: f.id):
                if f.id in pending:
                    rates[f.id] = share
                    pending.discard(f.id)
                    for l in f.links:
                        if l.capacity is not None:
                            cap[l.name] -= share
                            unfrozen[l.name] -= 1
        for f in flows:
            new = rates.get(f.id, 0.0)
            if new != f.rate or f.version == 0:
                f.rate = new
                f.version += 1
                if new > 0:
                    dt = ceil_ns(f.remaining / new) if f.remaining > 0 else 0
                    self._schedule(t_ns + (max(1, dt) if f.remaining > 0 else 0), f, f.version)
