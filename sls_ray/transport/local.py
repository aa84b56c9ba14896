"""The in-process transport: kernel and function threads in one process.

Most tests and small runs use it (docs/design.md, "Transports"). A function's simcall is a
lock, a call into the kernel and a wait on the function's own event; the driver thread runs
the kernel's event loop whenever nothing running can still affect the next event.
"""
from __future__ import annotations

import threading
import traceback
from typing import Any, Callable

from sls_ray import simcall as sc
from sls_ray.context import FunctionContext
from sls_ray.errors import FunctionEnded, MemoryLimitExceeded, NotSupported
from sls_ray.payload import decode, encode


class _Slot:
    __slots__ = ("event", "reply")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reply: sc.Reply | None = None


def run_handler(ctx: FunctionContext, fn: Callable, payload: Any) -> None:
    """Run user code and report how it ended; shared by every transport."""
    try:
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
    """Runs a kernel and its functions in this process."""

    def __init__(self, handlers: dict[str, Callable], watchdog_s: float = 600.0) -> None:
        self.handlers = handlers
        self.watchdog_s = watchdog_s
        self.cond = threading.Condition()
        self.kernel = None
        self._slots: dict[int, _Slot] = {}
        self._threads: list[threading.Thread] = []
        self.service_kinds: dict[str, str] = {}
        self.item_limits: dict[str, int | None] = {}
        self.progress: Callable[[Any], None] | None = None

    # -- Hooks (called by the kernel, under self.cond)
    def start(self, cmd: sc.StartCommand) -> None:
        self._slots[cmd.fid] = _Slot()
        t = threading.Thread(target=self._run, args=(cmd,), name=f"fn{cmd.fid}", daemon=True)
        self._threads.append(t)
        t.start()

    def deliver(self, fid: int, reply: sc.Reply) -> None:
        slot = self._slots[fid]
        slot.reply = reply
        slot.event.set()

    # -- Gateway (called by function threads)
    def call(self, fid: int, t_ns: int, ops: list[sc.Op]) -> sc.Reply:
        slot = self._slots[fid]
        with self.cond:
            self.kernel.submit(fid, t_ns, ops)
            self.cond.notify()
        slot.event.wait()
        slot.event.clear()
        return slot.reply

    def send(self, fid: int, t_ns: int, ops: list[sc.Op]) -> None:
        with self.cond:
            self.kernel.submit(fid, t_ns, ops)
            self.cond.notify()

    encode = staticmethod(encode)
    decode = staticmethod(decode)

    def _run(self, cmd: sc.StartCommand) -> None:
        ctx = FunctionContext(self, cmd, self.service_kinds, self.item_limits)
        run_handler(ctx, resolve_handler(self.handlers, cmd.handler), decode(cmd.payload))

    # -- driver
    def run(self, kernel) -> str:
        self.kernel = kernel
        with self.cond:
            while True:
                status = kernel.step()
                if status != "wait":
                    break
                if self.progress is not None:
                    self.progress(kernel)
                if not self.cond.wait(timeout=self.watchdog_s):
                    raise RuntimeError(
                        f"watchdog: no simcall for {self.watchdog_s:g}s of real time while "
                        f"{kernel.running_count()} functions were running: a handler loops without "
                        f"touching the platform")
        return status

    def execute(self, factory: Callable) -> tuple[Any, str]:
        """Build the kernel with this transport as its hooks, run it, return (kernel, status)."""
        kernel = factory(self)
        self.service_kinds, self.item_limits = service_tables(kernel)
        return kernel, self.run(kernel)


def service_tables(kernel) -> tuple[dict[str, str], dict[str, int | None]]:
    """What a function's context must know of the services: their kinds and item limits."""
    kinds = {n: s.kind for n, s in kernel.services.items()}
    limits = {n: getattr(s.config, "item_limit_bytes", None) or getattr(s.config, "message_limit_bytes", None)
              for n, s in kernel.services.items()}
    return kinds, limits
