"""The ``cirrus`` experiment kind: one training task per run (Cirrus, SoCC'19, §4-§6).

``workload`` picks sparse logistic regression on Criteo-shaped data or matrix factorisation
on Netflix-shaped data; ``system`` picks Cirrus or a baseline with its own execution model
(a preset of placement, consistency, sparsity, prefetching and per-step overhead; any knob
can be set explicitly for the ablation). The run writes ``curve.csv`` (test loss or RMSE
over training time, with updates so far and cost) and ``generations.csv`` (one row per
worker generation: steps, rows, S3 bytes, stalls), and adds time-to-target, updates/s and
the cost breakdown to ``summary.json``.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from sls_ray.api import Experiment, Strict
from sls_ray.cirrus import data as d
from sls_ray.cirrus.baselines import pywren_driver, pywren_step
from sls_ray.cirrus.grid import grid_configs, grid_driver, task_prefix
from sls_ray.cirrus.ps import serve
from sls_ray.cirrus.training import backend, worker

System = Literal["cirrus", "bosen", "tensorflow", "spark", "pywren"]

#: each system's execution model (knobs left None in the params take these values)
PRESETS: dict[str, dict] = {
    # Cirrus: Lambda workers, sparse pulls, prefetching S3 iterator, fully asynchronous PS
    "cirrus": {"placement": "lambda", "sparse": True, "prefetch": True, "staleness": None, "clock": 1,
               "step_overhead_s": 0.0},
    # Bosen: stale-synchronous PS (staleness 2); the client cache serves 10 minibatches per sync
    "bosen": {"placement": "vm", "sparse": True, "prefetch": True, "staleness": 2, "clock": 10,
              "step_overhead_s": 0.0},
    # TensorFlow: synchronous replicas on a PS, sparse lookups, ~2 ms session.run overhead per step [est]
    "tensorflow": {"placement": "vm", "sparse": True, "prefetch": True, "staleness": 0, "clock": 1,
                   "step_overhead_s": 0.002},
    # Spark MLlib: bulk-synchronous, the whole model broadcast and aggregated every iteration,
    # ~0.1 s of job and task scheduling per iteration [est]
    "spark": {"placement": "vm", "sparse": False, "prefetch": True, "staleness": 0, "clock": 1,
              "step_overhead_s": 0.1},
    # PyWren: every step a map of functions through S3, no PS, no prefetching (baselines.py)
    "pywren": {"placement": "lambda", "sparse": False, "prefetch": False, "staleness": 0, "clock": 1,
               "step_overhead_s": 0.0},
}


class CirrusParams(Strict):
    workload: Literal["lr", "mf"] = Field("lr", description="sparse LR on Criteo-shaped data, or MF on Netflix-shaped")
    system: System = Field("cirrus", description="Cirrus or a baseline execution model (PRESETS)")
    # -- the task's parameters as Cirrus users wrote them
    n_workers: int = Field(10, ge=1, le=1000, description="worker functions (or VM worker processes)")
    n_ps: int = Field(1, ge=1, le=1, description="parameter servers (one VM; sharding is not modelled)")
    worker_size: int = Field(128, description="worker function memory, MB (Cirrus's examples: 128) [src][est]")
    epsilon: float = Field(1e-4, ge=0, description="L2 regularisation (Cirrus's epsilon)")
    model_bits: int = Field(d.MODEL_BITS, ge=8, le=24, description="LR model_size = 2^model_bits (Cirrus: 2^19)")
    learning_rate: float | None = Field(None, gt=0, description="step size; None = the workload's default")
    minibatch_size: int | None = Field(None, ge=1, description="rows per minibatch; None = workload/system default")
    opt_method: Literal["sgd", "momentum", "nesterov", "adagrad"] = Field("adagrad",
                                                                          description="server-side optimiser")
    momentum: float = Field(0.9, ge=0, lt=1, description="momentum / Nesterov coefficient")
    data_seed: int = Field(0, ge=0, description="seed of the generated rows (the hidden model is fixed)")
    # -- data (row counts scaled down; object shape and per-row bytes at paper scale)
    rows: int = Field(300_000, ge=1000, description="LR training rows (Criteo: 45M)")
    test_rows: int = Field(20_000, ge=100, description="held-out rows for the loss curve")
    object_rows: int | None = Field(None, ge=100,
                                    description="rows per S3 object (LR 50,000 as load_libsvm; MF 20,000)")
    n_users: int = Field(20_000, ge=10, description="MF users (Netflix: 480,189)")
    n_items: int = Field(2_000, ge=10, description="MF items (Netflix: 17,770)")
    n_ratings: int = Field(600_000, ge=100, description="MF rating draws before de-duplication (Netflix: ~100M)")
    factors: int = Field(d.MF_FACTORS, ge=1, description="MF latent factors (Cirrus: 10)")
    # -- lifecycle
    time_limit_s: float = Field(300.0, gt=0, le=900, description="worker function time limit (Cirrus: 300 s)")
    margin_s: float = Field(1.0, ge=0, description="a worker leaves this long before its deadline")
    train_s: float = Field(60.0, gt=0, description="training budget (virtual seconds from the PS's first answer)")
    target: float | None = Field(None, description="stop at this test loss (LR) / RMSE (MF)")
    eval_every_s: float = Field(2.0, gt=0, description="the backend pulls the full model this often")
    tick_s: float = Field(0.5, gt=0, description="the backend checks worker slots this often")
    lease_s: float = Field(5.0, gt=0, description="a worker silent this long is presumed dead")
    register_grace_s: float = Field(5.0, ge=0, description="a launched generation that has not registered "
                                    "after lease + grace is launched again")
    # -- execution-model knobs (None = the system's preset)
    sparse: bool | None = Field(None, description="pull only the touched weights (else the whole model)")
    prefetch: bool | None = Field(None, description="the S3 iterator fetches ahead in the background")
    asynchronous: bool | None = Field(None, description="None = preset; True = staleness None; False = BSP")
    staleness: int | None = Field(None, ge=0, description="SSP bound when not asynchronous (preset if None)")
    clock: int | None = Field(None, ge=1, description="minibatches per PS sync (Bosen's client cache)")
    step_overhead_s: float | None = Field(None, ge=0, description="framework overhead per step [est]")
    trace_steps: bool = Field(False, description="log every gradient a worker sends (tests: what a kill loses)")
    keep_model: bool = Field(False, description="the backend stores the final model on the client machine")
    refill_below: int = Field(200, ge=1, description="the iterator refills below this many minibatches [src]")
    grid: dict[str, list[Any]] = Field(default_factory=dict, description="GridSearch: hyperparameter -> values; "
                                       "every configuration of the product trains concurrently (grid.GRID_KEYS)")
    early_stop: bool = Field(True, description="GridSearch: stop configurations by the median stopping rule")
    grid_check_s: float = Field(2.0, gt=0, description="GridSearch: how often the rule is applied")
    grid_min_s: float = Field(4.0, ge=0, description="GridSearch: no configuration is stopped before this")
    ps_msg_s: float = Field(10e-6, ge=0, description="PS CPU per request [est]")
    ps_entry_s: float = Field(20e-9, ge=0, description="PS CPU per sparse entry read or updated [est]")

    @model_validator(mode="after")
    def _check(self) -> CirrusParams:
        if self.workload == "mf" and self.system not in ("cirrus", "pywren"):
            raise ValueError(f"system={self.system!r} runs workload 'lr' only; MF runs on cirrus or pywren")
        if self.grid:
            grid_configs(self.grid)
            if self.system == "pywren":
                raise ValueError("grid search runs Cirrus tasks; system='pywren' has no parameter server")
        if self.workload == "mf" and (self.clock or 1) != 1:
            raise ValueError("clock > 1 (a client cache) is modelled for LR only")
        return self


def resolved(params: CirrusParams) -> dict:
    """The knobs with the system's preset filled in, plus workload defaults."""
    pre = dict(PRESETS[params.system])
    for k in ("sparse", "prefetch", "clock", "step_overhead_s"):
        v = getattr(params, k)
        if v is not None:
            pre[k] = v
    if params.asynchronous is True:
        pre["staleness"] = None
    elif params.asynchronous is False or params.staleness is not None:
        pre["staleness"] = params.staleness if params.staleness is not None else (pre["staleness"] or 0)
    lr_defaults = {"lr": (0.1 if params.opt_method == "adagrad" else 0.5), "mf": 0.05}
    pre["learning_rate"] = params.learning_rate or lr_defaults[params.workload]
    mb_default = {"lr": 2000 if params.system == "spark" else 20, "mf": 1000}
    pre["minibatch_size"] = params.minibatch_size or mb_default[params.workload]
    pre["object_rows"] = params.object_rows or (d.OBJECT_ROWS if params.workload == "lr" else 20_000)
    return pre


@lru_cache(maxsize=4)
def lr_dataset(rows: int, test_rows: int, seed: int, bits: int) -> tuple[d.SparseRows, d.SparseRows]:
    all_rows = d.criteo(rows + test_rows, seed, bits)
    return all_rows.rows(0, rows), all_rows.rows(rows, rows + test_rows)


@lru_cache(maxsize=4)
def mf_dataset(n_users: int, n_items: int, n_ratings: int, seed: int) -> tuple[d.Ratings, d.Ratings]:
    return d.split_ratings(d.netflix(n_users, n_items, n_ratings, seed), 0.1, seed)


class CirrusExperiment(Experiment):
    name = "cirrus"
    description = "Cirrus (SoCC'19): sparse LR / MF training with a VM parameter server, and its baselines"
    Params = CirrusParams
    params: CirrusParams

    def __init__(self, params: CirrusParams, profile) -> None:
        super().__init__(params, profile)
        self.knobs = resolved(params)
        self.seed = params.data_seed
        self.final_model: np.ndarray | None = None

    # -- data
    def _objects(self) -> tuple[dict, dict, dict]:
        p = self.params
        rows_per = self.knobs["object_rows"]
        if p.workload == "lr":
            train, test = lr_dataset(p.rows, p.test_rows, self.seed, p.model_bits)
            extra = {"model_size": 1 << p.model_bits}
        else:
            tr, te = mf_dataset(p.n_users, p.n_items, p.n_ratings, self.seed)
            train, test = d.ratings_rows(tr), d.ratings_rows(te)
            layout_size = (p.n_users + p.n_items) * (p.factors + 1) + 1
            extra = {"model_size": layout_size, "mean_rating": float(tr.rating.mean()),
                     "item_mean_rmse": item_mean_rmse(tr, te)}
        train_objs = d.load_libsvm(train, "train", rows_per)
        test_objs = d.load_libsvm(test, "test", rows_per)
        return train_objs, test_objs, extra

    def task_payload(self) -> dict:
        p, k = self.params, self.knobs
        train_objs, test_objs, extra = self._objects()
        first = next(iter(train_objs.values()))
        return {
            "workload": p.workload, "system": p.system, "seed": self.seed, "ps_service": "vm",
            "cluster_service": "cluster", "train_keys": sorted(train_objs), "test_keys": sorted(test_objs),
            "object_rows": k["object_rows"], "row_bytes": first.nbytes // len(first),
            "object_bytes": first.nbytes,
            "n_workers": p.n_workers, "minibatch_size": k["minibatch_size"], "learning_rate": k["learning_rate"],
            "epsilon": p.epsilon, "opt_method": p.opt_method, "momentum": p.momentum,
            "n_users": p.n_users, "n_items": p.n_items, "factors": p.factors,
            "margin_s": p.margin_s, "train_s": p.train_s, "target": p.target, "eval_every_s": p.eval_every_s,
            "tick_s": p.tick_s, "lease_s": p.lease_s, "register_grace_s": p.register_grace_s,
            "placement": k["placement"], "sparse": k["sparse"], "prefetch": k["prefetch"],
            "staleness": k["staleness"], "clock": k["clock"], "step_overhead_s": k["step_overhead_s"],
            "refill_below": p.refill_below, "task_prefix": "", "grid": False,
            "trace_steps": p.trace_steps, "keep_model": p.keep_model, "ps_msg_s": p.ps_msg_s,
            "ps_entry_s": p.ps_entry_s,
            **{key: v for key, v in extra.items() if key != "item_mean_rmse"},
        }

    def preload(self):
        train_objs, test_objs, _ = self._objects()
        return {"s3": {**train_objs, **test_objs}}

    def handlers(self):
        return {"start": start, "backend": backend, "worker": worker, "ps_serve": serve,
                "pywren_driver": pywren_driver, "pywren_step": pywren_step, "grid_driver": grid_driver}

    def entry(self):
        p = self.params
        if p.grid:
            return "start", {"backend": "grid_driver", "p": {
                "base": self.task_payload(), "configs": grid_configs(p.grid), "early_stop": p.early_stop,
                "check_s": p.grid_check_s, "min_s": p.grid_min_s}}
        return "start", {"backend": "pywren_driver" if p.system == "pywren" else "backend", "p": self.task_payload()}

    def handler_memory(self):
        return {"worker": self.params.worker_size, "pywren_step": max(self.params.worker_size, 1024)}

    def handler_timeout(self):
        return {"worker": self.params.time_limit_s, "pywren_step": self.params.time_limit_s}

    def required_services(self):
        return ["s3", "vm", "client"] + (["cluster"] if self.knobs["placement"] == "vm" else [])

    def reachable_services(self):
        return self.required_services()

    # -- reporting
    def check(self, stored) -> dict:
        """With keep_model, the trained model the backend left on the client (``final_model``)."""
        self.final_model = stored.get("client", "model") if self.params.keep_model else None
        return {}

    def _rows(self, result) -> dict:
        p, k = self.params, self.knobs
        return {"workload": p.workload, "system": p.system, "n_workers": p.n_workers, "seed": result.config["seed"],
                "sparse": k["sparse"], "prefetch": k["prefetch"],
                "asynchronous": k["staleness"] is None, "staleness": k["staleness"], "clock": k["clock"],
                "minibatch_size": k["minibatch_size"], "learning_rate": k["learning_rate"],
                "opt_method": p.opt_method}

    def tables(self, result):
        base = self._rows(result)
        curve = result.metric("curve")
        out = {}
        if not curve.empty:
            cols = ["t", "task", "elapsed_s", "metric", "value", "updates", "live"]
            c = curve[[x for x in cols if x in curve.columns]].copy()
            for key, v in base.items():
                c[key] = v
            if self.params.grid:
                c = self._with_grid_params(c, result)
            out["curve"] = c
        gens = result.metric("generation")
        if not gens.empty:
            g = gens.drop(columns=["fid", "seq", "handler", "kind"], errors="ignore").copy()
            for key, v in base.items():
                g[key] = v
            out["generations"] = g
        return out

    def _with_grid_params(self, c: pd.DataFrame, result) -> pd.DataFrame:
        """Each curve row gets its configuration's parameters, whether it was stopped, its cost.

        A configuration's cost: its workers' GB-seconds and its parameter server's VM time
        (from the first answer to the end of its task, at the PS instance's price).
        """
        configs = {task_prefix(i): (i, cfg) for i, cfg in enumerate(grid_configs(self.params.grid))}
        stops = result.metric("grid_stop")
        stopped = set(stops["task"]) if not stops.empty else set()
        gens, done = result.metric("generation"), result.metric("task_done")
        gb_s_price = self.profile.functions.price_per_gb_s * self.params.worker_size / 1024
        vm_per_s = self.profile.service_config("vm").node_price_per_hour / 3600.0
        c["config"] = c["task"].map(lambda t: configs[t][0])
        for key in sorted(self.params.grid):
            c[key] = c["task"].map(lambda t, k=key: configs[t][1][k])
        c["early_stopped"] = c["task"].isin(stopped)
        worker_s = gens.groupby("task")["elapsed_s"].sum() if not gens.empty else pd.Series(dtype=float)
        ps_s = done.groupby("task")["elapsed_s"].sum() if not done.empty else pd.Series(dtype=float)
        c["cost_usd"] = c["task"].map(lambda t: worker_s.get(t, 0.0) * gb_s_price + ps_s.get(t, 0.0) * vm_per_s)
        return c

    def summary_extra(self, result):
        p = self.params
        curve = result.tables.get("curve", pd.DataFrame())
        out: dict = {"cirrus": self._rows(result)}
        if not curve.empty:
            last = curve.iloc[-1]
            out["final_value"] = float(last["value"])
            out["best_value"] = float(curve["value"].min())
            out["train_elapsed_s"] = float(last["elapsed_s"])
            out["updates"] = int(last["updates"])
            out["updates_per_s"] = float(last["updates"] / last["elapsed_s"]) if last["elapsed_s"] > 0 else 0.0
            if p.target is not None:
                hit = curve[curve["value"] <= p.target]
                out["time_to_target_s"] = float(hit["elapsed_s"].iloc[0]) if not hit.empty else None
        if p.workload == "mf":
            tr, te = mf_dataset(p.n_users, p.n_items, p.n_ratings, self.seed)
            out["item_mean_rmse"] = item_mean_rmse(tr, te)
        rejected = result.metric("rejected")
        out["rejected_invocations"] = len(rejected)
        return out


def item_mean_rmse(train: d.Ratings, test: d.Ratings) -> float:
    """The baseline MF must beat: predict each item's mean training rating."""
    sums = np.bincount(train.item, weights=train.rating, minlength=train.n_items)
    counts = np.bincount(train.item, minlength=train.n_items)
    means = np.where(counts > 0, sums / np.maximum(counts, 1), train.rating.mean())
    return float(np.sqrt(np.mean((means[test.item] - test.rating) ** 2)))


def start(ctx, args: dict) -> dict:
    """The entry: the user's front end starts the backend on the client machine."""
    ctx.start_vm_process(args["backend"], args["p"], service="client")
    return {}

