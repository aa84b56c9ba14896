"""One NumPyWren job: which program, at which sizes, with real and *model* blocks.

The paper's DAG (64 blocks per side of 4096, N = 256K; numpywren.md, "Figures") cannot be
computed on a laptop, but its time and cost can: a job runs the same DAG on small real
blocks (``block_size``) while every kernel charges the compute, bytes, memory and storage
of the *model* block size (``model_block_size``). Both plans share one DAG, since only the
block counts enter it. Without folding the two sizes are equal and everything is real.

A :class:`JobSpec` is small and picklable (it travels in invocation payloads); the plans it
builds are cached per process, so every executor in a run shares one analysed program.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

from sls_ray.numpywren.lambdapack import BlockRef, Task
from sls_ray.numpywren.programs import Plan, get_program

FLOAT_BYTES = 8  # float64 blocks, as NumPyWren stores them


@dataclass(frozen=True)
class JobSpec:
    program: str  # a key of PROGRAMS
    blocks: int  # blocks per side (TSQR: row blocks of one block column)
    block_size: int  # real block side computed with numpy
    model_block_size: int  # block side charged for compute, bytes, memory and storage
    n: int  # real matrix side (<= blocks * block_size: a smaller last block is ragged)
    seed: int = 0
    graph: str = "original"  # a key of programs.GRAPHS: the original compiler's task graph, or our compact one

    @classmethod
    def make(cls, program: str, blocks: int, block_size: int, model_block_size: int | None = None,
             n: int | None = None, seed: int = 0, graph: str = "original") -> "JobSpec":
        get_program(program, graph)  # unknown names and graphs fail with the known ones
        if blocks < 1 or block_size < 1:
            raise ValueError(f"blocks ({blocks}) and block_size ({block_size}) must be >= 1")
        n = blocks * block_size if n is None else n
        if not (blocks - 1) * block_size < n <= blocks * block_size:
            raise ValueError(f"n={n} does not make {blocks} blocks of {block_size}: it must lie in "
                             f"({(blocks - 1) * block_size}, {blocks * block_size}]")
        model = block_size if model_block_size is None else model_block_size
        if model != block_size and n != blocks * block_size:
            raise ValueError(f"folded blocks (model_block_size={model} != block_size={block_size}) need whole "
                             f"blocks: set n={blocks * block_size} or leave it unset")
        return cls(program, blocks, block_size, model, n, seed, graph)

    @property
    def folded(self) -> bool:
        return self.model_block_size != self.block_size

    @property
    def scale(self) -> float:
        return self.model_block_size / self.block_size

    def shapes(self, model: bool = False) -> dict[str, tuple[int, int]]:
        """Input matrix shapes, real or at the model block size."""
        n, b = (self.blocks * self.model_block_size, self.model_block_size) if model else (self.n, self.block_size)
        if self.program == "gemm":
            return {"A": (n, n), "B": (n, n)}
        if self.program == "tsqr":
            return {"A": (n, b)}
        return {"A": (n, n)}

    def to_dict(self) -> dict:
        return asdict(self)

    # -------------------------------------------------------------- plans (cached per process)
    def plans(self) -> tuple[Plan, Plan]:
        """(real plan, model plan); identical objects when nothing is folded."""
        return _plans(self.program, self.graph, self.blocks, self.block_size, self.model_block_size, self.n)

    # -------------------------------------------------------------- data
    def inputs(self) -> dict[str, np.ndarray]:
        """Deterministic real inputs (Cholesky's is symmetric positive definite)."""
        rng = np.random.default_rng([self.seed, self.blocks, self.block_size, 0x5EED])
        shapes = self.shapes()
        if self.program == "cholesky":
            n = shapes["A"][0]
            x = rng.standard_normal((n, n))
            return {"A": x @ x.T / n + np.eye(n)}
        return {name: rng.standard_normal(shape) for name, shape in shapes.items()}

    def reference(self, matrices: dict[str, np.ndarray]) -> np.ndarray:
        """numpy/scipy's answer: the Cholesky factor, the product, R, or the singular values."""
        a = matrices["A"]
        if self.program == "cholesky":
            return np.linalg.cholesky(a)
        if self.program == "gemm":
            return a @ matrices["B"]
        if self.program in ("qr", "tsqr"):
            return np.linalg.qr(a, mode="r")
        return np.linalg.svd(a, compute_uv=False)


@lru_cache(maxsize=32)
def _plans(program: str, graph: str, blocks: int, block_size: int, model_block_size: int,
           n: int) -> tuple[Plan, Plan]:
    spec = JobSpec(program, blocks, block_size, model_block_size, n, graph=graph)
    algorithm = get_program(program, graph)
    real = algorithm.plan(spec.shapes(), block_size)
    if model_block_size == block_size:
        return real, real
    model = algorithm.plan(spec.shapes(model=True), model_block_size)
    if model.sizes != real.sizes:
        raise ValueError(f"{program}: folding changed the DAG sizes ({real.sizes} vs {model.sizes})")
    return real, model


def compare(spec: JobSpec, result: np.ndarray, expected: np.ndarray) -> float:
    """Largest relative deviation from the reference (R compared up to the signs of its rows)."""
    result, expected = np.asarray(result), np.asarray(expected)
    if result.shape != expected.shape:
        return float("inf")
    if spec.program in ("qr", "tsqr"):
        signs = np.sign(np.diag(result)) * np.sign(np.diag(expected))
        signs[signs == 0] = 1.0
        result = result * signs[:, None]
    scale = max(float(np.max(np.abs(expected))), 1e-300)
    return float(np.max(np.abs(result - expected))) / scale


def block_bytes(plan: Plan, ref: BlockRef) -> int:
    rows, cols = plan.block_shape(ref)
    return int(rows) * int(cols) * FLOAT_BYTES


def task_bytes(plan: Plan, task: Task) -> tuple[int, int]:
    """(bytes read, bytes written) of a task's blocks at this plan's block size."""
    dag = plan.dag
    return (sum(block_bytes(plan, r) for r in dag.reads(task)), sum(block_bytes(plan, w) for w in dag.writes(task)))


def widest_pipeline(spec: JobSpec, memory_mb: int, runtime_mb: float, cache_blocks: int = 0, cap: int = 5) -> int:
    """The widest pipeline (at most ``cap``; the source executor's default is 5 [src]) whose
    declared working set (every task's blocks in flight, plus the cache) fits the function."""
    _, model = spec.plans()
    dag = model.dag
    per_task = max(sum(task_bytes(model, t)) for t in dag.all_tasks())
    free = memory_mb * 2**20 - runtime_mb * 2**20 - cache_blocks * spec.model_block_size ** 2 * FLOAT_BYTES
    return max(1, min(cap, int(free // per_task)))


@lru_cache(maxsize=8)
def critical_tasks(spec: JobSpec) -> frozenset:
    """Keys of the tasks on the DAG's longest path by FLOPs (ties: the first found), the tasks the
    original runtime gives the top priority (lambdapack.py ``_find_critical_path``) [src]."""
    _, model = spec.plans()
    dag = model.dag
    order = dag.topological_order()
    finish: dict = {}
    best_parent: dict = {}
    for t in order:
        parents = list(dag.parents(t))
        if parents:
            p = max(parents, key=lambda q: finish[q])
            best_parent[t] = p
            finish[t] = finish[p] + model.task_flops(t)
        else:
            finish[t] = model.task_flops(t)
    node = max(finish, key=finish.get)
    path = {node.key}
    while node in best_parent:
        node = best_parent[node]
        path.add(node.key)
    return frozenset(path)



@dataclass(frozen=True)
class CriticalPath:
    """The DAG's longest chains: by task count, and by each task's unloaded duration."""

    tasks: int  # most tasks on one parent-to-child chain
    seconds: float  # longest chain of unloaded task times (see :func:`critical_path`)
    seconds_tasks: int  # tasks on that chain


def critical_path(spec: JobSpec, flops_per_s: float, nic_bytes_per_s: float, latency_s: float) -> CriticalPath:
    """Longest paths of the job's DAG at the model block size.

    A task's unloaded duration is what one executor at pipeline width 1 spends on it with the
    network to itself: its input bytes at ``nic_bytes_per_s`` plus one request latency (the
    reads are issued together), its FLOPs at ``flops_per_s``, its output bytes likewise; zero
    blocks read past a tree's end cost nothing. Queueing, the post-op and provisioning are
    left out, so this is the completion-time floor of any schedule with unlimited executors.
    """
    _, model = spec.plans()
    dag = model.dag
    depth: dict = {}
    finish: dict = {}
    hops: dict = {}
    for t in dag.topological_order():
        read, written = task_bytes(model, t)
        missing = sum(block_bytes(model, r) for r in dag.reads(t) if not dag.is_input(r) and dag.writer(r) is None)
        own = (2 * latency_s + (read - missing + written) / nic_bytes_per_s + model.task_flops(t) / flops_per_s)
        parents = list(dag.parents(t))
        if parents:
            depth[t] = 1 + max(depth[p] for p in parents)
            p = max(parents, key=lambda q: finish[q])
            finish[t], hops[t] = finish[p] + own, hops[p] + 1
        else:
            depth[t], finish[t], hops[t] = 1, own, 1
    last = max(finish, key=finish.get)
    return CriticalPath(max(depth.values()), finish[last], hops[last])
