"""The in-process transport: kernel and function threads in one process.

Most tests and small runs use it (docs/design.md, "Transports"). A function's simcall takes
the kernel's lock, submits its chain and then handles, in its own thread, every event the
chain made safe (``SimKernel.handle_ready``); if its own answer came out of that, it goes on
without ever sleeping. Only an answer that needs another function to move first makes it
wait, on its own lock. Which thread handles an event never changes an outcome: the kernel
handles only events below the horizon, in their total order. The driver thread starts the
run, says when it ended (done or deadlock) and keeps the watchdog.
"""
from __future__ import annotations

import contextlib
import gc
import os
import threading
import time
import traceback
from collections import deque
from typing import Any, Callable, Iterator

from sls_ray import simcall as sc
from sls_ray.context import FunctionContext
from sls_ray.errors import FunctionEnded, MemoryLimitExceeded, NotSupported
from sls_ray.payload import decode, encode
from sls_ray.storage.base import ServiceTraits, service_traits

_gc_lock = threading.Lock()
_gc_state: list = [0, None]  # runs in progress, the thresholds before the first one


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Run the cyclic garbage collector less often while a simulation goes on.

    A run allocates a few small objects per event (records, closures, replies) and keeps
    many of them to its end: under the default thresholds the collector rescans them over
    and over, about 0.5 s of CPU in 1,000 functions x 20 rounds (an eighth of the run). Here
    the objects alive at the start are frozen (never rescanned) and young objects are
    examined every 50,000 allocations instead of 700. Only cyclic garbage waits longer:
    reference counting still frees everything else at once. Nested and concurrent runs share
    one setting. It changes no virtual result, only when unreachable cycles are freed.
    """
    with _gc_lock:
        if _gc_state[0] == 0:
            _gc_state[1] = gc.get_threshold()
            gc.freeze()
            gc.set_threshold(50_000, 20, 10)
        _gc_state[0] += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_state[0] -= 1
            if _gc_state[0] == 0:
                gc.set_threshold(*_gc_state[1])
                gc.unfreeze()


class _RunGate:
    """Where a function thread waits: a lock held until the thread may run again.

    A bare lock, not a ``threading.Event``: releasing and taking it are single C calls.
    """

    __slots__ = ("ready", "reply", "waiting")

    def __init__(self) -> None:
        self.ready = threading.Lock()
        self.ready.acquire()
        self.reply: sc.Reply | None = None
        self.waiting = True  # blocked (or not started) and holding no run permit


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def run_handler(ctx: FunctionContext, fn: Callable, payload: Any) -> None:
    """Run user code and report how it ended; shared by every transport."""
    try:
        ctx._admit()
        result = fn(ctx, payload)
    except FunctionEnded as e:
        ctx._finish(error=e)
    except MemoryError as e:  # isolated mode: the OS limit caught what accounting missed
        ctx._finish(error=MemoryLimitExceeded(f"{ctx.handler} (fid {ctx.fid}): MemoryError under the OS "
                                              f"memory limit of {ctx.memory_mb} MB: {e}"))
    except Exception as e:  # the function failed: record its error, as Lambda does
        ctx._finish(error=e, where=traceback.format_exc(limit=-2))
    except BaseException as e:  # sys.exit() in a handler: "Runtime exited with error", not a hung run
        ctx._finish(error=e, where=f"Runtime exited with error: {type(e).__name__}({e})")
    else:
        try:
            ctx._finish(result)
        except Exception as e:  # the result cannot be serialised: the invocation fails
            ctx._finish(error=e, where=traceback.format_exc(limit=-2))


def resolve_handler(handlers: dict[str, Callable], name: str) -> Callable:
    """The handler to run; an unknown name fails that invocation (recorded) instead of its thread."""
    fn = handlers.get(name)
    if fn is not None:
        return fn

    def missing(ctx: FunctionContext, payload: Any) -> None:
        raise NotSupported(f"invoke: no handler named '{name}'; this experiment has {sorted(handlers)}")

    return missing


class LocalTransport:
    """Runs a kernel and its functions in this process.

    At most ``permits`` function threads (one per core) run at once; the others wait on
    their own locks, and a thread that blocks hands its permit to the next one whose answer
    is ready. A thousand threads woken together would otherwise fight over the GIL, most of
    them only to go back to sleep: a context switch or two per answer for nothing.
    """

    def __init__(self, handlers: dict[str, Callable], watchdog_s: float = 600.0,
                 permits: int | None = None) -> None:
        self.handlers = handlers
        self.watchdog_s = watchdog_s
        self.cond = threading.Condition()
        self.kernel = None
        self._slots: dict[int, _RunGate] = {}
        self._threads: list[threading.Thread] = []
        self._permits = permits or _cores()
        self._queue: deque[_RunGate] = deque()  # answered, waiting for a permit
        self.service_kinds: dict[str, str] = {}
        self.item_limits: dict[str, ServiceTraits] = {}  # name -> traits (item limit, listing, mget)
        self.progress: Callable[[Any], None] | None = None
        self.failure: BaseException | None = None  # a kernel error met in a function thread

    # -- Hooks (called by the kernel, under self.cond)
    def start(self, cmd: sc.StartCommand) -> None:
        slot = self._slots[cmd.fid] = _RunGate()
        t = threading.Thread(target=self._run, args=(cmd, slot), name=f"fn{cmd.fid}", daemon=True)
        self._threads.append(t)
        t.start()
        self._wake(slot)

    def deliver(self, fid: int, reply: sc.Reply) -> None:
        slot = self._slots[fid]
        slot.reply = reply  # a second answer before the first was taken replaces it
        if slot.waiting:
            self._wake(slot)
        elif slot.ready.locked():  # its own answer, met while it handles events: no waiting
            slot.ready.release()

    # -- run permits (under self.cond)
    def _wake(self, slot: _RunGate) -> None:
        if self._permits > 0:
            self._permits -= 1
            slot.waiting = False
            slot.ready.release()
        else:
            self._queue.append(slot)

    def _give_up_permit(self, slot: _RunGate) -> None:
        slot.waiting = True
        if self._queue:
            nxt = self._queue.popleft()
            nxt.waiting = False
            nxt.ready.release()
        else:
            self._permits += 1

    # -- Gateway (called by function threads)
    def call(self, fid: int, t_ns: int, ops: list[sc.Op]) -> sc.Reply:
        slot = self._slots[fid]
        with self.cond:
            self._submit(fid, t_ns, ops)
            if slot.ready.locked():  # no answer yet: let another thread run meanwhile
                self._give_up_permit(slot)
        slot.ready.acquire()
        return slot.reply

    def send(self, fid: int, t_ns: int, ops: list[sc.Op]) -> None:
        with self.cond:
            self._submit(fid, t_ns, ops)

    def _submit(self, fid: int, t_ns: int, ops: list[sc.Op]) -> None:
        """Submit a chain and handle what it made safe, here; wake the driver at the run's end.

        A kernel error stops the run: the driver raises it, and this thread (like every
        other) waits for an answer that never comes, as it would have before.
        """
        if self.failure is not None:
            return
        try:
            self.kernel.submit(fid, t_ns, ops)
            if self.kernel.handle_ready():
                self.cond.notify()
        except BaseException as e:  # noqa: BLE001 (handed to the driver, which raises it)
            self.failure = e
            self.cond.notify()

    encode = staticmethod(encode)
    decode = staticmethod(decode)

    def _run(self, cmd: sc.StartCommand, slot: _RunGate) -> None:
        slot.ready.acquire()  # its permit to run
        try:
            ctx = FunctionContext(self, cmd, self.service_kinds, self.item_limits)
            run_handler(ctx, resolve_handler(self.handlers, cmd.handler), decode(cmd.payload))
        finally:
            with self.cond:
                self._give_up_permit(slot)

    # -- driver
    def run(self, kernel) -> str:
        self.kernel = kernel
        tick = min(self.watchdog_s, 0.25 if self.progress is not None else 1.0)
        with fewer_collections(), self.cond:
            seen, quiet_since = -1, time.monotonic()
            while True:
                if self.failure is not None:
                    raise self.failure
                status = kernel.step()
                if status != "wait":
                    break
                if self.progress is not None:
                    self.progress(kernel)
                calls = kernel.counts["simcalls"]
                if calls != seen:
                    seen, quiet_since = calls, time.monotonic()
                elif time.monotonic() - quiet_since >= self.watchdog_s:
                    raise RuntimeError(
                        f"watchdog: no simcall for {self.watchdog_s:g}s of real time while "
                        f"{kernel.running_count()} functions were running: a handler loops without "
                        f"touching the platform")
                self.cond.wait(timeout=tick)
        return status

    def execute(self, factory: Callable) -> tuple[Any, str]:
        """Build the kernel with this transport as its hooks, run it, return (kernel, status)."""
        kernel = factory(self)
        self.service_kinds, self.item_limits = service_tables(kernel)
        return kernel, self.run(kernel)


def service_tables(kernel) -> tuple[dict[str, str], dict[str, ServiceTraits]]:
    """What a function's context must know of the services: their kinds and declared traits."""
    return {n: s.kind for n, s in kernel.services.items()}, service_traits(kernel.services)
