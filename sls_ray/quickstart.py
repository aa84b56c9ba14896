"""The built-in quickstart: a storage-mediated all-reduce of real numpy gradients.

LambdaML's communication pattern (lambdaml.md, "Collectives through storage") on its own:
W workers each draw a gradient, model its compute, and average through S3, Memcached or
DynamoDB, values chunked to each service's item limit. Every worker checks the mean it got
against a numpy reference, so the run fails loudly if the platform corrupted anything.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from sls_ray.collectives import COLLECTIVES, ArrayChannel
from sls_ray.experiment import Experiment
from sls_ray.platform import Strict


class AllReduceParams(Strict):
    workers: int = Field(8, ge=1, le=100_000, description="functions averaging together")
    service: str = Field("s3", description="storage service the vectors travel through")
    pattern: Literal["allreduce", "scatter_reduce"] = Field("allreduce", description="collective")
    rounds: int = Field(3, ge=1, description="all-reduce rounds")
    floats: int = Field(131072, ge=1, description="float64 gradient length (131072 = 1 MiB)")
    gflop_per_round: float = Field(2.0, ge=0, description="modelled compute per round per worker")
    memory_mb: int = Field(1024, description="function memory size")
    poll_interval_s: float = Field(0.1, gt=0, description="polling interval of waits")
    scratch_mb: float = Field(0.0, ge=0, description="scratch memory each worker touches WITHOUT telling the "
                                                     "runtime: only isolated mode (run.isolated) can catch it")


def gradient(seed: int, rnd: int, rank: int, n: int) -> np.ndarray:
    return np.random.default_rng([seed, rnd, rank]).standard_normal(n)


def trigger(ctx, p: dict) -> int:
    ctx.invoke_each("worker", ({**p, "rank": rank} for rank in range(p["workers"])))
    return p["workers"]


def worker(ctx, p: dict) -> float:
    W, rank, n = p["workers"], p["rank"], p["floats"]
    ch = ArrayChannel(ctx.storage(p["service"]), poll_interval=p["poll_interval_s"])
    reduce = COLLECTIVES[p["pattern"]]
    worst = 0.0
    for rnd in range(p["rounds"]):
        g = ctx.memory.track(gradient(p["seed"], rnd, rank, n), "gradient")
        if p["scratch_mb"]:
            scratch = np.ones(int(p["scratch_mb"] * 2**20) // 8)  # untracked on purpose
            del scratch
        ctx.compute(flops=p["gflop_per_round"] * 1e9)
        t0 = ctx.now
        mean = reduce(ch, rank, W, f"round{rnd}", g)
        t1 = ctx.now
        ref = np.mean([gradient(p["seed"], rnd, r, n) for r in range(W)], axis=0) if rank == 0 else None
        err = float(np.max(np.abs(mean - ref))) if ref is not None else 0.0
        worst = max(worst, err)
        if err > 1e-9:
            raise AssertionError(f"round {rnd}: all-reduce result differs from numpy by {err}")
        ctx.log("round", round=rnd, rank=rank, comm_s=t1 - t0, end_s=t1)
    return worst


class AllReduceExperiment(Experiment):
    name = "allreduce"
    description = "storage-mediated all-reduce of numpy gradients (LambdaML's pattern)"
    Params = AllReduceParams

    def handlers(self):
        return {"trigger": trigger, "worker": worker}

    def entry(self):
        return "trigger", {**self.params.model_dump(), "seed": 0}

    def handler_memory(self):
        return {"worker": self.params.memory_mb, "trigger": 128}

    def required_services(self):
        return [self.params.service]

    def reachable_services(self):
        return [self.params.service]

    def tables(self, result):
        rounds = result.metric("round")
        if rounds.empty:
            return {}
        per = rounds.groupby("round").agg(end_s=("end_s", "max"), comm_s=("comm_s", "mean")).reset_index()
        per["workers"], per["service"], per["pattern"] = self.params.workers, self.params.service, self.params.pattern
        return {"rounds": per}

    def summary_extra(self, result):
        rounds = result.metric("round")
        n = self.params.rounds
        total = result.summary["cost_usd"]["total"]
        return {"time_per_round_s": result.summary["makespan_s"] / n,
                "comm_per_round_s": float(rounds["comm_s"].mean()) if not rounds.empty else None,
                "cost_per_round_usd": total / n}

    @classmethod
    def plot_sweep(cls, sweep_dir: Path, sweep: pd.DataFrame) -> list[Path]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        ok = sweep[sweep["status"] == "ok"]
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for service, grp in ok.groupby("params.service"):
            grp = grp.sort_values("params.workers")
            axes[0].plot(grp["params.workers"], grp["time_per_round_s"], marker="o", label=service)
            axes[1].plot(grp["params.workers"], grp["cost_per_round_usd"] * 1000, marker="o", label=service)
        for ax, label in zip(axes, ["virtual time per round (s)", "cost per round (USD x 1000)"]):
            ax.set_xscale("log", base=2)
            ax.set_xlabel("workers")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            ax.legend()
        fig.suptitle("All-reduce of 1 MiB numpy gradients through storage (aws_2020 profile)")
        fig.tight_layout()
        out = sweep_dir / "allreduce.png"
        fig.savefig(out, dpi=120)
        plt.close(fig)
        return [out]
