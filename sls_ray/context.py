"""What a function's code sees: ``FunctionContext`` (docs/api.md).

Every interaction with the platform is a simcall stamped with this function's virtual
clock. Operations whose result the code does not need (put, delete, compute, log) queue in a
local *chain* and travel with the next call that returns data, saving a round trip to the
kernel each (docs/design.md, "Lazy chains"). Compute with nothing queued advances the local
clock without any message at all.

Memory is accounted, not measured (docs/design.md, "Memory"): the runtime base, the payload,
objects fetched from storage, and what the code tracks or declares. Crossing the function's
size raises ``MemoryLimitExceeded`` at that virtual instant, deterministically.
"""
from __future__ import annotations

import contextlib
import math
import weakref
from typing import Any, Callable, Iterable, Iterator, Protocol

import numpy as np

from sls_ray import simcall as sc
from sls_ray.errors import FunctionEnded, ItemTooLarge, MemoryLimitExceeded, error_from_name
from sls_ray.payload import nbytes_of
from sls_ray.vtime import NS_PER_S, to_ns, to_s


class Gateway(Protocol):
    """The transport's side of a function: send a chain and wait, or send and go."""

    def call(self, fid: int, t_ns: int, ops: list[sc.Op]) -> sc.Reply: ...

    def send(self, fid: int, t_ns: int, ops: list[sc.Op]) -> None: ...

    def encode(self, value: Any) -> tuple[Any, int]: ...

    def decode(self, handle: Any) -> Any: ...


class Pending:
    """An asynchronous storage request in flight (``client.get_async`` / ``put_async``).

    It starts when the function's clock reaches the call, while the function goes on
    computing; ``result()`` (or ``ctx.gather`` for many at once) waits for it in virtual time.
    """

    __slots__ = ("_ctx", "id", "what", "done", "value", "error")

    def __init__(self, ctx: "FunctionContext", fut_id: int, what: str) -> None:
        self._ctx, self.id, self.what = ctx, fut_id, what
        self.done = False
        self.value: Any = None
        self.error: tuple[str, str] | None = None

    def result(self) -> Any:
        return self._ctx.gather([self])[0]

    def __repr__(self) -> str:
        return f"Pending({self.what}, {'done' if self.done else 'in flight'})"


class MemoryLedger:
    """The function's accounted working set."""

    def __init__(self, ctx: "FunctionContext", limit: int, base: int) -> None:
        self._ctx = ctx
        self.limit = limit
        self.used = base
        self.peak = base

    def _add(self, nbytes: int, label: str) -> None:
        self._ctx._check_alive()
        self.used += nbytes
        if self.used > self.peak:
            self.peak = self.used
        if self.used > self.limit:
            used, self.used = self.used, self.used - nbytes
            error = MemoryLimitExceeded(
                f"{self._ctx.handler} (fid {self._ctx.fid}): working set would reach {used / 2**20:.1f} MiB "
                f"({label}: {nbytes / 2**20:.1f} MiB) above its {self.limit / 2**20:.0f} MiB memory size "
                f"(Runtime exited: signal: killed)")
            self._ctx._end(error)  # the kernel records the kill now: no handler code can undo it
            raise error

    def _release(self, nbytes: int) -> None:
        self.used -= nbytes

    def track(self, obj: Any, label: str = "tracked object") -> Any:
        """Count an array/tensor until it is garbage; returns it for chaining."""
        n = nbytes_of(obj)
        self._add(n, label)
        try:
            weakref.finalize(obj, self._release, n)
        except TypeError:
            self._release(n)  # cannot be watched: counted only at this instant
        return obj

    def transient(self, nbytes: int, label: str) -> None:
        """Check a value that passes through (a fetched bytes object) at its peak."""
        self._add(nbytes, label)
        self._release(nbytes)

    @contextlib.contextmanager
    def hold(self, nbytes: int, label: str = "declared working set") -> Iterator[None]:
        self._add(int(nbytes), label)
        try:
            yield
        finally:
            self._release(int(nbytes))


class FunctionContext:
    def __init__(self, gateway: Gateway, cmd: sc.StartCommand, services: dict[str, str],
                 item_limits: dict[str, int | None]) -> None:
        self._gw = gateway
        self.fid = cmd.fid
        self.handler = cmd.handler
        self.memory_mb = cmd.memory_mb
        self.attempt = cmd.attempt
        self.invocation = cmd.invocation
        self.is_vm = cmd.is_vm
        self._clock = cmd.start_ns
        self._deadline = cmd.deadline_ns
        self._chain: list[sc.Op] = []
        self._flops_per_ns = cmd.extra["flops_per_s"] / NS_PER_S
        self._bytes_per_ns = cmd.extra["mem_bytes_per_s"] / NS_PER_S
        self._service_kinds = services
        self._item_limits = item_limits
        self._clients: dict[str, Any] = {}
        self._next_future = 0
        self.rng = np.random.default_rng([cmd.seed, cmd.invocation, cmd.attempt, 0xF00D])
        self._payload_bytes = cmd.payload_bytes
        self._ended: tuple[str, str] | None = None  # (error, message) of a death this context recorded
        self._told_end: tuple[str, str] | None = None  # a death the kernel told it of (timeout, kill)
        self.memory = MemoryLedger(self, cmd.memory_limit_bytes, cmd.base_bytes)
        self.vm_service = cmd.extra.get("service", "")

    def _admit(self) -> None:
        """Check the runtime plus the payload against the memory size, before the handler runs.

        Called by ``run_handler`` (not the constructor), so a sandbox too small for its own
        runtime ends ``MemoryLimitExceeded`` at its start instant like any other function.
        """
        self.memory.transient(self._payload_bytes, "invocation payload")

    def _check_alive(self) -> None:
        """After its death, every platform call of the function raises that death again."""
        ended = self._ended or self._told_end
        if ended is not None:
            raise error_from_name(*ended)

    def _end(self, error: BaseException) -> None:
        """Record a death at this instant (after the operations already queued): the kernel
        ends and bills the invocation here, whatever the handler's code does next."""
        if self._ended is not None:
            return
        self._ended = (type(error).__name__, str(error))
        chain, self._chain = self._chain + [sc.Op(sc.EXIT, args=self._ended)], []
        self._gw.send(self.fid, self._clock, chain)

    # ------------------------------------------------------------------ time
    @property
    def now(self) -> float:
        """Virtual seconds since the run began (flushes queued operations)."""
        self._check_alive()
        if self._chain:
            self._call([sc.Op(sc.NOW)])
        return to_s(self._clock)

    @property
    def clock(self) -> float:
        """The virtual clock without a simcall: exact when nothing is queued, else a lower bound
        (queued compute counted, queued storage operations not)."""
        queued = sum(op.args[0] for op in self._chain if op.kind == sc.COMPUTE)
        return to_s(self._clock + queued)

    @property
    def flops_per_s(self) -> float:
        """This function's modelled compute rate (its vCPU share times the profile's GFLOP/s)."""
        return self._flops_per_ns * NS_PER_S

    @property
    def deadline(self) -> float:
        return to_s(self._deadline)

    @property
    def remaining(self) -> float:
        """Seconds left before this function's timeout."""
        return to_s(self._deadline) - self.now

    def _advance(self, ns: int) -> None:
        self._check_alive()
        if ns <= 0:
            return
        if self._chain:
            self._chain.append(sc.Op(sc.COMPUTE, args=(ns,)))
        else:
            self._clock += ns

    def compute(self, flops: float = 0.0, bytes: float = 0.0, seconds: float | None = None) -> float:
        """Charge modelled compute; returns the seconds charged."""
        if seconds is None:
            ns = max(flops / self._flops_per_ns if flops else 0.0, bytes / self._bytes_per_ns if bytes else 0.0)
            ns = int(math.ceil(ns))
        else:
            ns = to_ns(seconds)
        self._advance(ns)
        return ns / NS_PER_S

    @property
    def np(self):
        """Numpy/scipy kernels that charge their FLOP counts (sls_ray/flops.py)."""
        from sls_ray.flops import MeteredNumpy

        return MeteredNumpy(lambda flops: self.compute(flops=flops))

    def compute_torch(self, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` under torch's FLOP counter and charge what it counted."""
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            out = fn(*args, **kwargs)
        self.compute(flops=float(counter.get_total_flops()))
        return out

    def sleep(self, seconds: float) -> None:
        self._advance(to_ns(seconds))

    # ------------------------------------------------------------------ simcalls
    def _call(self, ops: list[sc.Op]) -> Any:
        self._check_alive()
        chain, self._chain = self._chain + ops, []
        reply = self._gw.call(self.fid, self._clock, chain)
        self._clock = reply.t_ns
        if reply.error is not None:
            error = error_from_name(*reply.error)
            if isinstance(error, FunctionEnded):  # the kernel ended this function: remember it
                self._told_end = reply.error
            raise error
        if reply.handle is not None:
            return self._gw.decode(reply.handle)
        return reply.value

    def _queue(self, op: sc.Op) -> None:
        self._check_alive()
        self._chain.append(op)

    def log(self, kind: str, **fields: Any) -> None:
        """A metrics row for metrics.csv, stamped with this function's virtual time."""
        self._queue(sc.Op(sc.LOG, args=(kind, fields)))

    def storage(self, name: str):
        client = self._clients.get(name)
        if client is None:
            from sls_ray.clients import client_for

            kind = self._service_kinds.get(name)
            client = client_for(self, name, kind)
            self._clients[name] = client
        return client

    def invoke(self, handler: str, payload: Any = None, sync: bool = False, memory_mb: int | None = None) -> Any:
        """Invoke another function; async returns its invocation id, sync its result."""
        self._check_alive()
        handle, size = self._gw.encode(payload)
        result = self._call([sc.Op(sc.INVOKE, args=(handler, sync, memory_mb), size=size, handle=handle)])
        if sync and result is not None:
            self.memory.transient(nbytes_of(result), f"result of {handler}")
        return result

    def invoke_each(self, handler: str, payloads: Iterable[Any], memory_mb: int | None = None) -> list[int]:
        """``[ctx.invoke(handler, p) for p in payloads]`` (asynchronous invocations) in one simcall.

        Each invocation leaves when the previous one's acknowledgement arrived, as in the loop,
        so the virtual outcome is the loop's; only the real round trips between them go
        (docs/design.md, "Declared sequences"). Returns the invocation ids, in order.
        """
        ops = []
        for payload in payloads:
            handle, size = self._gw.encode(payload)
            ops.append(sc.Op(sc.INVOKE, args=(handler, False, memory_mb), size=size, handle=handle))
        return self._sequence(ops, lambda i, value: value)

    def start_vm_process(self, handler: str, payload: Any = None, service: str = "vm") -> int:
        """Run ``handler`` as a long-lived process on a VM service; returns its id."""
        self._check_alive()
        handle, size = self._gw.encode(payload)
        return self._call([sc.Op(sc.START_VM, service=service, args=(handler,), size=size, handle=handle)])

    # ------------------------------------------------------------------ used by clients
    def _storage_call(self, service: str, method: str, args: tuple, size: int = 0, handle: Any = None,
                      lazy: bool = False) -> Any:
        op = sc.Op(sc.STORAGE, service=service, method=method, args=args, size=size, handle=handle)
        if lazy:
            self._queue(op)
            return None
        return self._call([op])

    def _sequence(self, ops: list[sc.Op], receive: Callable[[int, Any], Any]) -> list[Any]:
        """Run blocking operations one after another in one simcall; ``receive(i, value)`` each answer.

        The kernel stops after the answer whose bytes pass the memory headroom declared here;
        ``receive`` then raises the memory error at that answer's instant, as the loop would,
        or (a value that counts fewer bytes than its wire size) the rest is sent again.
        """
        out: list[Any] = []
        while len(out) < len(ops):
            headroom = self.memory.limit - self.memory.used
            answers = self._call([sc.Op(sc.EACH, args=(headroom,), handle=tuple(ops[len(out):]))])
            for value, handle in answers:
                out.append(receive(len(out), self._gw.decode(handle) if handle is not None else value))
        return out

    def _encode_checked(self, service: str, key: str, value: Any,
                        charge_bytes: int | None = None) -> tuple[Any, int]:
        handle, size = self._gw.encode(value)
        if charge_bytes is not None:
            if charge_bytes < 0:
                raise ValueError(f"{service}: charge_bytes for key '{key}' must be >= 0, got {charge_bytes}")
            size = int(charge_bytes)
        limit = self._item_limits.get(service)
        if limit is not None and size > limit:
            raise ItemTooLarge(f"{service}: value for key '{key}' is {size} bytes, above the item limit of "
                               f"{limit} bytes")
        return handle, size

    def _start_async(self, service: str, method: str, args: tuple, size: int = 0, handle: Any = None,
                     what: str = "") -> Pending:
        """Queue an asynchronous storage request: it rides with the next simcall, stamped with
        the function's clock at this point, and runs while the function goes on."""
        self._check_alive()
        self._next_future += 1
        fut = self._next_future
        self._chain.append(sc.Op(sc.ASYNC, service=service, method=method, args=(fut, *args), size=size,
                                 handle=handle))
        return Pending(self, fut, what or f"{service}.{method}")

    def gather(self, pendings: "list[Pending]") -> list[Any]:
        """Wait (one simcall) until every request completed; their results in order.

        The clock moves to the last completion if that is later than now. The first failed
        request raises its error once all have been collected.
        """
        todo = [p for p in pendings if not p.done]
        if todo:
            answers = self._call([sc.Op(sc.AWAIT, args=tuple(p.id for p in todo))])
            for p, (value, handle, error) in zip(todo, answers):
                p.done, p.error = True, error
                if error is None:
                    p.value = self._received(self._gw.decode(handle), p.what) if handle is not None else value
        for p in pendings:
            if p.error is not None:
                raise error_from_name(*p.error)
        return [p.value for p in pendings]

    def _received(self, value: Any, what: str) -> Any:
        n = nbytes_of(value)
        if n:
            try:
                weakref.ref(value)
                self.memory.track(value, what)
            except TypeError:
                self.memory.transient(n, what)
        return value

    # ------------------------------------------------------------------ lifecycle
    def _finish(self, result: Any = None, error: BaseException | None = None, where: str = "") -> None:
        if self._ended is not None:
            return  # the kernel has this function's end already; its result is discarded
        if error is None:
            handle, size = self._gw.encode(result)
            op = sc.Op(sc.EXIT, args=(), size=size, handle=handle)
        else:
            message = str(error) + (f"\n{where.strip()}" if where else "")
            op = sc.Op(sc.EXIT, args=(type(error).__name__, message))
        chain, self._chain = self._chain + [op], []
        self._gw.send(self.fid, self._clock, chain)

