"""NumPyWren simulation speed: real seconds, simcalls per task, real microseconds per simcall.

    python benchmarks/numpywren_bench.py            # Cholesky 16 blocks (816 tasks), real 64x64 blocks
    python benchmarks/numpywren_bench.py --paper    # also the paper's DAG: 64 blocks (45,760 tasks) folded

The first case computes everything at real size (blocks of 64, N = 1024); the second charges
4096-blocks for compute, bytes, memory and storage while numpy works on 4x4 blocks. Both use
the local transport (threads) and the systems-table settings of the round the numbers in
benchmarks/README.md were measured in (pipeline width 1, the dynamic policy, at most 301
executors; the systems table now uses the source's fixed pool). Virtual results are
deterministic; the real times are not.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sls_ray.config import load_config  # noqa: E402
from sls_ray.runtime import simulate  # noqa: E402

CASES = {
    "cholesky-16-real": {"program": "cholesky", "blocks": 16, "block_size": 64},
    "cholesky-64-folded": {"program": "cholesky", "blocks": 64, "block_size": 4, "model_block_size": 4096},
}


def bench(name: str) -> dict:
    params = {**CASES[name], "pipeline_width": 1, "policy": "dynamic", "max_executors": 301, "baselines": False}
    cfg = load_config(data={"experiment": "numpywren", "profile": {"functions": {"async_retries": 0}},
                            "params": params})
    t0 = time.perf_counter()
    r = simulate(cfg)
    wall = time.perf_counter() - t0
    s = r.summary
    tasks, simcalls = s["tasks_total"], s["counts"]["simcalls"]
    return {"case": name, "tasks": tasks, "correct": s["correct"], "virtual_completion_s": s["completion_s"],
            "functions": s["counts"]["functions"], "peak_concurrency": s["counts"]["peak_concurrency"],
            "simcalls": simcalls, "simcalls_per_task": round(simcalls / tasks, 2),
            "real_s": round(wall, 1), "real_us_per_simcall": round(wall / simcalls * 1e6, 1),
            "real_ms_per_task": round(wall / tasks * 1e3, 2), "cpus": os.cpu_count(),
            "load_avg_1min": round(os.getloadavg()[0], 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paper", action="store_true", help="also run the 45,760-task paper DAG (minutes)")
    args = ap.parse_args()
    for name in ["cholesky-16-real"] + (["cholesky-64-folded"] if args.paper else []):
        print(json.dumps(bench(name)), flush=True)


if __name__ == "__main__":
    main()
