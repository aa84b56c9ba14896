"""The INFless cluster: nodes x slots, each slot with CPU threads and one GPU shared by SM %.

INFless §5 (setup): 4 nodes x 3 slots, ~20 threads and one 11 GB GPU per slot. An instance has
a configuration (b, c, g) and lives in one slot; placing it takes c threads and g% of the
slot's GPU. Resources left on a slot that is in use but too small for useful instances are
*fragments*; ``fragment_ratio`` is the share of resources on occupied slots that nothing uses
(threads and GPU % each normalised by the slot's capacity, averaged) — the quantity INFless's
greedy placement keeps low (§4.3).

A plain, deterministic class: placements and releases in, state out, ``validate()`` checks the
invariants (no slot over capacity, every instance counted exactly once).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import Field

from sls_ray.api import Strict


class ClusterConfig(Strict):
    nodes: int = Field(4, ge=1, description="servers (INFless testbed: 4) [paper]")
    slots_per_node: int = Field(3, ge=1, description="slots per server, one GPU each (INFless: 3) [paper]")
    threads_per_slot: int = Field(20, ge=1, description="CPU threads per slot (INFless: ~20) [paper]")
    gpu_pct_per_slot: int = Field(100, ge=0, description="GPU SM percentage per slot (one whole GPU)")


@dataclass(frozen=True, order=True)
class InstanceConfig:
    """(b, c, g): batch size, CPU threads, GPU SM percentage."""

    batch: int
    threads: int
    gpu_pct: int


@dataclass
class Instance:
    iid: int
    func: int
    config: InstanceConfig
    slot: int
    ready_ns: int          # warm from here on (cold start ends)


class Cluster:
    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        n = config.nodes * config.slots_per_node
        self.cap_threads = np.full(n, config.threads_per_slot, dtype=np.int64)
        self.cap_gpu = np.full(n, config.gpu_pct_per_slot, dtype=np.int64)
        self.free_threads = self.cap_threads.copy()
        self.free_gpu = self.cap_gpu.copy()
        self.occupants = np.zeros(n, dtype=np.int64)
        self.instances: dict[int, Instance] = {}
        self._next = 0

    @property
    def slots(self) -> int:
        return self.cap_threads.size

    def fits(self, cfg: InstanceConfig) -> np.ndarray:
        return (self.free_threads >= cfg.threads) & (self.free_gpu >= cfg.gpu_pct)

    def place(self, func: int, cfg: InstanceConfig, slot: int, ready_ns: int) -> Instance:
        if not (self.free_threads[slot] >= cfg.threads and self.free_gpu[slot] >= cfg.gpu_pct):
            raise ValueError(f"slot {slot} has {self.free_threads[slot]} threads and {self.free_gpu[slot]}% GPU free; "
                             f"{cfg} does not fit")
        self.free_threads[slot] -= cfg.threads
        self.free_gpu[slot] -= cfg.gpu_pct
        self.occupants[slot] += 1
        inst = Instance(self._next, func, cfg, slot, ready_ns)
        self.instances[inst.iid] = inst
        self._next += 1
        return inst

    def release(self, iid: int) -> Instance:
        inst = self.instances.pop(iid)
        self.free_threads[inst.slot] += inst.config.threads
        self.free_gpu[inst.slot] += inst.config.gpu_pct
        self.occupants[inst.slot] -= 1
        return inst

    def used(self) -> tuple[int, int]:
        """(threads, GPU %) allocated to instances."""
        return int((self.cap_threads - self.free_threads).sum()), int((self.cap_gpu - self.free_gpu).sum())

    def fragment_after(self, slot: np.ndarray, threads: np.ndarray, gpu_pct: np.ndarray) -> np.ndarray:
        """Normalised resources a slot would leave unused after a placement (0 = perfectly full)."""
        ft = (self.free_threads[slot] - threads) / self.cap_threads[slot]
        cg = np.maximum(self.cap_gpu[slot], 1)
        fg = (self.free_gpu[slot] - gpu_pct) / cg
        return np.where(self.cap_gpu[slot] > 0, (ft + fg) / 2, ft)

    def fragment_ratio(self) -> float:
        busy = self.occupants > 0
        if not busy.any():
            return 0.0
        ft = self.free_threads[busy].sum() / self.cap_threads[busy].sum()
        cap_g = self.cap_gpu[busy].sum()
        return float((ft + self.free_gpu[busy].sum() / cap_g) / 2 if cap_g else ft)

    def validate(self) -> None:
        th = self.cap_threads.copy()
        gp = self.cap_gpu.copy()
        occ = np.zeros_like(self.occupants)
        for inst in self.instances.values():
            th[inst.slot] -= inst.config.threads
            gp[inst.slot] -= inst.config.gpu_pct
            occ[inst.slot] += 1
        assert (th >= 0).all() and (gp >= 0).all(), "a slot is over capacity"
        assert (th == self.free_threads).all() and (gp == self.free_gpu).all(), "free resources out of step"
        assert (occ == self.occupants).all(), "occupant counts out of step"
