"""The seed's channel table: cost and slowdown of Memcached, DynamoDB and the VM-PS relative to S3.

    python experiments/lambdaml/channels.py            # runs three sweeps (~5 min on 2 cores)
    python experiments/lambdaml/channels.py --plot-only

Runs configs/lambdaml/channels_{lr,kmeans,mobilenet}.yaml and writes
results/lambdaml/channels.csv (one row per workload and channel, with the seed's ratios
beside ours) and channels.png. Ratios are end to end: makespan and total cost, which include
the Memcached node's and the parameter-server VM's start-up (configs/platforms/
aws_2020_lambdaml.yaml) and bill the nodes for their whole uptime. The MobileNet rows simulate
two epochs and are also projected to a 20-epoch run (start-up + 20 x the simulated steady
epoch), since the seed's MobileNet runs are long enough to amortise start-up.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paper import CHANNEL_TABLE, RESULTS, cli, epochs_of, save, save_figure, sweep, within  # noqa: E402

PROJECT_EPOCHS = 20
CHANNELS = ["memcached", "dynamodb", "vm"]


def workload(row: pd.Series) -> str:
    model = row["params.model"]
    if model == "lr":
        return f"LR, Higgs, W={row['params.workers']}"
    if model == "kmeans":
        return f"KMeans, Higgs, W={row['params.workers']}, k={'1K' if row['params.k'] == 1000 else row['params.k']}"
    return f"MobileNet, Cifar10, W={row['params.workers']}"


def projected(points: pd.DataFrame, epochs: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """channel -> (time, cost) of a PROJECT_EPOCHS run: simulated run + the rest at the last epoch's pace."""
    out = {}
    for _, row in points.iterrows():
        ep = epochs[(epochs["channel"] == row["params.channel"])].sort_values("epoch")
        if len(ep) < 2:
            continue
        dt = ep["t_end"].iloc[-1] - ep["t_end"].iloc[-2]
        dc = ep["cost_usd"].iloc[-1] - ep["cost_usd"].iloc[-2]
        extra = PROJECT_EPOCHS - len(ep)
        out[row["params.channel"]] = (row["makespan_s"] + extra * dt, row["cost_usd.total"] + extra * dc)
    return out


def table(df: pd.DataFrame, epochs: pd.DataFrame) -> pd.DataFrame:
    rows = []
    df = df.assign(workload=df.apply(workload, axis=1))
    for name, grp in df.groupby("workload", sort=False):
        s3 = grp[grp["params.channel"] == "s3"].iloc[0]
        bases = [("simulated", {r["params.channel"]: (r["makespan_s"], r["cost_usd.total"])
                                for _, r in grp.iterrows() if r.get("channel_supported", True) is not False})]
        if name.startswith("MobileNet"):
            W = int(s3["params.workers"])
            bases.append((f"projected to {PROJECT_EPOCHS} epochs",
                          projected(grp, epochs[(epochs["model"] == "mobilenet") & (epochs["workers"] == W)])))
        for basis, values in bases:
            t0, c0 = values["s3"]
            for ch in CHANNELS:
                r = grp[grp["params.channel"] == ch].iloc[0]
                paper = CHANNEL_TABLE[name][ch]
                row = {"workload": name, "channel": ch, "basis": basis, "workers": int(r["params.workers"]),
                       "includes_startup": True, "s3_time_s": t0, "s3_cost_usd": c0,
                       "paper_cost": paper[0] if paper else np.nan, "paper_slowdown": paper[1] if paper else np.nan}
                if ch not in values:
                    row.update(time_s=np.nan, cost_usd=np.nan, cost=np.nan, slowdown=np.nan,
                               note="N/A: " + str(r.get("na_reason", ""))[:160])
                else:
                    t, c = values[ch]
                    row.update(time_s=t, cost_usd=c, cost=c / c0, slowdown=t / t0, note="")
                    if paper:
                        row.update(cost_ok=within(c / c0, paper[0]), slowdown_ok=within(t / t0, paper[1]))
                rows.append(row)
    return pd.DataFrame(rows)


def plot(tab: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = tab[~((tab["workload"].str.startswith("MobileNet")) & (tab["basis"] == "simulated"))]
    labels = [f"{w}\n{c}" for w, c in zip(shown["workload"], shown["channel"])]
    x = np.arange(len(shown))
    colors = [{"memcached": "tab:orange", "dynamodb": "tab:green", "vm": "tab:red"}[c] for c in shown["channel"]]
    fig, axes = plt.subplots(2, 1, figsize=(15, 8.5), sharex=True)
    for ax, col, paper_col, title in [(axes[0], "slowdown", "paper_slowdown", "slowdown vs S3 (time / S3 time)"),
                                      (axes[1], "cost", "paper_cost", "relative cost vs S3 (cost / S3 cost)")]:
        ax.bar(x, shown[col].fillna(0), color=colors, alpha=0.75, label="simulated (bar)")
        ax.scatter(x, shown[paper_col], marker="_", s=500, linewidths=2.5, color="black", zorder=3,
                   label="seed (paper)")
        for xi, (v, pv) in enumerate(zip(shown[col], shown[paper_col])):
            if np.isnan(v):
                ax.text(xi, 0.15, "N/A\n(both)" if np.isnan(pv) else "N/A", ha="center", fontsize=8)
                continue
            ax.text(xi, v + 0.12, f"{v:.2f}", ha="center", fontsize=7)
            if not np.isnan(pv):
                ax.text(xi + 0.42, pv, f"{pv:g}", ha="left", va="center", fontsize=6, color="black")
        ax.axhline(1.0, color="gray", lw=0.8, ls="--")
        ax.set_ylabel(title)
        ax.set_ylim(0, 1.12 * np.nanmax(np.r_[shown[col].to_numpy(float), shown[paper_col].to_numpy(float)]))
        ax.grid(alpha=0.3, axis="y")
        ax.legend(loc="upper left", fontsize=8)
    axes[1].set_xticks(x, labels, rotation=60, ha="right", fontsize=7)
    fig.suptitle("LambdaML channels vs S3, end to end: ratios include the Memcached node's and the PS VM's "
                 f"start-up and idle billing (aws_2020_lambdaml); MobileNet rows projected to {PROJECT_EPOCHS} epochs",
                 fontsize=10)
    save_figure(fig, path)


def main() -> None:
    args = cli(__doc__.splitlines()[0])
    csv = RESULTS / "channels.csv"
    if not args.plot_only:
        frames, epochs = [], []
        for config in ("channels_lr.yaml", "channels_kmeans.yaml", "channels_mobilenet.yaml"):
            # MobileNet at W=50 holds ~50 models' worth of vectors at a barrier: one point at a time
            df = sweep(config, serial=args.serial or config == "channels_mobilenet.yaml")
            frames.append(df)
            epochs.append(epochs_of(df))
        save(table(pd.concat(frames, ignore_index=True), pd.concat(epochs, ignore_index=True)), "channels.csv")
    tab = pd.read_csv(csv)
    plot(tab, RESULTS / "channels.png")
    cols = ["workload", "channel", "basis", "slowdown", "paper_slowdown", "cost", "paper_cost"]
    print(tab[cols].round(2).to_string(index=False))


if __name__ == "__main__":
    main()
