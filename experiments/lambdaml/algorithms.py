"""The seed's algorithm figure: loss vs time and vs dollars for GA-SGD, MA-SGD and ADMM.

    python experiments/lambdaml/algorithms.py            # three sweeps (~2 min on 2 cores)
    python experiments/lambdaml/algorithms.py --plot-only

Runs configs/lambdaml/algorithms_{lr,svm,mobilenet}.yaml (W = 10, through S3) and writes
results/lambdaml/algorithms.csv (every epoch of every run: virtual time, dollars so far,
global training loss, mean validation loss) and algorithms.png. The seed gives this figure
without numbers, so nothing is overlaid; results/README.md compares the shapes.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paper import RESULTS, cli, epochs_of, print_final_epochs, save, save_figure, sweep  # noqa: E402

PANELS = [("lr", "(a) LR, Higgs"), ("svm", "(b) SVM, Higgs"), ("mobilenet", "(c) MobileNet, Cifar10")]
STYLE = {"ga_sgd": ("tab:blue", "GA-SGD"), "ma_sgd": ("tab:orange", "MA-SGD"), "admm": ("tab:green", "ADMM")}


def plot(ep: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(14, 7.5))
    for col, (model, title) in enumerate(PANELS):
        sub = ep[ep["model"] == model]
        for alg, grp in sub.groupby("algorithm"):
            color, label = STYLE[alg]
            grp = grp.sort_values("epoch")
            axes[0, col].plot(grp["t_end"], grp["train_loss"], marker=".", color=color, label=label)
            axes[1, col].plot(grp["cost_usd"], grp["train_loss"], marker=".", color=color, label=label)
        axes[0, col].set_title(title)
        axes[0, col].set_xlabel("virtual time (s)")
        axes[1, col].set_xlabel("cost (USD)")
        for ax in axes[:, col]:
            ax.set_ylabel("training loss (global)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle("LambdaML algorithms, W = 10 through S3 (aws_2020_lambdaml); loss of every epoch / ADMM round",
                 fontsize=10)
    save_figure(fig, path)


def main() -> None:
    args = cli(__doc__.splitlines()[0])
    if not args.plot_only:
        frames = [epochs_of(sweep(c, serial=args.serial))
                  for c in ("algorithms_lr.yaml", "algorithms_svm.yaml", "algorithms_mobilenet.yaml")]
        save(pd.concat(frames, ignore_index=True), "algorithms.csv")
    ep = pd.read_csv(RESULTS / "algorithms.csv")
    plot(ep, RESULTS / "algorithms.png")
    print_final_epochs(ep, ["model", "algorithm"])


if __name__ == "__main__":
    main()
