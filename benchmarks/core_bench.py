"""Platform-core benchmarks (issue: "Benchmarks"). Prints figures and ratios; not a timed test.

    .venv/bin/python benchmarks/core_bench.py [--quick]

1. real cost per blocking simcall, in-process and over Ray (2 hosts; this run also starts the
   Ray actors, which later runs reuse);
2. 1,000 functions x 20 all-reduce rounds with 16-float payloads, in-process and over Ray,
   with the profile's lognormal cold starts and with aligned (sigma 0) cold starts, and the
   Ray / in-process wall-time ratio of each pair (goal: <= 2, equal trace hashes);
3. 4,000 functions on 2 Ray hosts: peak USS per host process and per function;
4. determinism beside 3 CPU-spinning processes: the summary's trace hash must not change.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import threading
import time

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

from sls_ray.config import load_config  # noqa: E402
from sls_ray.runtime import simulate  # noqa: E402


def allreduce(workers: int, rounds: int, transport: str, hosts: int = 2, sigma: float | None = None,
              concurrency: int | None = None, gflop: float = 2.0):
    functions = {}
    if sigma is not None:
        functions["cold_start_sigma"] = sigma
    if concurrency is not None:
        functions["concurrency_limit"] = concurrency
    cfg = load_config(data={"experiment": "allreduce", "profile": {"functions": functions},
                            "params": {"workers": workers, "rounds": rounds, "floats": 16, "memory_mb": 256,
                                       "service": "s3", "gflop_per_round": gflop},
                            "run": {"transport": transport, "hosts": hosts}})
    t0 = time.perf_counter()
    result = simulate(cfg)
    return result, time.perf_counter() - t0


def row(label: str, result, wall: float) -> str:
    s = result.summary
    calls = s["counts"]["simcalls"]
    batches = s["nondeterministic"].get("kernel_batches", "")
    return (f"| {label} | {s['status']} | {calls:,} | {batches} | {wall:.2f} | {wall / calls * 1e6:.0f} | "
            f"{s['makespan_s']:.3f} | `{s['trace_hash']}` |")


def ours() -> list[int]:
    """Processes descended from this one (the Ray instance it started), not another job's."""
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    parent[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
    me, out = os.getpid(), []
    for pid in parent:
        p = pid
        while p > 1 and p != me:
            p = parent.get(p, 0)
        if p == me and pid != me:
            out.append(pid)
    return out


class USSSampler(threading.Thread):
    """Peak unique memory of the FunctionHost worker processes while a run goes on."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak: dict[int, int] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for pid in ours():
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        if b"FunctionHost" not in f.read():
                            continue
                    self.peak[pid] = max(self.peak.get(pid, 0), _uss(pid))
                except (FileNotFoundError, ProcessLookupError, PermissionError):
                    continue
            time.sleep(0.5)


def _uss(pid: int) -> int:
    """Unique set size: the private pages of a process (Linux smaps_rollup)."""
    total = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                total += int(line.split()[1]) * 1024
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    args = ap.parse_args()
    n, rounds, big = (200, 5, 800) if args.quick else (1000, 20, 4000)
    print(f"# sls_ray core benchmarks — {time.strftime('%Y-%m-%d')}, {platform.machine()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}\n")
    print("| workload | status | blocking simcalls | host batches | wall s | real µs per simcall | "
          "virtual makespan s | trace hash |")
    print("|---|---|---|---|---|---|---|---|")
    for transport in ("local", "ray"):
        r, w = allreduce(100, 10, transport, gflop=0.0)
        print(row(f"simcall cost: 100 fns x 10 rounds, {transport}", r, w), flush=True)
    ratios = []
    for sigma, label in ((None, "lognormal cold starts"), (0.0, "aligned cold starts")):
        walls, hashes = {}, {}
        for transport in ("local", "ray"):
            r, w = allreduce(n, rounds, transport, sigma=sigma)
            walls[transport], hashes[transport] = w, r.summary["trace_hash"]
            print(row(f"{n} fns x {rounds} rounds, {label}, {transport}", r, w), flush=True)
        ratios.append(f"{label}: ray / in-process = {walls['ray'] / walls['local']:.2f}x, hashes "
                      f"{'equal' if hashes['ray'] == hashes['local'] else 'DIFFERENT'}")
    print("\n" + "\n".join(ratios) + "\n")
    sampler = USSSampler()
    sampler.start()
    r, w = allreduce(big, 2, "ray", sigma=0.0, concurrency=big + 10)
    sampler.stop.set()
    sampler.join()
    print(row(f"{big} fns x 2 rounds on 2 hosts, ray", r, w))
    if sampler.peak:
        peak = sum(sampler.peak.values())
        print(f"\npeak USS of {len(sampler.peak)} host processes: {peak / 2**20:.0f} MiB "
              f"= {peak / big / 2**20:.2f} MiB per function")
    base, w0 = allreduce(64, 5, "local")
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(3)]
    try:
        loaded, w1 = allreduce(64, 5, "local")
    finally:
        for p in spinners:
            p.kill()
    same = base.summary["trace_hash"] == loaded.summary["trace_hash"]
    print(f"\ndeterminism beside 3 CPU spinners: idle hash {base.summary['trace_hash']} ({w0:.2f}s), "
          f"loaded hash {loaded.summary['trace_hash']} ({w1:.2f}s): {'IDENTICAL' if same else 'DIFFERENT'}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
