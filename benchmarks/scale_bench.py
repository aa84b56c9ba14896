"""Many live functions: real memory per function and real time per blocking call (issue 13).

    python benchmarks/scale_bench.py [--sizes 1000,10000,20000] [--cluster-size 20000]

Every worker of the all-reduce (16-float gradients through S3, aligned cold starts, the
concurrency limit raised above the count) is alive from its start to the end of the last
round, so N workers are N concurrently live functions (threads). In-process, memory is
the growth of this process's resident set while they live; on a two-node
``ray.cluster_utils.Cluster`` (one host per node) it is the unique memory of the host
processes. A printout, not a timed test.
"""
from __future__ import annotations

import argparse
import os
import platform
import threading
import time

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

from core_bench import _uss, ours  # noqa: E402  (this directory is on sys.path when run as a script)

from sls_ray.config import load_config  # noqa: E402
from sls_ray.runtime import simulate  # noqa: E402

MiB = 2**20


def config(workers: int, rounds: int, transport: str, hosts: int = 2, service: str = "memcached"):
    return load_config(data={
        "experiment": "allreduce",
        "profile": {"functions": {"cold_start_sigma": 0.0, "concurrency_limit": workers + 10}},
        "params": {"workers": workers, "rounds": rounds, "floats": 16, "memory_mb": 256, "service": service,
                   "gflop_per_round": 2.0},
        "run": {"transport": transport, "hosts": hosts, "watchdog_s": 1800}})


def _status_kb(pid: int | str, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class Sampler(threading.Thread):
    """Peak memory while a run goes on: this process's RSS, and the USS of Ray host processes."""

    def __init__(self, hosts: bool) -> None:
        super().__init__(daemon=True)
        self.scan_hosts = hosts  # walking /proc costs the in-process run GIL time: only for Ray
        self.stop = threading.Event()
        self.rss_peak = 0
        self.hosts: dict[int, int] = {}
        self.threads_peak = 0

    def run(self) -> None:
        while not self.stop.is_set():
            self.rss_peak = max(self.rss_peak, _status_kb("self", "VmRSS") * 1024)
            self.threads_peak = max(self.threads_peak, _status_kb("self", "Threads"))
            for pid in ours() if self.scan_hosts else ():
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        if b"FunctionHost" not in f.read():
                            continue
                    self.hosts[pid] = max(self.hosts.get(pid, 0), _uss(pid))
                    self.threads_peak = max(self.threads_peak, _status_kb(pid, "Threads"))
                except (FileNotFoundError, ProcessLookupError, PermissionError):
                    continue
            time.sleep(0.25)


def measure(label: str, workers: int, rounds: int, transport: str, hosts: int = 2,
            service: str = "memcached") -> None:
    base_rss = _status_kb("self", "VmRSS") * 1024
    sampler = Sampler(transport == "ray")
    sampler.start()
    t0 = time.perf_counter()
    result = simulate(config(workers, rounds, transport, hosts, service))
    wall = time.perf_counter() - t0
    sampler.stop.set()
    sampler.join()
    s = result.summary
    calls = s["counts"]["simcalls"]
    if transport == "local":
        mem = sampler.rss_peak - base_rss
        where = "driver RSS growth"
    else:
        mem = sum(sampler.hosts.values())
        where = f"USS of {len(sampler.hosts)} host processes"
    print(f"| {label}, {service} | {workers:,} | {s['status']} | {s['counts']['peak_concurrency']:,} | {calls:,} | "
          f"{wall:.1f} | {wall / calls * 1e6:.0f} | {mem / MiB:.0f} ({where}) | {mem / workers / 1024:.0f} | "
          f"`{s['trace_hash']}` |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000,20000", help="in-process worker counts")
    ap.add_argument("--cluster-size", type=int, default=20000, help="workers on the 2-node cluster (0: skip)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--service", default="memcached",
                    help="where the gradients meet: memcached (one multi-get for the leader) or s3 (W GETs: "
                         "at 20,000 workers the leader's reads pass the 15-minute limit, a virtual deadlock)")
    args = ap.parse_args()
    print(f"# many functions — {time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, {args.rounds} rounds\n")
    print("| where | live functions | status | peak concurrency | blocking simcalls | wall s | "
          "real µs per simcall | memory MiB | KiB per function | trace hash |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n in (int(x) for x in args.sizes.split(",") if x):
        measure("in-process", n, args.rounds, "local", service=args.service)
    if args.cluster_size:
        import ray
        from ray.cluster_utils import Cluster

        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
        cluster.add_node(num_cpus=1)
        try:
            ray.init(address=cluster.address, log_to_driver=False)
            measure("2-node cluster, warm-up", 100, 1, "ray", service=args.service)  # starts the actors
            measure("2-node cluster, 2 hosts", args.cluster_size, args.rounds, "ray", service=args.service)
        finally:
            ray.shutdown()
            cluster.shutdown()


if __name__ == "__main__":
    main()
