"""NumPyWren's reproducible figures (``sls-ray reproduce numpywren/<name>``, ``numpywren --all``).

The paper's numbers are from ../shared/papers/numpywren.md ("Figures and tables"); each figure
overlays them where the paper gives them. Runs land in ``runs/numpywren/<sweep>/`` (resumable:
a finished point of the same resolved config is read back, not redone; the N = 256K Cholesky is
shared by the systems table, the profile and the size scaling); CSVs and PNGs go to
``results/numpywren/``. The whole set takes about 25 min on an idle 2-core machine, most of it
SVD, QR and GEMM at 64 blocks.
"""
from __future__ import annotations

import functools
from typing import Mapping

import numpy as np
import pandas as pd

from sls_ray.api import Figure, SweepRun, SweepSpec, overlay_paper, pyplot
from sls_ray.numpywren.job import JobSpec, block_bytes, widest_pipeline

#: seed Table 1, completion time (s): program -> (MPI, NumPyWren), N = 256K [seed]
SEED_TIME = {"svd": (5.8e4, 4.8e4), "qr": (9.9e3, 1.4e4), "gemm": (5.0e3, 8.1e3), "cholesky": (1.7e3, 2.5e3)}
#: seed Table 2, core-seconds: program -> (MPI, NumPyWren) [seed]
SEED_CORE_S = {"svd": (2.1e7, 6.2e6), "qr": (2.6e6, 2.2e6), "gemm": (1.2e6, 1.9e6), "cholesky": (4.5e5, 3.9e5)}
#: seed: NumPyWren reads 21x more bytes over the network than MPI, and is 47% slower end to end
SEED_BYTES_RATIO, SEED_SLOWDOWN = 21.0, 1.47
#: our program names for the seed's rows (SVD's distributed part is BDFAC, its first stage)
PROGRAM_OF = {"svd": "bdfac", "qr": "qr", "gemm": "gemm", "cholesky": "cholesky"}

Runs = Mapping[str, SweepRun]
Tables = Mapping[str, pd.DataFrame]

PAPER_BLOCKS, PAPER_BLOCK = 64, 4096  # the paper's DAG: 64 blocks of 4096, N = 256K
#: the N = 256K Cholesky: a row of the systems table, the profile, the last size-scaling point
CHOLESKY_256K = SweepSpec("systems-cholesky-64", "numpywren/systems.yaml",
                          sets=("params.program=cholesky", f"params.blocks={PAPER_BLOCKS}"))


def _one(run: SweepRun) -> dict:
    """The summary of a single-point sweep."""
    return run.summaries[0]


# -- systems: seed Tables 1-2 and the bytes-read comparison, NumPyWren vs MPI at N = 256K

ORDER = ["svd", "qr", "gemm", "cholesky"]


@functools.cache  # sizing the pipeline walks 350K-task DAGs: once per process
def systems_variants() -> list[tuple[str, str, SweepSpec]]:
    """(row, variant label, sweep): the source default (pipeline width 1), then the widest
    pipeline that fits the 3008 MB executor (job.widest_pipeline; at most the source's 5) if wider."""
    out = []
    for name in ORDER:
        program = PROGRAM_OF[name]
        base = (f"params.program={program}", f"params.blocks={PAPER_BLOCKS}")
        out.append((name, "pw=1 (source default)",
                    CHOLESKY_256K if name == "cholesky" else
                    SweepSpec(f"systems-{program}-{PAPER_BLOCKS}", "numpywren/systems.yaml", sets=base)))
        pw = widest_pipeline(JobSpec.make(program, PAPER_BLOCKS, 4, PAPER_BLOCK), memory_mb=3008, runtime_mb=60.0)
        if pw > 1:
            out.append((name, f"pw={pw} (widest that fits)",
                        SweepSpec(f"systems-{program}-{PAPER_BLOCKS}-pw{pw}", "numpywren/systems.yaml",
                                  sets=base + (f"params.pipeline_width={pw}",))))
    return out


def systems_row(name: str, label: str, run: SweepRun) -> dict:
    s = _one(run)
    seed_mpi_t, seed_npw_t = SEED_TIME[name]
    seed_mpi_c, seed_npw_c = SEED_CORE_S[name]
    row = {
        "row": name, "variant": label, "pipeline_width": int(run.table["params.pipeline_width"].iloc[0]),
        "program": PROGRAM_OF[name], "graph": s["graph"], "policy": s["policy"],
        "blocks": int(run.table["params.blocks"].iloc[0]),
        "block_size_real": s["block_size"], "block_size_model": s["model_block_size"],
        "n_model": s["matrix_side_model"], "tasks": s["tasks_total"], "correct": s.get("correct"),
        "max_rel_error": s.get("max_rel_error"), "program_status": s["program_status"],
        "npw_completion_s": s["completion_s"], "npw_core_s": s["core_s"], "npw_billed_core_s": s["billed_core_s"],
        "npw_cost_usd": s["cost_usd"]["total"], "npw_executors": s["executors"],
        "npw_network_read_bytes": s["network_read_bytes"],
        "mpi_completion_s": s.get("mpi_completion_s"), "mpi_core_s": s.get("mpi_core_s"),
        "mpi_cost_usd": s.get("mpi_cost_usd"), "mpi_network_bytes": s.get("mpi_network_bytes"),
        "single_completion_s": s.get("single_completion_s"),
        "seed_mpi_completion_s": seed_mpi_t, "seed_npw_completion_s": seed_npw_t,
        "seed_mpi_core_s": seed_mpi_c, "seed_npw_core_s": seed_npw_c,
        "host_wall_s": s["nondeterministic"]["host_wall_s"],
    }
    if row["npw_completion_s"] and row["mpi_completion_s"]:
        row["time_ratio_npw_over_mpi"] = row["npw_completion_s"] / row["mpi_completion_s"]
        row["seed_time_ratio"] = seed_npw_t / seed_mpi_t
        row["core_ratio_mpi_over_npw"] = row["mpi_core_s"] / row["npw_core_s"]
        row["seed_core_ratio"] = seed_mpi_c / seed_npw_c
        row["bytes_ratio_npw_over_mpi"] = row["npw_network_read_bytes"] / max(row["mpi_network_bytes"], 1)
        for what in ("time", "core"):
            ours = row[f"{what}_ratio_npw_over_mpi" if what == "time" else "core_ratio_mpi_over_npw"]
            seed = row[f"seed_{what}_ratio"]
            row[f"{what}_within_25pct"] = abs(ours / seed - 1) <= 0.25
            row[f"{what}_same_side_of_1"] = (ours - 1) * (seed - 1) > 0
    return row


def systems_tables(runs: Runs) -> dict[str, pd.DataFrame]:
    return {"systems": pd.DataFrame([systems_row(name, label, runs[spec.name])
                                     for name, label, spec in systems_variants()])}


def systems_plot(csvs: Tables) -> dict:
    df = csvs["systems"]
    if df.empty or df["npw_completion_s"].isna().any():
        return {}
    plt = pyplot()
    out = {}
    for what, ylabel, fname in (("completion_s", "completion time (s)", "systems_time"),
                                ("core_s", "core-seconds", "systems_core_s")):
        fig, ax = plt.subplots(figsize=(8, 4.2))
        x = np.arange(len(df))
        w = 0.2
        ax.bar(x - 1.5 * w, df[f"mpi_{what}"], w, label="MPI model (ours)", color="#1f77b4")
        ax.bar(x - 0.5 * w, df[f"npw_{what}"], w, label="NumPyWren (ours)", color="#ff7f0e")
        ax.bar(x + 0.5 * w, df[f"seed_mpi_{what}"], w, label="MPI (seed)", color="#1f77b4", alpha=0.35, hatch="//")
        ax.bar(x + 1.5 * w, df[f"seed_npw_{what}"], w, label="NumPyWren (seed)", color="#ff7f0e", alpha=0.35,
               hatch="//")
        ax.set_xticks(x, [f"{r.row.upper()} {r.blocks}x{r.block_size_model}\n{r.variant.split()[0]}"
                          for r in df.itertuples()], fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, axis="y")
        ax.set_title(f"NumPyWren vs MPI, {ylabel} (seed: N = 256K, 64 blocks of 4096)")
        out[fname] = fig
    fig, ax = plt.subplots(figsize=(7, 4))
    x = np.arange(len(df))
    ax.bar(x - 0.2, df["npw_network_read_bytes"] / 1e12, 0.4, label="NumPyWren: bytes read from S3")
    ax.bar(x + 0.2, df["mpi_network_bytes"] / 1e12, 0.4, label="MPI model: bytes between nodes")
    for i, r in enumerate(df.itertuples()):
        ax.annotate(f"{r.bytes_ratio_npw_over_mpi:.0f}x", (i, r.npw_network_read_bytes / 1e12), ha="center",
                    va="bottom", fontsize=9)
    ax.set_xticks(x, [f"{r.row.upper()}\n{r.variant.split()[0]}" for r in df.itertuples()], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("TB over the network")
    ax.set_title(f"Bytes moved (seed, Cholesky: NumPyWren reads {SEED_BYTES_RATIO:.0f}x MPI, "
                 f"is {100 * (SEED_SLOWDOWN - 1):.0f}% slower)", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    out["bytes"] = fig
    return out


# -- scaling: seed Fig. 3, Cholesky problem size, strong and weak scaling

SIZES = [8, 16, 32]  # and 64: the systems table's run
POOLS = [1, 2, 4, 8, 16, 32, 64, 128, 256]
WEAK = [(16, 4), (32, 32), (64, 256)]  # (blocks, executors): work ~ blocks^3
SIZE_SWEEP = SweepSpec("size-cholesky", "numpywren/size_scaling.yaml", grid=("blocks=" + ",".join(map(str, SIZES)),))
STRONG_SWEEP = SweepSpec("strong-cholesky-32", "numpywren/strong_scaling.yaml",
                         grid=("max_executors=" + ",".join(map(str, POOLS)),))
WEAK_SWEEPS = [SweepSpec(f"weak-cholesky-{n}-w{w}", "numpywren/weak_scaling.yaml",
                         sets=(f"params.blocks={n}", f"params.max_executors={w}")) for n, w in WEAK]


def scaling_tables(runs: Runs) -> dict[str, pd.DataFrame]:
    size = []
    for s in runs[SIZE_SWEEP.name].summaries + [_one(runs[CHOLESKY_256K.name])]:
        size.append({"blocks": s["blocks"], "n_model": s["matrix_side_model"], "tasks": s["tasks_total"],
                     "npw_completion_s": s["completion_s"], "npw_core_s": s["core_s"],
                     "npw_billed_core_s": s["billed_core_s"], "npw_cost_usd": s["cost_usd"]["total"],
                     "mpi_completion_s": s["mpi_completion_s"], "mpi_core_s": s["mpi_core_s"],
                     "mpi_cost_usd": s["mpi_cost_usd"], "single_completion_s": s["single_completion_s"],
                     "single_core_s": s["single_core_s"], "single_fits_memory": s["single_fits_memory"],
                     "correct": s["correct"]})
    strong = pd.DataFrame([{"executors": w, "completion_s": s["completion_s"], "gflops_per_s": s["gflops_per_s"],
                            "core_s": s["core_s"], "billed_core_s": s["billed_core_s"], "correct": s["correct"]}
                           for w, s in zip(POOLS, runs[STRONG_SWEEP.name].summaries)])
    strong["speedup"] = strong["completion_s"].iloc[0] / strong["completion_s"]
    weak = []
    for (n, w), spec in zip(WEAK, WEAK_SWEEPS):
        s = _one(runs[spec.name])
        weak.append({"blocks": n, "n_model": s["matrix_side_model"], "executors": w,
                     "completion_s": s["completion_s"], "gflops_per_s": s["gflops_per_s"],
                     "gflops_per_executor": s["gflops_per_s"] / w, "correct": s["correct"]})
    return {"scaling_size": pd.DataFrame(size), "strong_scaling": strong, "weak_scaling": pd.DataFrame(weak)}


def scaling_plot(csvs: Tables) -> dict:
    plt = pyplot()
    size, strong, weak = csvs["scaling_size"], csvs["strong_scaling"], csvs["weak_scaling"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    n_k = size["n_model"] / 1024
    axes[0].plot(n_k, size["npw_completion_s"], "o-", label="NumPyWren (ours)")
    axes[0].plot(n_k, size["mpi_completion_s"], "s-", label="MPI model, 512 vCPUs (ours)")
    axes[0].plot(n_k, size["single_completion_s"], "^-", label="one x1.32xlarge, 128 vCPUs (ours)")
    axes[0].set_ylabel("completion time (s)")
    axes[1].plot(n_k, size["npw_core_s"], "o-", label="NumPyWren active (ours)")
    axes[1].plot(n_k, size["npw_billed_core_s"], "o--", label="NumPyWren billed (ours)")
    axes[1].plot(n_k, size["mpi_core_s"], "s-", label="MPI model (ours)")
    axes[1].set_ylabel("core-seconds")
    for ax, seed, mpi_color in ((axes[0], SEED_TIME, "C1"), (axes[1], SEED_CORE_S, "C2")):  # at N = 256K only
        overlay_paper(ax, [256], [seed["cholesky"][1]], color="C0", size=12, label="NumPyWren (seed)")
        overlay_paper(ax, [256], [seed["cholesky"][0]], color=mpi_color, size=12, marker="s", label="MPI (seed)")
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("N (thousands), block 4096")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Cholesky scalability (seed Fig. 3a, b, d)")
    out = {"scaling_size": fig}

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
    out["strong_weak_scaling"] = fig
    return out


# -- profile: seed Fig. 4, ready / running tasks and live working set over time

PROFILE_STEP_S = 10.0


def profile_tables(runs: Runs) -> dict[str, pd.DataFrame]:
    """Derived from the N = 256K Cholesky's CSVs only: tasks ready in the queue (the driver's
    polls), in flight (received, not yet retired), being computed, and the bytes of live
    intermediate blocks in S3 (written minus garbage-collected)."""
    from sls_ray.numpywren.lambdapack import Task

    run = runs[CHOLESKY_256K.name]
    s, d = _one(run), run.dirs[0]
    tasks = pd.read_csv(d / "tasks.csv")
    timeline = pd.read_csv(d / "timeline.csv")
    spec = JobSpec.make("cholesky", s["blocks"], s["block_size"], s["model_block_size"])
    real, model = spec.plans()
    dag = real.dag
    first = tasks[tasks["first"].astype(bool)]
    written = [sum(block_bytes(model, w) for w in dag.writes(Task.from_key(k)) if not dag.is_output(w))
               for k in first["task"]]
    events = pd.concat([pd.DataFrame({"t": first["retired"], "delta": written}),
                        pd.DataFrame({"t": tasks["retired"], "delta": -tasks["gc_bytes"]})]).sort_values("t")
    grid = np.arange(0.0, float(tasks["retired"].max()) + PROFILE_STEP_S, PROFILE_STEP_S)
    live = np.interp(grid, events["t"], events["delta"].cumsum(), left=0.0)
    in_flight = [int(((tasks["recv"] <= t) & (tasks["retired"] > t)).sum()) for t in grid]
    computing = [int(((tasks["start"] <= t) & (tasks["end"] > t)).sum()) for t in grid]
    ready = np.interp(grid, timeline["t"], timeline["waiting"])
    return {"profile": pd.DataFrame({"t": grid, "ready": ready, "in_flight": in_flight, "computing": computing,
                                     "live_intermediate_bytes": live})}


def profile_plot(csvs: Tables) -> dict:
    plt = pyplot()
    prof = csvs["profile"]
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
    ax.set_title(f"Cholesky N = {PAPER_BLOCKS * PAPER_BLOCK // 1024}K, block {PAPER_BLOCK}: parallelism and "
                 "working set (seed Fig. 4: a decaying sawtooth, no numbers given)", fontsize=9)
    return {"profile": fig}


def profile_report(csvs: Tables) -> str:
    prof = csvs["profile"]
    peak = prof.loc[prof["live_intermediate_bytes"].idxmax()]
    return (f"peak live working set {peak['live_intermediate_bytes'] / 2**40:.2f} TiB at t={peak['t']:.0f}s; "
            f"peak ready {prof['ready'].max():.0f}, peak running {prof['in_flight'].max()}")


# -- faults: seed Fig. 5, executors killed mid-run

KILL_AT = 500.0
FRACTIONS = [0.0, 0.25, 0.5]


def _fault_plan(frac: float) -> str:
    """The ``faults=`` override: none, or kill ``frac`` of the live executors at KILL_AT."""
    if frac == 0:
        return "faults=[]"
    return (f"faults=[{{kind: kill_fraction, fraction: {frac}, t0_s: {KILL_AT}, t1_s: {KILL_AT}, "
            f"handler: executor}}]")


FAULT_SWEEPS = [SweepSpec(f"faults-{int(frac * 100)}", "numpywren/faults.yaml", sets=(_fault_plan(frac),))
                for frac in FRACTIONS]


def faults_tables(runs: Runs) -> dict[str, pd.DataFrame]:
    rows, timelines = [], []
    base = None
    for frac, spec in zip(FRACTIONS, FAULT_SWEEPS):
        run = runs[spec.name]
        s, d = _one(run), run.dirs[0]
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
    return {"faults": pd.DataFrame(rows), "faults_timeline": pd.concat(timelines)}


def faults_plot(csvs: Tables) -> dict:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for frac, tl in csvs["faults_timeline"].groupby("killed_fraction", sort=False):
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
    return {"faults": fig}


# -- autoscale: seed Fig. 6, executors against pending tasks per scaling policy

SCALING_FACTORS = [0.25, 0.5, 1.0]
AUTOSCALE_SWEEPS = [SweepSpec("autoscale-dynamic", "numpywren/autoscale.yaml",
                              grid=("sf=" + ",".join(map(str, SCALING_FACTORS)),)),
                    SweepSpec("autoscale-fixed-pool-301", "numpywren/autoscale.yaml", grid=("policy=fixed",))]


def autoscale_tables(runs: Runs) -> dict[str, pd.DataFrame]:
    labelled = [(f"dynamic sf={sf}", runs[AUTOSCALE_SWEEPS[0].name], i) for i, sf in enumerate(SCALING_FACTORS)]
    labelled.append(("fixed pool 301", runs[AUTOSCALE_SWEEPS[1].name], 0))
    rows, timelines = [], []
    for label, run, i in labelled:
        s = run.summaries[i]
        timelines.append(pd.read_csv(run.dirs[i] / "timeline.csv").assign(policy_label=label))
        rows.append({"policy": label, "completion_s": s["completion_s"], "core_s": s["core_s"],
                     "billed_core_s": s["billed_core_s"], "cost_usd": s["cost_usd"]["total"],
                     "executors_launched": s["executors"], "peak_executors": s["counts"]["peak_concurrency"],
                     "correct": s["correct"]})
    return {"autoscale": pd.DataFrame(rows), "autoscale_timeline": pd.concat(timelines)}


def autoscale_plot(csvs: Tables) -> dict:
    plt = pyplot()
    df = csvs["autoscale"]
    timelines = [tl for _, tl in csvs["autoscale_timeline"].groupby("policy_label", sort=False)]
    fig, axes = plt.subplots(1, len(timelines) + 1, figsize=(18, 3.8))
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
    return {"autoscale": fig}


# -- pipeline: seed Fig. 7, throughput at pipeline width 1, 2, 4, with and without the cache

WIDTHS = [1, 2, 4]
CACHES = [0, 5]
PIPELINE_SWEEP = SweepSpec("pipeline", "numpywren/pipeline.yaml",
                           grid=("cache_blocks=" + ",".join(map(str, CACHES)),
                                 "pipeline_width=" + ",".join(map(str, WIDTHS))))


def pipeline_tables(runs: Runs) -> dict[str, pd.DataFrame]:
    run = runs[PIPELINE_SWEEP.name]
    df = pd.DataFrame([{"pipeline_width": int(r["params.pipeline_width"]),
                        "cache_blocks": int(r["params.cache_blocks"]), "gflops_per_s": s["gflops_per_s"],
                        "completion_s": s["completion_s"], "core_s": s["core_s"],
                        "cache_hits": s["cache_hits"], "network_read_bytes": s["network_read_bytes"],
                        "correct": s["correct"]}
                       for (_, r), s in zip(run.table.iterrows(), run.summaries)])
    base = df[(df["pipeline_width"] == 1) & (df["cache_blocks"] == 0)]["gflops_per_s"].iloc[0]
    df["speedup_vs_pw1"] = df["gflops_per_s"] / base
    return {"pipeline": df}


def pipeline_plot(csvs: Tables) -> dict:
    plt = pyplot()
    df = csvs["pipeline"]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    x = np.arange(len(WIDTHS))
    for i, cache in enumerate(CACHES):
        sub = df[df["cache_blocks"] == cache]
        ax.bar(x + (i - 0.5) * 0.38, sub["gflops_per_s"], 0.38, label=f"cache {cache} blocks")
        for xx, r in zip(x, sub.itertuples()):
            ax.annotate(f"{r.speedup_vs_pw1:.2f}x", (xx + (i - 0.5) * 0.38, r.gflops_per_s), ha="center",
                        va="bottom", fontsize=8)
    ax.set_xticks(x, [f"width {w}" for w in WIDTHS])
    ax.set_ylabel("GFLOP/s (16 executors)")
    ax.set_title("Pipelining, Cholesky N = 128K (seed Fig. 7: no numbers given)", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return {"pipeline": fig}


def _text(*stems: str):
    return lambda csvs: "\n\n".join(csvs[s].to_string() for s in stems)


FIGURES = [
    Figure(key="numpywren/systems", title="NumPyWren vs MPI at N = 256K: time, core-seconds, bytes (seed Tables 1-2)",
           sweeps=lambda: tuple(spec for _, _, spec in systems_variants()), tables=systems_tables,
           plot=systems_plot, csvs=("systems",),
           report=lambda csvs: csvs["systems"][["row", "variant", "blocks", "npw_completion_s", "mpi_completion_s",
                                                "npw_core_s", "mpi_core_s"]].to_string()),
    Figure(key="numpywren/scaling", title="Cholesky problem-size, strong and weak scaling (seed Fig. 3)",
           sweeps=(SIZE_SWEEP, CHOLESKY_256K, STRONG_SWEEP, *WEAK_SWEEPS), tables=scaling_tables,
           plot=scaling_plot, csvs=("scaling_size", "strong_scaling", "weak_scaling"),
           report=_text("scaling_size", "strong_scaling", "weak_scaling")),
    Figure(key="numpywren/profile", title="Cholesky N = 256K: ready/running tasks and live working set (seed Fig. 4)",
           sweeps=(CHOLESKY_256K,), tables=profile_tables, plot=profile_plot, csvs=("profile",),
           report=profile_report),
    Figure(key="numpywren/faults", title="executors killed mid-run: 0 / 25 / 50 % (seed Fig. 5)",
           sweeps=tuple(FAULT_SWEEPS), tables=faults_tables, plot=faults_plot, csvs=("faults", "faults_timeline"),
           report=_text("faults")),
    Figure(key="numpywren/autoscale", title="autoscaling policies: executors vs pending tasks (seed Fig. 6)",
           sweeps=tuple(AUTOSCALE_SWEEPS), tables=autoscale_tables, plot=autoscale_plot,
           csvs=("autoscale", "autoscale_timeline"), report=_text("autoscale")),
    Figure(key="numpywren/pipeline", title="pipeline width 1/2/4, with and without the block cache (seed Fig. 7)",
           sweeps=(PIPELINE_SWEEP,), tables=pipeline_tables, plot=pipeline_plot, csvs=("pipeline",),
           report=_text("pipeline")),
]
