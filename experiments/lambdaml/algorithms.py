"""The seed's algorithm figure: loss vs time and vs dollars for GA-SGD, MA-SGD and ADMM.

    python experiments/lambdaml/algorithms.py            # three sweeps (~2 min on 2 cores)
    python experiments/lambdaml/algorithms.py --plot-only
    sls-ray reproduce lambdaml/algorithms [--plot-only]        # the same

Runs configs/lambdaml/algorithms_{lr,svm,mobilenet}.yaml (W = 10, through S3) and writes
results/lambdaml/algorithms.csv (every epoch of every run: virtual time, dollars so far,
global training loss, mean validation loss) and algorithms.png. The seed gives this figure
without numbers, so nothing is overlaid; results/README.md compares the shapes.

The figure itself (sweeps, CSV, plot, the paper's numbers) is ``lambdaml/algorithms`` in
sls_ray/lambdaml/figures.py; this script is its entry point for people who look here.
"""
from sls_ray.api import script_main

if __name__ == "__main__":
    script_main("lambdaml/algorithms")
