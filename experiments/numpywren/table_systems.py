"""Seed Tables 1-2 and the bytes-read comparison: NumPyWren vs MPI (ScaLAPACK model) at N = 256K.

    python experiments/numpywren/table_systems.py [--only cholesky gemm qr svd] [--blocks qr=32]

Runs configs/numpywren/systems.yaml once per program at the paper's DAG (64 blocks of 4096,
folded onto 4x4 real blocks; ``--blocks`` shrinks one where the laptop cannot), each with the
MPI cluster and single-machine models on the same DAG, at the source scripts' pipeline width 1
and again ("pipelined" rows) at the widest pipeline that fits the 3008 MB executor, at most the
source executor's default of 5 (job.widest_pipeline; programs where that is 1 have no second
row). Then it writes
results/numpywren/systems.csv and systems_time.png, systems_core_s.png, bytes.png with the
seed's numbers overlaid. Runs already finished under runs/numpywren are read back, not redone.
"""
from __future__ import annotations

import argparse

import yaml

import pandas as pd

from _paper import (
    PROGRAM_OF, RESULTS, RUNS, SEED_BYTES_RATIO, SEED_CORE_S, SEED_SLOWDOWN, SEED_TIME, pyplot, run, save_figure,
)
from sls_ray.numpywren.job import JobSpec, widest_pipeline
from sls_ray.results import is_finished, read_summary

ORDER = ["svd", "qr", "gemm", "cholesky"]


def variants(name: str, n: int) -> list[tuple[str, str, list[str]]]:
    """(label, run name, overrides): source defaults, then the widest pipeline if wider than 1."""
    program = PROGRAM_OF[name]
    base = [f"params.program={program}", f"params.blocks={n}"]
    out = [("pw=1 (source default)", f"systems-{program}-{n}", base)]
    pw = widest_pipeline(JobSpec.make(program, n, 4, 4096), memory_mb=3008, runtime_mb=60.0)
    if pw > 1:
        out.append((f"pw={pw} (widest that fits)", f"systems-{program}-{n}-pw{pw}",
                    base + [f"params.pipeline_width={pw}"]))
    return out


def rows(blocks: dict[str, int], only: list[str]) -> pd.DataFrame:
    out = []
    for name, (label, run_name, sets) in [(nm, v) for nm in ORDER for v in variants(nm, blocks.get(nm, 64))]:
        program, n = PROGRAM_OF[name], blocks.get(name, 64)
        if name in only:
            s, _ = run(run_name, "systems.yaml", sets)
        else:
            d = RUNS / run_name
            if not is_finished(d):
                continue
            s = read_summary(d)
        seed_mpi_t, seed_npw_t = SEED_TIME[name]
        seed_mpi_c, seed_npw_c = SEED_CORE_S[name]
        row = {
            "row": name, "variant": label, "pipeline_width": yaml.safe_load((RUNS / run_name / "config.yaml").read_text())["params"]["pipeline_width"],
            "program": program, "blocks": n, "block_size_real": s["block_size"],
            "block_size_model": s["model_block_size"],
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
        out.append(row)
    return pd.DataFrame(out)


def plot(df: pd.DataFrame) -> None:
    plt = pyplot()
    import numpy as np

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
        ax.set_xticks(x, [f"{r.row.upper()} {r.blocks}x{r.block_size_model}\n{r.variant.split()[0]}" for r in df.itertuples()],
                      fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, axis="y")
        ax.set_title(f"NumPyWren vs MPI, {ylabel} (seed: N = 256K, 64 blocks of 4096)")
        save_figure(fig, fname)
        plt.close(fig)
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
    save_figure(fig, "bytes")
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=ORDER, choices=ORDER, help="rows to run (others are read if present)")
    ap.add_argument("--blocks", nargs="*", default=[], help="row=blocks, e.g. svd=32 (default 64)")
    args = ap.parse_args()
    blocks = {k: int(v) for k, v in (item.split("=") for item in args.blocks)}
    df = rows(blocks, args.only)
    RESULTS.mkdir(parents=True, exist_ok=True)
    df.to_csv(RESULTS / "systems.csv", index=False)
    if not df.empty and df["npw_completion_s"].notna().all():
        plot(df)
    print(df[["row", "variant", "blocks", "npw_completion_s", "mpi_completion_s", "npw_core_s", "mpi_core_s"]].to_string())


if __name__ == "__main__":
    main()
