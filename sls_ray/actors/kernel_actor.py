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
        self.cond = threading.Condition()
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
            self.load.append(0)
            self.isolated_hosts[host] = self.spawn(host, cmd.memory_limit_bytes if not cmd.is_vm else None)
        else:
            host = min(range(len(self.load)), key=lambda h: (self.load[h], h))
        self.load[host] += 1
        self.host_of[cmd.fid] = host
        self.outbox[host].append(cmd)
        self.cond.notify_all()

    def deliver(self, fid: int, reply: sc.Reply) -> None:
        self.outbox[self.host_of[fid]].append((fid, reply))
        self.cond.notify_all()

    # -- host-facing
    def submit_batch(self, host: int, batch: list) -> None:
        with self.cond:
            self.batches += 1
            for fid, t_ns, ops in batch:
                self.kernel.submit(fid, t_ns, ops)
                if any(o.kind == sc.EXIT for o in ops):
                    host = self.host_of[fid]
                    self.load[host] -= 1
                    actor = self.isolated_hosts.pop(host, None)
                    if actor is not None:  # its only function ended: give the process back
                        self.outbox[host].append("stop")
            self.cond.notify_all()

    def poll(self, host: int) -> tuple[list, bool]:
        with self.cond:
            while not self.outbox[host] and not self.finished:
                self.cond.wait(timeout=1.0)
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
            self.cond.notify_all()
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

    def submit_batch(self, host: int, batch: list) -> None:
        self.core.submit_batch(host, batch)

    def poll(self, host: int) -> tuple[list, bool]:
        return self.core.poll(host)

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
