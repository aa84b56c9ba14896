"""``FunctionHost``: a Ray actor that runs many simulated functions as threads.

One OS thread per live function (≈0.1 MB each, against ≈40 MB per idle actor process:
docs/design.md, "Multiplexing"). A host talks to the kernel through one ``exchange`` call
per virtual-time window: it sends every simcall its functions queued and waits, in the same
call, for their replies and for new functions to start — one round trip per window instead
of one per simcall. Payloads above 64 KB go to Ray's object store from here; the kernel only
ever holds their refs, and since this actor owns them they outlive the function that wrote
them (data a function wrote survives its end and its failure).

A host outlives a run: the transport keeps it warm for the next one (``ray_transport.py``),
and every run brings its own handlers in its ``RunPlan``.
"""
from __future__ import annotations

import os
import pickle
import resource
import threading
import time
from collections import deque
from typing import Any

import numpy as np
import ray

from sls_ray import simcall as sc
from sls_ray.context import FunctionContext
from sls_ray.payload import Encoded, wire_size
from sls_ray.transport.local import resolve_handler, run_handler

INLINE_LIMIT = 64 * 1024
BATCH_WAIT_S = 0.02  # longest a ready batch waits for this host's still-running functions


class _AnswerWait:
    """Where a function thread waits for its answer: a bare lock, held until the answer is in
    (one C call each way, against a Condition and two locks for a ``threading.Event``)."""

    __slots__ = ("answered", "ready", "reply")

    def __init__(self) -> None:
        self.ready = threading.Lock()
        self.ready.acquire()
        self.reply: sc.Reply | None = None
        self.answered = False  # an answer (or its start) waits for this function to take it


class HostGateway:
    """The transport side of the functions on one host (plain class, the actor wraps it)."""

    def __init__(self, kernel, host_id: int, handlers: dict, service_kinds: dict, item_limits: dict) -> None:
        self.kernel = kernel
        self.host_id = host_id
        self.handlers = handlers
        self.service_kinds = service_kinds
        self.item_limits = item_limits
        self._slots: dict[int, _AnswerWait] = {}
        self._threads: list[threading.Thread] = []
        # a batch leaves when every function on this host has blocked (or after BATCH_WAIT_S):
        # the kernel cannot get past a running function's clock anyway, so waiting costs
        # nothing and turns N round trips into one
        self._cv = threading.Condition()
        self._outbox: list = []
        self._running = 0  # functions with an answer they have not blocked on again
        # at most one function per core runs at once; an answered one waits for a permit, which
        # a blocking one hands on: a window's hundreds of answers do not wake hundreds of
        # threads to fight over the GIL (as in the in-process transport)
        self._permits = max(1, len(os.sched_getaffinity(0)))
        self._queue: deque[_AnswerWait] = deque()

    # -- Gateway protocol used by FunctionContext
    def call(self, fid: int, t_ns: int, ops: list[sc.Op]) -> sc.Reply:
        slot = self._slots[fid]
        self.send(fid, t_ns, ops)
        slot.ready.acquire()
        slot.answered = False
        return slot.reply

    def send(self, fid: int, t_ns: int, ops: list[sc.Op]) -> None:
        with self._cv:
            self._outbox.append((fid, t_ns, ops))
            self._running -= 1
            if self._queue:  # this thread blocks or ends: its permit goes to the next answered one
                self._queue.popleft().ready.release()
            else:
                self._permits += 1
            if self._running == 0:  # the pump waits for the last one only
                self._cv.notify()

    def _wake(self, slot: _AnswerWait) -> None:
        """Let an answered function run now, or once a permit is free (under self._cv)."""
        if slot.answered:
            return  # a second answer before the first was taken replaces it
        slot.answered = True
        if self._permits > 0:
            self._permits -= 1
            slot.ready.release()
        else:
            self._queue.append(slot)

    def encode(self, value: Any) -> tuple[Any, int]:
        size = wire_size(value)
        if value is None:
            return None, 0
        if size > INLINE_LIMIT:
            return ray.put(value), size
        if isinstance(value, bytes):
            return value, size
        return Encoded(pickle.dumps(value, protocol=5)), size

    def decode(self, handle: Any) -> Any:
        if isinstance(handle, Encoded):
            return pickle.loads(handle.blob)
        if isinstance(handle, ray.ObjectRef):
            value = ray.get(handle)
            if isinstance(value, np.ndarray) and not value.flags.writeable:
                value = value.copy()  # object-store arrays are read-only; in-process ones are not
            return value
        return handle

    # -- the exchange loop
    def pump(self) -> None:
        """One kernel round trip per window: send what queued, receive replies and starts.

        While some function on this host still runs user code, the host waits for it locally
        (up to BATCH_WAIT_S) instead of calling the kernel; once all are blocked it sends the
        batch and waits inside the same call for the next replies.
        """
        while True:
            with self._cv:
                deadline = time.monotonic() + BATCH_WAIT_S
                while self._running > 0 and (left := deadline - time.monotonic()) > 0:
                    self._cv.wait(timeout=left)
                batch, self._outbox = self._outbox, []
                block = self._running == 0
            messages, finished = ray.get(self.kernel.exchange.remote(self.host_id, batch, block))
            with self._cv:
                for msg in messages:
                    if isinstance(msg, sc.StartCommand):
                        slot = self._start(msg)
                    else:
                        fid, slot_reply = msg
                        slot = self._slots[fid]
                        slot.reply = slot_reply
                        if slot.answered:
                            continue
                    self._running += 1
                    self._wake(slot)
            if finished:
                return

    def settle(self, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` for this run's function threads to end; how many still run.

        After a finished run every thread has its last answer (a deadlock answers each blocked
        function with its death), so they end at once; one that does not is stuck in user
        code, and the host must not serve another run.
        """
        deadline = time.monotonic() + timeout_s
        for t in self._threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        return sum(1 for t in self._threads if t.is_alive())

    def _start(self, cmd: sc.StartCommand) -> _AnswerWait:
        slot = self._slots[cmd.fid] = _AnswerWait()
        t = threading.Thread(target=self._run, args=(cmd, slot), name=f"fn{cmd.fid}", daemon=True)
        self._threads.append(t)
        t.start()
        return slot

    def _run(self, cmd: sc.StartCommand, slot: _AnswerWait) -> None:
        slot.ready.acquire()  # its permit to run
        slot.answered = False
        ctx = FunctionContext(self, cmd, self.service_kinds, self.item_limits)
        run_handler(ctx, resolve_handler(self.handlers, cmd.handler), self.decode(cmd.payload))


@ray.remote(num_cpus=0, max_concurrency=2)
class FunctionHost:
    """Ray shell around HostGateway: ``serve`` runs one run's functions until the kernel says it is over.

    ``memory_limit_bytes`` (isolated mode: one function per host) puts a real OS limit on the
    process (RLIMIT_DATA, never RLIMIT_AS), measured from what the process holds once the
    run's code is imported, so the limit is the function's own.
    """

    def __init__(self, memory_limit_bytes: int | None = None) -> None:
        self.memory_limit_bytes = memory_limit_bytes

    def serve(self, plan, kernel, host_id: int, service_kinds: dict, item_limits: dict) -> tuple[int, str, int]:
        """Run this host's share of ``plan``; returns (host id, node id, threads still running)."""
        handlers = plan.handlers()
        if self.memory_limit_bytes:
            base = _vm_data_bytes()
            resource.setrlimit(resource.RLIMIT_DATA, (base + self.memory_limit_bytes, resource.RLIM_INFINITY))
        gateway = HostGateway(kernel, host_id, handlers, service_kinds, item_limits)
        gateway.pump()
        return host_id, ray.get_runtime_context().get_node_id(), gateway.settle(2.0)

    def adopt(self, values: list) -> list:
        """Put preloaded values into this node's object store, owned by this host; their refs.

        The kernel hands a run's preloaded data (NumPyWren's input blocks) to the hosts in
        turn, so it lives spread over the nodes as the data functions write does, and the
        kernel process keeps only refs (docs/cluster.md, "Where blocks live").
        """
        return [ray.put(v) for v in values]


def _vm_data_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024
    return 0
