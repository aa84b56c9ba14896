"""INFless serving speed: simulated requests per CPU-second, against a bare SimPy M/M/c queue.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/infless_bench.py [--quick]

Light load: production-like traffic to many functions (the five models, ``functions`` copies
each, bursty/periodic/sporadic patterns in turn), on a cluster large enough that batches stay
between 1 and 8 inside their SLOs. Heavy load: the same functions at 8x the load on a cluster
that saturates. CPU seconds are ``time.process_time`` of the simulation alone (the profile
table and arrivals generator are loaded before). The SimPy baseline serves Poisson arrivals
on c exponential servers, one process per customer — the textbook M/M/c in SimPy's idiom —
in the same process, so the ratio is machine-independent. Memory per million requests is
tracemalloc's peak during a separate light-load run (numpy reports its buffers to it).
Needs the ``bench`` extra (simpy).
"""
from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

from sls_ray.infless.cluster import ClusterConfig
from sls_ray.infless.cop import ProfileDB
from sls_ray.infless.experiment import DEFAULT_SLO_S
from sls_ray.infless.scheduler import PolicyConfig
from sls_ray.infless.serving import FunctionLoad, ServingConfig, simulate_serving
from sls_ray.infless.streams import rate_series


def loads(copies: int, rate: float, duration: int) -> list[FunctionLoad]:
    pats = ("bursty", "periodic", "sporadic")
    return [FunctionLoad(m, DEFAULT_SLO_S[m], rate_series(pats[i % 3], rate, duration, i))
            for i, m in enumerate([m for _ in range(copies) for m in DEFAULT_SLO_S])]


def serving(copies: int, rate: float, duration: int, nodes: int, system: str = "infless") -> dict:
    db = ProfileDB.load()
    ld = loads(copies, rate, duration)
    t0 = time.process_time()
    r = simulate_serving(ld, PolicyConfig(system=system), ServingConfig(duration_s=duration), db,
                         ClusterConfig(nodes=nodes), seed=0)
    cpu = time.process_time() - t0
    f = r.functions
    sizes = np.nonzero(r.batch_sizes)[0]
    mean_b = float((r.batch_sizes * np.arange(r.batch_sizes.size)).sum() / r.batch_sizes.sum())
    return {"requests": int(f.arrived.sum()), "cpu_s": cpu, "req_per_cpu_s": f.arrived.sum() / cpu,
            "attainment": float(f.within_slo.sum() / f.arrived.sum()), "batch_min": int(sizes.min()),
            "batch_max": int(sizes.max()), "batch_mean": mean_b, "instances": len(r.configs),
            "functions": len(ld)}


def simpy_mmc(customers: int, servers: int = 16, rate: float = 100.0, service_s: float = 0.12) -> dict:
    import simpy

    rng = np.random.default_rng(0)
    inter = rng.exponential(1 / rate, customers)
    serve = rng.exponential(service_s, customers)
    env = simpy.Environment()
    pool = simpy.Resource(env, capacity=servers)
    done = [0]

    def customer(i):
        with pool.request() as req:
            yield req
            yield env.timeout(serve[i])
        done[0] += 1

    def source():
        for i in range(customers):
            yield env.timeout(inter[i])
            env.process(customer(i))

    env.process(source())
    t0 = time.process_time()
    env.run()
    cpu = time.process_time() - t0
    return {"requests": done[0], "cpu_s": cpu, "req_per_cpu_s": done[0] / cpu}


def memory_per_million(copies: int, rate: float, duration: int, nodes: int) -> float:
    db = ProfileDB.load()
    ld = loads(copies, rate, duration)
    tracemalloc.start()
    r = simulate_serving(ld, PolicyConfig(), ServingConfig(duration_s=duration), db, ClusterConfig(nodes=nodes),
                         seed=0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20 / (r.functions.arrived.sum() / 1e6)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="a smoke run (shorter traces)")
    a = ap.parse_args()
    dur = 60 if a.quick else 300
    copies, nodes = 40, 40                      # 200 functions on 40 nodes x 3 slots
    light = serving(copies, 40.0, dur, nodes)
    heavy = serving(copies, 320.0, dur, nodes)
    mmc = simpy_mmc(20_000 if a.quick else 200_000)
    mem = memory_per_million(copies, 40.0, 60, nodes)
    print("| workload | functions | requests | CPU s | requests per CPU-second | batch sizes (mean) | SLO met |")
    print("|---|---|---|---|---|---|---|")
    for name, r in (("INFless, light load (40 req/s per function)", light),
                    ("INFless, heavy load (320 req/s per function)", heavy)):
        print(f"| {name} | {r['functions']} | {r['requests']:,} | {r['cpu_s']:.2f} | **{r['req_per_cpu_s']:,.0f}** | "
              f"{r['batch_min']}-{r['batch_max']} ({r['batch_mean']:.1f}) | {r['attainment']:.3f} |")
    print(f"| SimPy M/M/16 (bare, one process per customer) | - | {mmc['requests']:,} | {mmc['cpu_s']:.2f} | "
          f"{mmc['req_per_cpu_s']:,.0f} | - | - |")
    print(f"\nlight / SimPy: {light['req_per_cpu_s'] / mmc['req_per_cpu_s']:.1f}x; "
          f"heavy / SimPy: {heavy['req_per_cpu_s'] / mmc['req_per_cpu_s']:.1f}x; "
          f"peak traced memory {mem:.1f} MiB per million requests (light load, 60 s)")


if __name__ == "__main__":
    main()
