"""Seed Fig. 4: the Cholesky profile, ready / running tasks and live working set over time.

    python experiments/numpywren/profile.py

Reads the paper-DAG Cholesky run (64 blocks of 4096; configs/numpywren/systems.yaml, the same
run as the systems table, made here if missing) and derives, from its CSVs only: tasks ready
in the queue (the driver's polls), tasks in flight (received, not yet retired), tasks being
computed, and the bytes of live intermediate blocks in S3 (written minus garbage-collected).
Writes results/numpywren/profile.csv and profile.png.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from _paper import RESULTS, pyplot, run, save_figure
from sls_ray.numpywren.job import JobSpec, block_bytes

STEP_S = 10.0


def main() -> None:
    s, d = run("systems-cholesky-64", "systems.yaml", ["params.program=cholesky", "params.blocks=64"])
    tasks = pd.read_csv(d / "tasks.csv")
    timeline = pd.read_csv(d / "timeline.csv")
    spec = JobSpec.make("cholesky", s["blocks"], s["block_size"], s["model_block_size"])
    real, model = spec.plans()
    dag = real.dag
    from sls_ray.numpywren.lambdapack import Task

    first = tasks[tasks["first"].astype(bool)]
    written = [sum(block_bytes(model, w) for w in dag.writes(Task.from_key(k)) if not dag.is_output(w))
               for k in first["task"]]
    events = pd.concat([pd.DataFrame({"t": first["retired"], "delta": written}),
                        pd.DataFrame({"t": tasks["retired"], "delta": -tasks["gc_bytes"]})]).sort_values("t")
    grid = np.arange(0.0, float(tasks["retired"].max()) + STEP_S, STEP_S)
    live = np.interp(grid, events["t"], events["delta"].cumsum(), left=0.0)
    in_flight = [int(((tasks["recv"] <= t) & (tasks["retired"] > t)).sum()) for t in grid]
    computing = [int(((tasks["start"] <= t) & (tasks["end"] > t)).sum()) for t in grid]
    ready = np.interp(grid, timeline["t"], timeline["waiting"])
    prof = pd.DataFrame({"t": grid, "ready": ready, "in_flight": in_flight, "computing": computing,
                         "live_intermediate_bytes": live})
    RESULTS.mkdir(parents=True, exist_ok=True)
    prof.to_csv(RESULTS / "profile.csv", index=False)

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot(prof["t"], prof["ready"], label="ready (queued)", lw=1)
    ax.plot(prof["t"], prof["in_flight"], label="running (leased)", lw=1)
    ax.set_xlabel("virtual time (s)")
    ax.set_ylabel("tasks")
    ax2 = ax.twinx()
    ax2.plot(prof["t"], prof["live_intermediate_bytes"] / 2**40, "k", lw=1.5, label="live working set (TiB)")
    ax2.set_ylabel("live intermediate blocks (TiB)")
    ax.legend(loc="upper right", fontsize=8)
    ax2.legend(loc="center right", fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title(f"Cholesky N = {s['matrix_side_model'] // 1024}K, block {s['model_block_size']}: parallelism and "
                 "working set (seed Fig. 4: a decaying sawtooth, no numbers given)", fontsize=9)
    save_figure(fig, "profile")
    plt.close(fig)
    peak = prof.loc[prof["live_intermediate_bytes"].idxmax()]
    print(f"peak live working set {peak['live_intermediate_bytes'] / 2**40:.2f} TiB at t={peak['t']:.0f}s; "
          f"peak ready {prof['ready'].max():.0f}, peak running {prof['in_flight'].max()}")


if __name__ == "__main__":
    main()
