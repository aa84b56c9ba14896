"""Seed Fig. 6: autoscaling, executors against pending tasks for several scaling factors and a fixed pool.

    python experiments/numpywren/autoscale.py [--plot-only]
    sls-ray reproduce numpywren/autoscale [--plot-only]        # the same

configs/numpywren/autoscale.yaml (Cholesky N = 128K) with the dynamic policy at sf = 0.25, 0.5,
1.0, and the source's fixed pool of the same cap (301 executors). Writes
results/numpywren/autoscale.csv (completion time, core-seconds, cost per policy),
autoscale_timeline.csv and autoscale.png.

The figure itself (runs, CSVs, plot, the paper's numbers) is ``numpywren/autoscale`` in
sls_ray/numpywren/figures.py; this script is its entry point for people who look here.
"""
from sls_ray.api import script_main

if __name__ == "__main__":
    script_main("numpywren/autoscale")
