"""The event loop: virtual clock, event queue, horizon and the causality check.

Plain state, no I/O and no knowledge of functions or services (docs/design.md §1). Events
are totally ordered by (time, rank, function id, sequence, counter); the counter advances
only inside event handlers, which run in that order, so the order never depends on the real
order in which messages reach the kernel. The ``Outbox`` holds what events asked of the
transport (start a function, deliver a reply) until the kernel forwards it.

The *horizon* is min(clock of every running function) + lookahead: a running function can
only affect shared state one lookahead after its clock, so an event below the horizon can
be handled now without anything landing in its past. Which functions run, and from which
clock, the kernel's lifecycle tells the loop (``set_running`` / ``set_stopped``).
"""
from __future__ import annotations

import heapq
from typing import Callable, Protocol

from sls_ray import simcall as sc
from sls_ray.vtime import INF_NS

Handler = Callable[[int], None]


class Hooks(Protocol):
    """What a transport gives the kernel: start a function, answer a blocked one."""

    def start(self, cmd: sc.StartCommand) -> None: ...

    def deliver(self, fid: int, reply: sc.Reply) -> None: ...


Message = sc.StartCommand | tuple[int, sc.Reply]


class Outbox:
    """What events asked of the transport, in order: start a function, deliver a reply.

    The kernel's parts answer into it (it is their ``Hooks``); the kernel forwards it to the
    transport after each event and each submitted chain. A test reads ``messages`` instead.
    """

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def start(self, cmd: sc.StartCommand) -> None:
        self.messages.append(cmd)

    def deliver(self, fid: int, reply: sc.Reply) -> None:
        self.messages.append((fid, reply))

    def forward(self, hooks: Hooks) -> None:
        """Hand every message to ``hooks`` in the order they were asked for, and forget them."""
        messages = self.messages
        if not messages:
            return
        self.messages = []
        for msg in messages:
            if isinstance(msg, sc.StartCommand):
                hooks.start(msg)
            else:
                hooks.deliver(*msg)


class EventLoop:
    """Clock, event queue and the running functions' clocks of one run."""

    def __init__(self, lookahead_ns: int = 1) -> None:
        #: the shortest one-way latency of the run (>= 1 ns); the kernel sets it from its services
        self.lookahead_ns = lookahead_ns
        self.now_ns = 0
        self._heap: list[tuple[int, int, int, int, int, Handler, bool]] = []
        self._ctr = 0
        self._progress = 0  # non-passive events in the heap
        self._clocks: list[tuple[int, int, int]] = []  # (clock, fid, token) of running functions
        self._running: dict[int, int] = {}  # fid -> the token of its current running spell
        self._token = 0

    def schedule(self, t_ns: int, rank: int, fid: int, seq: int, fn: Handler, passive: bool = False) -> None:
        """Queue ``fn(t)``; ``passive`` events (deadlines) do not count as progress.

        An event before the clock would change a past the kernel already acted on: the
        outcome would depend on thread timing, so it is refused as a kernel error.
        """
        if t_ns < self.now_ns:
            raise RuntimeError(f"causality: an event for t={t_ns} ns (fid {fid}, rank {rank}) was scheduled "
                               f"after the kernel's clock reached t={self.now_ns} ns; the lookahead "
                               f"({self.lookahead_ns} ns) is larger than some latency of this run")
        self._ctr += 1  # unique, so the order never reaches fn
        heapq.heappush(self._heap, (t_ns, rank, fid, seq, self._ctr, fn, passive))
        if not passive:
            self._progress += 1

    # ------------------------------------------------------------------ running functions
    def set_running(self, fid: int, clock_ns: int) -> None:
        """Function ``fid`` runs user code from ``clock_ns``: the horizon waits for it."""
        self._token += 1
        self._running[fid] = self._token
        heapq.heappush(self._clocks, (clock_ns, fid, self._token))

    def set_stopped(self, fid: int) -> None:
        """Function ``fid`` blocked or ended: it no longer holds the horizon back."""
        self._running.pop(fid, None)

    def running_count(self) -> int:
        return len(self._running)

    def horizon(self) -> int:
        """Events strictly before this instant are safe to handle (INF_NS when nothing runs)."""
        clocks = self._clocks
        while clocks:
            clock, fid, token = clocks[0]
            if self._running.get(fid) == token:
                return clock + self.lookahead_ns
            heapq.heappop(clocks)
        return INF_NS

    # ------------------------------------------------------------------ handling
    def run_ready(self, max_events: int = 1 << 30, after: Callable[[], None] | None = None) -> bool:
        """Handle every event below the horizon, in order; True once the run can go no further.

        That is when nothing runs and only passive events are left. ``after`` is called after
        each event (the kernel forwards what the event asked of the transport).
        """
        heap = self._heap
        n = 0
        while n < max_events:
            h = self.horizon()
            if h == INF_NS and self._progress == 0:
                return True
            if not heap or heap[0][0] >= h:
                return False
            t, _, _, _, _, fn, passive = heapq.heappop(heap)
            if not passive:
                self._progress -= 1
            self.now_ns = t
            fn(t)
            if after is not None:
                after()
            n += 1
        return False

    def pending(self) -> int:
        """Events still queued (passive ones included)."""
        return len(self._heap)

    def clear(self) -> None:
        """Drop every queued event (the run is over)."""
        self._heap.clear()
        self._progress = 0
