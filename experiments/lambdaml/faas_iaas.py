"""FaaS vs IaaS: time and cost to a target loss, serverless vs a VM cluster, with the analytical model.

    python experiments/lambdaml/faas_iaas.py            # one sweep (~1 min on 2 cores)
    python experiments/lambdaml/faas_iaas.py --plot-only
    sls-ray reproduce lambdaml/faas_iaas [--plot-only]        # the same

Runs configs/lambdaml/faas_iaas.yaml (MA-SGD on LR/Higgs to a training loss of 0.66; W Lambda
executors through S3, or W processes on W t2.medium instances billed per second from launch,
start-up included) and writes results/lambdaml/faas_iaas.csv and faas_iaas.png with the
analytical model beside every simulated point. The paper's claim to check: FaaS can be faster
(no VM start-up, elastic), but it is never much cheaper.

The figure itself (sweeps, CSV, plot, the paper's numbers) is ``lambdaml/faas_iaas`` in
sls_ray/lambdaml/figures.py; this script is its entry point for people who look here.
"""
from sls_ray.api import script_main

if __name__ == "__main__":
    script_main("lambdaml/faas_iaas")
