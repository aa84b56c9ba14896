"""Seed Fig. 3: scalability of Cholesky (block 4096, folded).

    python experiments/numpywren/scaling.py

(a, b, d) problem size: 8, 16, 32, 64 blocks (N = 32K..256K) with configs/numpywren/size_scaling.yaml
(the 64-block point is the systems table's run): completion time and core-seconds of NumPyWren,
the MPI model and a 128-vCPU machine. (strong) configs/numpywren/strong_scaling.yaml: one
Cholesky (N = 128K) on fixed pools of 1..256 executors: completion time and GFLOP/s.
(c, weak) configs/numpywren/weak_scaling.yaml: pool size proportional to N^3.
Writes results/numpywren/scaling_size.csv, strong_scaling.csv, weak_scaling.csv and their PNGs.
"""
from __future__ import annotations

import pandas as pd

from _paper import RESULTS, SEED_CORE_S, SEED_TIME, pyplot, run, save_figure

SIZES = [8, 16, 32, 64]
POOLS = [1, 2, 4, 8, 16, 32, 64, 128, 256]
WEAK = [(16, 4), (32, 32), (64, 256)]  # (blocks, executors): work ~ blocks^3


def size_scaling() -> pd.DataFrame:
    out = []
    for n in SIZES:
        if n == 64:
            s, _ = run("systems-cholesky-64", "systems.yaml", ["params.program=cholesky", "params.blocks=64"])
        else:
            s, _ = run(f"size-cholesky-{n}", "size_scaling.yaml", [f"params.blocks={n}"])
        out.append({"blocks": n, "n_model": s["matrix_side_model"], "tasks": s["tasks_total"],
                    "npw_completion_s": s["completion_s"], "npw_core_s": s["core_s"],
                    "npw_billed_core_s": s["billed_core_s"], "npw_cost_usd": s["cost_usd"]["total"],
                    "mpi_completion_s": s["mpi_completion_s"], "mpi_core_s": s["mpi_core_s"],
                    "mpi_cost_usd": s["mpi_cost_usd"], "single_completion_s": s["single_completion_s"],
                    "single_core_s": s["single_core_s"], "single_fits_memory": s["single_fits_memory"],
                    "correct": s["correct"]})
    return pd.DataFrame(out)


def strong_scaling() -> pd.DataFrame:
    out = []
    for w in POOLS:
        s, _ = run(f"strong-cholesky-32-w{w}", "strong_scaling.yaml", [f"params.max_executors={w}"])
        out.append({"executors": w, "completion_s": s["completion_s"], "gflops_per_s": s["gflops_per_s"],
                    "core_s": s["core_s"], "billed_core_s": s["billed_core_s"], "correct": s["correct"]})
    df = pd.DataFrame(out)
    df["speedup"] = df["completion_s"].iloc[0] / df["completion_s"]
    return df


def weak_scaling() -> pd.DataFrame:
    out = []
    for n, w in WEAK:
        s, _ = run(f"weak-cholesky-{n}-w{w}", "weak_scaling.yaml", [f"params.blocks={n}", f"params.max_executors={w}"])
        out.append({"blocks": n, "n_model": s["matrix_side_model"], "executors": w, "completion_s": s["completion_s"],
                    "gflops_per_s": s["gflops_per_s"], "gflops_per_executor": s["gflops_per_s"] / w,
                    "correct": s["correct"]})
    return pd.DataFrame(out)


def main() -> None:
    plt = pyplot()
    size, strong, weak = size_scaling(), strong_scaling(), weak_scaling()
    RESULTS.mkdir(parents=True, exist_ok=True)
    size.to_csv(RESULTS / "scaling_size.csv", index=False)
    strong.to_csv(RESULTS / "strong_scaling.csv", index=False)
    weak.to_csv(RESULTS / "weak_scaling.csv", index=False)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    n_k = size["n_model"] / 1024
    axes[0].plot(n_k, size["npw_completion_s"], "o-", label="NumPyWren (ours)")
    axes[0].plot(n_k, size["mpi_completion_s"], "s-", label="MPI model, 512 vCPUs (ours)")
    axes[0].plot(n_k, size["single_completion_s"], "^-", label="one x1.32xlarge, 128 vCPUs (ours)")
    axes[0].plot([256], [SEED_TIME["cholesky"][1]], "o", mfc="none", ms=12, color="C0", label="NumPyWren (seed)")
    axes[0].plot([256], [SEED_TIME["cholesky"][0]], "s", mfc="none", ms=12, color="C1", label="MPI (seed)")
    axes[0].set_ylabel("completion time (s)")
    axes[1].plot(n_k, size["npw_core_s"], "o-", label="NumPyWren active (ours)")
    axes[1].plot(n_k, size["npw_billed_core_s"], "o--", label="NumPyWren billed (ours)")
    axes[1].plot(n_k, size["mpi_core_s"], "s-", label="MPI model (ours)")
    axes[1].plot([256], [SEED_CORE_S["cholesky"][1]], "o", mfc="none", ms=12, color="C0", label="NumPyWren (seed)")
    axes[1].plot([256], [SEED_CORE_S["cholesky"][0]], "s", mfc="none", ms=12, color="C2", label="MPI (seed)")
    axes[1].set_ylabel("core-seconds")
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("N (thousands), block 4096")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Cholesky scalability (seed Fig. 3a, b, d)")
    save_figure(fig, "scaling_size")
    plt.close(fig)

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    axes[0].plot(strong["executors"], strong["completion_s"], "o-")
    axes[0].plot(strong["executors"], strong["completion_s"].iloc[0] / strong["executors"], "k:", label="ideal")
    axes[0].set_ylabel("completion time (s)")
    axes[0].set_yscale("log")
    axes[1].plot(strong["executors"], strong["gflops_per_s"], "o-")
    axes[1].set_ylabel("GFLOP/s")
    for ax in axes[:2]:
        ax.set_xscale("log", base=2)
        ax.set_xlabel("executors (fixed pool)")
        ax.grid(alpha=0.3)
    axes[0].legend()
    axes[0].set_title("strong scaling, Cholesky N = 128K")
    axes[2].plot(weak["executors"], weak["gflops_per_executor"], "o-")
    for r in weak.itertuples():
        axes[2].annotate(f"N={r.n_model // 1024}K", (r.executors, r.gflops_per_executor), fontsize=8)
    axes[2].set_xscale("log", base=2)
    axes[2].set_ylim(bottom=0)
    axes[2].set_xlabel("executors (work per executor fixed)")
    axes[2].set_ylabel("GFLOP/s per executor")
    axes[2].set_title("weak scaling (seed Fig. 3c: no numbers given)")
    axes[2].grid(alpha=0.3)
    save_figure(fig, "strong_weak_scaling")
    plt.close(fig)
    print(size.to_string(), strong.to_string(), weak.to_string(), sep="\n\n")


if __name__ == "__main__":
    main()
