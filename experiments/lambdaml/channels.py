"""The seed's channel table: cost and slowdown of Memcached, DynamoDB and the VM-PS relative to S3.

    python experiments/lambdaml/channels.py            # runs three sweeps (~5 min on 2 cores)
    python experiments/lambdaml/channels.py --plot-only
    sls-ray reproduce lambdaml/channels [--plot-only]        # the same

Runs configs/lambdaml/channels_{lr,kmeans,mobilenet}.yaml and writes
results/lambdaml/channels.csv (one row per workload and channel, with the seed's ratios
beside ours) and channels.png. Ratios are end to end: makespan and total cost, which include
the Memcached node's and the parameter-server VM's start-up (configs/platforms/
aws_2020_lambdaml.yaml) and bill the nodes for their whole uptime. The MobileNet rows simulate
two epochs and are also projected to a 20-epoch run (start-up + 20 x the simulated steady
epoch), since the seed's MobileNet runs are long enough to amortise start-up.

The figure itself (sweeps, CSV, plot, the paper's numbers) is ``lambdaml/channels`` in
sls_ray/lambdaml/figures.py; this script is its entry point for people who look here.
"""
from sls_ray.api import script_main

if __name__ == "__main__":
    script_main("lambdaml/channels")
