"""A LambdaML training job as functions: trigger, executors, parameter server (LambdaML §4, §5).

Structure as in the paper (lambdaml.md "The system"):

- ``trigger`` clears the channel and checkpoint area, starts the parameter-server process on
  its VM (hybrid channel), and invokes the W ``executor`` functions asynchronously — or, for
  the IaaS baseline, starts the W executors as processes on a VM cluster.
- each ``executor`` downloads its shard ``{i}_{W}`` from S3 (the read is timed and billed),
  keeps 20% for validation, then loops: compute (real numpy/torch math; FLOPs charged at the
  paper's data scale) → communicate through the channel → update. Every outer iteration
  logs an ``epoch`` row with read / compute / communication / test seconds and the losses;
  it stops at a target loss or an epoch count. Before the 15-minute limit it checkpoints to
  S3 and re-invokes itself; a platform retry after a crash resumes from the same checkpoint.
- ``parameter_server`` (VM process): sums the W pushes of a step and publishes the result;
  for GA-SGD it applies the update itself, so workers pull the model.

Scaling. Datasets are shrunk by ``row_scale`` = real rows / generated rows
(:mod:`sls_ray.lambdaml.datasets`). Bytes per round are the paper's (models have the paper's
sizes); compute is charged for ``row_scale`` times the rows really processed, and the shard
download streams ``row_scale`` times its bytes, so read and compute time are the paper's.
Mini-batches are ``batch_size / row_scale`` generated rows, so steps per epoch match too. CNNs
may compute each step's gradient on fewer real rows (``max_real_rows``) while charging the
full batch.

The stop test uses the epoch's *global* training loss: every exchanged vector carries
[loss × rows, rows] as two extra values, so all workers (and the parameter server) see the
same numbers and stop at the same step without an extra round. Validation loss is logged
per worker, as the paper's executors do.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from sls_ray.api import KeyNotFound
from sls_ray.lambdaml import algorithms as alg
from sls_ray.lambdaml import datasets as ds
from sls_ray.lambdaml import models as m
from sls_ray.lambdaml.channels import Channel, ChannelUnsupported
from sls_ray.lambdaml.protocols import AsyncModel, ParameterServerClient, SyncCollective, pull_key, serve_step

JOB = "lml/"          # channel keys
CKPT = "lml/ckpt/"    # checkpoints, always in S3 (durable)
LINEAR = ("lr", "svm")
CNN = ("mobilenet", "resnet50")
LOG_MODEL_MAX = 4096  # final models up to this many values are logged whole (tests compare them)


# ---------------------------------------------------------------- shared helpers
def shard_key(p: dict, i: int) -> str:
    return f"data/{p['dataset']}/{p['rows']}/{ds.shard_name(i, p['workers'])}"


def load_dataset(name: str, rows: int, seed: int) -> ds.Dataset:
    if name == "breast_cancer":
        data = ds.breast_cancer()
        return data if rows >= len(data) else data.take(np.arange(rows))
    return ds.make_dataset(name, rows, seed=seed)


def worker_batches(p: dict, rank: int, epoch: int, n_train: int) -> list[np.ndarray]:
    """Row indices of each mini-batch of an epoch: the same count on every worker."""
    order = np.random.default_rng([p["seed"], rank, epoch, 0xBA7C]).permutation(n_train)
    return [b for b in np.array_split(order, p["steps_per_epoch"]) if b.size]


def exchanges_per_epoch(p: dict) -> int:
    return min(p["steps_per_epoch"], p["max_steps_per_epoch"] or p["steps_per_epoch"]) \
        if p["algorithm"] == "ga_sgd" else 1


def keep_steps(p: dict) -> int:
    """How long merged results stay: one step (the original), or two checkpoint intervals
    (``merged_expiry='late'``) so that a replay after a crash finds them."""
    if p["merged_expiry"] == "previous":
        return 1
    return max(2, 2 * max(1, p["checkpoint_every"]) * exchanges_per_epoch(p))


def loss_terms(p: dict, total: np.ndarray) -> tuple[float, float]:
    """(loss numerator, denominator) carried at the end of an exchanged vector."""
    if p["algorithm"] == "kmeans":
        k, d = p["k"], p["n_features"]
        return float(total[-1]), float(total[k * d:-1].sum())
    return float(total[-2]), float(total[-1])


def job_channel(ctx, p: dict) -> Channel:
    """The job's channel: DynamoDB neither chunks (the paper's N/A) nor waits by listing."""
    dynamo = p["channel_kind"] == "dynamodb"
    return Channel(ctx, p["channel_service"], JOB, chunked=not dynamo, poll_interval=p["poll_interval_s"],
                   list_waits=not dynamo, timeout=p["wait_timeout_s"])


def kmeans_done(p: dict, prev_loss: float, loss: float) -> bool:
    """k-means stops when the mean error changes by less than the threshold (absolute, as the
    paper states it; ``kmeans_stop='relative'`` divides the change by the previous error)."""
    if p["kmeans_stop"] == "relative":
        return alg.kmeans_converged(prev_loss, loss, p["kmeans_threshold"])
    return math.isfinite(prev_loss) and abs(prev_loss - loss) < p["kmeans_threshold"]


def should_stop(p: dict, epoch: int, loss: float, prev_loss: float) -> bool:
    """The stop rule every worker and the parameter server apply to the same global numbers."""
    if epoch + 1 >= p["epochs"]:
        return True
    if p["algorithm"] == "kmeans" and kmeans_done(p, prev_loss, loss):
        return True
    return p["target_loss"] is not None and loss <= p["target_loss"]


def vector_dtype(p: dict):
    return np.float32 if p["model"] in CNN else np.float64


def initial_model(p: dict, n_features: int):
    if p["model"] in LINEAR:
        return m.build_model(p["model"], n_features=n_features)
    return m.build_model(p["model"], seed=p["seed"])


# ---------------------------------------------------------------- trigger
def trigger(ctx, p: dict) -> dict:
    """Clear the channel, start the parameter server (hybrid), invoke the W executors."""
    ch = job_channel(ctx, p)
    try:
        ch.check_fits(p["vector_bytes"], f"the {p['model']} {'model' if p['algorithm'] != 'ga_sgd' else 'gradient'}")
    except ChannelUnsupported as e:
        ctx.log("unsupported", channel=p["channel_service"], reason=str(e))
        return {"status": "n/a", "reason": str(e)}
    if not p["channel_is_node"]:
        ch.clear()  # a Memcached node or VM launched for this job starts empty (and is not up yet)
    if p["channel_service"] != "s3":
        Channel(ctx, "s3", CKPT).clear()
    if p["parameter_server"]:
        ctx.start_vm_process("parameter_server", p, service=p["channel_service"])
    for rank in range(p["workers"]):
        if p["deployment"] == "iaas":
            ctx.start_vm_process("executor", {**p, "rank": rank}, service=p["iaas_service"])
        else:
            ctx.invoke("executor", {**p, "rank": rank})
    return {"status": "started", "workers": p["workers"]}


# ---------------------------------------------------------------- executor
def executor(ctx, p: dict) -> dict:
    return TrainingExecutor(ctx, p).run()


class TrainingExecutor:
    """One LambdaML worker: load its shard, train, exchange, checkpoint, re-invoke."""

    def __init__(self, ctx, p: dict) -> None:
        self.ctx, self.p = ctx, p
        self.rank, self.W = p["rank"], p["workers"]
        self.scale = p["row_scale"]
        self.alg = p["algorithm"]
        self.ckpt = Channel(ctx, "s3", CKPT)
        self.ch = job_channel(ctx, p)
        self.dtype = vector_dtype(p)

    # ------------------------------------------------------------ stages
    def load_data(self) -> float:
        """Download and parse the shard; hold out 20% for validation. Returns the read seconds."""
        ctx, p = self.ctx, self.p
        t0 = ctx.now
        blob = ctx.storage("s3").get(shard_key(p, self.rank))
        # the paper's shard is row_scale times bigger: the rest streams at this function's bandwidth
        ctx.compute(seconds=(self.scale - 1.0) * len(blob) / p["load_bytes_per_s"])
        ctx.compute(bytes=len(blob) * self.scale)  # parse
        data = ds.deserialize_shard(blob)
        self.shard_bytes = len(blob)
        self.train, self.val = ds.train_val_split(data, p["val_fraction"], seed=p["seed"])
        read_s = ctx.now - t0
        ctx.log("read", rank=self.rank, read_s=read_s, shard_bytes=len(blob), paper_bytes=len(blob) * self.scale)
        return read_s

    def setup(self, state: dict | None) -> None:
        p = self.p
        d = self.train.n_features
        self.prev_loss = math.inf
        self.admm = None
        self.centroids = None
        if self.alg == "kmeans":
            self.model = None
            self.n = p["k"] * d + p["k"] + 1
            if state is not None:
                self.centroids = state["centroids"]
                self.prev_loss = state["prev_loss"]
            return
        self.model = initial_model(p, d)
        self.fps = m.flops_per_sample(self.model, self._nnz())
        if state is not None:
            m.set_flat(self.model, state["model"])
            for name, buf in (self.model.named_buffers() if p["model"] in CNN else ()):
                buf.copy_(torch.from_numpy(state["buffers"][name]))
            self.prev_loss = state["prev_loss"]
        if self.alg == "admm":
            self.admm = alg.AdmmWorker.start(self.model, self.W, p["admm_lam"], p["admm_rho"])
            if state is not None:
                self.admm.u, self.admm.z = state["u"], state["z"]
        self.n = (2 * m.num_params(self.model) if self.alg == "admm" else m.num_params(self.model)) + 2

    def _nnz(self) -> float | None:
        if self.train.is_sparse:
            return max(1.0, self.train.X.nnz / max(1, len(self.train)))
        return None

    def make_exchanger(self, replay: bool):
        p = self.p
        if p["protocol"] == "async":
            return AsyncModel(self.ch, self.n - 2, self.dtype, self.rank, write_first=p["model"] in CNN,
                              wait_timeout=p["wait_timeout_s"])
        if p["parameter_server"]:
            return ParameterServerClient(self.ch, self.rank, self.W, applies_update=self.alg == "ga_sgd",
                                         replay=replay)
        return SyncCollective(self.ch, self.rank, self.W, p["pattern"], keep_steps(p), replay=replay,
                              wait_timeout=p["wait_timeout_s"])

    # ------------------------------------------------------------ main loop
    def run(self) -> dict:
        ctx, p = self.ctx, self.p
        try:
            state = self.ckpt.load(f"w{self.rank}")
        except KeyNotFound:
            state = None
        read_s = self.load_data()
        self.setup(state)
        self.ex = self.make_exchanger(replay=state is not None)
        epoch = state["epoch"] if state else 0
        step = state["step"] if state else 0
        if state is not None:
            ctx.log("resume", rank=self.rank, epoch=epoch, step=step, attempt=ctx.attempt)
        loss = math.nan
        with ctx.memory.hold(int(self.shard_bytes * self.scale), "training shard at paper scale"):
            while True:
                t_epoch = ctx.now
                stats = self.run_epoch(epoch, step)
                step += stats["exchanges"]
                loss = stats["loss"]
                test = self.test()
                stop = should_stop(p, epoch, loss, self.prev_loss) if p["protocol"] == "sync" else \
                    (epoch + 1 >= p["epochs"] or (p["target_loss"] is not None and loss <= p["target_loss"]))
                epoch_s = ctx.now - t_epoch
                ctx.log("epoch", rank=self.rank, epoch=epoch, read_s=read_s, compute_s=stats["compute_s"],
                        comm_s=stats["comm_s"], test_s=test["test_s"], epoch_s=epoch_s, train_loss=loss,
                        val_loss=test["val_loss"], val_acc=test["val_acc"], exchanges=stats["exchanges"])
                read_s = 0.0
                self.prev_loss = loss
                epoch += 1
                if self.rank == 0 and isinstance(self.ex, SyncCollective):
                    self.ex.expire(step - 1)  # the original's per-epoch delete_expired on the merged prefix
                if stop:
                    break
                if p["checkpoint_every"] and epoch % p["checkpoint_every"] == 0:
                    self.save_checkpoint(epoch, step)
                if not ctx.is_vm and ctx.remaining < p["reinvoke_margin_s"] + 1.5 * epoch_s:
                    if not (p["checkpoint_every"] and epoch % p["checkpoint_every"] == 0):
                        self.save_checkpoint(epoch, step)
                    ctx.invoke("executor", p)
                    ctx.log("reinvoke", rank=self.rank, epoch=epoch, step=step, remaining_s=ctx.remaining)
                    return {"rank": self.rank, "reinvoked_at_epoch": epoch}
        if self.rank == 0 and not p["parameter_server"]:
            self.clear_channel(step - 1)
        vec = self.final_vector()
        ctx.log("final", rank=self.rank, epochs=epoch, train_loss=loss,
                model=vec.tolist() if vec.size <= LOG_MODEL_MAX else None, model_norm=float(np.linalg.norm(vec)))
        return {"rank": self.rank, "epochs": epoch, "train_loss": loss}

    def clear_channel(self, last_step: int) -> None:
        """The original's end of job: rank 0 lists and deletes the temporary and merged areas.

        Two deliberate differences: the last round's merged result is kept (the original's clear
        races the other workers' last load-or-wait of it; on S3 they usually win by the leader's
        test time, on Memcached they would lose), and Memcached is not flushed (the original
        calls a misspelled ``flust_all``, which raises; the node is discarded with the job)."""
        if not self.ch.client.can_list:
            return
        keep = f"/s{last_step}/"
        for area in (("tmp/", "merged/") if self.p["protocol"] == "sync" else ("",)):
            prefix = self.ch.key(area)
            listed = list(self.ch.client.scan(prefix)) if self.ch.reads == "scan" else self.ch.client.list(prefix)
            keys = [k for k in listed if keep not in k and (area or k != self.ch.key(AsyncModel.KEY) + "/c0")
                    and not k.startswith(CKPT)]
            if keys and self.ch.reads == "scan":
                for k in keys:
                    self.ch.client.delete(k)
            elif keys:
                self.ch.client.delete(keys)

    def final_vector(self) -> np.ndarray:
        if self.alg == "kmeans":
            return np.asarray(self.centroids).ravel()
        if self.admm is not None:
            return np.asarray(self.admm.z)
        return m.get_flat(self.model)

    def save_checkpoint(self, epoch: int, step: int) -> None:
        state: dict[str, Any] = {"epoch": epoch, "step": step, "prev_loss": self.prev_loss}
        if self.alg == "kmeans":
            state["centroids"] = self.centroids
        else:
            state["model"] = m.get_flat(self.model)
            if self.p["model"] in CNN:
                state["buffers"] = {k: v.detach().numpy().copy() for k, v in self.model.named_buffers()}
            if self.admm is not None:
                state["u"], state["z"] = self.admm.u, self.admm.z
        self.ckpt.save(f"w{self.rank}", state)

    # ------------------------------------------------------------ one outer iteration
    def _exchange(self, step: int, vec: np.ndarray) -> tuple[np.ndarray, float]:
        t0 = self.ctx.now
        out = self.ex.exchange(step, vec)
        comm = self.ctx.now - t0
        if self.p["log_rounds"]:
            self.ctx.log("round", rank=self.rank, step=step, comm_s=comm)
        return out, comm

    def _batch(self, idx: np.ndarray):
        real = idx[:self.p["max_real_rows"]] if self.p["max_real_rows"] else idx
        return self.train.X[real], self.train.y[real]

    def _charge_step(self, idx: np.ndarray) -> float:
        return self.ctx.compute(flops=self.fps * idx.size * self.scale)

    def run_epoch(self, epoch: int, step: int) -> dict:
        p = self.p
        if self.alg == "kmeans":
            return self._kmeans_epoch(epoch, step)
        batches = worker_batches(p, self.rank, epoch, len(self.train))
        if self.alg == "ga_sgd" and p["max_steps_per_epoch"]:
            batches = batches[:p["max_steps_per_epoch"]]
        if p["protocol"] == "async":
            return self._async_epoch(batches)
        return {"ga_sgd": self._ga_epoch, "ma_sgd": self._ma_epoch, "admm": self._admm_epoch}[self.alg](batches, step)

    def _tail(self, loss_sum: float, rows: float) -> np.ndarray:
        return np.array([loss_sum, rows], dtype=self.dtype)

    def _ga_epoch(self, batches, step: int) -> dict:
        compute = comm = num = den = 0.0
        for b, idx in enumerate(batches):
            loss, grad = alg.local_gradient(self.model, self._batch(idx))
            compute += self._charge_step(idx)
            vec = np.empty(grad.size + 2, dtype=self.dtype)  # W workers hold these at once: no extra copies
            vec[:-2], vec[-2:] = grad, self._tail(loss * idx.size, idx.size)
            del grad
            res, c = self._exchange(step + b, vec)
            del vec
            comm += c
            if self.ex.applies_update:
                m.set_flat(self.model, res[:-2])
            else:
                res[:-2] /= self.W
                m.add_flat(self.model, res[:-2], -self.p["lr"])  # apply_gradient without its returned copy
            n1, d1 = loss_terms(self.p, res)
            num, den = num + n1, den + d1
        return {"compute_s": compute, "comm_s": comm, "loss": num / den, "exchanges": len(batches)}

    def _local_pass(self, batches, prox=None) -> tuple[float, float, float]:
        """Plain local SGD over the batches (MA-SGD), or ADMM's w-step when ``prox`` = (u, z, rho)."""
        compute = num = den = 0.0
        for idx in batches:
            loss, grad = m.loss_and_grad(self.model, *self._batch(idx))
            if prox is not None:
                u, z, rho = prox
                grad = grad + rho * (m.get_flat(self.model) + u - z)
            m.add_flat(self.model, grad, -self.p["lr"])
            compute += self._charge_step(idx)
            num, den = num + loss * idx.size, den + idx.size
        return compute, num, den

    def _ma_epoch(self, batches, step: int) -> dict:
        compute, num, den = self._local_pass(batches)
        vec = np.concatenate([m.get_flat(self.model).astype(self.dtype), self._tail(num, den)])
        res, comm = self._exchange(step, vec)
        m.set_flat(self.model, res[:-2] / self.W)
        n1, d1 = loss_terms(self.p, res)
        return {"compute_s": compute, "comm_s": comm, "loss": n1 / d1, "exchanges": 1}

    def _admm_epoch(self, batches, step: int) -> dict:
        compute = num = den = 0.0
        a = self.admm
        for _ in range(self.p["admm_local_epochs"]):
            c, n1, d1 = self._local_pass(batches, prox=(a.u, a.z, a.rho))
            compute, num, den = compute + c, num + n1, den + d1
        vec = np.concatenate([a.payload(self.model).astype(self.dtype), self._tail(num, den)])
        res, comm = self._exchange(step, vec)
        a.apply_round(self.model, res[:-2])
        n1, d1 = loss_terms(self.p, res)
        return {"compute_s": compute, "comm_s": comm, "loss": n1 / d1, "exchanges": 1}

    def _kmeans_epoch(self, epoch: int, step: int) -> dict:
        p = self.p
        k, d = p["k"], self.train.n_features
        comm = 0.0
        if self.centroids is None:
            t0 = self.ctx.now
            if self.rank == 0:
                self.centroids = alg.init_centroids(self.train, k, seed=p["seed"])
                self.ch.save_array("init", self.centroids.ravel())
            else:
                self.centroids = self.ch.load_array("init", k * d, np.float64).reshape(k, d)
            comm += self.ctx.now - t0
        part = alg.lloyd_partial(self.train, self.centroids)
        compute = self.ctx.compute(flops=alg.lloyd_flops(len(self.train), d, k) * self.scale)
        res, c = self._exchange(step, part.to_flat())
        total = alg.LloydPartial.from_flat(res, k, d)
        self.centroids, err = alg.merge([total], self.centroids)
        return {"compute_s": compute, "comm_s": comm + c, "loss": err, "exchanges": 1}

    def _async_epoch(self, batches) -> dict:
        """Asynchronous GA-SGD (a local step, then exchange, per batch) or MA-SGD (a local pass,
        then exchange): the worker publishes its model and continues from the stored one."""
        compute = comm = num = den = 0.0
        am: AsyncModel = self.ex
        ctx = self.ctx
        rounds = [[idx] for idx in batches] if self.alg == "ga_sgd" else [batches]
        for group in rounds:
            if self.alg == "ga_sgd":
                idx = group[0]
                loss, grad = alg.local_gradient(self.model, self._batch(idx))
                alg.apply_gradient(self.model, grad, self.p["lr"])
                compute += self._charge_step(idx)
                num, den = num + loss * idx.size, den + idx.size
            else:
                c, n1, d1 = self._local_pass(group)
                compute, num, den = compute + c, num + n1, den + d1
            t0 = ctx.now
            stored = am.exchange(m.get_flat(self.model))
            m.set_flat(self.model, stored)
            comm += ctx.now - t0
        return {"compute_s": compute, "comm_s": comm, "loss": num / den, "exchanges": len(batches)}

    # ------------------------------------------------------------ test
    def test(self) -> dict:
        """Validation loss and accuracy of the current global model on this worker's 20%."""
        ctx, p = self.ctx, self.p
        val = self.val
        if len(val) == 0:
            return {"test_s": 0.0, "val_loss": math.nan, "val_acc": math.nan}
        if p["max_real_val_rows"] and len(val) > p["max_real_val_rows"]:
            val = val.take(np.arange(p["max_real_val_rows"]))
        if self.alg == "kmeans":
            _, d2 = alg.assign(val.X, self.centroids)
            flops = 2.0 * self.centroids.size * len(self.val)
            seconds = ctx.compute(flops=flops * self.scale)
            return {"test_s": seconds, "val_loss": float(d2.mean()), "val_acc": math.nan}
        model = self.model
        if self.admm is not None:
            model = m.LinearModel(self.model.kind, self.admm.z)
        val_loss = m.loss(model, val.X, val.y)
        val_acc = m.accuracy(model, val.X, val.y)
        per_row = self.fps / (2.0 if p["model"] in LINEAR else 3.0)  # forward only
        seconds = ctx.compute(flops=per_row * len(self.val) * self.scale)
        return {"test_s": seconds, "val_loss": val_loss, "val_acc": val_acc}


# ---------------------------------------------------------------- parameter server (VM process)
def parameter_server(ctx, p: dict) -> dict:
    """The hybrid channel's server: per step, wait for the W pushes, sum, publish (GA-SGD: update)."""
    ch = job_channel(ctx, p)
    W = p["workers"]
    dtype = vector_dtype(p)
    n = p["vector_n"]
    weights = None
    if p["algorithm"] == "ga_sgd":
        weights = m.get_flat(initial_model(p, p["n_features"])).astype(dtype)
    keep = keep_steps(p)
    step, prev = 0, math.inf
    loss = math.nan
    for epoch in range(p["epochs"]):
        num = den = 0.0
        for _ in range(exchanges_per_epoch(p)):
            total = serve_step(ch, step, W, n, dtype)
            ctx.compute(bytes=W * total.nbytes)
            if weights is not None:
                weights = weights - dtype(p["lr"]) * (total[:-2] / W)
                out = np.concatenate([weights, total[-2:]])
            else:
                out = total
            ch.save_array(pull_key(step), out)
            if step - keep >= 0:
                ch.delete_array(pull_key(step - keep), n, np.dtype(dtype).itemsize)
            n1, d1 = loss_terms(p, total)
            num, den = num + n1, den + d1
            step += 1
        loss = num / den
        stop = should_stop(p, epoch, loss, prev)
        prev = loss
        if stop:
            break
    ctx.log("ps_done", steps=step, train_loss=loss)
    return {"steps": step, "train_loss": loss}
