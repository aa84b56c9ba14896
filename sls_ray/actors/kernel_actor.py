"""``KernelActor``: the kernel in a Ray actor, serving every host's batches.

The same ``SimKernel`` as in-process; only the hooks differ: a start or a reply goes into the
outbox of the host that runs (or will run) the function, and each host long-polls its
outbox. Which host runs a function never changes a virtual result, so hosts are chosen by
load alone.
"""
from __future__ import annotations

import threading
import time

import ray

from sls_ray import simcall as sc


class KernelCore:
    """Plain class: kernel + per-host outboxes + the event loop (the actor wraps it)."""

    def __init__(self, cfg_data: dict, n_hosts: int, watchdog_s: float, spawn=None) -> None:
        from sls_ray.config import load_config
        from sls_ray.runtime import build, make_kernel
        from sls_ray.transport.local import service_tables

        self.cfg = load_config(data=cfg_data)
        self.exp, self.profile = build(self.cfg)
        # one lock; the kernel loop and each host's long poll wait on their own condition so a
        # batch wakes only the kernel and a reply only its host (no thundering herd)
        self.cond = threading.Condition()
        self.host_cv: list[threading.Condition] = [threading.Condition(self.cond) for _ in range(n_hosts)]
        self.outbox: list[list] = [[] for _ in range(n_hosts)]
        self.load = [0] * n_hosts
        self.host_of: dict[int, int] = {}
        self.finished = False
        self.watchdog_s = watchdog_s
        self.kernel = make_kernel(self.cfg, self.exp, self.profile, self)
        self.service_kinds, self.item_limits = service_tables(self.kernel)
        self.batches = 0
        #: isolated mode: spawn(host_id, memory_limit_bytes) starts a one-function host
        self.spawn = spawn
        self.isolated_hosts: dict[int, object] = {}

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
        """Take a host's simcalls; return its replies and starts (waiting for some if ``block``)."""
        with self.cond:
            if batch:
                self.batches += 1
                for fid, t_ns, ops in batch:
                    self.kernel.submit(fid, t_ns, ops)
                    if ops and ops[-1].kind == sc.EXIT:
                        self.load[self.host_of[fid]] -= 1
                        if self.isolated_hosts.pop(host, None) is not None:
                            self.outbox[host].append("stop")  # its only function ended
                self.cond.notify()
            while block and not self.outbox[host] and not self.finished:
                self.host_cv[host].wait(timeout=1.0)
            msgs, self.outbox[host] = self.outbox[host], []
            stop = "stop" in msgs
            msgs = [m for m in msgs if m != "stop"]
            return msgs, stop or (self.finished and not msgs)

    def run(self) -> str:
        with self.cond:
            while True:
                status = self.kernel.step()
                if status != "wait":
                    break
                if not self.cond.wait(timeout=self.watchdog_s):
                    status = "watchdog"
                    break
            self.finished = True
            for cv in self.host_cv:
                cv.notify_all()
        return status


@ray.remote(num_cpus=0)
class KernelActor:
    def __init__(self, cfg_data: dict, n_hosts: int, watchdog_s: float, isolated: bool = False) -> None:
        self.cfg_data = cfg_data
        self._serving: list = []
        self.core = KernelCore(cfg_data, n_hosts, watchdog_s, self._spawn if isolated else None)

    def _spawn(self, host_id: int, memory_limit_bytes: int | None):
        from sls_ray.actors.function_host import FunctionHost

        me = ray.get_runtime_context().current_actor
        actor = FunctionHost.remote(self.cfg_data, host_id, memory_limit_bytes)
        self._serving.append((actor, actor.serve.remote(me, self.core.service_kinds, self.core.item_limits)))
        return actor

    def tables(self) -> tuple[dict, dict]:
        return self.core.service_kinds, self.core.item_limits

    def exchange(self, host: int, batch: list, block: bool) -> tuple[list, bool]:
        return self.core.exchange(host, batch, block)

    def run(self):
        """Run to the end and return the RunResult (built here, where the kernel lives)."""
        from sls_ray.runtime import collect

        t0 = time.perf_counter()
        status = self.core.run()
        result = collect(self.core.cfg, self.core.exp, self.core.profile, self.core.kernel, status,
                         time.perf_counter() - t0, transport_name="ray")
        result.experiment = None
        result.summary["nondeterministic"]["kernel_batches"] = self.core.batches
        for actor, _ in self._serving:
            ray.kill(actor)
        return result
