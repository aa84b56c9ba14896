"""Seed Fig. 7: pipelining, throughput at pipeline width 1, 2 and 4, with and without the block cache.

    python experiments/numpywren/pipeline.py [--plot-only]
    sls-ray reproduce numpywren/pipeline [--plot-only]        # the same

configs/numpywren/pipeline.yaml: 16 executors on Cholesky N = 128K. Writes
results/numpywren/pipeline.csv (GFLOP/s, completion, cache hits, bytes read per setting) and
pipeline.png.

The figure itself (runs, CSVs, plot, the paper's numbers) is ``numpywren/pipeline`` in
sls_ray/numpywren/figures.py; this script is its entry point for people who look here.
"""
from sls_ray.api import script_main

if __name__ == "__main__":
    script_main("numpywren/pipeline")
