"""Cirrus training as functions: the backend, the workers, the models' per-minibatch math.

- ``backend`` (a process on the ``client`` VM service: the user's machine, which Cirrus's
  Python front end drives) starts the parameter server, launches the workers, relaunches
  every worker slot whose generation ended (a 300 s function ran out, or died: its lease
  expired), pulls the full model every ``eval_every_s`` to record the test loss curve, and
  stops the task on the time budget or the target loss.
- ``worker`` (a function limited to ``time_limit_s``; a VM process for the VM baselines)
  registers its (slot, generation) with the parameter server, then per minibatch pulls the
  weights it touches, computes a sparse gradient and sends it (Cirrus §4). It leaves a
  margin before its deadline and deregisters, so the next generation continues the training.

Knobs that turn Cirrus into its baselines and ablations: ``sparse`` (pull only touched
weights, or the full model), ``prefetch`` (the S3 iterator's background fetches),
``staleness`` (None async, 0 BSP, k SSP), ``clock`` (minibatches between syncs, Bosen's
client cache), ``step_overhead_s`` (framework overhead per step), ``placement``.
"""
from __future__ import annotations

import math

import numpy as np

from sls_ray.api import WaitTimeout
from sls_ray.cirrus.data import SparseRows
from sls_ray.cirrus.iterator import S3Iterator
from sls_ray.cirrus.ps import BACKEND, PSClient

# ---------------------------------------------------------------- model math (shared with tests)
MF_REG = 0.02  # [est] L2 on factors and biases


def lr_gradient(mb: SparseRows, w_u: np.ndarray, inverse: np.ndarray, epsilon: float) -> np.ndarray:
    """Mean logistic-loss gradient of a minibatch on its unique indices, plus L2 (epsilon).

    ``w_u`` are the weights of the unique indices, ``inverse`` maps each (row, entry) to them.
    """
    n = len(mb)
    margins = (w_u[inverse] * mb.val).sum(axis=1)
    resid = 1.0 / (1.0 + np.exp(-margins)) - mb.y
    g = np.bincount(inverse.ravel(), weights=(mb.val * resid[:, None]).ravel(), minlength=w_u.size)
    return g / n + epsilon * w_u


def lr_flops(rows: int, width: int, unique: int) -> float:
    return rows * width * 4 + rows * 25 + unique * 3


def logloss(w: np.ndarray, data: SparseRows) -> float:
    m = (w[data.idx] * data.val).sum(axis=1)
    return float(np.mean(np.logaddexp(0.0, m) - data.y * m))


def accuracy(w: np.ndarray, data: SparseRows) -> float:
    m = (w[data.idx] * data.val).sum(axis=1)
    return float(np.mean((m > 0) == (data.y > 0.5)))


class MFLayout:
    """The flat model of matrix factorisation: user factors, item factors, user and item biases, mean."""

    def __init__(self, n_users: int, n_items: int, k: int) -> None:
        self.n_users, self.n_items, self.k = n_users, n_items, k
        self.q0 = n_users * k
        self.bu0 = self.q0 + n_items * k
        self.bi0 = self.bu0 + n_users
        self.mu = self.bi0 + n_items
        self.size = self.mu + 1

    def touched(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        k = self.k
        cols = np.arange(k)
        return np.concatenate([(users[:, None] * k + cols).ravel(), (self.q0 + items[:, None] * k + cols).ravel(),
                               self.bu0 + users, self.bi0 + items, [self.mu]]).astype(np.int64)

    def predict(self, w: np.ndarray, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        k = self.k
        P = w[: self.q0].reshape(self.n_users, k)
        Q = w[self.q0: self.bu0].reshape(self.n_items, k)
        return (w[self.mu] + w[self.bu0 + users] + w[self.bi0 + items]
                + np.einsum("ij,ij->i", P[users], Q[items]))

    def initial(self, seed: int, mean: float) -> np.ndarray:
        w = np.zeros(self.size)
        w[: self.bu0] = np.random.default_rng([seed, 0x3F]).normal(0, 0.1, self.bu0)
        w[self.mu] = mean
        return w


def mf_step(layout: MFLayout, mb: SparseRows, w_t: np.ndarray, lr: float) -> tuple[np.ndarray, np.ndarray]:
    """One SGD step on a minibatch of ratings over the pulled entries: (unique indices, delta)."""
    users = mb.idx[:, 0].astype(np.int64)
    items = (mb.idx[:, 1] - layout.n_users).astype(np.int64)
    uu, ui = np.unique(users, return_inverse=True)
    iu, ii = np.unique(items, return_inverse=True)
    k = layout.k
    idx = layout.touched(uu, iu)
    w = w_t
    nu, ni = uu.size, iu.size
    P = w[: nu * k].reshape(nu, k)
    Q = w[nu * k: (nu + ni) * k].reshape(ni, k)
    bu = w[(nu + ni) * k: (nu + ni) * k + nu]
    bi = w[(nu + ni) * k + nu: (nu + ni) * k + nu + ni]
    mu = w[-1]
    pred = mu + bu[ui] + bi[ii] + np.einsum("ij,ij->i", P[ui], Q[ii])
    e = mb.y - pred
    # each entity's gradient is averaged over its ratings in the minibatch, so a popular item
    # takes one step per minibatch (as per-rating SGD would move it on average), not a hundred
    cu = np.bincount(ui, minlength=nu).astype(np.float64)
    ci = np.bincount(ii, minlength=ni).astype(np.float64)
    gP = e[:, None] * Q[ii] - MF_REG * P[ui]
    gQ = e[:, None] * P[ui] - MF_REG * Q[ii]
    dP = np.stack([np.bincount(ui, weights=gP[:, j], minlength=nu) for j in range(k)], axis=1) / cu[:, None]
    dQ = np.stack([np.bincount(ii, weights=gQ[:, j], minlength=ni) for j in range(k)], axis=1) / ci[:, None]
    dbu = np.bincount(ui, weights=e - MF_REG * bu[ui], minlength=nu) / cu
    dbi = np.bincount(ii, weights=e - MF_REG * bi[ii], minlength=ni) / ci
    delta = lr * np.concatenate([dP.ravel(), dQ.ravel(), dbu, dbi, [0.0]])
    return idx, delta


def mf_indices(layout: MFLayout, mb: SparseRows) -> np.ndarray:
    users = np.unique(mb.idx[:, 0].astype(np.int64))
    items = np.unique((mb.idx[:, 1] - layout.n_users).astype(np.int64))
    return layout.touched(users, items)


def rmse(layout: MFLayout, w: np.ndarray, data: SparseRows) -> float:
    users = data.idx[:, 0].astype(np.int64)
    items = (data.idx[:, 1] - layout.n_users).astype(np.int64)
    pred = np.clip(layout.predict(w, users, items), 1.0, 5.0)
    return float(np.sqrt(np.mean((pred - data.y) ** 2)))


def layout_of(p: dict) -> MFLayout:
    return MFLayout(p["n_users"], p["n_items"], p["factors"])


# ---------------------------------------------------------------- worker
def worker(ctx, args: dict) -> dict:
    """One generation of one worker slot: register, train until the deadline margin or stop."""
    p, slot, gen = args["p"], args["worker"], args["generation"]
    ps = PSClient(ctx, p["ps_service"], slot, p["task_prefix"], timeout=4 * p["lease_s"])
    try:
        reg = ps.register(gen)
    except WaitTimeout:
        ctx.log("rejected", worker=slot, generation=gen, reason="no parameter server answered")
        return {"rejected": True}
    if not reg["ok"]:
        ctx.log("rejected", worker=slot, generation=gen, reason=reg["reason"])
        return {"rejected": True}
    keys = p["train_keys"]
    if p["workload"] == "mf":  # users are partitioned across workers: each reads its own objects
        keys = keys[slot::p["n_workers"]] or keys[slot % len(keys):][:1]
    it = S3Iterator(ctx, "s3", keys, p["minibatch_size"], object_rows=p["object_rows"], row_bytes=p["row_bytes"],
                    order="random" if p["workload"] == "lr" else "sequential",
                    seed=(p["seed"], slot, gen), prefetch=p["prefetch"], refill_below=p["refill_below"])
    step, t_start = reg["step"], ctx.clock
    deadline = math.inf if ctx.is_vm else ctx.deadline - p["margin_s"]
    layout = layout_of(p) if p["workload"] == "mf" else None
    compute_s = 0.0
    rows = 0
    stopped = False
    clock = p["clock"]
    while ctx.clock < deadline:
        mbs = [it.next() for _ in range(clock)]
        if p["workload"] == "lr":
            all_idx = np.concatenate([mb.idx for mb in mbs]) if clock > 1 else mbs[0].idx
            uniq, inverse = np.unique(all_idx, return_inverse=True)
            inverse = inverse.reshape(all_idx.shape)
        else:
            uniq = mf_indices(layout, mbs[0])
        try:
            if p["sparse"]:
                w_u, stop = ps.get_sparse_model(uniq, step)
            else:
                full, stop = ps.get_sparse_model(None, step)
                w_u = None if full is None else full[uniq]
        except WaitTimeout:  # the server is gone: nothing to train against
            stopped = True
            break
        if stop:
            stopped = True
            break
        if p["step_overhead_s"]:
            ctx.sleep(p["step_overhead_s"])
        if p["workload"] == "mf":
            idx, delta = mf_step(layout, mbs[0], w_u, p["learning_rate"])
            compute_s += ctx.compute(flops=len(mbs[0]) * p["factors"] * 12)
            ps.send_gradient(idx, delta, delta=True)
        elif clock == 1:
            g = lr_gradient(mbs[0], w_u, inverse, p["epsilon"])
            compute_s += ctx.compute(flops=lr_flops(len(mbs[0]), all_idx.shape[1], uniq.size))
            ps.send_gradient(uniq, g)
        else:  # Bosen's client cache: `clock` minibatches on the same cached weights, one push
            g = lr_gradient(SparseRows(all_idx, np.concatenate([mb.val for mb in mbs]),
                                       np.concatenate([mb.y for mb in mbs])), w_u, inverse, p["epsilon"])
            compute_s += ctx.compute(flops=lr_flops(all_idx.shape[0], all_idx.shape[1], uniq.size))
            ps.send_gradient(uniq, g)
        if p["trace_steps"]:
            ctx.log("sent", worker=slot, generation=gen, step=step)
        rows += sum(len(mb) for mb in mbs)
        step += 1
    ps.deregister()
    elapsed = ctx.clock - t_start
    ctx.log("generation", task=p["task_prefix"], worker=slot, generation=gen, steps=step - reg["step"], rows=rows,
            elapsed_s=elapsed,
            compute_s=compute_s, stall_s=it.stall_s, s3_bytes=it.fetches * p["object_bytes"],
            gradients=ps.sent_gradients, peak_buffer_bytes=it.peak_buffered_bytes, stopped=stopped)
    return {"steps": step - reg["step"], "stopped": stopped}


# ---------------------------------------------------------------- backend
def backend(ctx, p: dict) -> dict:
    """The client-side backend: PS, workers, relaunches, the test-loss curve, stopping."""
    ctx.start_vm_process("ps_serve", p, service=p["ps_service"])
    ps = PSClient(ctx, p["ps_service"], BACKEND, p["task_prefix"])
    control = ctx.storage("client")  # the grid search's stop flags live on the user's machine
    s3 = ctx.storage("s3")
    test = [s3.get(k) for k in p["test_keys"]]
    test_rows = SparseRows(np.concatenate([t.idx for t in test]), np.concatenate([t.val for t in test]),
                           np.concatenate([t.y for t in test]))
    layout = layout_of(p) if p["workload"] == "mf" else None
    if layout is not None:
        ps.init_model(layout.initial(p["seed"], p["mean_rating"]))
    ps.status()  # the first answer: the parameter server is up; training time starts here
    t0 = ctx.now
    W = p["n_workers"]
    launched = {w: (0, t0) for w in range(W)}
    for w in range(W):
        _launch(ctx, p, w, 0)
    next_eval, updates, launches = t0, 0, W
    metric = "rmse" if layout is not None else "loss"
    while True:
        now = ctx.now
        if now >= next_eval - 1e-9:
            w_full = ps.get_full_model()
            value = rmse(layout, w_full, test_rows) if layout is not None else logloss(w_full, test_rows)
            ctx.compute(flops=len(test_rows) * test_rows.idx.shape[1] * (3 if layout is None else 2 * p["factors"]))
            st = ps.status()
            updates = st["updates"]
            ctx.log("curve", task=p["task_prefix"], elapsed_s=now - t0, metric=metric, value=value,
                    updates=updates, live=sum(s["alive"] for s in st["workers"].values()))
            if p["grid"]:
                control.put(f"{p['task_prefix']}value", (now - t0, value))
                if control.exists(f"{p['task_prefix']}stop"):
                    ctx.log("early_stop", task=p["task_prefix"], elapsed_s=now - t0, value=value)
                    break
            if now - t0 >= p["train_s"] - 1e-9 or (p["target"] is not None and value <= p["target"]):
                break
            next_eval += p["eval_every_s"]
        else:
            st = ps.status()
        for w in range(W):
            s = st["workers"].get(w)
            gen, at = launched[w]
            registered = s is not None and s["generation"] == gen
            ended = registered and not s["alive"]
            lost = not registered and now - at > p["lease_s"] + p["register_grace_s"]
            if ended or lost:
                launched[w] = (gen + 1, now)
                _launch(ctx, p, w, gen + 1)
                launches += 1
        ctx.sleep(min(p["tick_s"], max(0.0, next_eval - ctx.now)) or p["tick_s"])
    ps.stop()
    while any(s["alive"] for s in ps.status()["workers"].values()):  # the last gradients land
        ctx.sleep(p["tick_s"])
    if p["keep_model"]:
        control.put(f"{p['task_prefix']}model", ps.get_full_model())
    ps.shutdown()
    ctx.log("task_done", task=p["task_prefix"], elapsed_s=ctx.now - t0, updates=updates, launches=launches)
    if p["grid"]:
        control.put(f"{p['task_prefix']}done", ctx.now - t0)
    return {"updates": updates, "launches": launches}


def _launch(ctx, p: dict, slot: int, gen: int) -> None:
    args = {"p": p, "worker": slot, "generation": gen}
    if p["placement"] == "lambda":
        ctx.invoke("worker", args)
    else:
        ctx.start_vm_process("worker", args, service=p["cluster_service"])
