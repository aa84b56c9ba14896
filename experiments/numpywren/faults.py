"""Seed Fig. 5: fault tolerance, tasks done and live executors when executors are killed mid-run.

    python experiments/numpywren/faults.py

configs/numpywren/faults.yaml: a fixed pool of 64 executors runs Cholesky N = 128K; at
t = KILL_AT a fault plan kills 0 %, 25 % or 50 % of the live executors. Their leases (60 s)
expire, their tasks reappear for the survivors, and the pool's next relaunch replaces them.
Writes results/numpywren/faults.csv (one row per run: slowdown, repeated tasks, the gap before
the killed tasks restarted) and faults_timeline.csv / faults.png (tasks done and live executors).
"""
from __future__ import annotations

import pandas as pd

from _paper import RESULTS, pyplot, run, save_figure

KILL_AT = 500.0
FRACTIONS = [0.0, 0.25, 0.5]


def main() -> None:
    rows, timelines = [], []
    base = None
    for frac in FRACTIONS:
        faults = [] if frac == 0 else [{"kind": "kill_fraction", "fraction": frac, "t0_s": KILL_AT, "t1_s": KILL_AT,
                                        "handler": "executor"}]
        s, d = run(f"faults-{int(frac * 100)}", "faults.yaml", faults=faults)
        tl = pd.read_csv(d / "timeline.csv").assign(killed_fraction=frac)
        tasks = pd.read_csv(d / "tasks.csv")
        ex = pd.read_csv(d / "executors.csv")
        timelines.append(tl)
        if frac == 0:
            base = s["completion_s"]
        restarts = tasks[tasks["repeat"].astype(bool)]
        rows.append({
            "killed_fraction": frac, "kill_at_s": KILL_AT,
            "executors_killed": int((ex["status"] == "FunctionKilled").sum()),
            "completion_s": s["completion_s"], "slowdown": s["completion_s"] / base if base else None,
            "repeated_tasks": s["repeated_tasks"], "extra_executions": s["extra_executions"],
            "first_restart_after_kill_s": float(restarts["recv"].min() - KILL_AT) if len(restarts) else None,
            "last_restart_after_kill_s": float(restarts["recv"].max() - KILL_AT) if len(restarts) else None,
            "core_s": s["core_s"], "correct": s["correct"], "max_rel_error": s["max_rel_error"],
        })
    df = pd.DataFrame(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    df.to_csv(RESULTS / "faults.csv", index=False)
    pd.concat(timelines).to_csv(RESULTS / "faults_timeline.csv", index=False)

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for tl in timelines:
        frac = tl["killed_fraction"].iloc[0]
        axes[0].plot(tl["t"], tl["done"], label=f"{frac:.0%} killed")
        axes[1].plot(tl["t"], tl["up"], label=f"{frac:.0%} killed", lw=1)
    for ax, label in zip(axes, ["tasks finished", "live executors (heartbeats)"]):
        ax.axvline(KILL_AT, color="k", ls=":", lw=1)
        ax.set_xlabel("virtual time (s)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_title("Cholesky N = 128K, 64 executors, kill at t = 500 s (lease 60 s)", fontsize=9)
    axes[1].set_title("seed Fig. 5: recovers after lease expiry (no numbers given)", fontsize=9)
    save_figure(fig, "faults")
    plt.close(fig)
    print(df.to_string())


if __name__ == "__main__":
    main()
