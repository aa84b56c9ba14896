"""LambdaML's reproducible figures (``sls-ray reproduce lambdaml/<name>``, ``lambdaml --all``).

The paper's numbers are from ../shared/papers/lambdaml.md ("Figures and tables to reproduce",
[seed]). Each figure sweeps configs in configs/lambdaml/ through the core harness
(sls_ray/harness.py): points under ``runs/lambdaml/<config>/`` (not committed, resumable), one
long-format CSV and one PNG per figure in ``results/lambdaml/``; results/README.md says what
matches the paper and what does not.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from sls_ray.api import Figure, SweepRun, SweepSpec, overlay_paper, pyplot

DPI = 110

#: workload -> channel -> (cost relative to S3, slowdown relative to S3); None = N/A [seed, table 1]
CHANNEL_TABLE: dict[str, dict[str, tuple[float, float] | None]] = {
    "LR, Higgs, W=10": {"memcached": (5.0, 4.17), "dynamodb": (0.95, 0.83), "vm": (4.7, 3.85)},
    "LR, Higgs, W=50": {"memcached": (4.5, 3.70), "dynamodb": (0.92, 0.81), "vm": (4.47, 3.70)},
    "KMeans, Higgs, W=50, k=10": {"memcached": (1.58, 1.32), "dynamodb": (1.13, 0.93), "vm": (1.48, 1.23)},
    "KMeans, Higgs, W=50, k=1K": {"memcached": (1.43, 1.19), "dynamodb": (1.03, 0.90), "vm": (1.52, 1.27)},
    "MobileNet, Cifar10, W=10": {"memcached": (0.9, 0.77), "dynamodb": None, "vm": (4.8, 4.01)},
    "MobileNet, Cifar10, W=50": {"memcached": (0.89, 0.75), "dynamodb": None, "vm": (4.85, 4.03)},
}

#: workload -> (model bytes as the seed states it, AllReduce s/round, ScatterReduce s/round) [seed]
COMM_TABLE: dict[str, tuple[str, float, float]] = {
    "LR, Higgs, W=50": ("224B", 9.2, 9.8),
    "MobileNet, Cifar10, W=10": ("12MB", 3.3, 3.1),
    "ResNet, Cifar10, W=10": ("89MB", 17.3, 8.5),
}

Runs = Mapping[str, SweepRun]
Tables = Mapping[str, pd.DataFrame]


def within(ours: float, paper: float, tol: float = 0.25) -> bool:
    """Within ``tol`` of the seed's value and on the same side of 1."""
    return abs(ours / paper - 1.0) <= tol and (ours - 1.0) * (paper - 1.0) > 0


def _sweeps(runs: Runs, *names: str) -> pd.DataFrame:
    return pd.concat([runs[n].table for n in names], ignore_index=True)


def _point_tables(runs: Runs, csv: str, *names: str) -> pd.DataFrame:
    return pd.concat([runs[n].point_table(csv) for n in names], ignore_index=True)


def final_epochs(ep: pd.DataFrame, keys: list[str]) -> str:
    """The last epoch of each run: where each curve ended, in time, dollars and loss."""
    last = ep.sort_values("epoch").groupby(keys).tail(1)
    return last[keys + ["epoch", "t_end", "cost_usd", "train_loss", "val_loss"]].round(4).to_string(index=False)


# -- channels: the seed's table 1, cost and slowdown of each channel relative to S3

PROJECT_EPOCHS = 20  # MobileNet rows are also projected to a run long enough to amortise start-up
CHANNELS = ["memcached", "dynamodb", "vm"]
CHANNEL_SWEEPS = ("channels_lr", "channels_kmeans", "channels_mobilenet")


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


def channel_table(df: pd.DataFrame, epochs: pd.DataFrame) -> pd.DataFrame:
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


def channels_tables(runs: Runs) -> dict[str, pd.DataFrame]:
    return {"channels": channel_table(_sweeps(runs, *CHANNEL_SWEEPS),
                                      _point_tables(runs, "epochs.csv", *CHANNEL_SWEEPS))}


def channels_plot(csvs: Tables) -> dict:
    plt = pyplot()
    tab = csvs["channels"]
    shown = tab[~((tab["workload"].str.startswith("MobileNet")) & (tab["basis"] == "simulated"))]
    labels = [f"{w}\n{c}" for w, c in zip(shown["workload"], shown["channel"])]
    x = np.arange(len(shown))
    colors = [{"memcached": "tab:orange", "dynamodb": "tab:green", "vm": "tab:red"}[c] for c in shown["channel"]]
    fig, axes = plt.subplots(2, 1, figsize=(15, 8.5), sharex=True)
    for ax, col, paper_col, title in [(axes[0], "slowdown", "paper_slowdown", "slowdown vs S3 (time / S3 time)"),
                                      (axes[1], "cost", "paper_cost", "relative cost vs S3 (cost / S3 cost)")]:
        ax.bar(x, shown[col].fillna(0), color=colors, alpha=0.75, label="simulated (bar)")
        overlay_paper(ax, x, shown[paper_col], marker="_", size=22, annotate=True)
        for xi, (v, pv) in enumerate(zip(shown[col], shown[paper_col])):
            if np.isnan(v):
                ax.text(xi, 0.15, "N/A\n(both)" if np.isnan(pv) else "N/A", ha="center", fontsize=8)
                continue
            ax.text(xi, v + 0.12, f"{v:.2f}", ha="center", fontsize=7)
        ax.axhline(1.0, color="gray", lw=0.8, ls="--")
        ax.set_ylabel(title)
        ax.set_ylim(0, 1.12 * np.nanmax(np.r_[shown[col].to_numpy(float), shown[paper_col].to_numpy(float)]))
        ax.grid(alpha=0.3, axis="y")
        ax.legend(loc="upper left", fontsize=8)
    axes[1].set_xticks(x, labels, rotation=60, ha="right", fontsize=7)
    fig.suptitle("LambdaML channels vs S3, end to end: ratios include the Memcached node's and the PS VM's "
                 f"start-up and idle billing (aws_2020_lambdaml); MobileNet rows projected to {PROJECT_EPOCHS} epochs",
                 fontsize=10)
    return {"channels": fig}


def channels_report(csvs: Tables) -> str:
    cols = ["workload", "channel", "basis", "slowdown", "paper_slowdown", "cost", "paper_cost"]
    return csvs["channels"][cols].round(2).to_string(index=False)


# -- comm_patterns: the seed's AllReduce vs ScatterReduce seconds per round through S3

COMM_LABELS = {"lr": "LR, Higgs, W=50", "mobilenet": "MobileNet, Cifar10, W=10", "resnet50": "ResNet, Cifar10, W=10"}
COMM_SWEEPS = ("comm_lr", "comm_mobilenet", "comm_resnet")


def comm_table(df: pd.DataFrame, rounds: pd.DataFrame) -> pd.DataFrame:
    """A round's time: mean over workers and steps, first put to holding the reduced vector,
    skipping step 0 (which also waits for the other workers' cold starts and data loading)."""
    rows = []
    for _, r in df.iterrows():
        model, pattern = r["params.model"], r["params.pattern"]
        rd = rounds[(rounds["model"] == model) & (rounds["pattern"] == pattern) & (rounds["step"] > 0)]
        label = COMM_LABELS[model]
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


def comm_tables(runs: Runs) -> dict[str, pd.DataFrame]:
    return {"comm_patterns": comm_table(_sweeps(runs, *COMM_SWEEPS), _point_tables(runs, "rounds.csv", *COMM_SWEEPS))}


def comm_plot(csvs: Tables) -> dict:
    plt = pyplot()
    tab = csvs["comm_patterns"]
    labels = list(dict.fromkeys(tab["workload"]))
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for i, (pattern, color) in enumerate([("allreduce", "tab:blue"), ("scatter_reduce", "tab:orange")]):
        sub = tab[tab["pattern"] == pattern].set_index("workload").loc[labels]
        xs = x + (i - 0.5) * 0.38
        ax.bar(xs, sub["comm_per_round_s"], 0.36, color=color, alpha=0.8, label=f"{pattern} (simulated)")
        overlay_paper(ax, xs, sub["paper_s"], marker="_", size=22, label="paper" if i == 0 else "_nolegend_")
        for xi, v in zip(xs, sub["comm_per_round_s"]):
            ax.text(xi, v * 1.03, f"{v:.1f}s", ha="center", fontsize=8)
    sizes = tab.drop_duplicates("workload").set_index("workload").loc[labels, "model_bytes"]
    ax.set_xticks(x, [f"{l}\n{s / 1e6:.3g} MB" if s > 1e4 else f"{l}\n{s} B" for l, s in zip(labels, sizes)])
    ax.set_ylabel("communication per round (s), S3")
    ax.set_yscale("log")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    ax.set_title("AllReduce vs ScatterReduce through S3 (aws_2020_lambdaml profile)", fontsize=10)
    return {"comm_patterns": fig}


def comm_report(csvs: Tables) -> str:
    cols = ["workload", "pattern", "comm_per_round_s", "paper_s", "ar_over_sr", "paper_ar_over_sr"]
    return csvs["comm_patterns"][cols].round(2).to_string(index=False)


# -- algorithms and sync_async: loss curves (the seed gives no numbers to overlay)

ALGORITHM_PANELS = [("lr", "(a) LR, Higgs"), ("svm", "(b) SVM, Higgs"), ("mobilenet", "(c) MobileNet, Cifar10")]
ALGORITHM_STYLE = {"ga_sgd": ("tab:blue", "GA-SGD"), "ma_sgd": ("tab:orange", "MA-SGD"), "admm": ("tab:green", "ADMM")}
ALGORITHM_SWEEPS = ("algorithms_lr", "algorithms_svm", "algorithms_mobilenet")


def algorithms_plot(csvs: Tables) -> dict:
    plt = pyplot()
    ep = csvs["algorithms"]
    fig, axes = plt.subplots(2, 3, figsize=(14, 7.5))
    for col, (model, title) in enumerate(ALGORITHM_PANELS):
        sub = ep[ep["model"] == model]
        for alg, grp in sub.groupby("algorithm"):
            color, label = ALGORITHM_STYLE[alg]
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
    return {"algorithms": fig}


def sync_async_plot(csvs: Tables) -> dict:
    """Asynchronous workers share no step, so their losses are their own (mean over workers)."""
    plt = pyplot()
    ep = csvs["sync_async"]
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
    return {"sync_async": fig}


# -- scaling and faas_iaas: time and cost to a target loss, beside the analytical model

def model_rows(run: SweepRun) -> pd.DataFrame:
    """Simulated points beside the analytical model's prediction for the same W and epochs."""
    from sls_ray.lambdaml.analytical import predict

    rows = []
    for i, r in run.table.iterrows():
        exp, profile = run.experiment(int(i))
        pred = predict(exp.payload, profile, int(r["epochs_run"]))
        rows.append({"deployment": r["params.deployment"], "workers": int(r["params.workers"]),
                     "epochs_run": int(r["epochs_run"]), "reached_target": bool(r["reached_target"]),
                     "final_train_loss": r["final_train_loss"], "time_s": r["makespan_s"],
                     "cost_usd": r["cost_usd.total"], "read_s": r["read_s"],
                     "comm_per_epoch_s": r["comm_per_epoch_s"],
                     **{f"model_{k}": v for k, v in pred.items()}})
    return pd.DataFrame(rows).sort_values(["deployment", "workers"])


def model_plot(tab: pd.DataFrame, title: str):
    plt = pyplot()
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
    return fig


def scaling_report(csvs: Tables) -> str:
    cols = ["workers", "epochs_run", "time_s", "model_time_s", "cost_usd", "model_cost_usd"]
    return csvs["scaling"][cols].round(4).to_string(index=False)


def faas_iaas_report(csvs: Tables) -> str:
    wide = csvs["faas_iaas"].pivot(index="workers", columns="deployment", values=["time_s", "cost_usd"])
    wide.columns = [f"{a}_{b}" for a, b in wide.columns]
    wide["faas_speedup"] = wide["time_s_iaas"] / wide["time_s_faas"]
    wide["faas_cost_ratio"] = wide["cost_usd_faas"] / wide["cost_usd_iaas"]
    return wide.round(4).to_string()


def _specs(*names: str, serial: tuple[str, ...] = ()) -> tuple[SweepSpec, ...]:
    return tuple(SweepSpec(n, f"lambdaml/{n}.yaml", serial=n in serial) for n in names)


FIGURES = [
    Figure(key="lambdaml/channels", title="cost and slowdown of Memcached, DynamoDB, VM-PS vs S3 (seed table 1)",
           # MobileNet at W=50 holds ~50 models' worth of vectors at a barrier: one point at a time
           sweeps=_specs(*CHANNEL_SWEEPS, serial=("channels_mobilenet",)),
           tables=channels_tables, plot=channels_plot, csvs=("channels",), report=channels_report, dpi=DPI),
    Figure(key="lambdaml/comm_patterns", title="AllReduce vs ScatterReduce seconds per round through S3",
           sweeps=_specs(*COMM_SWEEPS), tables=comm_tables, plot=comm_plot, csvs=("comm_patterns",),
           report=comm_report, dpi=DPI),
    Figure(key="lambdaml/algorithms", title="loss vs time and dollars: GA-SGD, MA-SGD, ADMM (W=10, S3)",
           sweeps=_specs(*ALGORITHM_SWEEPS),
           tables=lambda runs: {"algorithms": _point_tables(runs, "epochs.csv", *ALGORITHM_SWEEPS)},
           plot=algorithms_plot, csvs=("algorithms",),
           report=lambda csvs: final_epochs(csvs["algorithms"], ["model", "algorithm"]), dpi=DPI),
    Figure(key="lambdaml/sync_async", title="synchronous vs asynchronous convergence, LR/Higgs W=10",
           sweeps=_specs("sync_async"),
           tables=lambda runs: {"sync_async": runs["sync_async"].point_table("epochs.csv")},
           plot=sync_async_plot, csvs=("sync_async",),
           report=lambda csvs: final_epochs(csvs["sync_async"], ["algorithm", "protocol"]), dpi=DPI),
    Figure(key="lambdaml/scaling", title="worker scaling W=1..150 to a target loss, with the analytical model",
           sweeps=_specs("scaling"), tables=lambda runs: {"scaling": model_rows(runs["scaling"])},
           plot=lambda csvs: {"scaling": model_plot(
               csvs["scaling"], "Worker scaling: MA-SGD on LR/Higgs to loss 0.66 through S3 "
                                "(points: simulator; lines: analytical model)")},
           csvs=("scaling",), report=scaling_report, dpi=DPI),
    Figure(key="lambdaml/faas_iaas", title="FaaS vs IaaS time and cost to a target loss, with the analytical model",
           sweeps=_specs("faas_iaas"), tables=lambda runs: {"faas_iaas": model_rows(runs["faas_iaas"])},
           plot=lambda csvs: {"faas_iaas": model_plot(
               csvs["faas_iaas"], "FaaS vs IaaS: MA-SGD on LR/Higgs to loss 0.66 "
                                  "(points: simulator; lines: analytical model)")},
           csvs=("faas_iaas",), report=faas_iaas_report, dpi=DPI),
]
