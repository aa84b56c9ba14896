"""``KernelActor``: the kernel in a Ray actor, serving every host's batches.

The same ``SimKernel`` as in-process; only the hooks differ: a start or a reply goes into the
outbox of the host that runs (or will run) the function, and each host long-polls its
outbox. As in-process, the thread that brings a batch handles, itself, every event the
batch made safe and answers are ready before its call returns; the run loop only watches
for the end and keeps the watchdog. Which host runs a function never changes a virtual
result, so hosts are chosen by load alone.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable

import ray

from sls_ray import simcall as sc
from sls_ray.actors.function_host import INLINE_LIMIT, FunctionHost
from sls_ray.payload import Sized, encode, wire_size
from sls_ray.transport.local import service_tables

ADOPT_WINDOW = 2  # values per host in flight while preloading: bounds the copies on their way


def object_store_preload(hosts: list) -> Callable[[dict], dict]:
    """A ``make_kernel`` store that leaves every preloaded value above INLINE_LIMIT in an
    object store: the hosts' in turn (each adopts every n-th value, so the data is spread
    over their nodes and owned by them, as written data is), or this process's node when a
    run has no hosts yet (isolated mode). Small values stay inline, as a function's would.
    Handles do not change virtual results: sizes are the same on every transport.
    """
    def store(objects: dict[str, Any]) -> dict[str, tuple[Any, int]]:
        out: dict[str, tuple[Any, int]] = {}
        large: list[tuple[str, Any, int]] = []
        for key, value in objects.items():
            real, size = (value.value, value.nbytes) if isinstance(value, Sized) else (value, wire_size(value))
            if real is not None and wire_size(real) > INLINE_LIMIT:
                large.append((key, real, size))
            else:
                out[key] = encode(value)
        if not hosts:
            out.update({key: (ray.put(real), size) for key, real, size in large})
        else:
            n, step = len(hosts), ADOPT_WINDOW * len(hosts)
            for lo in range(0, len(large), step):
                chunk = large[lo:lo + step]
                calls = [hosts[h].adopt.remote([real for _, real, _ in chunk[h::n]]) for h in range(min(n, len(chunk)))]
                for h, host_refs in enumerate(ray.get(calls)):
                    for (key, _, size), ref in zip(chunk[h::n], host_refs):
                        out[key] = (ref, size)
        return {key: out[key] for key in objects}  # the preload's own order

    return store


class KernelCore:
    """Plain class: kernel + per-host outboxes + the event loop (the actor wraps it).

    ``plan`` builds the kernel (runtime.RunPlan); ``spawn(host_id, memory_limit_bytes)``, in
    isolated mode, starts a one-function host for each function; ``hosts``, the run's
    FunctionHost actors, adopt its preloaded objects (``object_store_preload``).
    """

    def __init__(self, plan, n_hosts: int, watchdog_s: float, spawn=None, hosts: list = ()) -> None:
        # one lock; the kernel loop and each host's long poll wait on their own condition so a
        # batch wakes only its own caller and a reply only its host (no thundering herd)
        self.cond = threading.Condition()
        self.host_cv: list[threading.Condition] = [threading.Condition(self.cond) for _ in range(n_hosts)]
        self.outbox: list[list] = [[] for _ in range(n_hosts)]
        self.load = [0] * n_hosts
        self.host_of: dict[int, int] = {}
        self.finished = False
        self.failure: BaseException | None = None
        self.watchdog_s = watchdog_s
        self.batches = 0
        self.spawn = spawn
        self.isolated_hosts: dict[int, object] = {}
        self.kernel = plan.kernel(self, object_store_preload(list(hosts)))
        self.service_kinds, self.item_limits = service_tables(self.kernel)

    # -- hooks (called under self.cond by the kernel)
    def start(self, cmd: sc.StartCommand) -> None:
        if self.spawn is not None:
            host = len(self.outbox)
            self.outbox.append([])
            self.host_cv.append(threading.Condition(self.cond))
            self.load.append(0)
            self.isolated_hosts[host] = self.spawn(host, cmd.memory_limit_bytes if not cmd.is_vm else None)
        else:
            host = min(range(len(self.load)), key=lambda h: (self.load[h], h))
        self.load[host] += 1
        self.host_of[cmd.fid] = host
        self.outbox[host].append(cmd)
        self.host_cv[host].notify()

    def deliver(self, fid: int, reply: sc.Reply) -> None:
        host = self.host_of[fid]
        self.outbox[host].append((fid, reply))
        self.host_cv[host].notify()

    # -- host-facing
    def exchange(self, host: int, batch: list, block: bool) -> tuple[list, bool]:
        """Take a host's simcalls, handle what they made safe; return the host's replies and
        starts (waiting for some if ``block``) and whether the run is over."""
        with self.cond:
            if batch and self.failure is None:
                self.batches += 1
                try:
                    for fid, t_ns, ops in batch:
                        self.kernel.submit(fid, t_ns, ops)
                        if ops and ops[-1].kind == sc.EXIT:
                            self.load[self.host_of[fid]] -= 1
                            if self.isolated_hosts.pop(host, None) is not None:
                                self.outbox[host].append("stop")  # its only function ended
                    if self.kernel.handle_ready():
                        self.cond.notify()  # nothing can move any more: the loop ends the run
                except BaseException as e:  # noqa: BLE001 (handed to the run loop, which raises it)
                    self.failure = e
                    self.cond.notify()
            while block and not self.outbox[host] and not self.finished:
                self.host_cv[host].wait(timeout=1.0)
            msgs, self.outbox[host] = self.outbox[host], []
            stop = "stop" in msgs
            msgs = [m for m in msgs if m != "stop"]
            return msgs, stop or (self.finished and not msgs)

    def run(self) -> str:
        """Step until done or deadlocked; the watchdog ends a run with no simcall for watchdog_s."""
        kernel = self.kernel
        with self.cond:
            seen, quiet_since = -1, time.monotonic()
            while True:
                if self.failure is not None:
                    self._finish()
                    raise self.failure
                status = kernel.step()
                if status != "wait":
                    break
                calls = kernel.counts["simcalls"]
                if calls != seen:
                    seen, quiet_since = calls, time.monotonic()
                elif time.monotonic() - quiet_since >= self.watchdog_s:
                    status = "watchdog"
                    break
                self.cond.wait(timeout=min(1.0, self.watchdog_s))
            self._finish()
        return status

    def _finish(self) -> None:
        self.finished = True
        for cv in self.host_cv:
            cv.notify_all()


@ray.remote(num_cpus=0)
class KernelActor:
    """Ray shell around KernelCore; one run at a time, and it stays warm for the next."""

    def __init__(self) -> None:
        self.core: KernelCore | None = None
        self.plan = None
        self._isolated: list = []

    def open(self, plan, n_hosts: int, watchdog_s: float, isolated: bool = False,
             hosts: list = ()) -> tuple[dict, dict]:
        """Build the run's kernel (``hosts`` adopt its preloaded objects); returns what function
        contexts must know of its services."""
        self.plan = plan
        self._isolated = []
        self.core = None  # the last run's services and the object refs they hold: freed before this run's preload
        self.core = KernelCore(plan, n_hosts, watchdog_s, self._spawn if isolated else None, hosts)
        return self.core.service_kinds, self.core.item_limits

    def _spawn(self, host_id: int, memory_limit_bytes: int | None):
        me = ray.get_runtime_context().current_actor
        actor = FunctionHost.remote(memory_limit_bytes)
        self._isolated.append((actor, actor.serve.remote(self.plan, me, host_id, self.core.service_kinds,
                                                         self.core.item_limits)))
        return actor

    def exchange(self, host: int, batch: list, block: bool) -> tuple[list, bool]:
        return self.core.exchange(host, batch, block)

    def run(self):
        """Run to the end and return the RunResult (built here, where the kernel lives)."""
        t0 = time.perf_counter()
        core = self.core
        try:
            status = core.run()
        finally:
            for actor, _ in self._isolated:
                ray.kill(actor)
        wall = time.perf_counter() - t0
        result = self.plan.result(core.kernel, status, wall, "ray")
        result.summary["nondeterministic"]["kernel_batches"] = core.batches
        return result  # the core stays until the next open: a host may still send its last batch
