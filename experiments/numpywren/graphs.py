"""Task graphs of every NumPyWren program, the original compiler's and our compact one (issue 12).

    python experiments/numpywren/graphs.py [--blocks 64]

For each program at the paper's DAG (64 blocks of 4096; TSQR also over 63 row blocks, where
the two graphs' trees differ) and each graph (``original``: the original compiler's, the
default; ``compact``: ours), writes results/numpywren/graphs.csv: the task count, the
original compiler's count from sls_ray/numpywren/original.py (equal for ``original``), and
the critical path in tasks and in virtual seconds (job.critical_path: each task's unloaded
time on one 3008 MB executor of the aws_2020 profile; the completion-time floor with
unlimited executors). No simulation runs: it walks the DAGs (about 10 min on one core).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from sls_ray.api import load_profile, write_csv
from sls_ray.numpywren import original
from sls_ray.numpywren.job import JobSpec, critical_path
from sls_ray.numpywren.programs import GRAPHS

OUT = Path(__file__).resolve().parents[2] / "results" / "numpywren" / "graphs.csv"
EXECUTOR_MB = 3008  # the executors' memory in every NumPyWren config (1.7 vCPUs)


def original_count(program: str, blocks: int) -> int:
    return {"cholesky": original.cholesky_tasks, "gemm": lambda n: original.gemm_tasks(n, n, n),
            "tsqr": original.tsqr_tasks, "qr": original.qr_tasks, "bdfac": original.bdfac_tasks}[program](blocks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=64, help="blocks per side (the paper: 64)")
    parser.add_argument("--block", type=int, default=4096, help="model block side (the paper: 4096)")
    args = parser.parse_args()
    profile = load_profile("aws_2020")
    fn = profile.functions
    flops_per_s = fn.gflops_per_vcpu * 1e9 * fn.vcpus(EXECUTOR_MB)
    latency_s = profile.service_config("s3").latency_s
    points = [(p, args.blocks) for p in ("cholesky", "gemm", "tsqr", "qr", "bdfac")] + [("tsqr", args.blocks - 1)]
    rows = []
    for program, blocks in points:
        for graph in GRAPHS:
            spec = JobSpec.make(program, blocks, 4, args.block, graph=graph)
            path = critical_path(spec, flops_per_s, fn.nic_mbs * 1e6, latency_s)
            rows.append({"program": program, "graph": graph, "blocks": blocks, "block_size_model": args.block,
                         "tasks": spec.plans()[0].dag.num_tasks(), "original_tasks": original_count(program, blocks),
                         "critical_path_tasks": path.tasks, "critical_path_s": round(path.seconds, 1),
                         "critical_path_s_tasks": path.seconds_tasks, "gflops_per_vcpu": fn.gflops_per_vcpu,
                         "executor_mb": EXECUTOR_MB, "nic_mbs": fn.nic_mbs, "s3_latency_s": latency_s})
            print(rows[-1], flush=True)
    write_csv(OUT, pd.DataFrame(rows))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
