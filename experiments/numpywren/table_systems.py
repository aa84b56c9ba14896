"""Seed Tables 1-2 and the bytes-read comparison: NumPyWren vs MPI (ScaLAPACK model) at N = 256K.

    python experiments/numpywren/table_systems.py [--plot-only]
    sls-ray reproduce numpywren/systems [--plot-only]        # the same

Runs configs/numpywren/systems.yaml once per program at the paper's DAG (64 blocks of 4096,
folded onto 4x4 real blocks), each with the
MPI cluster and single-machine models on the same DAG, at the source scripts' pipeline width 1
and again ("pipelined" rows) at the widest pipeline that fits the 3008 MB executor, at most the
source executor's default of 5 (job.widest_pipeline; programs where that is 1 have no second
row). Then it writes
results/numpywren/systems.csv and systems_time.png, systems_core_s.png, bytes.png with the
seed's numbers overlaid. Runs already finished under runs/numpywren are read back, not redone.

The figure itself (runs, CSVs, plot, the paper's numbers) is ``numpywren/systems`` in
sls_ray/numpywren/figures.py; this script is its entry point for people who look here.
"""
from sls_ray.api import script_main

if __name__ == "__main__":
    script_main("numpywren/systems")
