"""Worker scaling: time and cost to a target loss for W = 1 to 150, with the analytical model.

    python experiments/lambdaml/scaling.py            # one sweep (~1 min on 2 cores)
    python experiments/lambdaml/scaling.py --plot-only

Runs configs/lambdaml/scaling.yaml (MA-SGD on LR/Higgs through S3 to a training loss of 0.66)
and writes results/lambdaml/scaling.csv and scaling.png: simulated end-to-end time and cost
per W, and the analytical model (sls_ray/lambdaml/analytical.py) evaluated for the same W and
the same number of epochs.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paper import CONFIGS, RESULTS, cli, save, save_figure, sweep  # noqa: E402


def model_rows(df: pd.DataFrame, config: str) -> pd.DataFrame:
    """Simulated points beside the analytical model's prediction for the same W and epochs."""
    from sls_ray.config import load_config
    from sls_ray.lambdaml.analytical import predict
    from sls_ray.runtime import build

    rows = []
    for _, r in df.iterrows():
        sets = [f"params.workers={int(r['params.workers'])}", f"params.deployment={r['params.deployment']}"]
        exp, profile = build(load_config(CONFIGS / config, sets))
        pred = predict(exp.payload, profile, int(r["epochs_run"]))
        rows.append({"deployment": r["params.deployment"], "workers": int(r["params.workers"]),
                     "epochs_run": int(r["epochs_run"]), "reached_target": bool(r["reached_target"]),
                     "final_train_loss": r["final_train_loss"], "time_s": r["makespan_s"],
                     "cost_usd": r["cost_usd.total"], "read_s": r["read_s"],
                     "comm_per_epoch_s": r["comm_per_epoch_s"],
                     **{f"model_{k}": v for k, v in pred.items()}})
    return pd.DataFrame(rows).sort_values(["deployment", "workers"])


def plot(tab: pd.DataFrame, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = {"faas": "tab:blue", "iaas": "tab:red"}
    names = {"faas": "FaaS (Lambda + S3)", "iaas": "IaaS (t2.medium cluster)"}
    for dep, grp in tab.groupby("deployment"):
        c = colors[dep]
        axes[0].plot(grp["workers"], grp["time_s"], "o", color=c, label=f"{names[dep]}, simulated")
        axes[0].plot(grp["workers"], grp["model_time_s"], "-", color=c, alpha=0.6, label=f"{names[dep]}, model")
        axes[1].plot(grp["workers"], grp["cost_usd"], "o", color=c, label=f"{names[dep]}, simulated")
        axes[1].plot(grp["workers"], grp["model_cost_usd"], "-", color=c, alpha=0.6, label=f"{names[dep]}, model")
    axes[0].set_ylabel("time to target loss (s)")
    axes[1].set_ylabel("cost to target loss (USD)")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("workers W")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    save_figure(fig, path)


def main() -> None:
    args = cli(__doc__.splitlines()[0])
    if not args.plot_only:
        save(model_rows(sweep("scaling.yaml", serial=args.serial), "scaling.yaml"), "scaling.csv")
    tab = pd.read_csv(RESULTS / "scaling.csv")
    plot(tab, RESULTS / "scaling.png", "Worker scaling: MA-SGD on LR/Higgs to loss 0.66 through S3 "
                                       "(points: simulator; lines: analytical model)")
    print(tab[["workers", "epochs_run", "time_s", "model_time_s", "cost_usd", "model_cost_usd"]].round(4)
          .to_string(index=False))


if __name__ == "__main__":
    main()
