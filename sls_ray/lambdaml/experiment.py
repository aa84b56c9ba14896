"""The ``lambdaml`` experiment kind: one LambdaML training job per run (LambdaML, SIGMOD 2021).

Parameters pick the model and dataset, the algorithm (GA-SGD, MA-SGD, ADMM, k-means), the
protocol (synchronous / asynchronous), the pattern (AllReduce / ScatterReduce), the channel
(any key-value service of the profile; a ``vm``-kind service is the hybrid parameter server)
and the deployment (``faas``: Lambda executors; ``iaas``: the same code as processes on a VM
cluster). The run writes ``epochs.csv`` (one row per outer iteration: time, losses, read /
compute / communication / test seconds, cost so far) and ``rounds.csv`` (communication time
per exchange), and adds time and cost to the target loss to ``summary.json``.
"""
from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from sls_ray.api import ConfigError, Experiment, Strict
from sls_ray.lambdaml import datasets as ds
from sls_ray.lambdaml import models as m
from sls_ray.lambdaml.job import CNN, LINEAR, executor, load_dataset, parameter_server, shard_key, trigger

N_FEATURES = {"higgs": ds.HIGGS_FEATURES, "rcv1": ds.RCV1_FEATURES, "cifar10": int(np.prod(ds.CIFAR_SHAPE)),
              "yfcc100m": ds.YFCC_FEATURES, "breast_cancer": 30}
NODE_KINDS = {"memcached", "redis", "vm"}


class LambdaMLParams(Strict):
    model: Literal["lr", "svm", "mobilenet", "resnet50", "kmeans"] = Field(
        "lr", description="what is trained: logistic regression, linear SVM, MobileNet, ResNet-50, k-means")
    dataset: Literal["higgs", "rcv1", "cifar10", "yfcc100m", "breast_cancer"] = Field(
        "higgs", description="synthetic stand-in with the real shape (breast_cancer: sklearn's real data)")
    rows: int | None = Field(None, ge=2,
                             description="generated rows; None = the dataset's default (datasets.ROW_SCALE)")
    real_rows: int | None = Field(None, ge=1, description="rows of the paper's dataset this run stands for "
                                  "(compute and shard download scale by real_rows / rows); None = ROW_SCALE")
    workers: int = Field(10, ge=1, le=1000, description="executors W")
    algorithm: Literal["ga_sgd", "ma_sgd", "admm", "kmeans"] = Field("ga_sgd", description="optimisation algorithm")
    protocol: Literal["sync", "async"] = Field("sync", description="bulk synchronous or asynchronous")
    pattern: Literal["allreduce", "scatter_reduce"] = Field("allreduce", description="synchronous collective")
    channel: str = Field("s3", description="storage service the statistics travel through; a vm-kind service "
                         "is the hybrid parameter server (faas) or ignored for the cluster store (iaas)")
    deployment: Literal["faas", "iaas"] = Field("faas", description="Lambda executors, or processes on a VM cluster")
    iaas_service: str = Field("cluster", description="vm-kind service of the IaaS cluster (nodes = workers)")
    lr: float = Field(0.01, gt=0, description="SGD learning rate (LambdaML default 0.01)")
    batch_size: int = Field(100_000, ge=1, description="rows per worker per step at paper scale "
                            "(Higgs 100,000, CNN 256); generated batches are batch_size / row scale")
    epochs: int = Field(10, ge=1, description="most outer iterations (epochs; ADMM rounds; Lloyd steps)")
    target_loss: float | None = Field(None, description="stop once the global training loss is at or below this")
    admm_lam: float = Field(0.01, ge=0, description="ADMM L1 weight lambda (LambdaML default 0.01)")
    admm_rho: float = Field(0.01, gt=0, description="ADMM penalty rho (LambdaML default 0.01)")
    admm_local_epochs: int = Field(1, ge=1, description="local passes per ADMM round")
    k: int = Field(10, ge=1, description="k-means clusters (paper: 10 and 1,000)")
    kmeans_threshold: float = Field(1e-4, gt=0, description="k-means stops when the mean error changes less "
                                    "than this (paper: 1e-4)")
    kmeans_stop: Literal["absolute", "relative"] = Field("absolute", description="compare the error change itself "
                                                         "(the paper's wording) or relative to the previous error")
    memory_mb: int = Field(3008, description="executor memory (3008 MB = 1.7 vCPUs, the 2020 maximum)")
    timeout_s: float = Field(900.0, gt=0, description="executor timeout; executors re-invoke themselves before it")
    val_fraction: float = Field(0.2, ge=0, lt=1, description="share of each shard held out for validation")
    poll_interval_s: float = Field(0.1, gt=0, description="load_or_wait polling interval (paper code: 0.1 s)")
    wait_timeout_s: float = Field(60.0, gt=0, description="load_or_wait gives up (WaitTimeout) after this long "
                                  "(paper code: 60 s)")
    merged_expiry: Literal["previous", "late"] = Field(
        "previous", description="'previous': the leader deletes every older merged vector each round (paper "
        "code); 'late': keep two checkpoint intervals so a crashed worker's replay finds them")
    checkpoint_every: int = Field(1, ge=0, description="epochs between checkpoints to S3 (0 = only before re-invoking)")
    reinvoke_margin_s: float = Field(30.0, ge=0, description="re-invoke when fewer seconds than this plus 1.5 "
                                     "epochs are left before the timeout")
    max_real_rows: int | None = Field(None, ge=2, description="compute each step's gradient on at most this many "
                                      "real rows (CNNs); compute is still charged for the whole batch")
    max_real_val_rows: int | None = Field(None, ge=1, description="evaluate on at most this many real rows; "
                                          "test time is still charged for the whole validation set")
    max_steps_per_epoch: int | None = Field(None, ge=1, description="GA-SGD: stop each epoch after this many "
                                            "steps (communication-pattern runs)")
    log_rounds: bool = Field(True, description="log one 'round' metrics row per exchange and worker")
    seed: int = Field(0, description="data rows, model initialisation and batch order")

    @model_validator(mode="after")
    def _compatible(self) -> "LambdaMLParams":
        if (self.model == "kmeans") != (self.algorithm == "kmeans"):
            raise ValueError(f"model={self.model!r} with algorithm={self.algorithm!r}: k-means is both a model and "
                             f"an algorithm; use model=kmeans with algorithm=kmeans")
        if self.model in CNN and self.algorithm == "admm":
            raise ValueError("algorithm='admm' needs a convex model (lr, svm), as in the paper")
        if self.model in CNN and self.dataset != "cifar10":
            raise ValueError(f"model={self.model!r} trains on 32x32x3 images: use dataset='cifar10'")
        if self.model in LINEAR and self.dataset in ("cifar10", "yfcc100m"):
            raise ValueError(f"model={self.model!r} is for the tabular datasets (higgs, rcv1, breast_cancer)")
        if self.protocol == "async" and self.algorithm not in ("ga_sgd", "ma_sgd"):
            raise ValueError(f"protocol='async' is for ga_sgd and ma_sgd; {self.algorithm!r} is synchronous")
        if self.model == "kmeans" and self.dataset == "rcv1":
            raise ValueError("k-means takes dense features (higgs, yfcc100m)")
        return self


@lru_cache(maxsize=8)
def _shards(dataset: str, rows: int, seed: int, workers: int) -> tuple[bytes, ...]:
    return tuple(ds.serialize_shard(s) for s in ds.shard(load_dataset(dataset, rows, seed), workers))


@lru_cache(maxsize=4)
def _num_params(model: str) -> int:
    return m.num_params(m.build_model(model))


class LambdaMLExperiment(Experiment):
    name = "lambdaml"
    description = "LambdaML: distributed training through storage channels (SIGMOD'21)"
    Params = LambdaMLParams

    def __init__(self, params, profile) -> None:
        super().__init__(params, profile)
        self.payload = self._derive()

    # ------------------------------------------------------------ derived settings
    def _rows(self) -> tuple[int, int]:
        p = self.params
        if p.dataset == "breast_cancer":
            rows = min(p.rows or 569, 569)
            return rows, p.real_rows or rows
        real, default = ds.ROW_SCALE[p.dataset]
        return p.rows or default, p.real_rows or real

    def _derive(self) -> dict:
        p = self.params
        rows, real_rows = self._rows()
        W = p.workers
        if rows // W < 2:
            raise ConfigError(f"params.rows={rows} gives shards of {rows // W} rows for workers={W}; "
                              f"need at least 2 rows per worker")
        scale = real_rows / rows
        if scale < 1:
            raise ConfigError(f"params.real_rows={real_rows} is below params.rows={rows}; the paper's dataset "
                              f"cannot be smaller than the generated one")
        shard_min = rows // W
        n_train = shard_min - math.floor(p.val_fraction * shard_min)
        batch_rows = max(2 if p.model in CNN else 1, round(p.batch_size / scale))
        steps = max(1, math.ceil(n_train / batch_rows))
        d = N_FEATURES[p.dataset]
        if p.model == "kmeans":
            n = p.k * d + p.k + 1
            if p.k > n_train:
                raise ConfigError(f"params.k={p.k} is above the {n_train} training rows of a shard; lower k "
                                  f"or raise params.rows")
        else:
            n_model = d if p.model in LINEAR else _num_params(p.model)
            n = (2 * n_model if p.algorithm == "admm" else n_model) + 2
        itemsize = 4 if p.model in CNN else 8
        channel = p.iaas_service if p.deployment == "iaas" else p.channel
        for name in {channel, "s3"} | ({p.iaas_service} if p.deployment == "iaas" else set()):
            if name not in self.profile.services:
                raise ConfigError(f"params: service '{name}' is not in profile '{self.profile.name}'; known: "
                                  f"{sorted(self.profile.services)}")
        kind = self.profile.service_config(channel).kind
        if p.deployment == "iaas":
            cluster = self.profile.service_config(p.iaas_service)
            if cluster.kind != "vm":
                raise ConfigError(f"params.iaas_service='{p.iaas_service}' is a {cluster.kind} service; the IaaS "
                                  f"baseline needs a vm-kind service")
            if cluster.nodes not in (None, W):
                raise ConfigError(f"profile.services.{p.iaas_service}.nodes={cluster.nodes} but params.workers={W}: "
                                  f"the IaaS baseline runs one worker per instance; set nodes to null (one per "
                                  f"worker) or to params.workers")
            load_bps = cluster.nic_gbs * 1e9
        else:
            load_bps = self.profile.functions.nic_mbs * 1e6
        return {**p.model_dump(), "rows": rows, "real_rows": real_rows, "row_scale": scale, "n_features": d,
                "steps_per_epoch": steps, "batch_rows": batch_rows, "vector_n": n, "vector_bytes": n * itemsize,
                "channel_service": channel, "channel_kind": kind,
                "channel_is_node": kind in NODE_KINDS,
                "parameter_server": kind == "vm" and p.protocol == "sync" and p.deployment == "faas",
                "load_bytes_per_s": load_bps}

    # ------------------------------------------------------------ what runs
    def handlers(self):
        return {"trigger": trigger, "executor": executor, "parameter_server": parameter_server}

    def entry(self):
        return "trigger", self.payload

    def handler_memory(self):
        return {"executor": self.params.memory_mb, "trigger": 128}

    def handler_timeout(self):
        return {"executor": self.params.timeout_s}

    def required_services(self):
        q = self.payload
        return sorted({"s3", q["channel_service"]} | ({q["iaas_service"]} if q["deployment"] == "iaas" else set()))

    def reachable_services(self):
        return self.required_services()

    def preload(self):
        q = self.payload
        blobs = _shards(q["dataset"], q["rows"], q["seed"], q["workers"])
        return {"s3": {shard_key(q, i): blob for i, blob in enumerate(blobs)}}

    # ------------------------------------------------------------ what it reports
    def _labels(self) -> dict:
        q = self.payload
        return {"model": q["model"], "dataset": q["dataset"], "algorithm": q["algorithm"], "protocol": q["protocol"],
                "pattern": q["pattern"], "channel": q["channel_service"], "deployment": q["deployment"],
                "workers": q["workers"]}

    def cost_until(self, result, t: float) -> float:
        """Dollars spent by virtual time t: function GB-seconds so far, nodes up so far, requests pro rata."""
        s = result.summary
        end = max(s["makespan_s"], 1e-9)
        fprof = self.profile.functions
        inv = result.invocations
        gb_s = 0.0
        for row in inv.itertuples():
            if row.vm:
                continue
            gb_s += max(0.0, min(row.end_s, t) - row.start_s) * row.memory_mb / 1024.0
        costs = s["cost_usd"]
        lam = gb_s * fprof.price_per_gb_s + costs.get("lambda_requests", 0.0) * min(1.0, t / end)
        rest = sum(v for k, v in costs.items() if k not in ("lambda_compute", "lambda_requests", "total"))
        return lam + rest * min(1.0, t / end)

    def _epochs(self, result) -> pd.DataFrame:
        ep = result.metric("epoch")
        if ep.empty:
            return ep
        ep = ep.sort_values("t").drop_duplicates(["rank", "epoch"], keep="last")
        for col in ("val_loss", "val_acc"):  # all-NaN columns (k-means accuracy) are dropped by metric()
            if col not in ep:
                ep[col] = np.nan
        ep["epoch"] = ep["epoch"].astype(int)
        agg = ep.groupby("epoch").agg(
            t_end=("t", "max"), train_loss=("train_loss", "mean"), val_loss=("val_loss", "mean"),
            val_acc=("val_acc", "mean"), read_s=("read_s", "max"), compute_s=("compute_s", "mean"),
            comm_s=("comm_s", "mean"), test_s=("test_s", "mean"), epoch_s=("epoch_s", "mean"),
            exchanges=("exchanges", "max"), ranks=("rank", "count")).reset_index()
        agg["cost_usd"] = [self.cost_until(result, t) for t in agg["t_end"]]
        for k, v in self._labels().items():
            agg[k] = v
        return agg

    def tables(self, result):
        out = {}
        epochs = self._epochs(result)
        if not epochs.empty:
            out["epochs"] = epochs
        rounds = result.metric("round")
        if not rounds.empty:
            per = rounds.groupby("step").agg(comm_s=("comm_s", "mean"), comm_max_s=("comm_s", "max"),
                                             ranks=("rank", "count")).reset_index()
            for k, v in self._labels().items():
                per[k] = v
            out["rounds"] = per
        return out

    def summary_extra(self, result):
        q = self.payload
        extra = {"row_scale": q["row_scale"], "steps_per_epoch": q["steps_per_epoch"],
                 "vector_bytes": q["vector_bytes"], "channel_supported": True}
        na = result.metric("unsupported")
        if not na.empty:
            extra.update(channel_supported=False, na_reason=str(na["reason"].iloc[0]))
            return extra
        epochs = result.tables.get("epochs")
        if epochs is None or epochs.empty:
            return extra
        target = q["target_loss"]
        hit = epochs[epochs["train_loss"] <= target] if target is not None else epochs.iloc[0:0]
        extra.update({
            "epochs_run": int(epochs["epoch"].max()) + 1,
            "final_train_loss": float(epochs["train_loss"].iloc[-1]),
            "final_val_loss": float(epochs["val_loss"].iloc[-1]),
            "final_val_acc": float(epochs["val_acc"].iloc[-1]),
            "reached_target": bool(len(hit)),
            "time_to_target_s": float(hit["t_end"].iloc[0]) if len(hit) else None,
            "cost_to_target_usd": float(hit["cost_usd"].iloc[0]) if len(hit) else None,
            "read_s": float(epochs["read_s"].max()),
            "compute_per_epoch_s": float(epochs["compute_s"].mean()),
            "comm_per_epoch_s": float(epochs["comm_s"].mean()),
        })
        rounds = result.tables.get("rounds")
        if rounds is not None and not rounds.empty:
            steady = rounds[rounds["step"] > 0] if len(rounds) > 1 else rounds
            extra["comm_per_round_s"] = float(steady["comm_s"].mean())
        extra["reinvocations"] = int(len(result.metric("reinvoke")))
        extra["resumes"] = int(len(result.metric("resume")))
        return extra

    # ------------------------------------------------------------ figures
    @classmethod
    def plot(cls, result_dir: Path) -> list[Path]:
        from sls_ray.api import pyplot  # the Agg backend is chosen there, once

        plt = pyplot()

        path = Path(result_dir) / "epochs.csv"
        if not path.exists():
            return []
        ep = pd.read_csv(path)
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        axes[0].plot(ep["t_end"], ep["train_loss"], marker="o", label="train (global)")
        axes[0].plot(ep["t_end"], ep["val_loss"], marker=".", label="validation (mean of workers)")
        axes[1].plot(ep["cost_usd"], ep["train_loss"], marker="o")
        axes[0].set_xlabel("virtual time (s)")
        axes[1].set_xlabel("cost (USD)")
        for ax in axes:
            ax.set_ylabel("loss")
            ax.grid(alpha=0.3)
        axes[0].legend()
        r = ep.iloc[0]
        fig.suptitle(f"{r['model']}/{r['dataset']} {r['algorithm']} {r['protocol']} W={r['workers']} "
                     f"via {r['channel']} ({r['deployment']})")
        fig.tight_layout()
        out = Path(result_dir) / "loss.png"
        fig.savefig(out, dpi=110)
        plt.close(fig)
        return [out]

    @classmethod
    def plot_sweep(cls, sweep_dir: Path, sweep: pd.DataFrame) -> list[Path]:
        from sls_ray.api import pyplot  # the Agg backend is chosen there, once

        plt = pyplot()

        ok = sweep[sweep["status"] == "ok"]
        varied = [c for c in ok.columns if c.startswith("params.") and ok[c].astype(str).nunique() > 1]
        if not varied:
            return []
        x = "params.workers" if "params.workers" in varied else varied[0]
        groups = [c for c in varied if c != x]
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for key, grp in (ok.groupby(groups) if groups else [("", ok)]):
            grp = grp.sort_values(x)
            label = str(key) if groups else None
            time_col = grp["time_to_target_s"].fillna(grp["makespan_s"]) if "time_to_target_s" in grp else \
                grp["makespan_s"]
            axes[0].plot(grp[x], time_col, marker="o", label=label)
            axes[1].plot(grp[x], grp["cost_usd.total"], marker="o", label=label)
        for ax, label in zip(axes, ["time to target (s; makespan if not reached)", "cost (USD)"]):
            ax.set_xlabel(x.removeprefix("params."))
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            if groups:
                ax.legend(fontsize=7)
        if x == "params.workers":
            for ax in axes:
                ax.set_xscale("log")
        fig.tight_layout()
        out = Path(sweep_dir) / "lambdaml_sweep.png"
        fig.savefig(out, dpi=110)
        plt.close(fig)
        return [out]
