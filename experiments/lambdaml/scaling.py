"""Worker scaling: time and cost to a target loss for W = 1 to 150, with the analytical model.

    python experiments/lambdaml/scaling.py            # one sweep (~1 min on 2 cores)
    python experiments/lambdaml/scaling.py --plot-only
    sls-ray reproduce lambdaml/scaling [--plot-only]        # the same

Runs configs/lambdaml/scaling.yaml (MA-SGD on LR/Higgs through S3 to a training loss of 0.66)
and writes results/lambdaml/scaling.csv and scaling.png: simulated end-to-end time and cost
per W, and the analytical model (sls_ray/lambdaml/analytical.py) evaluated for the same W and
the same number of epochs.

The figure itself (sweeps, CSV, plot, the paper's numbers) is ``lambdaml/scaling`` in
sls_ray/lambdaml/figures.py; this script is its entry point for people who look here.
"""
from sls_ray.api import script_main

if __name__ == "__main__":
    script_main("lambdaml/scaling")
