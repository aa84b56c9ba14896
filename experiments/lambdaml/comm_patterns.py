"""The seed's communication-pattern table: AllReduce vs ScatterReduce seconds per round through S3.

    python experiments/lambdaml/comm_patterns.py            # three sweeps (~2 min on 2 cores)
    python experiments/lambdaml/comm_patterns.py --plot-only
    sls-ray reproduce lambdaml/comm_patterns [--plot-only]        # the same

Runs configs/lambdaml/comm_{lr,mobilenet,resnet}.yaml (LR W=50, MobileNet W=10, ResNet-50 W=10,
GA-SGD with one exchange per step) and writes results/lambdaml/comm_patterns.csv and
comm_patterns.png. A round's time is the mean over workers and steps of the time from a
worker's first put to the moment it holds the reduced vector, skipping the first step (which
also waits for the other workers' cold starts and data loading).

The figure itself (sweeps, CSV, plot, the paper's numbers) is ``lambdaml/comm_patterns`` in
sls_ray/lambdaml/figures.py; this script is its entry point for people who look here.
"""
from sls_ray.api import script_main

if __name__ == "__main__":
    script_main("lambdaml/comm_patterns")
