"""Sequential in-memory executor for NumPyWren programs: the correctness oracle.

It drives a :class:`~sls_ray.numpywren.programs.Plan` with exactly the readiness protocol
of the distributed runtime (numpywren.md, Runtime): start from the starting tasks; after a
task runs, each child's count of finished parents goes up by one, and a child whose count
reaches its number of parents becomes ready. Blocks live in a dict keyed by
:class:`BlockRef`; reading an intermediate block nobody wrote yields zeros. Every graph edge
is therefore exercised through ``children``/``num_parents``, so a wrong edge shows up as a
task run too early (missing block), never made ready, or made ready twice.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from sls_ray.numpywren.lambdapack import BlockRef, Task
from sls_ray.numpywren.programs import Algorithm, Plan, get_program

__all__ = ["Execution", "ExecutionError", "ReferenceRun", "execute", "run_reference"]


class ExecutionError(RuntimeError):
    """The task graph broke the readiness protocol (an edge is missing or extra)."""


@dataclass(frozen=True)
class Execution:
    """What running every task once produced, and how."""

    blocks: dict[BlockRef, np.ndarray]  # the inputs plus every block written
    order: tuple[Task, ...]  # tasks in execution order
    flops: float  # kernel FLOPs at the actual block shapes
    zero_reads: int  # reads of never-written intermediates, served as zeros


@dataclass(frozen=True)
class ReferenceRun:
    """A whole reference run: the plan, its execution and the assembled result."""

    result: np.ndarray  # the L factor, the product C, R, or the singular values
    plan: Plan
    execution: Execution


def execute(plan: Plan, inputs: Mapping[BlockRef, np.ndarray]) -> Execution:
    """Run every task of ``plan`` once, in an order the readiness protocol allows."""
    dag = plan.dag
    store: dict[BlockRef, np.ndarray] = dict(inputs)
    ready: deque[Task] = deque(sorted(dag.starting_tasks()))
    finished_parents: dict[Task, int] = {}
    finished: set[Task] = set()
    order: list[Task] = []
    flops = 0.0
    zero_reads = 0
    output_tasks_done = 0
    while ready:
        task = ready.popleft()
        if task in finished:
            raise ExecutionError(f"task {task.key} became ready after it had run")
        blocks = []
        for ref in dag.reads(task):
            block = store.get(ref)
            if block is None:
                if dag.is_input(ref):
                    raise ExecutionError(f"task {task.key} reads input block {ref}, which was not supplied")
                writer = dag.writer(ref)
                if writer is not None:
                    raise ExecutionError(f"task {task.key} ran before {writer.key}, the writer of {ref}")
                block = plan.zeros(ref)
                zero_reads += 1
            blocks.append(block)
        written = plan.run_task(task, blocks)
        flops += plan.kernel(task).flops([b.shape for b in blocks])
        for ref, value in written:
            store[ref] = value
        finished.add(task)
        order.append(task)
        if any(dag.is_output(ref) for ref, _ in written):
            output_tasks_done += 1
        for child in dag.children(task):
            count = finished_parents.get(child, 0) + 1
            finished_parents[child] = count
            needed = dag.num_parents(child)
            if count == needed:
                ready.append(child)
            elif count > needed:
                raise ExecutionError(f"task {child.key} has {needed} parents but {count} finished")
    waiting = [t for t in finished_parents if t not in finished]
    if waiting:
        raise ExecutionError(f"{len(waiting)} tasks never became ready, e.g. {waiting[0].key}")
    if output_tasks_done != dag.num_output_tasks():
        raise ExecutionError(f"{output_tasks_done} output tasks ran, expected {dag.num_output_tasks()}")
    return Execution(store, tuple(order), flops, zero_reads)


def run_reference(program: str | Algorithm, matrices: Mapping[str, np.ndarray], block_size: int) -> ReferenceRun:
    """Block ``matrices``, run ``program`` sequentially and assemble its result."""
    algorithm = get_program(program) if isinstance(program, str) else program
    plan = algorithm.plan_for(matrices, block_size)
    execution = execute(plan, plan.split(matrices))
    return ReferenceRun(plan.assemble(execution.blocks), plan, execution)
