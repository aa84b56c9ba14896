"""Seed Fig. 6: autoscaling, executors against pending tasks for several scaling factors and a fixed pool.

    python experiments/numpywren/autoscale.py

configs/numpywren/autoscale.yaml (Cholesky N = 128K) with the dynamic policy at sf = 0.25, 0.5,
1.0, and the source's fixed pool of the same cap (301 executors). Writes
results/numpywren/autoscale.csv (completion time, core-seconds, cost per policy),
autoscale_timeline.csv and autoscale.png.
"""
from __future__ import annotations

import pandas as pd

from _paper import RESULTS, pyplot, run, save_figure

POLICIES = [("dynamic sf=0.25", ["params.sf=0.25"]), ("dynamic sf=0.5", ["params.sf=0.5"]),
            ("dynamic sf=1.0", ["params.sf=1.0"]), ("fixed pool 301", ["params.policy=fixed"])]


def main() -> None:
    rows, timelines = [], []
    for label, sets in POLICIES:
        s, d = run("autoscale-" + label.replace(" ", "-").replace("=", ""), "autoscale.yaml", sets)
        tl = pd.read_csv(d / "timeline.csv").assign(policy_label=label)
        timelines.append(tl)
        rows.append({"policy": label, "completion_s": s["completion_s"], "core_s": s["core_s"],
                     "billed_core_s": s["billed_core_s"], "cost_usd": s["cost_usd"]["total"],
                     "executors_launched": s["executors"], "peak_executors": s["counts"]["peak_concurrency"],
                     "correct": s["correct"]})
    df = pd.DataFrame(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    df.to_csv(RESULTS / "autoscale.csv", index=False)
    pd.concat(timelines).to_csv(RESULTS / "autoscale_timeline.csv", index=False)

    plt = pyplot()
    fig, axes = plt.subplots(1, len(POLICIES) + 1, figsize=(18, 3.8))
    for ax, tl in zip(axes, timelines):
        ax.plot(tl["t"], tl["waiting"], label="pending tasks", lw=1)
        ax.plot(tl["t"], tl["up"], label="live executors", lw=1)
        ax.set_title(tl["policy_label"].iloc[0], fontsize=9)
        ax.set_xlabel("virtual time (s)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    ax = axes[-1]
    ax.scatter(df["billed_core_s"], df["completion_s"])
    for r in df.itertuples():
        ax.annotate(r.policy, (r.billed_core_s, r.completion_s), fontsize=7)
    ax.set_xlabel("billed core-seconds")
    ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
    ax.set_ylabel("completion time (s)")
    ax.set_title("trade-off (seed Fig. 6: no numbers given)", fontsize=9)
    ax.grid(alpha=0.3)
    save_figure(fig, "autoscale")
    plt.close(fig)
    print(df.to_string())


if __name__ == "__main__":
    main()
