"""Seed Fig. 7: pipelining, throughput at pipeline width 1, 2 and 4, with and without the block cache.

    python experiments/numpywren/pipeline.py

configs/numpywren/pipeline.yaml: 16 executors on Cholesky N = 128K. Writes
results/numpywren/pipeline.csv (GFLOP/s, completion, cache hits, bytes read per setting) and
pipeline.png.
"""
from __future__ import annotations

import pandas as pd

from _paper import RESULTS, pyplot, run, save_figure

WIDTHS = [1, 2, 4]
CACHES = [0, 5]


def main() -> None:
    rows = []
    for cache in CACHES:
        for pw in WIDTHS:
            s, _ = run(f"pipeline-pw{pw}-cache{cache}", "pipeline.yaml",
                       [f"params.pipeline_width={pw}", f"params.cache_blocks={cache}"])
            rows.append({"pipeline_width": pw, "cache_blocks": cache, "gflops_per_s": s["gflops_per_s"],
                         "completion_s": s["completion_s"], "core_s": s["core_s"], "cache_hits": s["cache_hits"],
                         "network_read_bytes": s["network_read_bytes"], "correct": s["correct"]})
    df = pd.DataFrame(rows)
    base = df[(df["pipeline_width"] == 1) & (df["cache_blocks"] == 0)]["gflops_per_s"].iloc[0]
    df["speedup_vs_pw1"] = df["gflops_per_s"] / base
    RESULTS.mkdir(parents=True, exist_ok=True)
    df.to_csv(RESULTS / "pipeline.csv", index=False)

    plt = pyplot()
    import numpy as np

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
    save_figure(fig, "pipeline")
    plt.close(fig)
    print(df.to_string())


if __name__ == "__main__":
    main()
