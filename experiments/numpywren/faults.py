"""Seed Fig. 5: fault tolerance, tasks done and live executors when executors are killed mid-run.

    python experiments/numpywren/faults.py [--plot-only]
    sls-ray reproduce numpywren/faults [--plot-only]        # the same

configs/numpywren/faults.yaml: a fixed pool of 64 executors runs Cholesky N = 128K; at
t = KILL_AT a fault plan kills 0 %, 25 % or 50 % of the live executors. Their leases (60 s)
expire, their tasks reappear for the survivors, and the pool's next relaunch replaces them.
Writes results/numpywren/faults.csv (one row per run: slowdown, repeated tasks, the gap before
the killed tasks restarted) and faults_timeline.csv / faults.png (tasks done and live executors).

The figure itself (runs, CSVs, plot, the paper's numbers) is ``numpywren/faults`` in
sls_ray/numpywren/figures.py; this script is its entry point for people who look here.
"""
from sls_ray.api import script_main

if __name__ == "__main__":
    script_main("numpywren/faults")
