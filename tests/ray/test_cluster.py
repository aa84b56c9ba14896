"""A two-node Ray cluster started the way a user starts one (docs/cluster.md): ``ray start
--head`` on a free port, a second node with ``ray start --address``, then ``sls-ray run`` and
``sls-ray sweep`` with ``--address``. Results must equal the in-process ones bit for bit;
a sweep interrupted mid-way resumes with only its unfinished points.

Both nodes run on this machine, bound to 127.0.0.1, each in its own process group, and are
stopped by signalling those groups (never ``ray stop``, which would stop every Ray instance
on the machine), whatever the test's outcome.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from sls_ray.config import load_config
from sls_ray.runtime import simulate

pytestmark = pytest.mark.cluster

RAY = str(Path(sys.executable).with_name("ray"))
POINT = {"experiment": "allreduce", "seed": 5,
         "params": {"workers": 12, "rounds": 3, "floats": 20000, "service": "memcached"}}


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def cluster_env() -> dict:
    """Every process of the cluster and its drivers: one token of their own (``ray start``
    turns token authentication on; docs/cluster.md, "Ports and security"), and Ray's defaults
    for addresses: 127.0.0.1 is read as this machine's address, as on any cluster node.
    (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, which pins a local instance to loopback, makes
    `ray start --address` refuse to add a node.)"""
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1", "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                          os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    env.pop("RAY_ADDRESS", None)  # never a cluster some other shell started
    return env


class NodeExited(RuntimeError):
    """A ``ray start`` process ended while the cluster was starting."""


class LocalCluster:
    """Head and worker node started with ``ray start --block``, each a process-group leader."""

    def __init__(self, tmp: Path) -> None:
        self.env = cluster_env()
        self.nodes: list[subprocess.Popen] = []  # every node started, failed tries included
        self.head: subprocess.Popen | None = None
        self.logs = tmp
        self.port = 0
        self.address = ""

    def _node(self, name: str, args: list[str]) -> None:
        agent, grpc, metrics, env_agent, manager, objects = free_ports(6)
        cmd = [RAY, "start", "--block", "--num-cpus=1", "--disable-usage-stats",
               f"--dashboard-agent-listen-port={agent}", f"--dashboard-agent-grpc-port={grpc}",
               f"--metrics-export-port={metrics}", f"--runtime-env-agent-port={env_agent}",
               f"--node-manager-port={manager}", f"--object-manager-port={objects}", *args]
        with open(self.logs / f"{name}.log", "w") as log:  # the node keeps its own copy of the descriptor
            self.nodes.append(subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                               start_new_session=True))

    def start(self) -> None:
        # a loaded machine can pass Ray's fixed 30 s node start-up limit: each node gets 3 tries
        for attempt in range(3):
            self.port, client = free_ports(2)
            self.address = f"127.0.0.1:{self.port}"
            self._node(f"head{attempt}", ["--head", f"--port={self.port}", "--include-dashboard=false",
                                          f"--ray-client-server-port={client}"])
            self.head = self.nodes[-1]
            try:
                self._wait_nodes(1)
                break
            except NodeExited:
                continue
        else:
            raise RuntimeError(f"the head did not start in 3 attempts: {self.tail()}")
        for attempt in range(3):
            self._node(f"worker{attempt}", [f"--address={self.address}"])
            try:
                self._wait_nodes(2)
                return
            except NodeExited:
                continue
        raise RuntimeError(f"the second node did not start in 3 attempts: {self.tail()}")

    def _wait_nodes(self, n: int, timeout_s: float = 300.0) -> None:
        code = (f"import ray; ray.init(address={self.address!r}, log_to_driver=False); "
                "print(sum(1 for x in ray.nodes() if x['Alive']))")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in (self.head, self.nodes[-1])):  # the head, the newest node
                raise NodeExited(f"a ray node exited: {self.tail()}")
            try:  # a driver probing a head that is still starting can hang: a probe that times out is a "not yet"
                out = subprocess.run([sys.executable, "-c", code], env=self.env, capture_output=True, text=True,
                                     timeout=min(90.0, max(1.0, deadline - time.monotonic())), check=False)
            except subprocess.TimeoutExpired:
                continue
            if out.returncode == 0 and out.stdout.strip().splitlines()[-1:] == [str(n)]:
                return
            time.sleep(1.0)
        raise RuntimeError(f"cluster did not reach {n} nodes in {timeout_s}s: {self.tail()}")

    def tail(self) -> str:
        return " | ".join(p.read_text()[-800:] for p in sorted(self.logs.glob("*.log")))

    def stop(self) -> None:
        """SIGTERM each node's process group (Ray drains), SIGKILL what is left after 15 s."""
        for p in reversed(self.nodes):  # workers first, the head last
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for p in reversed(self.nodes):
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(p.pid, signal.SIGKILL)  # the group's raylet, GCS and workers too
            except ProcessLookupError:
                pass
            p.wait(timeout=30)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = LocalCluster(tmp_path_factory.mktemp("cluster"))
    try:
        c.start()
        yield c
    finally:
        c.stop()


def sls_ray(cluster: LocalCluster, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sls_ray.cli", *args], env=cluster.env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def test_sls_ray_run_on_two_nodes_is_bit_identical_to_in_process(cluster, tmp_path):
    config = tmp_path / "point.yaml"
    config.write_text(yaml.safe_dump(POINT))
    out = tmp_path / "run"
    done = sls_ray(cluster, "run", str(config), "--transport", "ray", "--hosts", "2", "--address", cluster.address,
                   "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:] + cluster.tail()
    summary = json.loads((out / "summary.json").read_text())
    local = simulate(load_config(data=POINT))
    assert summary["status"] == "ok"
    assert summary["trace_hash"] == local.summary["trace_hash"]
    assert summary["nondeterministic"]["transport"] == "ray"
    assert summary["nondeterministic"]["host_nodes"] == 2  # the functions ran on both nodes


def test_sls_ray_sweep_spreads_points_over_the_cluster_and_resumes_after_an_interruption(cluster, tmp_path):
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump({**POINT, "params": {**POINT["params"], "rounds": 4},
                                      "sweep": {"workers": [40, 41, 42, 43, 44, 45]}}))
    out = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "sls_ray.cli", "sweep", str(config), "--address", cluster.address,
           "--out", str(out), "--no-plot"]
    first = subprocess.Popen(cmd, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True)
    try:  # interrupt it once the first point is written
        deadline = time.monotonic() + 240
        while not list(out.glob("point-*/summary.json")) and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=60)
    finished = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("point-*/summary.json")}
    assert 1 <= len(finished) < 6, first.stderr.read().decode()[-3000:]
    assert not (out / "sweep.csv").exists()

    again = sls_ray(cluster, "sweep", str(config), "--address", cluster.address, "--out", str(out), "--no-plot")
    assert again.returncode == 0, again.stderr[-3000:] + cluster.tail()
    for name, mtime in finished.items():  # finished points were not run again
        assert (out / name / "summary.json").stat().st_mtime_ns == mtime
    import pandas as pd

    sweep = pd.read_csv(out / "sweep.csv")
    assert sorted(sweep["params.workers"]) == [40, 41, 42, 43, 44, 45]
    assert (sweep["status"] == "ok").all()
    assert sweep["nondeterministic.node"].nunique() == 2  # the points ran on both nodes
    for workers, got in zip(sweep["params.workers"], sweep["trace_hash"]):
        data = {**POINT, "params": {**POINT["params"], "rounds": 4, "workers": int(workers)}}
        assert got == simulate(load_config(data=data)).summary["trace_hash"]
