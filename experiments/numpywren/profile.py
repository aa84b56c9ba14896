"""Seed Fig. 4: the Cholesky profile, ready / running tasks and live working set over time.

    python experiments/numpywren/profile.py [--plot-only]
    sls-ray reproduce numpywren/profile [--plot-only]        # the same

Reads the paper-DAG Cholesky run (64 blocks of 4096; configs/numpywren/systems.yaml, the same
run as the systems table, made here if missing) and derives, from its CSVs only: tasks ready
in the queue (the driver's polls), tasks in flight (received, not yet retired), tasks being
computed, and the bytes of live intermediate blocks in S3 (written minus garbage-collected).
Writes results/numpywren/profile.csv and profile.png.

The figure itself (runs, CSVs, plot, the paper's numbers) is ``numpywren/profile`` in
sls_ray/numpywren/figures.py; this script is its entry point for people who look here.
"""
from sls_ray.api import script_main

if __name__ == "__main__":
    script_main("numpywren/profile")
