"""``FunctionHost``: a Ray actor that runs many simulated functions as threads.

One OS thread per live function (≈0.1 MB each, against ≈40 MB per idle actor process:
docs/design.md, "Multiplexing"). All of a host's simcalls leave through one sender thread
that batches whatever queued while the previous batch was in flight, and all replies come
back through one long-poll receiver, so a host costs the kernel two calls per batch instead
of one per simcall. Payloads above 64 KB go to Ray's object store from here; the kernel only
ever holds their refs, and since this actor owns them they outlive the function that wrote
them (data a function wrote survives its end and its failure).
"""
from __future__ import annotations

import pickle
import queue
import resource
import threading
from typing import Any

import numpy as np
import ray

from sls_ray import simcall as sc
from sls_ray.context import FunctionContext
from sls_ray.payload import Encoded, wire_size
from sls_ray.transport.local import run_handler

INLINE_LIMIT = 64 * 1024


class _Slot:
    __slots__ = ("event", "reply")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reply: sc.Reply | None = None


class HostGateway:
    """The transport side of the functions on one host (plain class, the actor wraps it)."""

    def __init__(self, kernel, host_id: int, handlers: dict, service_kinds: dict, item_limits: dict) -> None:
        self.kernel = kernel
        self.host_id = host_id
        self.handlers = handlers
        self.service_kinds = service_kinds
        self.item_limits = item_limits
        self._slots: dict[int, _Slot] = {}
        self._outbox: queue.Queue = queue.Queue()
        self._stop = threading.Event()

    # -- Gateway protocol used by FunctionContext
    def call(self, fid: int, t_ns: int, ops: list[sc.Op]) -> sc.Reply:
        slot = self._slots[fid]
        self._outbox.put((fid, t_ns, ops))
        slot.event.wait()
        slot.event.clear()
        return slot.reply

    def send(self, fid: int, t_ns: int, ops: list[sc.Op]) -> None:
        self._outbox.put((fid, t_ns, ops))

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

    # -- pumps
    def sender(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._outbox.get(timeout=0.5)
            except queue.Empty:
                continue
            batch = [first]
            while True:
                try:
                    batch.append(self._outbox.get_nowait())
                except queue.Empty:
                    break
            ray.get(self.kernel.submit_batch.remote(self.host_id, batch))

    def receiver(self) -> None:
        while True:
            messages, finished = ray.get(self.kernel.poll.remote(self.host_id))
            for msg in messages:
                if isinstance(msg, sc.StartCommand):
                    self._start(msg)
                else:
                    fid, reply = msg
                    slot = self._slots[fid]
                    slot.reply = reply
                    slot.event.set()
            if finished:
                self._stop.set()
                return

    def _start(self, cmd: sc.StartCommand) -> None:
        self._slots[cmd.fid] = _Slot()
        threading.Thread(target=self._run, args=(cmd,), name=f"fn{cmd.fid}", daemon=True).start()

    def _run(self, cmd: sc.StartCommand) -> None:
        ctx = FunctionContext(self, cmd, self.service_kinds, self.item_limits)
        run_handler(ctx, self.handlers[cmd.handler], self.decode(cmd.payload))


@ray.remote(num_cpus=0, max_concurrency=4)
class FunctionHost:
    """Ray shell around HostGateway: ``serve`` runs until the kernel says the run is over."""

    def __init__(self, cfg_data: dict, host_id: int, memory_limit_bytes: int | None = None) -> None:
        from sls_ray.config import load_config
        from sls_ray.runtime import build, limit_threads

        limit_threads()
        exp, _ = build(load_config(data=cfg_data))
        self.handlers = exp.handlers()
        self.host_id = host_id
        if memory_limit_bytes:  # isolated mode: a real OS limit (RLIMIT_DATA, never RLIMIT_AS)
            base = _vm_data_bytes()  # measured after every import, so the limit is the function's own
            resource.setrlimit(resource.RLIMIT_DATA, (base + memory_limit_bytes, resource.RLIM_INFINITY))

    def serve(self, kernel, service_kinds: dict, item_limits: dict) -> int:
        gw = HostGateway(kernel, self.host_id, self.handlers, service_kinds, item_limits)
        sender = threading.Thread(target=gw.sender, daemon=True)
        sender.start()
        gw.receiver()
        sender.join(timeout=5)
        return self.host_id


def _vm_data_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024
    return 0
