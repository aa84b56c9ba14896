"""Seed Fig. 3: scalability of Cholesky (block 4096, folded).

    python experiments/numpywren/scaling.py [--plot-only]
    sls-ray reproduce numpywren/scaling [--plot-only]        # the same

(a, b, d) problem size: 8, 16, 32, 64 blocks (N = 32K..256K) with configs/numpywren/size_scaling.yaml
(the 64-block point is the systems table's run): completion time and core-seconds of NumPyWren,
the MPI model and a 128-vCPU machine. (strong) configs/numpywren/strong_scaling.yaml: one
Cholesky (N = 128K) on fixed pools of 1..256 executors: completion time and GFLOP/s.
(c, weak) configs/numpywren/weak_scaling.yaml: pool size proportional to N^3.
Writes results/numpywren/scaling_size.csv, strong_scaling.csv, weak_scaling.csv and their PNGs.

The figure itself (runs, CSVs, plot, the paper's numbers) is ``numpywren/scaling`` in
sls_ray/numpywren/figures.py; this script is its entry point for people who look here.
"""
from sls_ray.api import script_main

if __name__ == "__main__":
    script_main("numpywren/scaling")
