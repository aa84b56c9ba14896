"""FaaS vs IaaS: time and cost to a target loss, serverless vs a VM cluster, with the analytical model.

    python experiments/lambdaml/faas_iaas.py            # one sweep (~1 min on 2 cores)
    python experiments/lambdaml/faas_iaas.py --plot-only

Runs configs/lambdaml/faas_iaas.yaml (MA-SGD on LR/Higgs to a training loss of 0.66; W Lambda
executors through S3, or W processes on W t2.medium instances billed per second from launch,
start-up included) and writes results/lambdaml/faas_iaas.csv and faas_iaas.png with the
analytical model beside every simulated point. The paper's claim to check: FaaS can be faster
(no VM start-up, elastic), but it is never much cheaper.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paper import RESULTS, cli, save, sweep  # noqa: E402
from scaling import model_rows, plot  # noqa: E402


def main() -> None:
    args = cli(__doc__.splitlines()[0])
    if not args.plot_only:
        save(model_rows(sweep("faas_iaas.yaml", serial=args.serial), "faas_iaas.yaml"), "faas_iaas.csv")
    tab = pd.read_csv(RESULTS / "faas_iaas.csv")
    plot(tab, RESULTS / "faas_iaas.png", "FaaS vs IaaS: MA-SGD on LR/Higgs to loss 0.66 "
                                         "(points: simulator; lines: analytical model)")
    wide = tab.pivot(index="workers", columns="deployment", values=["time_s", "cost_usd"])
    wide.columns = [f"{a}_{b}" for a, b in wide.columns]
    wide["faas_speedup"] = wide["time_s_iaas"] / wide["time_s_faas"]
    wide["faas_cost_ratio"] = wide["cost_usd_faas"] / wide["cost_usd_iaas"]
    print(wide.round(4).to_string())


if __name__ == "__main__":
    main()
