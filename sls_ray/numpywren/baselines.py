"""The baselines NumPyWren is compared with: ScaLAPACK on an MPI cluster, and one big machine.

numpywren.md, "Figures" 1-3: completion time and core-seconds against MPI (ScaLAPACK) on a
cluster of 512 vCPUs, and against a single 128-vCPU machine. Both run *the same block
algorithm* (the program's LAMBDAPACK DAG at the model block size) in a discrete-event model:

- One MPI rank per physical core (EC2 vCPUs are hyperthreads, 2 per core [doc]); a rank
  computes one task at a time at ``gflops_per_vcpu * vcpus_per_core``: the same CPU model as
  a Lambda vCPU (PyWren's GEMM rate, 14 GFLOP/s [src]), so neither side gets a faster chip.
- 2-D block-cyclic placement over a P x Q rank grid (P <= Q, P * Q = ranks), ranks filling
  nodes in order, as ScaLAPACK lays out a matrix; a task runs where its first output block
  lives (owner computes). :data:`COORDS` maps every program's blocks to matrix coordinates.
- When a block is produced, it is sent once to every other *node* whose ranks read it
  (ScaLAPACK broadcasts panels along process rows and columns); ranks on one node share
  memory. Each node's NIC sends and receives one message at a time at ``nic_gbits``
  (first come, first served) plus a per-message latency. Inputs start where block-cyclic
  placement puts them.
- Each rank runs its ready tasks earliest-ready first; a task is ready when all its input
  blocks are on the rank's node.
- Core-seconds count every core for the whole run (numpywren.md: "MPI counts all cores x
  wall time"); dollars are node-hours at the per-second price while the job runs.

Nothing here is fitted to the paper's numbers: every constant below carries its source.
"""
from __future__ import annotations

import heapq
import math
from collections import defaultdict
from typing import Callable

from pydantic import Field

from sls_ray.api import Strict
from sls_ray.numpywren.job import JobSpec, block_bytes
from sls_ray.numpywren.lambdapack import BlockRef, Task

VCPUS_PER_CORE = 2  # EC2: each vCPU is a hyperthread of a physical core [doc]


class ClusterParams(Strict):
    """A VM cluster running the block algorithm with MPI (defaults: 512 vCPUs of m4.16xlarge)."""

    instance_type: str = Field("m4.16xlarge", description="shown in outputs; 64 vCPUs, 256 GiB, 25 Gbit/s [doc]; "
                               "the choice of instance is an estimate [est]")
    nodes: int = Field(8, ge=1, description="instances: 8 x 64 = 512 vCPUs, the seed's MPI cluster [paper]")
    vcpus_per_node: int = Field(64, ge=1, description="vCPUs per instance [doc]")
    vcpus_per_core: int = Field(VCPUS_PER_CORE, ge=1, description="hyperthreads per physical core [doc]")
    gflops_per_vcpu: float = Field(14.0, gt=0, description="GEMM GFLOP/s per vCPU, as a Lambda vCPU [src]")
    nic_gbits: float = Field(25.0, gt=0, description="instance network bandwidth, Gbit/s [doc]")
    latency_s: float = Field(50e-6, ge=0, description="MPI message latency inside a placement group [est]")
    price_per_hour: float = Field(3.20, ge=0, description="on-demand USD/h of one instance (us-east-1, 2018-20) [doc]")
    billing_min_s: float = Field(60.0, ge=0, description="per-second billing, 60 s minimum [doc]")
    memory_gib_per_node: float = Field(256.0, gt=0, description="RAM per instance [doc]")


def single_machine() -> ClusterParams:
    """The paper's 128-vCPU machine: one x1.32xlarge (128 vCPUs = 64 cores, 1,952 GiB) [doc]."""
    return ClusterParams(instance_type="x1.32xlarge", nodes=1, vcpus_per_node=128, nic_gbits=25.0,
                         price_per_hour=13.338, memory_gib_per_node=1952.0)


# ---------------------------------------------------------------------- placement
def _tree_row(j: int, l: int, k: int) -> int:
    """First row block a reduction-tree node covers: node k of level l spans leaves k*2^l.."""
    return j + k * 2 ** l


#: program -> matrix -> block index -> (row block, column block) in the matrix the data belongs to
#: (both graphs: Root and Wr are the original graph's copy-out sources)
COORDS: dict[str, dict[str, Callable[[tuple], tuple[int, int]]]] = {
    "cholesky": {"A": lambda x: x, "L": lambda x: x, "T": lambda x: (x[1], x[2])},
    "gemm": {"A": lambda x: x, "B": lambda x: x, "C": lambda x: x, "P": lambda x: (x[0], x[1]),
             "Root": lambda x: x},
    "tsqr": {"A": lambda x: x, "R": lambda x: x, "Rt": lambda x: (x[1] * 2 ** x[0], 0)},
    "qr": {"A": lambda x: x, "R": lambda x: x, "S": lambda x: (x[1], x[2]),
           "Qt": lambda x: (_tree_row(*x), x[0]), "Rt": lambda x: (_tree_row(*x), x[0]),
           "W": lambda x: (_tree_row(x[0], x[1], x[2]), x[3]), "Wr": lambda x: (_tree_row(x[0], x[1], x[2]), x[3])},
    "bdfac": {"A": lambda x: x, "B": lambda x: x, "Z": lambda x: x, "X": lambda x: (x[1], x[2]),
              "Y": lambda x: (x[1], x[2]), "Qq": lambda x: (_tree_row(*x), x[0]),
              "Rq": lambda x: (_tree_row(*x), x[0]), "Wq": lambda x: (_tree_row(x[0], x[1], x[2]), x[3]),
              "Ql": lambda x: (x[0], x[0] + 1 + x[2] * 2 ** x[1]), "Lt": lambda x: (x[0], x[0] + 1 + x[2] * 2 ** x[1]),
              "V": lambda x: (x[3], x[0] + 1 + x[2] * 2 ** x[1])},
}


def grid_shape(ranks: int) -> tuple[int, int]:
    """P x Q with P <= Q as square as the rank count allows (ScaLAPACK's usual choice)."""
    p = int(math.isqrt(ranks))
    while ranks % p:
        p -= 1
    return p, ranks // p


class Placement:
    def __init__(self, program: str, cluster: ClusterParams) -> None:
        self.coords = COORDS[program]
        self.ranks_per_node = cluster.vcpus_per_node // cluster.vcpus_per_core
        self.ranks = self.ranks_per_node * cluster.nodes
        self.p, self.q = grid_shape(self.ranks)

    def rank(self, ref: BlockRef) -> int:
        row, col = self.coords[ref.matrix](ref.idx)
        return (row % self.p) * self.q + (col % self.q)

    def node(self, rank: int) -> int:
        return rank // self.ranks_per_node


# ---------------------------------------------------------------------- the model
class MPIResult(dict):
    """completion_s, core_s, cost_usd, network_bytes, ranks, nodes, utilisation, fits_memory."""


def run_mpi(spec: JobSpec, cluster: ClusterParams | None = None) -> MPIResult:
    """Simulate the program's DAG (at the model block size) on an MPI cluster."""
    cluster = cluster or ClusterParams()
    _, model = spec.plans()
    dag = model.dag
    place = Placement(spec.program, cluster)
    rate = cluster.gflops_per_vcpu * cluster.vcpus_per_core * 1e9  # FLOP/s of one rank
    bw = cluster.nic_gbits * 1e9 / 8

    tasks = list(dag.all_tasks())
    owner = [place.rank(dag.writes(t)[0]) for t in tasks]
    node_of = [place.node(r) for r in owner]
    duration = [model.task_flops(t) / rate for t in tasks]
    # readers of each produced block, by node; missing inputs per task
    missing = [0] * len(tasks)
    waiting_on: dict[tuple[BlockRef, int], list[int]] = defaultdict(list)
    input_sends: list[tuple[BlockRef, int]] = []
    seen_input: set[tuple[BlockRef, int]] = set()
    for i, t in enumerate(tasks):
        n = node_of[i]
        for ref in set(dag.reads(t)):
            if dag.is_input(ref):
                home = place.node(place.rank(ref))
                if home == n:
                    continue
                if (ref, n) not in seen_input:
                    seen_input.add((ref, n))
                    input_sends.append((ref, n))
            elif dag.writer(ref) is None:
                continue  # a never-written zero block
            missing[i] += 1
            waiting_on[(ref, n)].append(i)

    events: list = []  # (time, seq, kind, data)
    seq = 0

    def push(t: float, kind: str, data) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (t, seq, kind, data))

    nic_free = [0.0] * cluster.nodes  # one message at a time in each direction, FIFO
    nic_in_free = [0.0] * cluster.nodes
    network_bytes = 0

    def send(ref: BlockRef, src: int, dst: int, t: float) -> None:
        nonlocal network_bytes
        nbytes = block_bytes(model, ref)
        start = max(t, nic_free[src], nic_in_free[dst])
        end = start + nbytes / bw + cluster.latency_s
        nic_free[src] = nic_in_free[dst] = end
        network_bytes += nbytes
        push(end, "arrive", (ref, dst))

    for ref, dst in input_sends:
        send(ref, place.node(place.rank(ref)), dst, 0.0)
    ready: list[list] = [[] for _ in range(place.ranks)]
    busy_until = [0.0] * place.ranks
    idle = [True] * place.ranks
    for i in range(len(tasks)):
        if missing[i] == 0:
            push(0.0, "ready", i)

    def start_next(rank: int, t: float) -> None:
        if ready[rank]:
            _, i = heapq.heappop(ready[rank])
            idle[rank] = False
            busy_until[rank] = t + duration[i]
            push(busy_until[rank], "done", i)
        else:
            idle[rank] = True

    def arrive(ref: BlockRef, n: int, t: float) -> None:
        for i in waiting_on.pop((ref, n), ()):
            missing[i] -= 1
            if missing[i] == 0:
                push(t, "ready", i)

    end_time = 0.0
    while events:
        t, _, kind, data = heapq.heappop(events)
        if kind == "ready":
            rank = owner[data]
            heapq.heappush(ready[rank], (t, data))
            if idle[rank]:
                start_next(rank, t)
        elif kind == "arrive":
            arrive(data[0], data[1], t)
        else:  # done
            i = data
            end_time = max(end_time, t)
            src = node_of[i]
            for ref in dag.writes(tasks[i]):
                for n in range(cluster.nodes):
                    if (ref, n) in waiting_on:
                        if n == src:
                            arrive(ref, n, t)
                        else:
                            send(ref, src, n, t)
            start_next(owner[i], t)
    if any(missing):
        raise RuntimeError(f"MPI model of {spec.program}: {sum(1 for m in missing if m)} tasks never got their inputs")
    cores = place.ranks
    work = sum(duration)
    up = max(end_time, cluster.billing_min_s)
    matrix_gib = sum(block_bytes(model, r) for r in _input_refs(spec)) / 2**30
    return MPIResult(
        instance_type=cluster.instance_type, nodes=cluster.nodes, ranks=cores, grid=f"{place.p}x{place.q}",
        completion_s=end_time, core_s=cores * end_time, busy_core_s=work,
        utilisation=work / (cores * end_time) if end_time else 0.0,
        cost_usd=cluster.nodes * math.ceil(up) * cluster.price_per_hour / 3600.0,
        network_bytes=network_bytes, tasks=len(tasks), flops=sum(model.task_flops(t) for t in tasks),
        input_gib=matrix_gib, fits_memory=matrix_gib <= cluster.nodes * cluster.memory_gib_per_node)


def _input_refs(spec: JobSpec) -> list[BlockRef]:
    real, model = spec.plans()
    algorithm = model.algorithm
    return [BlockRef(name, ij) for name in algorithm.inputs for ij in algorithm.input_blocks(name, model.grids[name])]


def critical_path_s(spec: JobSpec, rate_flops: float) -> float:
    """Compute-only critical path of the DAG at ``rate_flops`` (a lower bound for any system)."""
    _, model = spec.plans()
    dag = model.dag
    finish: dict[Task, float] = {}
    order = dag.topological_order()
    for t in order:
        start = max((finish[p] for p in dag.parents(t)), default=0.0)
        finish[t] = start + model.task_flops(t) / rate_flops
    return max(finish.values()) if finish else 0.0
