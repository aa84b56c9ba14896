"""Data bigger than one process: real-block NumPyWren Cholesky and LambdaML MobileNet (W = 50)
on a two-node Ray cluster, with real time and peak memory per node (issue 13).

    PYTHONPATH=$PWD python benchmarks/cluster_data_bench.py            # the table in benchmarks/README.md
    PYTHONPATH=$PWD python benchmarks/cluster_data_bench.py --quick    # a smoke run: small sizes, no budget beaten

Each workload gets its own ``ray.cluster_utils.Cluster`` of two nodes on this machine, each
node with one CPU and its own object store (``object_store_memory``), and a *host process
budget*: the memory one ``FunctionHost`` process may hold privately (its anonymous resident
memory, sampled; the object store is not in it). The data is chosen larger than that budget,
so a run can only work if the blocks live in the object stores, spread over both nodes, and
each host holds just the blocks its functions are using. The run goes through ``simulate``
with ``run: {transport: ray, hosts: 2, address: <the cluster>}``, as ``sls-ray run
--transport ray --hosts 2 --address`` does.

Exactness: the NumPyWren run checks its own factor against ``numpy.linalg.cholesky`` (the
experiment's check, in the kernel actor after the run); a smaller twin runs in-process and on
the cluster with equal trace hashes and ``correct: true``. LambdaML's run is compared with the
same config in-process (a child process, whose peak RSS is the one-process figure).

Memory per node is sampled every 0.25 s: the sum of RssAnon (private heap) over the node's Ray
processes (raylet and its workers; the head also has GCS, dashboard and monitor), the largest
host's and the kernel actor's RssAnon, and the node's object store bytes in use (the raylet's
own statistics) and its spilled bytes. Bytes that crossed nodes are Ray's own count of what
each node's object manager received from the other (``ray_object_manager_bytes``, Type
"Received", read from the node's metrics endpoint, which Ray refreshes every 10 s: the
benchmark waits that long after each run). A printout, not a timed test.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from sls_ray.config import load_config  # noqa: E402
from sls_ray.runtime import simulate  # noqa: E402

MiB = 2**20
SAMPLE_S = 0.25
METRICS_WAIT_S = 12.0  # Ray exports its metrics every 10 s


@dataclass
class Workload:
    """One row of the table: a config, the cluster it runs on and the budget it must beat."""

    name: str
    data: dict  # the config, without its run: section
    data_bytes: int  # the data that must not fit in one host process (matrix, or W gradients)
    data_what: str
    store_mb: int  # object store per node
    host_budget_mb: int  # private memory one host process may hold
    twin: dict | None = None  # a smaller config run in-process and on the cluster (hashes must match)
    compare_in_process: bool = False  # also run ``data`` itself in-process (a child process)


def numpywren(blocks: int, block_size: int, max_executors: int) -> dict:
    return {"experiment": "numpywren", "seed": 0,
            "params": {"program": "cholesky", "blocks": blocks, "block_size": block_size, "baselines": False,
                       "max_executors": max_executors}}


def lambdaml(workers: int, steps: int, real_rows: int) -> dict:
    return {"experiment": "lambdaml", "platform": "aws_2020_lambdaml", "seed": 0,
            "params": {"model": "mobilenet", "dataset": "cifar10", "rows": 4 * workers, "workers": workers,
                       "batch_size": 256, "algorithm": "ga_sgd", "epochs": 1, "max_steps_per_epoch": steps,
                       "max_real_rows": real_rows, "max_real_val_rows": 2, "checkpoint_every": 0}}


def workloads(quick: bool) -> list[Workload]:
    if quick:
        return [
            Workload("NumPyWren Cholesky", numpywren(6, 256, 8), (6 * 256) ** 2 * 8, "matrix A", 96, 160,
                     twin=numpywren(4, 64, 8)),
            Workload("LambdaML MobileNet", lambdaml(8, 1, 2), 8 * 12_900_000, "W gradients", 256, 900,
                     compare_in_process=True),
        ]
    return [
        Workload("NumPyWren Cholesky", numpywren(9, 1024, 16), (9 * 1024) ** 2 * 8, "matrix A", 1024, 512,
                 twin=numpywren(6, 96, 16)),
        Workload("LambdaML MobileNet", lambdaml(50, 2, 2), 50 * 12_900_000, "W gradients", 1024, 3072,
                 compare_in_process=True),
    ]


# ---------------------------------------------------------------- memory per node
def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            kids.setdefault(ppid, []).append(int(d))
    return kids


def _tree(root: int, kids: dict[int, list[int]]) -> list[int]:
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, ()))
    return out


def _rss_anon(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0


def _role(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        cmd = f.read()
    return "host" if b"FunctionHost" in cmd else "kernel" if b"KernelActor" in cmd else ""


@dataclass
class NodePeak:
    rss: int = 0  # peak of the sum of RssAnon over the node's processes
    host: int = 0  # peak RssAnon of one host process
    kernel: int = 0  # peak RssAnon of the kernel actor
    hosts: set = field(default_factory=set)
    store: int = 0  # peak object store bytes in use
    spilled0: int = 0
    spilled: int = 0
    received: int = 0  # bytes this node's object manager received from the other node during the run


class NodeSampler(threading.Thread):
    """Peak memory of each node's Ray processes and object store while a run goes on."""

    def __init__(self, nodes: dict) -> None:
        super().__init__(daemon=True)
        self.nodes = nodes  # name -> ray._private.node.Node
        self.stop = threading.Event()
        self.peak = {name: NodePeak() for name in nodes}
        self.roles: dict[int, str] = {}
        for name, node in nodes.items():
            self.peak[name].spilled0 = self.peak[name].spilled = self._store(node).spilled_bytes_total

    @staticmethod
    def _store(node):
        from ray._private.internal_api import node_stats

        return node_stats(node.node_ip_address, node.node_manager_port, include_memory_info=False).store_stats

    def _pids(self, node, kids) -> list[int]:
        pids = []
        for name, procs in node.all_processes.items():
            for p in procs:
                pids += _tree(p.process.pid, kids) if name == "raylet" else [p.process.pid]
        return pids

    def sample(self) -> None:
        kids = _children()
        for name, node in self.nodes.items():
            peak, total = self.peak[name], 0
            for pid in self._pids(node, kids):
                try:
                    rss = _rss_anon(pid)
                    role = self.roles.get(pid) or _role(pid)
                except (FileNotFoundError, ProcessLookupError):
                    continue
                self.roles[pid] = role
                total += rss
                if role == "host":
                    peak.host = max(peak.host, rss)
                    peak.hosts.add(pid)
                elif role == "kernel":
                    peak.kernel = max(peak.kernel, rss)
            peak.rss = max(peak.rss, total)
            st = self._store(node)
            peak.store = max(peak.store, st.object_store_bytes_used)
            peak.spilled = st.spilled_bytes_total

    def run(self) -> None:
        while not self.stop.is_set():
            self.sample()
            time.sleep(SAMPLE_S)
        self.sample()


def received_bytes(node) -> int:
    """Bytes the node's object manager has received from other nodes (Ray's metric, as last exported)."""
    url = f"http://{node.node_ip_address}:{node.metrics_export_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    for line in text.splitlines():
        if line.startswith("ray_object_manager_bytes{") and 'Type="Received"' in line:
            return int(float(line.rsplit(" ", 1)[1]))
    return 0  # not exported yet: nothing received since the node started


# ---------------------------------------------------------------- runs
def run_in_child(data: dict) -> dict:
    """The config in-process, in a fresh child process: its summary and peak RSS."""
    code = ("import json, resource, sys; from sls_ray.config import load_config; from sls_ray.runtime import simulate;"
            "r = simulate(load_config(data=json.loads(sys.argv[1]))); s = r.summary;"
            "print(json.dumps({k: s.get(k) for k in ('status', 'makespan_s', 'trace_hash', 'correct', "
            "'max_rel_error')} | {'wall_s': s['nondeterministic']['host_wall_s'], "
            "'peak_rss': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))")
    out = subprocess.run([sys.executable, "-c", code, json.dumps(data)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_on_cluster(data: dict, address: str, nodes: dict) -> tuple[dict, float, dict]:
    cfg = load_config(data={**data, "run": {"transport": "ray", "hosts": 2, "address": address, "watchdog_s": 600}})
    received0 = {name: received_bytes(node) for name, node in nodes.items()}
    sampler = NodeSampler(nodes)
    sampler.start()
    t0 = time.perf_counter()
    try:
        result = simulate(cfg)
    finally:
        sampler.stop.set()
        sampler.join()
    wall = time.perf_counter() - t0
    time.sleep(METRICS_WAIT_S)
    for name, node in nodes.items():
        sampler.peak[name].received = received_bytes(node) - received0[name]
    return result.summary, wall, sampler.peak


def fmt_mb(n: float) -> str:
    return f"{n / MiB:,.0f}"


def row(w: Workload, label: str, s: dict, wall: float, peak: dict | None, rss: int | None = None) -> str:
    check = "—"
    if s.get("correct") is not None:
        check = f"{'exact' if s['correct'] else 'WRONG'} ({s['max_rel_error']:.1e})"
    if peak is None:
        mem = f"one process: {fmt_mb(rss)} | | | | "
    else:
        per = [peak[n] for n in ("head", "worker")]
        mem = " | ".join([
            " / ".join(fmt_mb(p.rss) for p in per),
            " / ".join(f"{fmt_mb(p.host)}{'' if p.host <= w.host_budget_mb * MiB else ' (over)'}" for p in per),
            " / ".join(fmt_mb(p.store) for p in per),
            " / ".join(f"{fmt_mb(p.received)}, {fmt_mb(p.spilled - p.spilled0)}" for p in per),
        ]) + f" | {fmt_mb(peak['head'].kernel)}"
    return (f"| {w.name}: {label} | {s['status']} | {check} | {s['makespan_s']:.1f} | {wall:.1f} | {mem} | "
            f"`{s['trace_hash']}` |")


def measure(w: Workload) -> list[str]:
    import ray
    from ray.cluster_utils import Cluster

    rows = []
    twin_local = run_in_child(w.twin) if w.twin else None
    big_local = run_in_child(w.data) if w.compare_in_process else None
    store = w.store_mb * MiB
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": store,
                                                            "include_dashboard": False})
    try:
        worker = cluster.add_node(num_cpus=1, object_store_memory=store)
        nodes = {"head": cluster.head_node, "worker": worker}
        ray.init(address=cluster.address, log_to_driver=False)
        if w.twin:
            s, wall, peak = run_on_cluster(w.twin, cluster.address, nodes)
            rows.append(row(w, "twin in-process", twin_local, twin_local["wall_s"], None, twin_local["peak_rss"]))
            rows.append(row(w, "twin, 2 nodes", s, wall, peak))
            if s["trace_hash"] != twin_local["trace_hash"]:
                rows.append(f"| **twin hashes differ: {twin_local['trace_hash']} in-process** |")
        if big_local:
            rows.append(row(w, "in-process", big_local, big_local["wall_s"], None, big_local["peak_rss"]))
        s, wall, peak = run_on_cluster(w.data, cluster.address, nodes)
        rows.append(row(w, "2 nodes", s, wall, peak))
        if big_local and s["trace_hash"] != big_local["trace_hash"]:
            rows.append(f"| **hashes differ: {big_local['trace_hash']} in-process** |")
        rows.append(f"| ↳ {w.data_what} {fmt_mb(w.data_bytes)} MiB; per node: object store {w.store_mb} MiB, "
                    f"host budget {w.host_budget_mb} MiB; host processes per node: "
                    f"{' / '.join(str(len(peak[n].hosts)) for n in ('head', 'worker'))} |")
    finally:
        ray.shutdown()
        cluster.shutdown()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    ap.add_argument("--only", choices=["numpywren", "lambdaml"], help="run one workload")
    args = ap.parse_args()
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    print(f"# data bigger than one process — {time.strftime('%Y-%m-%d')}, {platform.machine()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}; 2 nodes x 1 CPU, 2 hosts\n")
    print("| run | status | vs numpy | virtual makespan s | wall s | node RSS peak MiB (head / worker) | "
          "largest host MiB | object store peak MiB | received from the other node, spilled MiB | kernel actor MiB | "
          "trace hash |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for w in workloads(args.quick):
        if args.only and not w.data["experiment"] == args.only:
            continue
        for line in measure(w):
            print(line, flush=True)


if __name__ == "__main__":
    main()
