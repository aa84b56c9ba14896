"""LambdaML's analytical model of a training job's time and cost (LambdaML §6; lambdaml.md, figure 6).

    time = start-up(W) + load(data / (W · bandwidth)) + compute / W + rounds · per-round communication
    cost = W · price · time (+ nodes for the whole time, + S3 requests per round)

Each term is written out from the same platform profile the simulator uses, following what
the job really does (:mod:`sls_ray.lambdaml.job`): the leader-based AllReduce moves W
vectors through rank 0, ScatterReduce 2·(W−1)/W of one through every worker, the parameter
server W pushes and W pulls through its NIC; every blocking request pays the service's
latency; a load-or-wait ends on average half a polling period (latency + 0.1 s sleep) late,
a busy loop (no sleep) half a request latency late. It ignores what the simulator
adds — cold-start spread, contention beyond one shared NIC, LIST polls beyond the first — so the
gap between the two is a measure of those effects.
"""
from __future__ import annotations

import math

from sls_ray.api import PlatformProfile
from sls_ray.lambdaml import models as m
from sls_ray.lambdaml.job import LINEAR, exchanges_per_epoch


def shard_bytes(q: dict) -> float:
    """Bytes of one worker's shard at the paper's scale (float32 features + int64 labels)."""
    rows = q["real_rows"] / q["workers"]
    if q["dataset"] == "rcv1":
        from sls_ray.lambdaml.datasets import RCV1_DENSITY

        return rows * (q["n_features"] * RCV1_DENSITY * 8 + 16)
    return rows * (q["n_features"] * 4 + 8)


def flops_per_epoch(q: dict) -> float:
    """Training FLOPs of one worker's outer iteration at the paper's scale."""
    rows = q["real_rows"] / q["workers"] * (1 - q["val_fraction"])
    if q["algorithm"] == "ga_sgd" and q["max_steps_per_epoch"]:
        rows *= min(1.0, q["max_steps_per_epoch"] / q["steps_per_epoch"])
    if q["model"] == "kmeans":
        return rows * (2.0 * q["n_features"] * q["k"] + 2.0 * q["n_features"])
    if q["model"] in LINEAR:
        per = 4.0 * q["n_features"]
    else:
        per = m.flops_per_sample(m.build_model(q["model"]))
    passes = q["admm_local_epochs"] if q["algorithm"] == "admm" else 1
    return rows * per * passes


def _service(profile: PlatformProfile, name: str):
    return profile.service_config(name)


def round_seconds(q: dict, profile: PlatformProfile) -> float:
    """One exchange of the job's vector, as the job's protocol performs it."""
    W = q["workers"]
    s = float(q["vector_bytes"])
    svc = _service(profile, q["channel_service"])
    L = svc.latency_s
    poll = (L + q["poll_interval_s"]) / 2  # a wait ends on average half a polling period late
    if q["deployment"] == "iaas":
        B = _service(profile, q["iaas_service"]).nic_gbs * 1e9
    else:
        B = profile.functions.nic_mbs * 1e6
    node = getattr(svc, "nic_gbs", None)
    Bs = node * 1e9 if node else math.inf  # a node NIC shared by everyone; S3/DynamoDB: unbounded

    def xfer(nbytes: float, concurrent: int = 1) -> float:
        return max(nbytes / B, concurrent * nbytes / Bs)

    lists = svc.kind != "memcached"  # S3 LIST + GETs / DynamoDB Scan; Memcached multi-gets
    if q["parameter_server"]:
        push = L + xfer(s, W)
        serve = W * L + 2 * W * s / min(Bs, W * B)  # W pushes in, W pulls out through the VM's NIC
        return push + poll + serve + poll
    if q["pattern"] == "allreduce":
        # every rank PUTs; the leader reads W vectors (S3: a GET each), deletes them (one request per
        # poll that found some), PUTs the merged vector and expires the previous one (LIST + delete)
        put = L + xfer(s, W)
        reads = W * (L + xfer(s)) if svc.kind == "s3" else L + W * xfer(s)
        leader = reads + L + (L + xfer(s)) + (2 * L if lists else L)
        pull = poll + L + xfer(s, W - 1)
        return put + L / 2 + leader + pull
    part = s / W
    scatter = (W - 1) * (L + xfer(part, W))
    if svc.kind == "s3":  # a GET and a DELETE per received part; phase 2 a GET per reduced part
        gather = (W - 1) * (2 * L + xfer(part, W))
        gather2 = (W - 1) * (L + xfer(part, W))
    else:  # the poll returns the values; DynamoDB deletes each part, Memcached once per poll
        gather = L + (W - 1) * xfer(part, W) + ((W - 1) * L if svc.kind == "dynamodb" else L)
        gather2 = L + (W - 1) * xfer(part, W)
    return scatter + L / 2 + gather + L + xfer(part) + L / 2 + gather2


def startup_seconds(q: dict, profile: PlatformProfile) -> float:
    """Until every worker can communicate: cold start, or the VMs' and any channel node's start-up."""
    f = profile.functions
    if q["deployment"] == "iaas":
        return _service(profile, q["iaas_service"]).startup_s
    start = f.cold_start_s + q["workers"] * f.invoke_latency_s / 2
    svc = _service(profile, q["channel_service"])
    return max(start, getattr(svc, "startup_s", 0.0))


def predict(q: dict, profile: PlatformProfile, epochs: int) -> dict:
    """Time and cost of ``epochs`` outer iterations of the job described by payload ``q``."""
    f = profile.functions
    W = q["workers"]
    if q["deployment"] == "iaas":
        cluster = _service(profile, q["iaas_service"])
        speed = cluster.vcpus * cluster.gflops_per_vcpu * 1e9
        load_bw = cluster.nic_gbs * 1e9
    else:
        speed = f.vcpus(q["memory_mb"]) * f.gflops_per_vcpu * 1e9
        load_bw = f.nic_mbs * 1e6
    t_start = startup_seconds(q, profile)
    t_load = shard_bytes(q) / load_bw
    t_compute = epochs * flops_per_epoch(q) / speed
    rounds = epochs * exchanges_per_epoch(q)
    t_comm = rounds * round_seconds(q, profile)
    if q["deployment"] == "faas" and q["channel_is_node"]:
        # executors load their shards while the node starts; they wait for it, billed
        time = max(t_start, f.cold_start_s + t_load) + t_compute + t_comm
    else:
        time = t_start + t_load + t_compute + t_comm
    if q["deployment"] == "iaas":
        cluster = _service(profile, q["iaas_service"])
        cost = W * cluster.node_price_per_hour / 3600.0 * max(time, cluster.billing_min_s)
    else:
        gb = q["memory_mb"] / 1024.0
        cost = W * gb * f.price_per_gb_s * (time - f.cold_start_s) + W * f.price_per_request
        svc = _service(profile, q["channel_service"])
        price = getattr(svc, "node_price_per_hour", 0.0)
        if q["channel_is_node"]:
            inc = getattr(svc, "billing_increment_s", 1.0)
            billed = math.ceil(max(time, getattr(svc, "billing_min_s", 0.0)) / inc - 1e-12) * inc
            cost += getattr(svc, "nodes", 1) * price / 3600.0 * billed
        if svc.kind == "s3" and W > 1:
            # a round: W + 1 PUTs and two LISTs (poll, expiry), ~2W GETs; a checkpoint PUT per worker and epoch
            puts = rounds * (W + 3) + (epochs * W if q["checkpoint_every"] else 0)
            cost += (puts * svc.price_put_per_1k + rounds * 2 * W * svc.price_get_per_1k) / 1000.0
    return {"time_s": time, "cost_usd": cost, "startup_s": t_start, "load_s": t_load, "compute_s": t_compute,
            "comm_s": t_comm, "rounds": rounds, "round_s": round_seconds(q, profile)}
