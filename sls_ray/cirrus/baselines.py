"""PyWren-style training: a general-purpose serverless system with no ML specialisation (Cirrus §6).

Each step is a PyWren ``map``: the driver writes the whole (dense) model to S3 and invokes one
function per worker; each function reads the model and one training object from S3 (no
parameter server, no prefetching, nothing kept between steps), computes the gradient of the
object's rows and writes it, dense, back to S3; the driver waits for all of them (polling S3
as PyWren's futures do), reads them, applies the optimiser and starts the next step. The
loss curve is the test loss after every step. This is Cirrus's "~100x slower" comparison.

The Bosen / TensorFlow / Spark baselines reuse Cirrus's worker and parameter server with
their own execution models (``experiment.PRESETS``: VM placement, SSP / BSP consistency,
dense broadcast, per-step overhead), so they differ from Cirrus in exactly those knobs.
"""
from __future__ import annotations

import numpy as np

from sls_ray.cirrus.data import SparseRows
from sls_ray.cirrus.ps import Optimizer
from sls_ray.cirrus.training import layout_of, logloss, lr_flops, mf_indices, mf_step, rmse

POLL_S = 0.1  # [src] PyWren futures poll S3 for results


def dense_lr_gradient(rows: SparseRows, w: np.ndarray, epsilon: float) -> tuple[np.ndarray, int]:
    """``lr_gradient`` over the whole model vector (zero where no row touches it) and the
    number of touched entries: one bincount instead of a sort, for 50,000-row objects."""
    margins = (w[rows.idx] * rows.val).sum(axis=1)
    resid = 1.0 / (1.0 + np.exp(-margins)) - rows.y
    g = np.bincount(rows.idx.ravel(), weights=(rows.val * resid[:, None]).ravel(), minlength=w.size) / len(rows)
    touched = np.bincount(rows.idx.ravel(), minlength=w.size) > 0
    g[touched] += epsilon * w[touched]
    return g, int(touched.sum())


def pywren_step(ctx, a: dict) -> None:
    p = a["p"]
    s3 = ctx.storage("s3")
    w = s3.get(f"pw/model/{a['step']:06d}")
    obj: SparseRows = s3.get(a["key"])
    if p["workload"] == "lr":  # the object's whole gradient, dense
        g, touched = dense_lr_gradient(obj, w, p["epsilon"])
        ctx.compute(flops=lr_flops(len(obj), obj.idx.shape[1], touched))
    else:
        layout = layout_of(p)
        idx = mf_indices(layout, obj)
        idx2, delta = mf_step(layout, obj, w[idx], p["learning_rate"])
        ctx.compute(flops=len(obj) * p["factors"] * 12)
        g = np.zeros_like(w)
        g[idx2] = -delta  # the driver subtracts: a negative delta
    s3.put(f"pw/grad/{a['step']:06d}/{a['worker']:04d}", g)


def pywren_driver(ctx, p: dict) -> dict:
    s3 = ctx.storage("s3")
    test = [s3.get(k) for k in p["test_keys"]]
    test_rows = SparseRows(np.concatenate([t.idx for t in test]), np.concatenate([t.val for t in test]),
                           np.concatenate([t.y for t in test]))
    mf = p["workload"] == "mf"
    layout = layout_of(p) if mf else None
    w = layout.initial(p["seed"], p["mean_rating"]) if mf else np.zeros(p["model_size"])
    opt = Optimizer("sgd", 1.0, size=w.size) if mf else Optimizer(p["opt_method"], p["learning_rate"],
                                                                    p["momentum"], size=w.size)
    keys = p["train_keys"]
    W = p["n_workers"]
    rng = np.random.default_rng([p["seed"], 0x9E])
    t0 = ctx.now
    step = 0
    order: list[str] = []
    while True:
        value = rmse(layout, w, test_rows) if mf else logloss(w, test_rows)
        ctx.compute(flops=len(test_rows) * test_rows.idx.shape[1] * 3)
        now = ctx.now
        ctx.log("curve", elapsed_s=now - t0, metric="rmse" if mf else "loss", value=value, updates=step * W,
                live=W)
        if now - t0 >= p["train_s"] or (p["target"] is not None and value <= p["target"]):
            break
        s3.put(f"pw/model/{step:06d}", w)
        for r in range(W):
            if not order:
                order = list(keys)
                rng.shuffle(order)
            ctx.invoke("pywren_step", {"p": p, "step": step, "worker": r, "key": order.pop()})
        got = s3.wait_count(f"pw/grad/{step:06d}/", W, poll_interval=POLL_S)
        grads = s3.mget(got)
        total = np.zeros_like(w)
        for k in sorted(grads):
            total += grads[k]
        ctx.compute(bytes=W * w.nbytes)
        nz = np.flatnonzero(total)
        opt.apply(w, nz, total[nz] / (1 if mf else W))
        s3.delete(list(got) + [f"pw/model/{step:06d}"])
        step += 1
    ctx.log("task_done", elapsed_s=ctx.now - t0, updates=step * W, launches=step * W)
    return {"steps": step}
