"""The ``numpywren`` experiment kind: one LAMBDAPACK program run on simulated Lambda (SoCC 2020).

A run uploads the input blocks (prepared offline), starts the driver, and lets executors
work the DAG through S3, SQS and Redis (``executor.py``). It writes ``tasks.csv`` (one row
per task execution), ``timeline.csv`` (the driver's polls: waiting / running tasks, live
executors, finished tasks), ``executors.csv``, and adds to ``summary.json`` the program's
completion time, core-seconds, bytes moved, repeated tasks, the result's deviation from
numpy, and the MPI and single-machine models' numbers for the same DAG (``baselines.py``).
With ``model_block_size`` set, blocks are *folded*: small real blocks, charged as model ones.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from sls_ray.api import Experiment, Sized, Strict
from sls_ray.numpywren import executor
from sls_ray.numpywren.baselines import VCPUS_PER_CORE, ClusterParams, run_mpi, single_machine
from sls_ray.numpywren.job import JobSpec, block_bytes, compare
from sls_ray.numpywren.lambdapack import BlockRef
from sls_ray.numpywren.programs import RETIRED_PROGRAMS, retired_message

CORRECT_TOLERANCE = 1e-9  # relative deviation from numpy that still counts as float64 round-off


class NumPyWrenParams(Strict):
    program: Literal["cholesky", "gemm", "tsqr", "qr", "bdfac"] = Field(
        "cholesky", description="LAMBDAPACK program (bdfac = the band stage of SVD, its band's SVD taken locally)")
    graph: Literal["original", "compact"] = Field(
        "original", description="task graph: the original compiler's (numpywren algs.py: identity copy-outs "
        "into GEMM's and QR's output, trees of ceil(n/2^(l+1)) binary nodes whose children past the end read as "
        "zeros) [src], or our compact one (tree roots write the output; trees merge three children at the end of "
        "an odd level: fewer tasks, one level less over n not a power of two)")
    blocks: int = Field(8, ge=1, le=128, description="blocks per side (TSQR: row blocks)")
    block_size: int = Field(16, ge=1, description="real block side computed with numpy")
    model_block_size: int | None = Field(None, ge=1, description="block side charged for compute, bytes, memory "
                                         "and storage (paper: 4096); None = block_size, nothing folded")
    n: int | None = Field(None, ge=1, description="real matrix side; less than blocks * block_size makes ragged "
                          "edge blocks (unfolded runs only)")
    pipeline_width: int = Field(1, ge=1, le=16, description="tasks an executor keeps in flight (source script "
                                "default 1; its executor default 5) [src]")
    cache_blocks: int = Field(0, ge=0, description="LRU block cache per executor (source: 5 with --lru, else 0) [src]")
    lease_s: float = Field(60.0, gt=0, description="SQS visibility timeout = lease, renewed every lease/2 [src]")
    budget_s: float = Field(140.0, gt=0, description="executor time budget: no new tasks after it (140-200 s) [src]")
    idle_timeout_s: float = Field(60.0, gt=0, description="an executor with no task for this long exits [src]")
    executor_memory_mb: int = Field(3008, description="executor memory (3008 MB = 1.7 vCPUs, the 2020 maximum)")
    executor_timeout_s: float = Field(300.0, gt=0, description="executor Lambda timeout: budget plus draining "
                                      "the pipeline (PyWren's default) [src][est]")
    policy: Literal["dynamic", "fixed"] = Field("fixed", description="provisioning: the source scripts' default, "
                                                "a constant_timeout pool of max_executors relaunched every "
                                                "relaunch_fraction x budget [src], or the paper's dynamic policy "
                                                "(sf, launch_granularity_s) [paper][src]")
    sf: float = Field(0.5, gt=0, description="scaling factor of the dynamic policy [paper][src]")
    max_executors: int = Field(1000, ge=1, le=1000, description="cap on executors; the fixed pool's size")
    launch_granularity_s: float = Field(60.0, ge=0, description="dynamic policy launches at most this often [src]")
    relaunch_fraction: float = Field(0.85, gt=0, description="fixed pool relaunches every fraction x budget [src]")
    poll_interval_s: float = Field(5.0, gt=0, description="provisioner poll period (source log_granularity) [src]")
    heartbeat_s: float = Field(10.0, gt=0, description="executor heartbeat period in Redis [est]")
    heartbeat_timeout_s: float = Field(60.0, gt=0, description="an executor silent this long is not counted as up "
                                       "(one lease: it outlasts a long read plus a compute slice) [est]")
    stall_timeout_s: float = Field(900.0, gt=0, description="the driver fails the program after this long "
                                   "without a finished task (e.g. every executor dies of its memory limit)")
    compute_slice_s: float = Field(15.0, gt=0, description="longest compute between lease checks (lease/4)")
    priority_queues: bool = Field(False, description="the later source runtime's priority queues: tasks on the "
                                  "DAG's critical path go to a second queue that executors receive from first [src]")
    max_wait_s: float = Field(20.0, ge=0, description="SQS long-poll wait of an idle executor [doc]")
    driver_memory_mb: int = Field(256, description="memory of the driver/provisioner function")
    send_concurrency: int = Field(64, ge=1, description="sends the driver keeps in flight when it seeds the "
                                  "queue (a client thread pool) [est]")
    verify: bool = Field(True, description="compare the stored result with numpy after the run (outside virtual time)")
    baselines: bool = Field(True, description="also run the MPI cluster and single-machine models on the same DAG")
    mpi: ClusterParams = Field(default_factory=ClusterParams, description="the MPI/ScaLAPACK cluster model")
    seed: int = Field(0, description="input matrices")

    @field_validator("program", mode="before")
    @classmethod
    def _retired_program(cls, value: object) -> object:
        if isinstance(value, str) and value in RETIRED_PROGRAMS:
            raise ValueError(retired_message(value))
        return value

    def job(self) -> JobSpec:
        return JobSpec.make(self.program, self.blocks, self.block_size, self.model_block_size, self.n, self.seed,
                            self.graph)

    def runtime_cfg(self) -> dict:
        keys = ("pipeline_width", "cache_blocks", "lease_s", "budget_s", "idle_timeout_s", "policy", "sf",
                "max_executors", "launch_granularity_s", "relaunch_fraction", "poll_interval_s", "heartbeat_s",
                "heartbeat_timeout_s", "stall_timeout_s", "compute_slice_s", "max_wait_s", "send_concurrency",
                "priority_queues")
        return {k: getattr(self, k) for k in keys}


def busy_seconds(tasks: pd.DataFrame) -> float:
    """Seconds executors spent with at least one task in flight (received, not yet retired).

    NumPyWren's "active cores" (numpywren.md, Table 2): the source's executors report the
    union of their tasks' processing intervals (job_runner.py ``calculate_busy_time`` [src]),
    so idle polling before the idle exit is not counted; ``billed_core_s`` counts it.
    """
    if tasks.empty:
        return 0.0
    total = 0.0
    for _, grp in tasks.groupby("executor" if "executor" in tasks else "fid"):
        spans = sorted(zip(grp["recv"], grp["t"] if "t" in grp else grp["retired"]))
        lo, hi = spans[0]
        for a, b in spans[1:]:
            if a > hi:
                total += hi - lo
                lo, hi = a, b
            else:
                hi = max(hi, b)
        total += hi - lo
    return total


class NumPyWrenExperiment(Experiment):
    name = "numpywren"
    description = "NumPyWren: LAMBDAPACK programs on Lambda with S3, SQS leases and a Redis state store"
    Params = NumPyWrenParams

    def __init__(self, params, profile) -> None:
        super().__init__(params, profile)
        self.spec = params.job()
        self._inputs: dict[str, np.ndarray] | None = None

    def inputs(self) -> dict[str, np.ndarray]:
        if self._inputs is None:
            self._inputs = self.spec.inputs()
        return self._inputs

    # -- what runs
    def handlers(self):
        return {"driver": executor.driver, "executor": executor.executor}

    def entry(self):
        return "driver", {"job": self.spec.to_dict(), "cfg": self.params.runtime_cfg()}

    def handler_memory(self):
        return {"executor": self.params.executor_memory_mb, "driver": self.params.driver_memory_mb}

    def handler_timeout(self):
        return {"executor": self.params.executor_timeout_s, "driver": 900.0}

    def required_services(self):
        return ["s3", "redis", "sqs"]

    def preload(self):
        real, model = self.spec.plans()
        blocks = real.split(self.inputs())
        if not self.spec.folded:
            return {"s3": {ref.key: block for ref, block in blocks.items()}}
        return {"s3": {ref.key: Sized(block, block_bytes(model, ref)) for ref, block in blocks.items()}}

    # -- what it reports
    def check(self, stored):
        real, _ = self.spec.plans()
        dag = real.dag
        leftover = [k for k in stored.keys("s3") if not dag.is_input(BlockRef.from_key(k))
                    and not dag.is_output(BlockRef.from_key(k))]
        out = {"leftover_intermediates": len(leftover)}
        if not self.params.verify:
            return out
        blocks = {}
        for ref in real.output_blocks():
            value = stored.get("s3", ref.key)
            if value is None:
                return {**out, "correct": False, "max_rel_error": None, "missing_outputs": True}
            blocks[ref] = value
        err = compare(self.spec, real.assemble(blocks), self.spec.reference(self.inputs()))
        return {**out, "correct": bool(err < CORRECT_TOLERANCE), "max_rel_error": err}

    def tables(self, result):
        out = {}
        tasks = result.metric("task")
        if not tasks.empty:
            tasks = tasks.rename(columns={"t": "retired", "fid": "executor"})
            cols = ["task", "stmt", "executor", "recv", "start", "end", "retired", "flops", "read_bytes", "hits",
                    "written_bytes", "gc_bytes", "repeat", "first", "enqueued"]
            out["tasks"] = tasks[cols].assign(program=self.params.program, graph=self.params.graph,
                                              blocks=self.params.blocks)
        sched = result.metric("sched")
        if not sched.empty:
            out["timeline"] = sched[["t", "waiting", "running", "up", "done", "launched"]].assign(
                program=self.params.program, graph=self.params.graph, policy=self.params.policy, sf=self.params.sf)
        inv = result.invocations
        ex = inv[inv["handler"] == "executor"]
        if not ex.empty:
            out["executors"] = ex[["id", "start_s", "end_s", "billed_ms", "status", "error"]].copy()
        return out

    def summary_extra(self, result):
        p, spec = self.params, self.spec
        real, model = spec.plans()
        inv = result.invocations
        ex = inv[inv["handler"] == "executor"]
        vcpus = self.profile.functions.vcpus(p.executor_memory_mb)
        exec_s = float((ex["end_s"] - ex["start_s"]).sum()) if not ex.empty else 0.0
        tasks = result.metric("task")
        done = result.metric("program_done")
        completion = float(done["t"].min()) if not done.empty else None
        computed = tasks[tasks["start"].notna()] if not tasks.empty else tasks
        total_flops = sum(model.task_flops(t) for t in real.dag.all_tasks())
        stalled = not result.metric("stalled").empty
        out = {
            "program": p.program, "graph": p.graph, "policy": p.policy, "blocks": p.blocks,
            "block_size": p.block_size,
            "model_block_size": spec.model_block_size, "folded": spec.folded,
            "pipeline_width": p.pipeline_width, "cache_blocks": p.cache_blocks,
            "matrix_side_model": p.blocks * spec.model_block_size,
            "program_status": "done" if completion is not None else ("stalled" if stalled else "unfinished"),
            "completion_s": completion,
            "tasks_total": real.dag.num_tasks(), "program_flops": total_flops,
            "task_executions": int(len(computed)),
            "tasks_finished": int(tasks["first"].astype(bool).sum()) if not tasks.empty else 0,
            # restarts: computations of a task some executor had started before (its lease expired,
            # it died, or the queue delivered it twice); extra_executions: computations beyond one per task
            "repeated_tasks": int(computed["repeat"].astype(bool).sum()) if not tasks.empty else 0,
            "extra_executions": int(len(computed) - computed["task"].nunique()) if not tasks.empty else 0,
            "executors": int(len(ex)), "executor_failures": int((ex["status"] != "ok").sum()) if not ex.empty else 0,
            "executor_s": exec_s, "billed_core_s": exec_s * vcpus / VCPUS_PER_CORE,
            "core_s": busy_seconds(tasks) * vcpus / VCPUS_PER_CORE,
            "compute_core_s": float((computed["end"] - computed["start"]).sum()) * vcpus / VCPUS_PER_CORE
            if not tasks.empty else 0.0,
            "gflops_per_s": total_flops / completion / 1e9 if completion else None,
            "network_read_bytes": float(tasks["read_bytes"].sum()) if not tasks.empty else 0.0,
            "network_write_bytes": float(tasks["written_bytes"].sum()) if not tasks.empty else 0.0,
            "cache_hits": int(tasks["hits"].sum()) if not tasks.empty else 0,
        }
        if p.baselines and completion is not None:
            for prefix, cluster in (("mpi", p.mpi), ("single", single_machine())):
                r = run_mpi(spec, cluster)
                for k in ("completion_s", "core_s", "cost_usd", "network_bytes", "ranks", "utilisation",
                          "fits_memory", "instance_type", "nodes"):
                    out[f"{prefix}_{k}"] = r[k]
        return out

    # -- figures
    @classmethod
    def plot(cls, result_dir: Path) -> list[Path]:
        result_dir = Path(result_dir)
        if not (result_dir / "timeline.csv").exists():
            return []
        from sls_ray.api import pyplot  # the Agg backend is chosen there, once

        plt = pyplot()

        tl = pd.read_csv(result_dir / "timeline.csv")
        fig, ax = plt.subplots(figsize=(8, 4))
        ax.plot(tl["t"], tl["waiting"], label="waiting tasks")
        ax.plot(tl["t"], tl["running"], label="running tasks (leased)")
        ax.plot(tl["t"], tl["up"], label="live executors")
        ax.set_xlabel("virtual time (s)")
        ax.set_ylabel("count")
        ax2 = ax.twinx()
        ax2.plot(tl["t"], tl["done"], color="k", ls="--", label="finished tasks")
        ax2.set_ylabel("finished tasks")
        ax.legend(loc="upper left")
        ax2.legend(loc="upper right")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        out = result_dir / "timeline.png"
        fig.savefig(out, dpi=120)
        plt.close(fig)
        return [out]

    @classmethod
    def plot_sweep(cls, sweep_dir: Path, sweep: pd.DataFrame) -> list[Path]:
        from sls_ray.api import pyplot  # the Agg backend is chosen there, once

        plt = pyplot()

        varying = [c for c in sweep.columns if c.startswith("params.") and sweep[c].nunique() > 1
                   and pd.api.types.is_numeric_dtype(sweep[c])]
        if not varying or "completion_s" not in sweep:
            return []
        x = varying[0]
        others = [c for c in varying[1:]]
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        groups = sweep.groupby(others) if others else [("", sweep)]
        for key, grp in groups:
            grp = grp.sort_values(x)
            axes[0].plot(grp[x], grp["completion_s"], marker="o", label=str(key))
            axes[1].plot(grp[x], grp["core_s"], marker="o", label=str(key))
        for ax, label in zip(axes, ["completion time (s, virtual)", "core-seconds"]):
            ax.set_xlabel(x.removeprefix("params."))
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            if others:
                ax.legend(title=",".join(o.removeprefix("params.") for o in others))
        fig.tight_layout()
        out = sweep_dir / "numpywren_sweep.png"
        fig.savefig(out, dpi=120)
        plt.close(fig)
        return [out]
