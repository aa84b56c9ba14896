"""The ``infless`` experiment kind: one INFless study point per run (INFless, ASPLOS'22).

``study`` picks what the run's single handler computes (serving.py explains why the serving
simulation runs inside one function):

* ``serving``: request-level serving of the configured functions by one system (INFless,
  OpenFaaS+ or BATCH, or an INFless ablation) under a load pattern, on the 4 x 3-slot cluster.
  Writes ``functions.csv`` (per function: arrived, served, dropped, within SLO, percentiles),
  ``timeline.csv`` (provisioning and violations over time), ``instances.csv`` (every instance
  placed: (b, c, g), slot, lifetime) and ``batches.csv`` (batch-size counts); the summary gets
  goodput, SLO attainment, cost in USD, fragment ratio and the scheduler's scored pairs.
* ``coldstart``: a keep-alive policy (fixed, HHP, LSTH with γ) on a per-minute trace
  (a real Azure Functions 2019 file, or the generator's); writes ``coldstarts.csv``.
* ``cop``: COP's predicted vs measured latency from the profile table (no host timing in the
  run: the table was measured once, by ``sls-ray profile``); writes ``cop.csv``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from sls_ray.api import Experiment, Strict

ROOT = Path(__file__).resolve().parents[2]

#: model -> default SLO in seconds (INFless: ResNet-50 300 ms, MobileNet 200 ms [paper];
#: the others inside the paper's 50-650 ms range [est])
DEFAULT_SLO_S = {"resnet50": 0.3, "mobilenet": 0.2, "ssd": 0.4, "lstm": 0.1, "textcnn": 0.05}


class InflessParams(Strict):
    study: Literal["serving", "coldstart", "cop"] = Field("serving", description="what the run computes")
    # -- serving
    system: Literal["infless", "openfaas", "batch"] = Field("infless", description="serving system")
    batching: bool = Field(True, description="INFless ablation: built-in batching on/off")
    resource_aware: bool = Field(True, description="INFless ablation: greedy non-uniform placement on/off")
    profile_error: float = Field(1.0, ge=0, description="COP prediction error scale (component analysis 1.5, 2)")
    batch_gpu: bool = Field(True, description="BATCH may use GPU shares; False = CPU only (as on AWS Lambda)")
    models: list[str] = Field(list(DEFAULT_SLO_S), description="one function per model (x functions_per_model)")
    functions_per_model: int = Field(1, ge=1, description="copies of each model's function (large-scale runs)")
    slo_scale: float = Field(1.0, gt=0, description="multiplies every default SLO (throughput vs SLO)")
    pattern: Literal["poisson", "periodic", "sporadic", "bursty", "azure"] = Field(
        "bursty", description="load shape; azure = per-minute counts of the trace's busiest functions")
    load_rps: float = Field(500.0, gt=0, description="mean offered load over all functions (req/s)")
    azure_trace: str | None = Field(None, description="Azure Functions 2019 invocation CSV (else the generator's)")
    duration_s: int = Field(300, ge=1, description="virtual seconds replayed")
    interval_s: int = Field(1, ge=1, description="control interval [est]")
    cold_start_s: float = Field(1.5, ge=0, description="instance start-up [est]")
    request_timeout_s: float = Field(2.0, gt=0, description="gateway timeout: queued longer is dropped [est]")
    log_every_s: int = Field(10, ge=1, description="timeline row spacing")
    nodes: int = Field(4, ge=1, description="servers [paper: 4]")
    slots_per_node: int = Field(3, ge=1, description="slots (GPUs) per server [paper: 3]")
    threads_per_slot: int = Field(20, ge=1, description="CPU threads per slot [paper: ~20]")
    profile_csv: str = Field("configs/infless/profile.csv", description="COP table (repo-relative or absolute)")
    # -- coldstart
    keepalive: Literal["fixed", "hhp", "lsth"] = Field("hhp", description="keep-alive policy")
    gamma: float = Field(0.5, ge=0, le=1, description="LSTH weight of the long-term histogram")
    fixed_keepalive_min: float = Field(10.0, gt=0, description="keep-alive of the fixed policy (minutes)")
    trace_functions: int = Field(300, ge=1, description="functions of the generated per-minute trace")
    trace_days: int = Field(2, ge=1, description="days of the generated per-minute trace")
    seed: int = Field(0, description="arrivals, generated traces and COP error draws")


def _path(p: str) -> Path:
    path = Path(p)
    return path if path.is_absolute() else ROOT / path


def _loads(p: dict):
    from sls_ray.infless.serving import FunctionLoad
    from sls_ray.infless.streams import generate_azure, rate_series, read_azure

    fns = [(m, DEFAULT_SLO_S[m] * p["slo_scale"]) for m in p["models"] for _ in range(p["functions_per_model"])]
    share = p["load_rps"] / len(fns)
    if p["pattern"] != "azure":
        return [FunctionLoad(m, slo, rate_series(p["pattern"], share, p["duration_s"], p["seed"] * 7919 + i))
                for i, (m, slo) in enumerate(fns)]
    if p["azure_trace"]:
        _, counts = read_azure([_path(p["azure_trace"])])
    else:
        counts, _ = generate_azure(max(200, len(fns) * 4), 1, p["seed"])
    minutes = -(-p["duration_s"] // 60)
    busiest = np.argsort(-counts.sum(axis=1), kind="stable")[:len(fns)]
    out = []
    for (m, slo), f in zip(fns, busiest):
        per_s = np.repeat(counts[f, :minutes].astype(float), 60)[:p["duration_s"]] + 1e-9
        out.append(FunctionLoad(m, slo, per_s * share / per_s.mean()))
    return out


def serve(ctx, p: dict) -> dict:
    """The single handler: one study point, computed in full, rows logged as metrics."""
    study = {"serving": _serving, "coldstart": _coldstart, "cop": _cop}[p["study"]]
    out = study(ctx, p)
    ctx.log("summary", **out)
    return out


def _serving(ctx, p: dict) -> dict:
    from sls_ray.infless.cluster import ClusterConfig
    from sls_ray.infless.cop import ProfileDB
    from sls_ray.infless.scheduler import PolicyConfig
    from sls_ray.infless.serving import ServingConfig, simulate_serving

    policy = PolicyConfig(system=p["system"], batching=p["batching"], resource_aware=p["resource_aware"],
                          profile_error=p["profile_error"], batch_gpu=p["batch_gpu"])
    cfg = ServingConfig(duration_s=p["duration_s"], interval_s=p["interval_s"], cold_start_s=p["cold_start_s"],
                        request_timeout_s=p["request_timeout_s"], log_every_s=p["log_every_s"])
    cluster = ClusterConfig(nodes=p["nodes"], slots_per_node=p["slots_per_node"],
                            threads_per_slot=p["threads_per_slot"])
    r = simulate_serving(_loads(p), policy, cfg, ProfileDB.load(_path(p["profile_csv"])), cluster, seed=p["seed"])
    for row in r.functions.to_dict("records"):
        ctx.log("function", **row)
    for row in r.timeline.to_dict("records"):
        ctx.log("timeline", **row)
    for row in r.configs.to_dict("records"):
        ctx.log("instance", **row)
    for size in np.nonzero(r.batch_sizes)[0]:
        ctx.log("batch", size=int(size), batches=int(r.batch_sizes[size]))
    f = r.functions
    arrived = int(f.arrived.sum())
    within = int(f.within_slo.sum())
    return {"arrived": arrived, "served": int(f.served.sum()), "dropped": int(f.dropped.sum()),
            "within_slo": within, "slo_attainment": within / max(arrived, 1),
            "goodput_rps": within / p["duration_s"], "serving_cost_usd": r.cost_usd,
            "fragment_ratio": r.fragment_ratio_mean, "scored_pairs": r.scored_pairs,
            "instances_placed": int(len(r.configs)), "p99_s": float(np.nanmax(f.p99_s)) if len(f) else float("nan")}


def _coldstart(ctx, p: dict) -> dict:
    from sls_ray.infless.keepalive import simulate_keepalive
    from sls_ray.infless.streams import generate_azure, read_azure

    if p["azure_trace"]:
        _, counts = read_azure([_path(p["azure_trace"])])
    else:
        counts, _ = generate_azure(p["trace_functions"], p["trace_days"], p["seed"])
    df = simulate_keepalive(counts, p["keepalive"], p["gamma"], p["fixed_keepalive_min"])
    for row in df.to_dict("records"):
        ctx.log("coldstart", **row)
    inv = int(df.invocations.sum())
    return {"invocations": inv, "cold_starts": int(df.cold_starts.sum()),
            "cold_start_rate": int(df.cold_starts.sum()) / max(inv, 1), "loaded_min": float(df.loaded_min.sum()),
            "wasted_min": float(df.wasted_min.sum())}


def _cop(ctx, p: dict) -> dict:
    from sls_ray.infless.cop import ProfileDB, accuracy

    acc = accuracy(ProfileDB.load(_path(p["profile_csv"])))
    for row in acc.to_dict("records"):
        ctx.log("cop", **row)
    return {"mean_abs_error": float(acc.error.abs().mean()), "max_abs_error": float(acc.error.abs().max()),
            "mean_abs_error_with_margin": float((acc.predicted_margin_s / acc.measured_s - 1).abs().mean())}


#: float-valued columns that may happen to hold whole numbers (kept as floats)
FLOAT_COLUMNS = {"slo_s", "p50_s", "p99_s", "mean_s", "placed_s", "released_s", "offered_rps", "goodput_rps",
                 "fragment_ratio", "loaded_min", "wasted_min", "measured_s", "predicted_s", "predicted_margin_s",
                 "error"}
TABLES = {"function": "functions", "timeline": "timeline", "instance": "instances", "batch": "batches",
          "coldstart": "coldstarts", "cop": "cop"}


class InflessExperiment(Experiment):
    name = "infless"
    description = "INFless: serverless inference with built-in batching, COP and LSTH (ASPLOS'22)"
    Params = InflessParams

    def handlers(self):
        return {"serve": serve}

    def entry(self):
        return "serve", self.params.model_dump()

    def handler_memory(self):
        return {"serve": 3008}

    def reachable_services(self):
        return []

    def tables(self, result) -> dict[str, pd.DataFrame]:
        out = {}
        params = {k: v for k, v in self.params.model_dump().items() if not isinstance(v, list)}
        for kind, stem in TABLES.items():
            df = result.metric(kind)
            if df.empty:
                continue
            df = df.drop(columns=[c for c in ("t", "fid", "seq", "handler", "kind") if c in df.columns])
            for c in df.columns:   # metrics of all kinds share one frame: ints came back as floats
                if df[c].dtype == float and df[c].notna().all() and (df[c] == df[c].round()).all() \
                        and c not in FLOAT_COLUMNS:
                    df[c] = df[c].astype(np.int64)
            for k, v in params.items():
                df[k] = v
            out[stem] = df
        return out

    def summary_extra(self, result) -> dict:
        rows = result.metric("summary")
        if rows.empty:
            return {"infless": {}}
        row = rows.drop(columns=["t", "fid", "seq", "handler", "kind"]).iloc[0].to_dict()
        return {"infless": {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}}
