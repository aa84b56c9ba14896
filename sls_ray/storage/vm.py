"""An EC2 VM stand-in: the parameter-server node and the IaaS baseline.

A VM is up from launch (t = 0) to the end of the run, idle included, and billed per second
with a 60 s minimum (platform.md: VM). It takes 1-2 minutes to start [est]. It serves a
key-value store over its NIC (the parameter server's state) and runs long-lived processes
(``ctx.start_vm_process``) with no 15-minute limit, at its own vCPU count.
"""
from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from sls_ray.network import Link
from sls_ray.storage.base import ProcessHost
from sls_ray.storage.node import NodeConfig, NodeStore


class VMConfig(NodeConfig):
    kind: str = "vm"
    instance_type: str = Field("m5.large", description="shown in outputs")
    latency_s: float = Field(0.0005, ge=0, description="request round trip inside a VPC [est]")
    nic_gbs: float = Field(1.25, gt=0, description="up to 10 Gbit/s [doc][est]")
    vcpus: float = Field(2.0, gt=0, description="vCPUs per instance [doc]")
    gflops_per_vcpu: float = Field(14.0, gt=0, description="GFLOP/s per vCPU, as Lambda's [src][est]")
    startup_s: float = Field(90.0, ge=0, description="EC2 start-up, 1-2 minutes [est]")
    node_price_per_hour: float = Field(0.096, ge=0, description="m5.large on-demand USD/h [src]")
    billing_min_s: float = Field(60.0, ge=0, description="per-second billing, 60 s minimum [doc]")
    list_page_keys: int | None = Field(1000, ge=1, description="key listing on the VM's own store")
    nodes: int | None = Field(1, ge=1, description="instances billed (processes go round-robin over them); "
                              "None = one instance per process started, a cluster sized by the job")


class VM(NodeStore, ProcessHost):
    kind = "vm"
    Config: ClassVar[type[VMConfig]] = VMConfig
    config: VMConfig

    def __init__(self, name, config, env) -> None:
        super().__init__(name, config, env)
        self._instance_nics = [self._link] + [Link(f"svc:{name}#{i}", config.nic_gbs * 1e9)
                                              for i in range(1, config.nodes or 1)]
        self._next_instance = 0

    def vm_nic(self) -> Link:
        """The NIC of the instance the next process runs on (round-robin over instances)."""
        if self.config.nodes is None and self._next_instance >= len(self._instance_nics):
            self._instance_nics.append(Link(f"svc:{self.name}#{self._next_instance}", self.config.nic_gbs * 1e9))
        nic = self._instance_nics[self._next_instance % len(self._instance_nics)]
        self._next_instance += 1
        return nic

    def instances(self) -> int:
        return self.config.nodes or max(1, self._next_instance)

    def flops_per_s(self) -> float:
        return self.config.vcpus * self.config.gflops_per_vcpu * 1e9

    def vcpus(self) -> float:
        return float(self.config.vcpus)
