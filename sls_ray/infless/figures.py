"""INFless's reproducible figures (``sls-ray reproduce infless/<name>``, ``infless --all``).

The paper's claims are from ../shared/papers/infless.md ([seed]). Each figure sweeps a config
in configs/infless/ through the core harness (sls_ray/harness.py): points under
``runs/infless/<sweep>/`` (not committed, resumable), long-format CSVs and PNGs in
``results/infless/``; results/README.md says what matches the seed and what does not.
Points run serially in-process: each is one handler running the whole serving simulation.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from sls_ray.api import Figure, SweepRun, SweepSpec, overlay_paper, pyplot

Runs = Mapping[str, SweepRun]
Tables = Mapping[str, pd.DataFrame]
DPI = 110
PATTERNS = ("sporadic", "periodic", "bursty")
LOADS = "500,2000,8000,16000"
SYSTEM_COLORS = {"INFless": "tab:blue", "BATCH": "tab:orange", "BATCH (CPU only)": "tab:brown",
                 "OpenFaaS+": "tab:green"}
SEED_SPEEDUP = (2.0, 5.0)                  # INFless vs the baselines [seed]
SEED_COLDSTART_REDUCTION = 0.20            # LSTH vs HHP [seed]
SEED_COP_ERROR = 0.10                      # COP error under 10% [seed]


def label(row: Mapping) -> str:
    s = row["params.system"]
    if s == "openfaas":
        return "OpenFaaS+"
    if s == "batch":
        return "BATCH" if row.get("params.batch_gpu", True) else "BATCH (CPU only)"
    parts = []
    if not row.get("params.batching", True):
        parts.append("no batching")
    if not row.get("params.resource_aware", True):
        parts.append("no resource-aware")
    if row.get("params.profile_error", 1.0) != 1.0:
        parts.append(f"profiling error x{row['params.profile_error']:g}")
    return "INFless" + (f" ({', '.join(parts)})" if parts else "")


def points(runs: Runs, *names: str) -> pd.DataFrame:
    """Sweep rows as a long table: parameters, the system's label, and the run's serving summary."""
    rows = []
    for n in names:
        for _, r in runs[n].table.iterrows():
            row = {"sweep": n}
            row.update({k.split(".", 1)[1]: v for k, v in r.items() if k.startswith("params.")})
            row.update({k.split(".", 1)[1]: v for k, v in r.items() if k.startswith("infless.")})
            row["system_kind"] = row.pop("system")
            row["system"] = label(r)
            rows.append(row)
    return pd.DataFrame(rows)


def _system_points(runs: Runs, table: pd.DataFrame, csv: str, names: tuple[str, ...]) -> pd.DataFrame:
    frames = []
    for n in names:
        for d, (_, r) in zip(runs[n].dirs, runs[n].table.iterrows()):
            if (d / csv).exists():
                frames.append(pd.read_csv(d / csv).rename(columns={"system": "system_kind"}).assign(system=label(r)))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


# -- 1. throughput under production-like traces

THROUGHPUT_SWEEPS = (
    SweepSpec("throughput", "infless/throughput.yaml", serial=True,
              grid=("system=infless,batch,openfaas", f"pattern={','.join(PATTERNS)}", f"load_rps={LOADS}")),
    SweepSpec("throughput_batch_cpu", "infless/throughput.yaml", serial=True,
              grid=(f"pattern={','.join(PATTERNS)}", f"load_rps={LOADS}"),
              sets=("params.system=batch", "params.batch_gpu=false")),
)


def best_goodput(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Each system's throughput meeting the SLO: its highest goodput (requests/s within SLO) over the loads."""
    i = df.groupby(keys)["goodput_rps"].idxmax()
    return df.loc[i, keys + ["goodput_rps", "load_rps", "slo_attainment", "serving_cost_usd"]].reset_index(drop=True)


def throughput_plot(csvs: Tables) -> dict:
    plt = pyplot()
    df = csvs["throughput"]
    best = best_goodput(df, ["pattern", "system"])
    systems = [s for s in SYSTEM_COLORS if s in set(best.system)]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 4.5))
    w = 0.8 / len(systems)
    x = np.arange(len(PATTERNS))
    for i, s in enumerate(systems):
        v = [best[(best.pattern == p) & (best.system == s)].goodput_rps.max() for p in PATTERNS]
        ax.bar(x + i * w, v, w, label=s, color=SYSTEM_COLORS[s])
    ax.set_xticks(x + w * (len(systems) - 1) / 2, PATTERNS)
    ax.set_ylabel("throughput meeting SLO (req/s within SLO)")
    ax.set_title("best goodput over offered loads 500-16,000 req/s")
    ax.legend(fontsize=8)
    for s in [s for s in systems if s != "INFless"]:
        r = [best[(best.pattern == p) & (best.system == "INFless")].goodput_rps.max()
             / best[(best.pattern == p) & (best.system == s)].goodput_rps.max() for p in PATTERNS]
        ax2.plot(PATTERNS, r, marker="o", label=f"INFless / {s}", color=SYSTEM_COLORS[s])
    ax2.axhspan(*SEED_SPEEDUP, color="grey", alpha=0.2, label="seed: INFless 2x-5x")
    ax2.set_yscale("log")
    ax2.set_ylabel("throughput ratio")
    ax2.set_title("INFless speed-up over each baseline")
    ax2.legend(fontsize=8)
    return {"throughput": fig}


def throughput_report(csvs: Tables) -> str:
    best = best_goodput(csvs["throughput"], ["pattern", "system"])
    piv = best.pivot(index="pattern", columns="system", values="goodput_rps").round(0)
    for s in piv.columns:
        if s != "INFless":
            piv[f"INFless/{s}"] = (piv["INFless"] / piv[s]).round(2)
    return piv.to_string()


# -- 2. throughput vs SLO

SLO_SWEEP = SweepSpec("slo", "infless/throughput.yaml", serial=True,
                      grid=("system=infless,batch,openfaas", "slo_scale=0.5,1,2",
                            "load_rps=2000,4000,8000,16000,32000"),
                      sets=("params.pattern=poisson",))


def slo_plot(csvs: Tables) -> dict:
    plt = pyplot()
    best = best_goodput(csvs["slo"], ["slo_scale", "system"])
    fig, ax = plt.subplots(figsize=(8, 4.6))
    for s in [s for s in SYSTEM_COLORS if s in set(best.system)]:
        b = best[best.system == s].sort_values("slo_scale")
        ax.plot(b.slo_scale, b.goodput_rps, marker="o", label=s, color=SYSTEM_COLORS[s])
    ax.set_xlabel("SLO / default SLO\n(defaults: ResNet-50 300 ms, MobileNet 200, SSD 400, LSTM 100, TextCNN 50)")
    ax.set_ylabel("throughput meeting SLO (req/s)")
    ax.set_title("throughput vs SLO, Poisson load\n(best goodput over 2,000-32,000 req/s offered)")
    ax.legend(fontsize=8)
    return {"slo": fig}


# -- 3. component analysis

COMPONENT_VARIANTS = {"components_full": (), "components_nobatch": ("params.batching=false",),
                      "components_noaware": ("params.resource_aware=false",),
                      "components_err15": ("params.profile_error=1.5",),
                      "components_err2": ("params.profile_error=2.0",)}
COMPONENT_SWEEPS = tuple(SweepSpec(n, "infless/throughput.yaml", serial=True, grid=("load_rps=4000,16000",),
                                   sets=("params.pattern=bursty",) + s) for n, s in COMPONENT_VARIANTS.items())


def components_plot(csvs: Tables) -> dict:
    plt = pyplot()
    best = best_goodput(csvs["components"], ["system"])
    full = best[best.system == "INFless"].goodput_rps.iloc[0]
    best = best.assign(relative=best.goodput_rps / full).sort_values("relative", ascending=False)
    fig, ax = plt.subplots(figsize=(7.5, 4))
    ax.barh(best.system, best.relative, color="tab:blue")
    for y, v in enumerate(best.relative):
        ax.text(v, y, f" {v:.2f}", va="center", fontsize=8)
    ax.set_xlabel("throughput meeting SLO, relative to full INFless (bursty load)")
    ax.set_title("component analysis (seed: batching contributes most)")
    ax.invert_yaxis()
    return {"components": fig}


# -- 4. configuration diversity, 5. provisioning over time (both from the throughput points)

def diversity_tables(runs: Runs) -> dict[str, pd.DataFrame]:
    inst = _system_points(runs, None, "instances.csv", ("throughput",))
    return {"configs": inst[inst.system.isin(["INFless", "BATCH", "OpenFaaS+"])]}


def diversity_plot(csvs: Tables) -> dict:
    plt = pyplot()
    df = csvs["configs"]
    df = df[(df.pattern == "bursty") & (df.load_rps == 8000)]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), sharey=True)
    for ax, s in zip(axes, ["INFless", "BATCH", "OpenFaaS+"]):
        d = df[df.system == s]
        g = d.groupby(["model", "batch", "threads", "gpu_pct"]).size().reset_index(name="n")
        for m, gm in g.groupby("model"):
            ax.scatter(gm.threads, gm.gpu_pct, s=20 + 12 * gm.batch, alpha=0.6, label=m)
        ax.set_title(f"{s}: {len(g)} distinct (b, c, g) in {len(d)} instances")
        ax.set_xlabel("CPU threads c (marker size: batch b)")
    axes[0].set_ylabel("GPU share g (%)")
    axes[0].legend(fontsize=7)
    fig.suptitle("configuration diversity, bursty load 8,000 req/s (seed: INFless non-uniform, BATCH uniform)")
    return {"configs": fig}


PROVISIONING_SWEEP = SweepSpec("provisioning", "infless/throughput.yaml", serial=True,
                               grid=("system=infless,batch,openfaas",),
                               sets=("params.pattern=periodic", "params.load_rps=2000", "params.duration_s=1200"))


def provisioning_tables(runs: Runs) -> dict[str, pd.DataFrame]:
    tl = _system_points(runs, None, "timeline.csv", ("provisioning",))
    return {"provisioning": tl,
            "violations": points(runs, "throughput")[["system", "pattern", "load_rps", "arrived", "within_slo",
                                                      "dropped", "slo_attainment", "serving_cost_usd"]]
            .assign(violation_rate=lambda d: 1 - d.slo_attainment)}


def provisioning_plot(csvs: Tables) -> dict:
    plt = pyplot()
    tl = csvs["provisioning"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for s in ["INFless", "BATCH", "OpenFaaS+"]:
        d = tl[tl.system == s]
        axes[0].plot(d.t_s, d.threads, label=s, color=SYSTEM_COLORS[s])
        axes[1].plot(d.t_s, d.gpu_pct / 100, label=s, color=SYSTEM_COLORS[s])
    ax0r = axes[0].twinx()
    d = tl[tl.system == "INFless"]
    ax0r.plot(d.t_s, d.offered_rps, color="grey", linestyle=":", label="offered load")
    ax0r.set_ylabel("offered req/s (dotted)")
    axes[0].set_ylabel("CPU threads allocated")
    axes[1].set_ylabel("GPUs allocated (sum of shares)")
    for ax in axes[:2]:
        ax.set_xlabel("virtual time (s)")
        ax.legend(fontsize=8)
    axes[0].set_title("provisioning over time, periodic load 2,000 req/s (20 min)")
    v = csvs["violations"]
    v = v[v.load_rps == 2000]
    systems = ["INFless", "BATCH", "OpenFaaS+"]
    x = np.arange(len(PATTERNS))
    for i, s in enumerate(systems):
        vals = [v[(v.system == s) & (v.pattern == p)].violation_rate.mean() * 100 for p in PATTERNS]
        axes[2].bar(x + i * 0.27, vals, 0.27, label=s, color=SYSTEM_COLORS[s])
    axes[2].set_xticks(x + 0.27, PATTERNS)
    axes[2].set_ylabel("SLO violations (% of requests, incl. dropped)")
    axes[2].set_title("SLO violation rate at 2,000 req/s")
    axes[2].legend(fontsize=8)
    return {"provisioning": fig}


# -- 6. cold starts

COLDSTART_SWEEPS = (SweepSpec("coldstart_base", "infless/coldstart.yaml", serial=True, grid=("keepalive=fixed,hhp",)),
                    SweepSpec("coldstart_lsth", "infless/coldstart.yaml", serial=True,
                              grid=("keepalive=lsth", "gamma=0.3,0.5,0.7")))


def coldstart_tables(runs: Runs) -> dict[str, pd.DataFrame]:
    df = points(runs, *[s.name for s in COLDSTART_SWEEPS])
    df["policy"] = [f"LSTH γ={g:g}" if k == "lsth" else {"hhp": "HHP", "fixed": "fixed 10 min"}[k]
                    for k, g in zip(df.keepalive, df.gamma)]
    hhp = df[df.keepalive == "hhp"].iloc[0]
    df["cold_starts_vs_hhp"] = df.cold_starts / hhp.cold_starts
    df["wasted_vs_hhp"] = df.wasted_min / hhp.wasted_min
    return {"coldstart": df[["policy", "keepalive", "gamma", "trace_functions", "trace_days", "seed", "invocations",
                             "cold_starts", "cold_start_rate", "loaded_min", "wasted_min", "cold_starts_vs_hhp",
                             "wasted_vs_hhp"]]}


def coldstart_plot(csvs: Tables) -> dict:
    plt = pyplot()
    df = csvs["coldstart"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    a.bar(df.policy, df.cold_starts_vs_hhp, color="tab:blue")
    overlay_paper(a, [i for i, k in enumerate(df.keepalive) if k == "lsth"],
                  [1 - SEED_COLDSTART_REDUCTION] * int((df.keepalive == "lsth").sum()), marker="_", size=30,
                  label="seed: LSTH ~20% fewer than HHP")
    a.set_ylabel("cold starts relative to HHP")
    a.legend(fontsize=8)
    b.bar(df.policy, df.wasted_vs_hhp, color="tab:orange")
    b.set_ylabel("idle loaded memory-minutes relative to HHP")
    for ax in (a, b):
        ax.tick_params(axis="x", rotation=20)
    fig.suptitle("keep-alive policies on a 2-day Azure-shaped trace (300 functions)")
    return {"coldstart": fig}


# -- 7. large scale

LARGE_SCALES = (1, 4, 16, 48, 112)
LARGE_SWEEPS = tuple(SweepSpec(f"large_x{k}", "infless/large_scale.yaml", serial=True,
                               grid=("system=infless,batch,openfaas",),
                               sets=(f"params.nodes={4 * k}", f"params.functions_per_model={k}",
                                     f"params.load_rps={1500 * k}")) for k in LARGE_SCALES)


def large_plot(csvs: Tables) -> dict:
    plt = pyplot()
    df = csvs["large_scale"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for s in ["INFless", "BATCH", "OpenFaaS+"]:
        d = df[df.system == s].sort_values("instances_placed")
        c = SYSTEM_COLORS[s]
        axes[0].plot(d.functions, d.goodput_rps, marker="o", label=s, color=c)
        axes[1].plot(d.instances_placed, d.fragment_ratio, marker="o", label=s, color=c)
        axes[2].plot(d.instances_placed, d.scored_pairs.clip(lower=1), marker="o", label=s, color=c)
    axes[0].set(xlabel="functions", ylabel="throughput meeting SLO (req/s)", xscale="log", yscale="log",
                title="throughput vs functions (cluster and load grow with them)")
    axes[1].set(xlabel="instances placed", ylabel="fragment ratio (idle share of occupied slots)", xscale="log",
                title="fragments (seed: INFless fewer)")
    axes[2].set(xlabel="instances placed", ylabel="(config, slot) pairs scored", xscale="log", yscale="log",
                title="scheduler cost (baselines: first-fit, 0 scored)")
    for ax in axes:
        ax.legend(fontsize=8)
    return {"large_scale": fig}


def large_tables(runs: Runs) -> dict[str, pd.DataFrame]:
    df = points(runs, *[s.name for s in LARGE_SWEEPS])
    df["functions"] = df.functions_per_model * 5
    return {"large_scale": df[["system", "nodes", "functions", "load_rps", "instances_placed", "goodput_rps",
                               "slo_attainment", "fragment_ratio", "scored_pairs", "serving_cost_usd"]]}


# -- 8. COP accuracy

COP_SWEEP = SweepSpec("cop", "infless/cop.yaml", serial=True, grid=("seed=0",))


def cop_plot(csvs: Tables) -> dict:
    plt = pyplot()
    df = csvs["cop"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    for m, d in df.groupby("model"):
        a.scatter(d.measured_s * 1e3, d.predicted_s * 1e3, label=m)
    lim = [df.measured_s.min() * 1e3 * 0.8, df.measured_s.max() * 1e3 * 1.2]
    a.plot(lim, lim, "k--", lw=1, label="exact")
    a.fill_between(lim, [v * 0.9 for v in lim], [v * 1.1 for v in lim], color="grey", alpha=0.2,
                   label="seed: within 10%")
    a.set(xscale="log", yscale="log", xlabel="measured (ms, host CPU, 1 thread)", ylabel="predicted (ms)",
          title="COP: graph-walk prediction vs measurement")
    a.legend(fontsize=7)
    err = df.groupby("model").error.apply(lambda e: e.abs().mean() * 100)
    margin = (df.predicted_margin_s / df.measured_s - 1).abs().groupby(df.model).mean() * 100
    x = np.arange(len(err))
    b.bar(x - 0.2, err.values, 0.4, color="tab:blue", label="prediction")
    b.bar(x + 0.2, margin[err.index].values, 0.4, color="tab:cyan", label="prediction + 10% margin")
    b.set_xticks(x, err.index)
    b.axhline(SEED_COP_ERROR * 100, color="black", linestyle="--", label="seed: < 10%")
    b.set_ylabel("mean |error| (%) over batches 1-32")
    b.legend(fontsize=8)
    return {"cop_accuracy": fig}


FIGURES = [
    Figure(key="infless/throughput", title="throughput meeting SLO: INFless vs OpenFaaS+ vs BATCH, 3 load patterns",
           sweeps=THROUGHPUT_SWEEPS,
           tables=lambda runs: {"throughput": points(runs, *[s.name for s in THROUGHPUT_SWEEPS])},
           plot=throughput_plot, csvs=("throughput",), report=throughput_report, dpi=DPI),
    Figure(key="infless/slo", title="throughput meeting SLO vs the SLO", sweeps=(SLO_SWEEP,),
           tables=lambda runs: {"slo": points(runs, "slo")}, plot=slo_plot, csvs=("slo",),
           report=lambda c: best_goodput(c["slo"], ["slo_scale", "system"]).to_string(index=False), dpi=DPI),
    Figure(key="infless/components", title="component analysis: no batching, no resource-aware, profiling error",
           sweeps=COMPONENT_SWEEPS, tables=lambda runs: {"components": points(runs, *COMPONENT_VARIANTS)},
           plot=components_plot, csvs=("components",),
           report=lambda c: best_goodput(c["components"], ["system"]).to_string(index=False), dpi=DPI),
    Figure(key="infless/configs", title="configuration diversity (b, c, g) of INFless vs BATCH vs OpenFaaS+",
           sweeps=THROUGHPUT_SWEEPS[:1], tables=diversity_tables, plot=diversity_plot, csvs=("configs",), dpi=DPI),
    Figure(key="infless/provisioning", title="resources over time and SLO-violation rates",
           sweeps=(THROUGHPUT_SWEEPS[0], PROVISIONING_SWEEP), tables=provisioning_tables, plot=provisioning_plot,
           csvs=("provisioning", "violations"), dpi=DPI),
    Figure(key="infless/coldstart", title="cold starts and idle memory: LSTH (γ 0.3/0.5/0.7) vs HHP vs fixed",
           sweeps=COLDSTART_SWEEPS, tables=coldstart_tables, plot=coldstart_plot, csvs=("coldstart",),
           report=lambda c: c["coldstart"].round(4).to_string(index=False), dpi=DPI),
    Figure(key="infless/large_scale", title="large scale: throughput, fragments, scheduler cost up to thousands of "
           "instances", sweeps=LARGE_SWEEPS, tables=large_tables, plot=large_plot, csvs=("large_scale",),
           report=lambda c: c["large_scale"].round(3).to_string(index=False), dpi=DPI),
    Figure(key="infless/cop_accuracy", title="COP predicted vs measured latency", sweeps=(COP_SWEEP,),
           tables=lambda runs: {"cop": runs["cop"].point_table("cop.csv")}, plot=cop_plot, csvs=("cop",),
           report=lambda c: c["cop"].groupby("model").error.describe().round(3).to_string(), dpi=DPI),
]
