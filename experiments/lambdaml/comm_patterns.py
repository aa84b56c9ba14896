"""The seed's communication-pattern table: AllReduce vs ScatterReduce seconds per round through S3.

    python experiments/lambdaml/comm_patterns.py            # three sweeps (~2 min on 2 cores)
    python experiments/lambdaml/comm_patterns.py --plot-only

Runs configs/lambdaml/comm_{lr,mobilenet,resnet}.yaml (LR W=50, MobileNet W=10, ResNet-50 W=10,
GA-SGD with one exchange per step) and writes results/lambdaml/comm_patterns.csv and
comm_patterns.png. A round's time is the mean over workers and steps of the time from a
worker's first put to the moment it holds the reduced vector, skipping the first step (which
also waits for the other workers' cold starts and data loading).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paper import COMM_TABLE, RESULTS, cli, rounds_of, save, save_figure, sweep  # noqa: E402

LABELS = {"lr": "LR, Higgs, W=50", "mobilenet": "MobileNet, Cifar10, W=10", "resnet50": "ResNet, Cifar10, W=10"}


def table(df: pd.DataFrame, rounds: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, r in df.iterrows():
        model, pattern = r["params.model"], r["params.pattern"]
        rd = rounds[(rounds["model"] == model) & (rounds["pattern"] == pattern) & (rounds["step"] > 0)]
        label = LABELS[model]
        seed = COMM_TABLE[label]
        paper = seed[1] if pattern == "allreduce" else seed[2]
        per_round = float(rd["comm_s"].mean())
        rows.append({"workload": label, "model_bytes": int(r["vector_bytes"]) - 2 * (4 if model != "lr" else 8),
                     "paper_model_size": seed[0], "pattern": pattern, "workers": int(r["params.workers"]),
                     "comm_per_round_s": per_round, "comm_max_s": float(rd["comm_max_s"].mean()),
                     "paper_s": paper, "ratio_to_paper": per_round / paper})
    out = pd.DataFrame(rows)
    for label, grp in out.groupby("workload"):
        ar = grp[grp["pattern"] == "allreduce"]["comm_per_round_s"].iloc[0]
        sr = grp[grp["pattern"] == "scatter_reduce"]["comm_per_round_s"].iloc[0]
        out.loc[grp.index, "ar_over_sr"] = ar / sr
        out.loc[grp.index, "paper_ar_over_sr"] = COMM_TABLE[label][1] / COMM_TABLE[label][2]
    return out


def plot(tab: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(tab["workload"]))
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for i, (pattern, color) in enumerate([("allreduce", "tab:blue"), ("scatter_reduce", "tab:orange")]):
        sub = tab[tab["pattern"] == pattern].set_index("workload").loc[labels]
        xs = x + (i - 0.5) * 0.38
        ax.bar(xs, sub["comm_per_round_s"], 0.36, color=color, alpha=0.8, label=f"{pattern} (simulated)")
        ax.scatter(xs, sub["paper_s"], marker="_", s=500, color="black", zorder=3,
                   label="seed (paper)" if i == 0 else None)
        for xi, v in zip(xs, sub["comm_per_round_s"]):
            ax.text(xi, v * 1.03, f"{v:.1f}s", ha="center", fontsize=8)
    sizes = tab.drop_duplicates("workload").set_index("workload").loc[labels, "model_bytes"]
    ax.set_xticks(x, [f"{l}\n{s / 1e6:.3g} MB" if s > 1e4 else f"{l}\n{s} B" for l, s in zip(labels, sizes)])
    ax.set_ylabel("communication per round (s), S3")
    ax.set_yscale("log")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    ax.set_title("AllReduce vs ScatterReduce through S3 (aws_2020_lambdaml profile)", fontsize=10)
    save_figure(fig, path)


def main() -> None:
    args = cli(__doc__.splitlines()[0])
    if not args.plot_only:
        frames, rounds = [], []
        for config in ("comm_lr.yaml", "comm_mobilenet.yaml", "comm_resnet.yaml"):
            df = sweep(config, serial=args.serial)
            frames.append(df)
            rounds.append(rounds_of(df))
        save(table(pd.concat(frames, ignore_index=True), pd.concat(rounds, ignore_index=True)), "comm_patterns.csv")
    tab = pd.read_csv(RESULTS / "comm_patterns.csv")
    plot(tab, RESULTS / "comm_patterns.png")
    print(tab[["workload", "pattern", "comm_per_round_s", "paper_s", "ar_over_sr", "paper_ar_over_sr"]]
          .round(2).to_string(index=False))


if __name__ == "__main__":
    main()
