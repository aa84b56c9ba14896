"""Each paper's headline under the 2020 and the 2026 platform (results/README.md, "2026 what-if").

    python experiments/whatif/headlines.py               # ~30 min on 2 shared cores; resumable
    python experiments/whatif/headlines.py --plot-only   # redraw the PNGs from the committed CSVs

Every run goes through ``sls_ray.whatif.run_whatif`` (the ``sls-ray whatif`` command) or the sweep
machinery, into results/whatif/runs/ (not committed); the long-format CSVs and one figure per
system go to results/whatif/. A system joins with one entry in HEADLINES and one in FIGURES (INFless
and Cirrus, once they land: a function running their headline config through ``run_whatif``).

- LambdaML channels (seed table 1, LR/Higgs rows at W = 10 and 50, MobileNet/Cifar10 at W = 10):
  through S3, Memcached, DynamoDB and the VM parameter server, plus S3 Express One Zone, which
  only 2026 has.
- LambdaML patterns (seed table 2): AllReduce vs ScatterReduce per round, LR (224 B, W = 50) and
  MobileNet (12.9 MB, W = 10) through S3, plus S3 Express in 2026.
- NumPyWren vs MPI (Tables 1-2): Cholesky of N = 128K (32 blocks of 4096, folded), completion time
  and core-seconds, plus 2026 with 10 GB / 5.8-vCPU executors capped at the same 512 vCPUs (pipeline
  width 1, the source default, and 4).
- Cirrus vs PyWren (Cirrus figure 2, seed claim ~100x): sparse LR, 10 workers, 20 (Cirrus) and 120
  (PyWren) virtual s of training as in results/cirrus/pywren.csv, under configs/cirrus/platform.yaml
  (aws_2020 + Cirrus's VMs) and its 2026 twin configs/cirrus/platform_2026.yaml (aws_2026 + the same
  VMs); time for Cirrus to reach PyWren's best loss, and cost.
- INFless serving (one bursty point, 30 virtual s at 200 req/s) under aws_2020 and aws_2026: INFless
  reads nothing of the platform profile (its cluster, GPU shares and prices are its own model), so
  the two rows must be identical; the table shows that they are.

    python experiments/whatif/headlines.py --only cirrus,infless   # the new rows alone (~6 min)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sls_ray.cirrus.figures import time_to  # noqa: E402
from sls_ray.plotting import pyplot  # noqa: E402
from sls_ray.results import write_csv  # noqa: E402
from sls_ray.sweep import run_sweep  # noqa: E402
from sls_ray.whatif import run_single, run_whatif  # noqa: E402

OUT = ROOT / "results" / "whatif"
RUNS = OUT / "runs"
OLD, NEW = "aws_2020", "aws_2026"
LML_OLD, LML_NEW = "aws_2020_lambdaml", "aws_2026_lambdaml"
CHANNELS = ["s3", "memcached", "dynamodb", "vm"]
NPW_BLOCKS = 32
#: 10,240 MB buys 5.79 vCPUs: 88 executors hold the MPI cluster's 512 vCPUs, as 301 x 3,008 MB do
NPW_BIG = ["params.executor_memory_mb=10240", "params.max_executors=88"]


def cfg(rel: str) -> str:
    return str(ROOT / "configs" / rel)


# ---------------------------------------------------------------- LambdaML
#: (config, workload label, workers grid, run directory name) of the channel rows
CHANNEL_ROWS = [("channels_lr", "LR, Higgs", "workers=10,50", "lambdaml_channels"),
                ("channels_mobilenet", "MobileNet, Cifar10", "workers=10", "lambdaml_channels_mobilenet")]


def lambdaml_channels(parallel: bool) -> pd.DataFrame:
    rows = []
    for name, workload, workers_grid, runs in CHANNEL_ROWS:
        grid = [workers_grid, f"channel={','.join(CHANNELS)}"]
        both = run_whatif(cfg(f"lambdaml/{name}.yaml"), [LML_OLD, LML_NEW], grid, [], RUNS / runs, parallel=parallel)
        express = run_sweep(cfg(f"lambdaml/{name}.yaml"), [workers_grid, "channel=s3express"],
                            [f"platform={LML_NEW}"], RUNS / f"{runs}_s3express", parallel=parallel)
        express.insert(0, "platform", LML_NEW)
        df = pd.concat([both, express], ignore_index=True)
        for (platform, workers), grp in df.groupby(["platform", "params.workers"]):
            s3 = grp[grp["params.channel"] == "s3"].iloc[0]
            for _, r in grp.iterrows():
                ok = bool(r.get("channel_supported", True))  # DynamoDB cannot hold a 12.9 MB model: N/A
                t, c = (r["makespan_s"], r["cost_usd.total"]) if ok else (np.nan, np.nan)
                rows.append({"platform": platform, "workload": workload, "workers": int(workers),
                             "channel": r["params.channel"], "time_s": t, "cost_usd": c,
                             "slowdown_vs_s3": t / s3["makespan_s"], "cost_vs_s3": c / s3["cost_usd.total"],
                             "lambda_compute_usd": r.get("cost_usd.lambda_compute", np.nan) if ok else np.nan})
    return pd.DataFrame(rows)


def _per_round(point_dir: Path) -> float:
    rounds = pd.read_csv(point_dir / "rounds.csv")
    return float(rounds[rounds["step"] > 0]["comm_s"].mean())


def lambdaml_patterns(parallel: bool) -> pd.DataFrame:
    rows = []
    for name, label in (("comm_lr", "LR 224 B, W=50"), ("comm_mobilenet", "MobileNet 12.9 MB, W=10")):
        out = RUNS / f"lambdaml_{name}"
        tab = run_whatif(cfg(f"lambdaml/{name}.yaml"), [LML_OLD, LML_NEW], [], [], out, parallel=parallel)
        express = run_sweep(cfg(f"lambdaml/{name}.yaml"), [], [f"platform={LML_NEW}", "params.channel=s3express"],
                            RUNS / f"lambdaml_{name}_s3express", parallel=parallel)
        express.insert(0, "platform", LML_NEW)
        for _, r in tab.iterrows():
            rows.append({"platform": r["platform"], "channel": "s3", "workload": label,
                         "pattern": r["params.pattern"],
                         "comm_per_round_s": _per_round(out / r["platform"] / r["point"])})
        for _, r in express.iterrows():
            rows.append({"platform": LML_NEW, "channel": "s3express", "workload": label,
                         "pattern": r["params.pattern"],
                         "comm_per_round_s": _per_round(RUNS / f"lambdaml_{name}_s3express" / r["point"])})
    df = pd.DataFrame(rows)
    keys = ["platform", "channel", "workload"]
    ar = df[df["pattern"] == "allreduce"].set_index(keys)["comm_per_round_s"]
    sr = df[df["pattern"] == "scatter_reduce"].set_index(keys)["comm_per_round_s"]
    df["ar_over_sr"] = [ar[tuple(r[k] for k in keys)] / sr[tuple(r[k] for k in keys)] for _, r in df.iterrows()]
    return df


def plot_lambdaml(channels: pd.DataFrame, patterns: pd.DataFrame, path: Path) -> None:
    plt = pyplot()
    cases = list(dict.fromkeys(zip(channels["workload"], channels["workers"])))
    fig, axes = plt.subplots(1, len(cases) + 1, figsize=(5 * (len(cases) + 1), 4.6))
    order = CHANNELS + ["s3express"]
    variants = [(LML_OLD, "2020"), (LML_NEW, "2026")]
    for ax, (workload, workers) in zip(axes[:-1], cases):
        for i, (platform, tag) in enumerate(variants):
            sub = channels[(channels["platform"] == platform) & (channels["workload"] == workload)
                           & (channels["workers"] == workers)].set_index("channel")
            sub = sub.reindex(order)
            xs = np.arange(len(order)) + (i - 0.5) * 0.38
            ax.bar(xs, sub["slowdown_vs_s3"], 0.36, label=f"{tag}: time vs S3", alpha=0.85)
            ax.scatter(xs, sub["cost_vs_s3"], marker="D", color="black" if i else "gray", zorder=3,
                       label=f"{tag}: cost vs S3")
        ax.axhline(1.0, color="gray", lw=0.8)
        ax.set_xticks(range(len(order)))
        ax.set_xticklabels(order, fontsize=8, rotation=20)
        ax.set_title(f"channels, {workload} W={workers} (S3 = 1; no S3 Express in 2020)", fontsize=9)
        ax.set_ylabel("ratio to S3, same platform")
        ax.legend(fontsize=7)
    ax = axes[-1]
    labels = list(dict.fromkeys(patterns["workload"]))
    bars = [(LML_OLD, "s3", "2020 S3"), (LML_NEW, "s3", "2026 S3"), (LML_NEW, "s3express", "2026 S3 Express")]
    for i, (platform, channel, tag) in enumerate(bars):
        for j, pattern in enumerate(("allreduce", "scatter_reduce")):
            sub = patterns[(patterns["platform"] == platform) & (patterns["channel"] == channel)
                           & (patterns["pattern"] == pattern)].set_index("workload").reindex(labels)
            xs = np.arange(len(labels)) + (i * 2 + j - 2.5) * 0.13
            ax.bar(xs, sub["comm_per_round_s"], 0.12, label=f"{tag} {'AR' if j == 0 else 'SR'}",
                   hatch="" if j == 0 else "//", color=f"C{i}", alpha=0.85)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel("communication per round (virtual s)")
    ax.set_title("AllReduce (AR) vs ScatterReduce (SR)", fontsize=9)
    ax.legend(fontsize=6, ncol=3)
    fig.suptitle("LambdaML under aws_2020_lambdaml vs aws_2026_lambdaml (same boto3/start-up estimates)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- NumPyWren
def numpywren(parallel: bool) -> pd.DataFrame:
    sets = [f"params.blocks={NPW_BLOCKS}"]
    tab = run_whatif(cfg("numpywren/systems.yaml"), [OLD, NEW], [], sets, RUNS / "numpywren", parallel=parallel)
    tab["variant"] = ["3008 MB executors x 301"] * len(tab)
    # one run: 10 GB executors exist only in 2026
    big = run_single(cfg("numpywren/systems.yaml"), sets + NPW_BIG + [f"platform={NEW}"], RUNS / "numpywren_10gb")
    big.insert(0, "platform", NEW)
    big["variant"] = "10240 MB executors x 88"
    # and with four tasks in flight per executor, to give its 5.8 vCPUs something to overlap
    piped = run_single(cfg("numpywren/systems.yaml"), sets + NPW_BIG + ["params.pipeline_width=4", f"platform={NEW}"],
                       RUNS / "numpywren_10gb_pw4")
    piped.insert(0, "platform", NEW)
    piped["variant"] = "10240 MB executors x 88, pipeline 4"
    df = pd.concat([tab, big, piped], ignore_index=True)
    out = pd.DataFrame({
        "platform": df["platform"], "variant": df["variant"], "program": "cholesky", "blocks": NPW_BLOCKS,
        "n_model": NPW_BLOCKS * 4096, "npw_completion_s": df["completion_s"], "npw_core_s": df["core_s"],
        "npw_billed_core_s": df["billed_core_s"], "npw_cost_usd": df["cost_usd.total"],
        "npw_executors": df["executors"], "mpi_completion_s": df["mpi_completion_s"], "mpi_core_s": df["mpi_core_s"],
        "mpi_cost_usd": df["mpi_cost_usd"], "correct": df["correct"],
    })
    out["time_ratio_npw_over_mpi"] = out["npw_completion_s"] / out["mpi_completion_s"]
    out["core_ratio_mpi_over_npw"] = out["mpi_core_s"] / out["npw_core_s"]
    out["cost_ratio_npw_over_mpi"] = out["npw_cost_usd"] / out["mpi_cost_usd"]
    return out


def plot_numpywren(df: pd.DataFrame, path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    labels = [f"{p.replace('aws_', '')}\n{v.replace(' executors', '').replace(', ', chr(10))}"
              for p, v in zip(df["platform"], df["variant"])]
    x = np.arange(len(df))
    for ax, (npw, mpi, title) in zip(axes, (("npw_completion_s", "mpi_completion_s", "completion time (s)"),
                                            ("npw_core_s", "mpi_core_s", "core-seconds"),
                                            ("npw_cost_usd", "mpi_cost_usd", "cost (USD)"))):
        ax.bar(x - 0.2, df[npw], 0.38, label="NumPyWren")
        ax.bar(x + 0.2, df[mpi], 0.38, label="MPI (ScaLAPACK model)")
        for xi, (a, b) in enumerate(zip(df[npw], df[mpi])):
            ax.annotate(f"{a / b:.2f}x", (xi - 0.2, a), ha="center", va="bottom", fontsize=7)
        ax.set_xticks(x)
        ax.set_xticklabels(labels, fontsize=7)
        ax.set_title(title, fontsize=9)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"NumPyWren vs MPI, Cholesky N={NPW_BLOCKS * 4096:,} (numbers: NumPyWren / MPI)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- Cirrus
#: (column value, Cirrus's platform profile) for 2020 and 2026
CIRRUS_PROFILES = [("aws_2020_cirrus", "configs/cirrus/platform.yaml"),
                   ("aws_2026_cirrus", "configs/cirrus/platform_2026.yaml")]
#: virtual seconds of training, as in results/cirrus/pywren.csv (PyWren's 120 s set the target loss)
CIRRUS_TRAIN_S = {"cirrus": 20, "pywren": 120}
#: Cirrus evaluated every virtual second as in configs/cirrus/lr_systems.yaml (the figure's Cirrus curve)
CIRRUS_SETS = {"cirrus": ["params.eval_every_s=1.0"], "pywren": []}


def cirrus(parallel: bool) -> pd.DataFrame:
    """Cirrus and PyWren-style training of the same sparse LR; time to PyWren's best loss on each platform."""
    rows = []
    for platform, profile in CIRRUS_PROFILES:
        curves, summ = {}, {}
        for system in ("cirrus", "pywren"):
            out = RUNS / "cirrus" / platform / system
            sets = [f"params.system={system}", f"params.train_s={CIRRUS_TRAIN_S[system]}",
                    f"platform={ROOT / profile}"] + CIRRUS_SETS[system]
            summ[system] = run_single(cfg("cirrus/pywren.yaml"), sets, out).iloc[0]
            curves[system] = pd.read_csv(out / "point-000" / "curve.csv")
        target = float(curves["pywren"]["value"].min())
        for system in ("cirrus", "pywren"):
            r = summ[system]
            rows.append({"platform": platform, "system": system, "train_s": CIRRUS_TRAIN_S[system],
                         "target_loss": target, "time_to_target_s": time_to(curves[system], target),
                         "best_loss": r["best_value"], "updates": r["updates"], "makespan_s": r["makespan_s"],
                         "cost_usd": r["cost_usd.total"], "lambda_compute_usd": r["cost_usd.lambda_compute"],
                         "s3_requests_usd": r.get("cost_usd.s3_requests", 0.0),
                         "vm_nodes_usd": r.get("cost_usd.vm_nodes", 0.0), "trace_hash": r["trace_hash"]})
    df = pd.DataFrame(rows)
    tta = df.set_index(["platform", "system"])["time_to_target_s"]
    df["pywren_over_cirrus"] = [tta[(p, "pywren")] / tta[(p, "cirrus")] for p in df["platform"]]
    return df


def plot_cirrus(df: pd.DataFrame, path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    platforms = list(dict.fromkeys(df["platform"]))
    for ax, (col, title) in zip(axes, (("time_to_target_s", "time to PyWren's best loss (virtual s)"),
                                       ("cost_usd", "cost of the run (USD; Cirrus 20 s, PyWren 120 s of training)"))):
        for i, system in enumerate(("cirrus", "pywren")):
            sub = df[df["system"] == system].set_index("platform").reindex(platforms)
            xs = np.arange(len(platforms)) + (i - 0.5) * 0.38
            ax.bar(xs, sub[col], 0.36, label=system)
        ax.set_xticks(range(len(platforms)))
        ax.set_xticklabels(platforms, fontsize=8)
        ax.set_yscale("log")
        ax.set_title(title, fontsize=9)
    for xi, p in enumerate(platforms):
        ratio = df[df["platform"] == p]["pywren_over_cirrus"].iloc[0]
        axes[0].annotate(f"PyWren/Cirrus {ratio:.0f}x", (xi, axes[0].get_ylim()[1]), ha="center", va="top", fontsize=8)
    axes[0].legend(fontsize=8)
    fig.suptitle("Cirrus vs PyWren-style sparse LR, 10 workers: 2020 vs 2026 Lambda (same VMs)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- INFless
INFLESS_SETS = ["params.duration_s=30", "params.load_rps=200"]


def infless(parallel: bool) -> pd.DataFrame:
    """One small serving point per system under both profiles: the profile changes nothing INFless reads."""
    tab = run_whatif(cfg("infless/serving.yaml"), [OLD, NEW], ["system=infless,batch"], INFLESS_SETS,
                     RUNS / "infless", parallel=parallel)
    keep = ["platform", "params.system", "params.pattern", "params.load_rps", "params.duration_s",
            "infless.arrived", "infless.within_slo", "infless.goodput_rps", "infless.slo_attainment",
            "infless.p99_s", "infless.serving_cost_usd", "infless.instances_placed", "makespan_s",
            "cost_usd.total", "trace_hash"]
    out = tab[keep].rename(columns=lambda c: c.removeprefix("params.").removeprefix("infless."))
    # the one Lambda function that hosts the serving model: its own cold start and bill are all the profile touches
    return out.rename(columns={"makespan_s": "harness_makespan_s", "cost_usd.total": "harness_lambda_usd"})


#: table name -> the function that runs its what-if and returns its long-format table
HEADLINES = {"lambdaml_channels": lambdaml_channels, "lambdaml_patterns": lambdaml_patterns, "numpywren": numpywren,
             "cirrus": cirrus, "infless": infless}
#: figure -> (drawing function, the tables it reads)
FIGURES = {"lambdaml.png": (plot_lambdaml, ["lambdaml_channels", "lambdaml_patterns"]),
           "numpywren.png": (plot_numpywren, ["numpywren"]), "cirrus.png": (plot_cirrus, ["cirrus"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--plot-only", action="store_true", help="redraw the PNGs from the committed CSVs")
    ap.add_argument("--serial", action="store_true", help="run points in this process, not as Ray tasks")
    ap.add_argument("--only", default="", help="comma-separated table names to (re)run, e.g. cirrus,infless")
    args = ap.parse_args()
    only = [n for n in args.only.split(",") if n] or list(HEADLINES)
    unknown = sorted(set(only) - set(HEADLINES))
    if unknown:
        ap.error(f"--only: unknown tables {unknown}; known: {sorted(HEADLINES)}")
    if not args.plot_only:
        for name, run in ((n, HEADLINES[n]) for n in only):
            write_csv(OUT / f"{name}.csv", run(not args.serial))
    for figure, (draw, tables) in FIGURES.items():
        draw(*(pd.read_csv(OUT / f"{t}.csv") for t in tables), OUT / figure)
    for name in HEADLINES:
        print(f"\n{name}\n" + pd.read_csv(OUT / f"{name}.csv").round(4).to_string(index=False))


if __name__ == "__main__":
    main()
