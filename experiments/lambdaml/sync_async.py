"""The seed's synchronisation-protocol figure: synchronous vs asynchronous convergence.

    python experiments/lambdaml/sync_async.py            # one sweep (~1 min on 2 cores)
    python experiments/lambdaml/sync_async.py --plot-only
    sls-ray reproduce lambdaml/sync_async [--plot-only]        # the same

Runs configs/lambdaml/sync_async.yaml (LR/Higgs, W = 10, S3; GA-SGD and MA-SGD, each
synchronous and asynchronous) and writes results/lambdaml/sync_async.csv and sync_async.png.
Asynchronous workers do not share a step, so their losses are their own (the mean over
workers is plotted); synchronous losses are global. No numbers in the seed to overlay.

The figure itself (sweeps, CSV, plot, the paper's numbers) is ``lambdaml/sync_async`` in
sls_ray/lambdaml/figures.py; this script is its entry point for people who look here.
"""
from sls_ray.api import script_main

if __name__ == "__main__":
    script_main("lambdaml/sync_async")
