"""The seed's synchronisation-protocol figure: synchronous vs asynchronous convergence.

    python experiments/lambdaml/sync_async.py            # one sweep (~1 min on 2 cores)
    python experiments/lambdaml/sync_async.py --plot-only

Runs configs/lambdaml/sync_async.yaml (LR/Higgs, W = 10, S3; GA-SGD and MA-SGD, each
synchronous and asynchronous) and writes results/lambdaml/sync_async.csv and sync_async.png.
Asynchronous workers do not share a step, so their losses are their own (the mean over
workers is plotted); synchronous losses are global. No numbers in the seed to overlay.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paper import RESULTS, cli, epochs_of, print_final_epochs, save, save_figure, sweep  # noqa: E402


def plot(ep: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = {"ga_sgd": "tab:blue", "ma_sgd": "tab:orange"}
    for (alg, protocol), grp in ep.groupby(["algorithm", "protocol"]):
        grp = grp.sort_values("epoch")
        style = "-" if protocol == "sync" else "--"
        label = f"{alg.upper().replace('_', '-')} {protocol}"
        axes[0].plot(grp["t_end"], grp["train_loss"], style, marker=".", color=colors[alg], label=label)
        axes[1].plot(grp["epoch"] + 1, grp["val_loss"], style, marker=".", color=colors[alg], label=label)
    axes[0].set_xlabel("virtual time (s)")
    axes[0].set_ylabel("training loss")
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("validation loss (mean of workers)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Synchronous vs asynchronous LambdaML, LR/Higgs W = 10 through S3", fontsize=10)
    save_figure(fig, path)


def main() -> None:
    args = cli(__doc__.splitlines()[0])
    if not args.plot_only:
        save(epochs_of(sweep("sync_async.yaml", serial=args.serial)), "sync_async.csv")
    ep = pd.read_csv(RESULTS / "sync_async.csv")
    plot(ep, RESULTS / "sync_async.png")
    print_final_epochs(ep, ["algorithm", "protocol"])


if __name__ == "__main__":
    main()
