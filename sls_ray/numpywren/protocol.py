"""NumPyWren's readiness protocol over the state store, as plain functions (numpywren.md, "Runtime").

No I/O here: each step is a list of Redis commands to run as one transaction plus a pure
function that turns the transaction's answers into decisions (STYLE.md, "State machines
with no I/O"). The executor (``executor.py``) sends them; the tests drive them directly.

State in Redis, per run:
- ``s/<task>``: status, absent until an executor starts the task (then RUNNING, POST_OP,
  FINISHED). A task is enqueued exactly when its last parent finishes, so "absent" with a
  message in the queue is NumPyWren's READY.
- ``n/<task>``: its count of finished parents; ``e/<parent>><child>``: the edge flag that
  makes a replayed parent count once (``setnx_incr``: check-edge-then-increment).
- ``r/<task>``: how many times an executor started computing it (> 1 = repeated work).
- ``g/<task>><block>`` and ``c/<block>``: consumer flags and counts of an intermediate
  block; when every reader finished its post-op the block is garbage and is deleted.
- ``d/<task>`` with ``k/done`` and ``o/<task>`` with ``k/outputs``: finished tasks and
  finished output-writing tasks, each counted once; ``p``: the program status.
- ``h/<invocation>``: an executor's last heartbeat (the provisioner counts the executors it
  launched that are still beating).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sls_ray.numpywren.lambdapack import BlockRef, ImplicitDAG, Task

# task status values (NumPyWren's NS enum less NOT_READY/READY, which are implicit here)
RUNNING, POST_OP, FINISHED = 2, 3, 4
# program status values
PROGRAM_RUNNING, PROGRAM_DONE, PROGRAM_FAILED = 1, 2, 3

QUEUE = "tasks"
QUEUE_HIGH = "tasks_critical"  # priority_queues: critical-path tasks, received first
PROGRAM = "p"
DONE_COUNT = "k/done"
OUTPUTS_DONE = "k/outputs"
HEARTBEAT = "h/"


def status_key(task: Task) -> str:
    return "s/" + task.key


def runs_key(task: Task) -> str:
    return "r/" + task.key


def count_key(task: Task) -> str:
    return "n/" + task.key


def edge_key(parent: Task, child: Task) -> str:
    return f"e/{parent.key}>{child.key}"


def consumed_key(task: Task, block: BlockRef) -> str:
    return f"g/{task.key}>{block.key}"


def consumers_key(block: BlockRef) -> str:
    return "c/" + block.key


def heartbeat_key(invocation: int) -> str:
    return f"{HEARTBEAT}{invocation}"


# ------------------------------------------------------------------ starting a task
def admit_ops(task: Task) -> list[tuple]:
    """Read the task's status, count one more start and mark it RUNNING if nobody had.

    A skipped task (FINISHED, or POST_OP: outputs already written) is never computed again,
    so its inflated start count never makes a computation look repeated.
    """
    return [("getv", status_key(task)), ("incr", runs_key(task), 1), ("setnx", status_key(task), RUNNING)]


@dataclass(frozen=True)
class Admission:
    action: str  # "run" | "post_op" | "skip"
    repeat: bool  # an executor started computing this task before


def admit(answers: list) -> Admission:
    status, runs = answers[0], answers[1]
    if status == FINISHED:
        return Admission("skip", False)
    if status == POST_OP:  # outputs are written: only the post-op is left (NumPyWren does the same)
        return Admission("post_op", False)
    return Admission("run", runs > 1)


# ------------------------------------------------------------------ the post-op
@dataclass
class PostOp:
    """A task's post-op transaction and what its answers mean."""

    task: Task
    ops: list[tuple]
    children: list[Task]
    needs: list[int]  # each child's number of parents
    garbage_candidates: list[BlockRef]
    readers: list[int]  # each candidate's number of readers
    unread: list[BlockRef]  # intermediates this task wrote that no task reads: garbage at once
    is_output: bool
    num_outputs: int


@dataclass
class Decision:
    enqueue: list[Task] = field(default_factory=list)  # children to send to the queue
    garbage: list[BlockRef] = field(default_factory=list)  # intermediates every reader consumed
    first_finish: bool = False  # this post-op finished the task for the first time
    program_done: bool = False  # the last output-writing task just finished


def post_op(dag: ImplicitDAG, task: Task) -> PostOp:
    """The atomic post-op of ``task``: mark POST_OP, count each child's finished parents once,
    count the intermediate blocks it consumed once, count it done (and as an output task)."""
    children = dag.children(task)
    needs = [dag.num_parents(c) for c in children]
    candidates = [r for r in dict.fromkeys(dag.reads(task))
                  if not dag.is_input(r) and not dag.is_output(r) and dag.writer(r) is not None]
    readers = [len(dag.readers(r)) for r in candidates]
    is_output = any(dag.is_output(w) for w in dag.writes(task))
    unread = [w for w in dag.writes(task) if not dag.is_output(w) and not dag.readers(w)]
    ops: list[tuple] = [("setv", status_key(task), POST_OP)]
    for child in children:
        ops += [("setnx_incr", edge_key(task, child), count_key(child), 1), ("getv", count_key(child)),
                ("getv", status_key(child))]
    for block in candidates:
        ops += [("setnx_incr", consumed_key(task, block), consumers_key(block), 1), ("getv", consumers_key(block))]
    ops.append(("setnx_incr", "d/" + task.key, DONE_COUNT, 1))
    if is_output:
        ops += [("setnx_incr", "o/" + task.key, OUTPUTS_DONE, 1), ("getv", OUTPUTS_DONE)]
    return PostOp(task, ops, children, needs, candidates, readers, unread, is_output, dag.num_output_tasks())


def decide(op: PostOp, answers: list) -> Decision:
    """What to do after the transaction answered (every step is safe to replay).

    A child is enqueued when this parent's increment completed its count, and also, at least
    once more, when this is a *replayed* post-op (the edge was counted before), the count is
    complete and the child never started: the first post-op may have died before its sends
    went out. A duplicate message is harmless (the status check skips finished tasks).
    """
    out = Decision(garbage=list(op.unread))
    i = 1
    for child, need in zip(op.children, op.needs):
        incremented, count, status = answers[i:i + 3]
        i += 3
        if incremented == need or (incremented is None and count == need and status is None):
            out.enqueue.append(child)
    for block, readers in zip(op.garbage_candidates, op.readers):
        if answers[i + 1] == readers:  # replays see the full count too: deleting twice is harmless
            out.garbage.append(block)
        i += 2
    out.first_finish = answers[i] is not None
    i += 1
    if op.is_output:
        out.program_done = answers[i + 1] == op.num_outputs
    return out


def finish_ops(task: Task) -> list[tuple]:
    """After the children are sent: the task is FINISHED (a replay of its message is skipped)."""
    return [("setv", status_key(task), FINISHED)]
