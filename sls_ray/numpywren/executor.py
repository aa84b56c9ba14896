"""NumPyWren's runtime as functions: executors behind leases, and a driver that provisions them.

numpywren.md, "Runtime": blocks live in S3 (one object per block, ``<matrix>/<i>/<j>...``),
ready tasks in an SQS queue whose visibility timeout is the lease, and the readiness state in
Redis (``protocol.py``). Nothing else connects the functions.

An executor (:func:`executor`) keeps up to ``pipeline_width`` tasks in flight. Its one
compute thread is the function's clock; reads and writes are asynchronous requests that
proceed on the function's NIC while it computes (``KVClient.get_async``/``put_async``), as
the source's asyncio executor overlapped them (job_runner.py [src]). At width 1 it reads,
computes and writes in turn; at width 2 task k+1's inputs download while task k computes;
from width 3 task k-1's outputs upload during that compute too. It renews
the leases it holds every ``lease_s / 2`` [src] (also between slices of a long kernel),
keeps an LRU cache of recent blocks, stops taking tasks after its time budget, exits when
idle for ``idle_timeout_s`` or when the program is done, and deletes intermediate blocks
once all their readers finished. A killed executor simply stops: its leases expire and the
tasks reappear for others; a replayed post-op counts each edge once (``setnx_incr``).

The driver (:func:`driver`) seeds the queue with the starting tasks, then polls every
``poll_interval_s``: program status, queue length, live executors (Redis heartbeats), and
launches what its policy says (``provisioner.py``). It re-invokes itself before its own
timeout. Async retries of failed executors are off in NumPyWren's configs: the provisioner
and the leases are the recovery, as in the paper.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

from sls_ray.api import KeyNotFound, Pending
from sls_ray.numpywren import protocol as P
from sls_ray.numpywren.job import JobSpec, block_bytes, critical_tasks
from sls_ray.numpywren.lambdapack import BlockRef, Task
from sls_ray.numpywren.provisioner import DynamicPolicy, FixedPolicy, policy_from_state

READING, WRITING = "reading", "writing"


def block_key(ref: BlockRef) -> str:
    return ref.key


class _PipelineTask:
    """One task in an executor's pipeline."""

    __slots__ = ("task", "receipt", "state", "reads", "writes", "hold", "repeat", "read_bytes", "hits",
                 "t_recv", "t_start", "t_end", "written_bytes")

    def __init__(self, task: Task, receipt: int, t_recv: float) -> None:
        self.task, self.receipt, self.t_recv = task, receipt, t_recv
        self.state = READING
        self.reads: list[Any] = []
        self.writes: list[Pending] = []
        self.hold = None
        self.repeat = False
        self.read_bytes = self.hits = self.written_bytes = 0
        self.t_start = self.t_end = math.nan


class TaskExecutor:
    def __init__(self, ctx, job: JobSpec, cfg: dict) -> None:
        self.ctx, self.job, self.cfg = ctx, job, cfg
        self.plan, self.model = job.plans()
        self.dag = self.plan.dag
        self.s3, self.redis, self.sqs = ctx.storage("s3"), ctx.storage("redis"), ctx.storage("sqs")
        self.pw = int(cfg["pipeline_width"])
        self.lease = float(cfg["lease_s"])
        self.cache: OrderedDict[BlockRef, Any] = OrderedDict()
        self.cache_blocks = int(cfg["cache_blocks"])
        self.leases: dict[int, float] = {}  # receipt of each message held -> its last renewal
        self.queue_of: dict[int, str] = {}  # receipt -> the queue it came from
        self.queues = task_queues(cfg)
        self.critical = critical_tasks(job) if cfg.get("priority_queues") else frozenset()
        self.last_heartbeat = -math.inf
        self.program_over = False
        self.tasks_done = 0
        self.busy_s = 0.0

    # ------------------------------------------------------------------ lifecycle
    def run(self) -> dict:
        ctx = self.ctx
        start = ctx.now
        self._heartbeat(start)
        b = self.job.model_block_size
        cache_bytes = self.cache_blocks * b * b * 8
        with ctx.memory.hold(cache_bytes, f"block cache: {self.cache_blocks} blocks at model block size {b}x{b}"):
            reason = self._loop(start)
        self.redis.delete(P.heartbeat_key(ctx.invocation))
        end = ctx.clock
        ctx.log("executor", start=start, end=end, tasks=self.tasks_done, busy_s=self.busy_s, reason=reason)
        return {"tasks": self.tasks_done, "reason": reason}

    def _loop(self, start: float) -> str:
        ctx, cfg = self.ctx, self.cfg
        inflight: list[_PipelineTask] = []
        idle_until = start + cfg["idle_timeout_s"]
        reason = ""
        while True:
            now = ctx.clock
            self._renew(now)
            if not reason and now - start >= cfg["budget_s"]:
                reason = "budget"
            if not reason and self.program_over:
                reason = "program_done"
            # Retire tasks whose uploads overlapped a compute. With three or more slots the newest
            # upload keeps overlapping the next compute; with two, retiring it first frees the slot
            # that prefetches the next task's inputs, the bigger transfer to hide.
            writing = [s for s in inflight if s.state == WRITING]
            for s in writing[:-1] if self.pw >= 3 else writing:
                self._retire(s, inflight)
            got = False
            while not reason and len(inflight) < self.pw:
                wait = 0.0 if inflight else max(0.0, min(cfg["max_wait_s"], idle_until - ctx.clock))
                msg, queue = None, P.QUEUE
                for i, queue in enumerate(self.queues):  # high priority first, as the source polls them
                    last = i + 1 == len(self.queues)
                    msg = self.sqs.receive(queue, visibility_timeout=self.lease, wait=wait if last else 0.0)
                    if msg is not None:
                        break
                if msg is None:
                    break
                self.queue_of[msg.receipt] = queue
                got = True
                idle_until = ctx.clock + cfg["idle_timeout_s"]
                slot = self._admit(msg)
                if slot is not None:
                    inflight.append(slot)
            reading = [s for s in inflight if s.state == READING]
            writing = [s for s in inflight if s.state == WRITING]
            if reading:
                self._compute(reading[0], inflight)
            elif writing:
                for s in writing:  # nothing left to overlap with
                    self._retire(s, inflight)
            elif reason:
                return reason
            elif not got:
                if self._program_status() in (P.PROGRAM_DONE, P.PROGRAM_FAILED):
                    self.program_over = True
                elif ctx.clock >= idle_until:
                    return "idle"

    # ------------------------------------------------------------------ stages
    def _admit(self, msg) -> _PipelineTask | None:
        ctx, dag = self.ctx, self.dag
        task = Task.from_key(msg.body)
        self.leases[msg.receipt] = ctx.clock  # a receipt names one delivery (a duplicate has its own)
        admission = P.admit(self.redis.transaction(P.admit_ops(task)))
        if admission.action == "skip":
            self._drop(msg.receipt)
            return None
        slot = _PipelineTask(task, msg.receipt, ctx.clock)
        if admission.action == "post_op":
            slot.state = WRITING
            return slot
        slot.repeat = admission.repeat
        reads, writes = dag.reads(task), dag.writes(task)
        need = sum(block_bytes(self.model, r) for r in reads) + sum(block_bytes(self.model, w) for w in writes)
        b = self.job.model_block_size
        slot.hold = ctx.memory.hold(need, f"task {task.key}: {len(reads) + len(writes)} blocks at model block size "
                                          f"{b}x{b} ({need / 2**20:.0f} MiB), pipeline width {self.pw}")
        slot.hold.__enter__()
        for ref in reads:
            cached = self.cache.get(ref)
            if cached is not None:
                self.cache.move_to_end(ref)
                slot.reads.append(cached)
                slot.hits += 1
            elif dag.is_input(ref) or dag.writer(ref) is not None:
                slot.reads.append(self.s3.get_async(block_key(ref)))
                slot.read_bytes += block_bytes(self.model, ref)
            else:  # an intermediate no task writes reads as zeros (numpywren.md, "Storage layout")
                slot.reads.append(self.plan.zeros(ref))
        return slot

    def _compute(self, slot: _PipelineTask, inflight: list[_PipelineTask]) -> None:
        ctx, task = self.ctx, slot.task
        pending = [r for r in slot.reads if isinstance(r, Pending)]
        try:
            ctx.gather(pending)
        except KeyNotFound:
            # another executor finished this task (a duplicate delivery) and its inputs were collected
            if self._status(task) in (P.POST_OP, P.FINISHED):
                self._release(slot)
                inflight.remove(slot)
                self._drop(slot.receipt)
                ctx.log("abandoned", task=task.key)
                return
            raise
        self._renew(ctx.clock)  # reading may have taken a while: keep leases and heartbeat fresh
        values = [r.value if isinstance(r, Pending) else r for r in slot.reads]
        for ref, value in zip(self.dag.reads(task), values):
            self._cache_put(ref, value)
        slot.t_start = ctx.clock
        outputs = self.plan.run_task(task, values)
        flops = self.model.task_flops(task)
        pieces = max(1, math.ceil(flops / ctx.flops_per_s / self.cfg["compute_slice_s"]))
        for i in range(pieces):  # a long kernel renews its leases between slices, as a renewal thread would
            ctx.compute(flops=flops / pieces)
            if i + 1 < pieces:
                self._renew(ctx.clock)
        slot.t_end = ctx.clock
        self.busy_s += slot.t_end - slot.t_start
        for ref, value in outputs:
            nbytes = block_bytes(self.model, ref)
            charge = nbytes if self.job.folded else None
            slot.writes.append(self.s3.put_async(block_key(ref), value, charge_bytes=charge))
            slot.written_bytes += nbytes
            self._cache_put(ref, value)
        slot.state = WRITING

    def _retire(self, slot: _PipelineTask, inflight: list[_PipelineTask]) -> None:
        ctx, task = self.ctx, slot.task
        ctx.gather(slot.writes)
        op = P.post_op(self.dag, task)
        decision = P.decide(op, self.redis.transaction(op.ops))
        for child in decision.enqueue:
            self.sqs.send(queue_for(child, self.critical), child.key)
        for cmd in P.finish_ops(task):
            self.redis.setv(cmd[1], cmd[2])
        self._drop(slot.receipt)
        if decision.garbage:
            self.s3.delete([block_key(r) for r in decision.garbage])
        if decision.program_done:
            self.redis.setv(P.PROGRAM, P.PROGRAM_DONE)
            self.program_over = True
            ctx.log("program_done", task=task.key)
        self._release(slot)
        inflight.remove(slot)
        self.tasks_done += 1
        gc_bytes = sum(block_bytes(self.model, r) for r in decision.garbage)
        ctx.log("task", task=task.key, stmt=task.stmt, recv=slot.t_recv, start=slot.t_start, end=slot.t_end,
                flops=0.0 if math.isnan(slot.t_start) else self.model.task_flops(task),
                read_bytes=slot.read_bytes, hits=slot.hits, written_bytes=slot.written_bytes,
                gc_bytes=gc_bytes, repeat=slot.repeat, first=decision.first_finish,
                enqueued=len(decision.enqueue))

    # ------------------------------------------------------------------ helpers
    def _release(self, slot: _PipelineTask) -> None:
        if slot.hold is not None:
            slot.hold.__exit__(None, None, None)
            slot.hold = None

    def _drop(self, receipt: int) -> None:
        del self.leases[receipt]
        self.sqs.delete_message(self.queue_of.pop(receipt), receipt)

    def _cache_put(self, ref: BlockRef, value: Any) -> None:
        if self.cache_blocks <= 0:
            return
        self.cache[ref] = value
        self.cache.move_to_end(ref)
        while len(self.cache) > self.cache_blocks:
            self.cache.popitem(last=False)

    def _renew(self, now: float) -> None:
        for receipt, renewed in list(self.leases.items()):
            if now - renewed >= self.lease / 2:
                if not self.sqs.change_visibility(self.queue_of[receipt], receipt, self.lease):
                    self.ctx.log("lease_lost", receipt=receipt)
                self.leases[receipt] = self.ctx.clock
        self._heartbeat(now)

    def _heartbeat(self, now: float) -> None:
        if now - self.last_heartbeat >= self.cfg["heartbeat_s"]:
            self.redis.setv(P.heartbeat_key(self.ctx.invocation), now)
            self.last_heartbeat = now

    def _status(self, task: Task) -> Any:
        return self.redis.getv(P.status_key(task))

    def _program_status(self) -> Any:
        return self.redis.getv(P.PROGRAM)


def task_queues(cfg: dict) -> tuple[str, ...]:
    """The queues executors receive from, highest priority first."""
    return (P.QUEUE_HIGH, P.QUEUE) if cfg.get("priority_queues") else (P.QUEUE,)


def queue_for(task: Task, critical: frozenset) -> str:
    return P.QUEUE_HIGH if task.key in critical else P.QUEUE


def executor(ctx, payload: dict) -> dict:
    return TaskExecutor(ctx, JobSpec(**payload["job"]), payload["cfg"]).run()


# ---------------------------------------------------------------------- the driver
def make_policy(cfg: dict) -> DynamicPolicy | FixedPolicy:
    if cfg["policy"] == "dynamic":
        return DynamicPolicy(sf=cfg["sf"], pipeline_width=cfg["pipeline_width"],
                             launch_granularity_s=cfg["launch_granularity_s"], max_executors=cfg["max_executors"])
    return FixedPolicy(executors=cfg["max_executors"], relaunch_every_s=cfg["relaunch_fraction"] * cfg["budget_s"])


def live_executors(redis, launched: dict[int, float], now: float, timeout_s: float) -> int:
    """Executors the driver launched that are up: a heartbeat fresher than ``timeout_s``, or
    launched less than ``timeout_s`` ago (still starting). Those that are neither exited or died
    (a killed one stops beating) and are forgotten, so the multi-get stays small."""
    if not launched:
        return 0
    beats = redis.mget([P.heartbeat_key(i) for i in launched])
    up = 0
    for inv, t_launch in list(launched.items()):
        beat = beats.get(P.heartbeat_key(inv))
        if (beat is not None and now - beat <= timeout_s) or now - t_launch <= timeout_s:
            up += 1
        else:
            del launched[inv]
    return up


def driver(ctx, payload: dict) -> dict:
    job, cfg = JobSpec(**payload["job"]), payload["cfg"]
    redis, sqs = ctx.storage("redis"), ctx.storage("sqs")
    state = payload.get("state")
    if state is None:
        dag = job.plans()[0].dag
        redis.setv(P.PROGRAM, P.PROGRAM_RUNNING)
        starting = dag.starting_tasks()
        critical = critical_tasks(job) if cfg.get("priority_queues") else frozenset()
        wave = cfg["send_concurrency"]  # a client thread pool: at most this many sends in flight
        for i in range(0, len(starting), wave):
            ctx.gather([sqs.send_async(queue_for(t, critical), t.key) for t in starting[i:i + wave]])
        now = ctx.now
        ctx.log("program_start", starting=len(starting))
        state = {"policy": make_policy(cfg).state(), "last_done": 0, "progress_at": now, "launched": {}}
    policy = policy_from_state(state["policy"])
    exec_payload = {"job": payload["job"], "cfg": cfg}
    while True:
        now = ctx.now
        status, done = redis.transaction([("getv", P.PROGRAM), ("getv", P.DONE_COUNT)])
        done = done or 0
        if status in (P.PROGRAM_DONE, P.PROGRAM_FAILED):
            ctx.log("sched", waiting=0, running=0, up=0, done=done, launched=0, final=True)
            return {"status": status, "done": done}
        queues = task_queues(cfg)
        waiting = sum(sqs.length(q) for q in queues)
        running = sum(sqs.in_flight(q) for q in queues)
        up = live_executors(redis, state["launched"], now, cfg["heartbeat_timeout_s"])
        launch = policy.decide(now, waiting, up)
        for _ in range(launch):
            state["launched"][ctx.invoke("executor", exec_payload)] = now
        ctx.log("sched", waiting=waiting, running=running, up=up, done=done, launched=launch, final=False)
        if done != state["last_done"]:
            state["last_done"], state["progress_at"] = done, now
        elif now - state["progress_at"] > cfg["stall_timeout_s"]:
            redis.setv(P.PROGRAM, P.PROGRAM_FAILED)
            ctx.log("stalled", done=done, since=state["progress_at"])
            return {"status": P.PROGRAM_FAILED, "done": done}
        if ctx.remaining < 2 * cfg["poll_interval_s"] + 10.0:  # hand over before Lambda's timeout
            state["policy"] = policy.state()
            ctx.invoke("driver", {**payload, "state": state})
            return {"status": "handed_over", "done": done}
        ctx.sleep(cfg["poll_interval_s"])
