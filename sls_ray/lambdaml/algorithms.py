"""Per-worker math of LambdaML's algorithms, with no communication (LambdaML §3.2, §4.1).

Each LambdaML executor loops: compute a statistic, all-reduce it through a channel, apply
the aggregate.  This module is the "compute" and "apply" halves, as pure functions of
flat vectors, so the distributed half only moves vectors between them:

* **GA-SGD** — :func:`local_gradient` per mini-batch, all-reduce (mean) the gradient,
  :func:`apply_gradient`.
* **MA-SGD** — :func:`local_epoch` of plain SGD, all-reduce (mean) the model, ``set_flat``.
* **ADMM** — :meth:`AdmmWorker.local_update` (SGD on loss + (rho/2)·‖w + u − z‖²),
  all-reduce (sum) :meth:`AdmmWorker.payload` = [w, u], :meth:`AdmmWorker.apply_round`
  (z = soft-threshold(mean w + mean u, lam / (W·rho)); u += w − z).  Over W workers
  this solves  min_w Σ_i f_i(w) + lam·‖w‖₁  (f_i = worker i's mean loss).
* **k-means** — rank 0 :func:`init_centroids`; every worker :func:`lloyd_partial`;
  all-reduce (sum) :meth:`LloydPartial.to_flat`; :func:`merge` gives the exact global
  Lloyd step; stop on :func:`kmeans_converged`.

Training is plain SGD (no momentum, no weight decay), as LambdaML's executors run it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from sls_ray.lambdaml.datasets import Dataset
from sls_ray.lambdaml.models import Features, FlatVector, Labels, Model, add_flat, get_flat, loss_and_grad

Batch = tuple[Features, Labels]


# --------------------------------------------------------------------------- SGD settings


@dataclass(frozen=True)
class SGD:
    """Plain SGD: a learning rate and a mini-batch size (rows per step, per worker)."""

    lr: float
    batch_size: int

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"SGD.lr={self.lr}; must be > 0")
        if self.batch_size < 1:
            raise ValueError(f"SGD.batch_size={self.batch_size}; must be >= 1")

    def scaled(self, row_scale: float) -> SGD:
        """Shrink the batch with the rows (``datasets.row_scale``) so steps per epoch match the paper."""
        if not row_scale >= 1.0:
            raise ValueError(f"row_scale={row_scale}; must be >= 1 (real rows / generated rows)")
        return SGD(self.lr, max(1, round(self.batch_size / row_scale)))


HIGGS_SGD = SGD(lr=0.01, batch_size=100_000)  # LambdaML source defaults for LR/SVM on Higgs
CNN_SGD = SGD(lr=0.01, batch_size=256)  # LambdaML defaults for MobileNet/ResNet on Cifar10


def iter_batches(data: Dataset, batch_size: int, seed: int | None = None) -> list[Batch]:
    """Split a worker's rows into consecutive mini-batches (shuffled first when ``seed`` is given).

    The last batch may be smaller, like a PyTorch DataLoader with ``drop_last=False``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}; must be >= 1")
    order = np.arange(len(data)) if seed is None else np.random.default_rng(seed).permutation(len(data))
    return [
        (data.X[order[i : i + batch_size]], data.y[order[i : i + batch_size]])
        for i in range(0, len(data), batch_size)
    ]


def average(vectors: Sequence[npt.ArrayLike]) -> FlatVector:
    """Mean of equal-length flat vectors: what an all-reduce followed by ``/ W`` yields."""
    if not vectors:
        raise ValueError("average() of no vectors")
    stacked = [np.asarray(v).ravel() for v in vectors]
    sizes = {v.size for v in stacked}
    if len(sizes) != 1:
        raise ValueError(f"vectors have different lengths {sorted(sizes)}")
    return np.sum(stacked, axis=0) / len(stacked)


# --------------------------------------------------------------------------- GA-SGD


def local_gradient(model: Model, batch: Batch) -> tuple[float, FlatVector]:
    """GA-SGD compute step: (mean loss, flat gradient) of one mini-batch at the current model."""
    X, y = batch
    return loss_and_grad(model, X, y)


def apply_gradient(model: Model, avg_grad: npt.ArrayLike, lr: float) -> FlatVector:
    """GA-SGD update with the all-reduced mean gradient: w -= lr · g.  Returns the new flat model."""
    add_flat(model, avg_grad, -lr)
    return get_flat(model)


# --------------------------------------------------------------------------- MA-SGD


def local_epoch(model: Model, batches: Iterable[Batch], lr: float) -> FlatVector:
    """MA-SGD compute step: one pass of local SGD over the worker's batches; returns the new flat model."""
    for X, y in batches:
        _, grad = loss_and_grad(model, X, y)
        add_flat(model, grad, -lr)
    return get_flat(model)


# --------------------------------------------------------------------------- ADMM

ADMM_LAM = 0.01  # L1 weight, LambdaML's default
ADMM_RHO = 0.01  # augmented-Lagrangian penalty, LambdaML's default


def soft_threshold(v: npt.ArrayLike, k: float) -> npt.NDArray[np.float64]:
    """Proximal operator of k·‖·‖₁: shrink every entry toward 0 by k."""
    v = np.asarray(v, dtype=np.float64)
    return np.sign(v) * np.maximum(np.abs(v) - k, 0.0)


def admm_z_update(
    mean_w: npt.ArrayLike, mean_u: npt.ArrayLike, lam: float, rho: float, n_workers: int
) -> npt.NDArray[np.float64]:
    """Consensus step: z = soft_threshold(mean(w) + mean(u), lam / (W·rho))."""
    return soft_threshold(np.asarray(mean_w) + np.asarray(mean_u), lam / (n_workers * rho))


def admm_u_update(u: npt.ArrayLike, w: npt.ArrayLike, z: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Scaled dual step: u + w − z."""
    return np.asarray(u, dtype=np.float64) + np.asarray(w, dtype=np.float64) - np.asarray(z)


@dataclass
class AdmmWorker:
    """One worker's ADMM state beside its model w: the scaled dual u and the last consensus z."""

    u: npt.NDArray[np.float64]
    z: npt.NDArray[np.float64]
    n_workers: int
    lam: float = ADMM_LAM
    rho: float = ADMM_RHO

    def __post_init__(self) -> None:
        if self.n_workers < 1:
            raise ValueError(f"AdmmWorker.n_workers={self.n_workers}; must be >= 1")
        if not (self.lam >= 0 and self.rho > 0):
            raise ValueError(f"AdmmWorker lam={self.lam}, rho={self.rho}; need lam >= 0 and rho > 0")

    @classmethod
    def start(cls, model: Model, n_workers: int, lam: float = ADMM_LAM, rho: float = ADMM_RHO) -> AdmmWorker:
        """u = 0 and z = the initial model (identical on every worker)."""
        w = get_flat(model).astype(np.float64)
        return cls(np.zeros_like(w), w.copy(), n_workers, lam, rho)

    def local_update(self, model: Model, batches: Sequence[Batch], lr: float, local_epochs: int = 1) -> FlatVector:
        """w-step: ``local_epochs`` passes of SGD on f_i(w) + (rho/2)·‖w + u − z‖²; returns new w."""
        if local_epochs < 1:
            raise ValueError(f"local_epochs={local_epochs}; must be >= 1")
        for _ in range(local_epochs):
            for X, y in batches:
                _, grad = loss_and_grad(model, X, y)
                w = get_flat(model)
                add_flat(model, grad + self.rho * (w + self.u - self.z), -lr)
        return get_flat(model)

    def payload(self, model: Model) -> FlatVector:
        """What this worker all-reduces once per round: [w, u] in the model's dtype."""
        w = get_flat(model)
        return np.concatenate([w, self.u.astype(w.dtype)])

    def apply_round(self, model: Model, summed_payload: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Given the sum of all W payloads, update z and u; returns z (the consensus model)."""
        total = np.asarray(summed_payload, dtype=np.float64).ravel()
        if total.size != 2 * self.u.size:
            raise ValueError(f"summed payload has {total.size} values; expected 2 x {self.u.size}")
        mean_w, mean_u = np.split(total / self.n_workers, 2)
        self.z = admm_z_update(mean_w, mean_u, self.lam, self.rho, self.n_workers)
        self.u = admm_u_update(self.u, get_flat(model), self.z)
        return self.z.copy()


# --------------------------------------------------------------------------- k-means

KMEANS_THRESHOLD = 1e-4  # stop when the relative change of the mean error is below this


def _rows(data: Dataset | npt.ArrayLike) -> npt.NDArray[np.float64]:
    X = data.X if isinstance(data, Dataset) else data
    if sp.issparse(X):
        raise TypeError("k-means takes dense features (YFCC100M, Higgs), got a sparse matrix")
    X = np.asarray(X, dtype=np.float64)
    return X.reshape(len(X), -1)


def init_centroids(data: Dataset | npt.ArrayLike, k: int, seed: int = 0) -> npt.NDArray[np.float64]:
    """Rank 0's seeding: k distinct rows of its shard drawn with ``seed``, as float64 (k, d)."""
    X = _rows(data)
    if not 1 <= k <= len(X):
        raise ValueError(f"k={k}; must be in [1, {len(X)}] (rows in the shard)")
    return X[np.sort(np.random.default_rng(seed).choice(len(X), k, replace=False))].copy()


@dataclass(frozen=True)
class LloydPartial:
    """One worker's share of a Lloyd step: per-centroid sums and counts, and its squared error.

    Sums and counts add across workers, so the sum of all partials is exactly the
    statistics of one Lloyd step over the union of the shards.
    """

    sums: npt.NDArray[np.float64]  # (k, d): sum of the rows assigned to each centroid
    counts: npt.NDArray[np.int64]  # (k,): rows assigned to each centroid
    error: float  # sum over rows of the squared distance to the assigned centroid

    def __add__(self, other: LloydPartial) -> LloydPartial:
        return LloydPartial(self.sums + other.sums, self.counts + other.counts, self.error + other.error)

    def to_flat(self) -> npt.NDArray[np.float64]:
        """[sums, counts, error] as one float64 vector for the all-reduce (counts exact below 2^53)."""
        return np.concatenate([self.sums.ravel(), self.counts.astype(np.float64), [self.error]])

    @classmethod
    def from_flat(cls, vec: npt.ArrayLike, k: int, d: int) -> LloydPartial:
        vec = np.asarray(vec, dtype=np.float64).ravel()
        if vec.size != k * d + k + 1:
            raise ValueError(f"flat partial has {vec.size} values; expected k*d + k + 1 = {k * d + k + 1}")
        return cls(vec[: k * d].reshape(k, d).copy(), np.rint(vec[k * d : -1]).astype(np.int64), float(vec[-1]))


def assign(X: npt.ArrayLike, centroids: npt.ArrayLike) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Nearest centroid of each row (lowest index on ties) and the squared distance to it."""
    X, C = _rows(X), np.asarray(centroids, dtype=np.float64)
    d2 = (X * X).sum(axis=1)[:, None] - 2.0 * (X @ C.T) + (C * C).sum(axis=1)[None, :]
    labels = np.argmin(d2, axis=1)
    return labels.astype(np.int64), np.maximum(d2[np.arange(len(X)), labels], 0.0)


def lloyd_partial(data: Dataset | npt.ArrayLike, centroids: npt.ArrayLike) -> LloydPartial:
    """A worker's Lloyd statistics on its shard against the current global centroids."""
    X = _rows(data)
    C = np.asarray(centroids, dtype=np.float64)
    if C.ndim != 2 or C.shape[1] != X.shape[1]:
        raise ValueError(f"centroids have shape {C.shape}; expected (k, {X.shape[1]})")
    labels, d2 = assign(X, C)
    k = len(C)
    onehot = sp.csr_array((np.ones(len(X)), (labels, np.arange(len(X)))), shape=(k, len(X)))
    return LloydPartial(np.asarray(onehot @ X), np.bincount(labels, minlength=k).astype(np.int64), float(d2.sum()))


def merge(partials: Iterable[LloydPartial], previous: npt.ArrayLike) -> tuple[npt.NDArray[np.float64], float]:
    """(new centroids, mean squared error) from all workers' partials.

    A centroid that got no rows keeps its ``previous`` position (LambdaML does not
    re-seed empty clusters).  The error is that of the assignment to ``previous``.
    """
    total = None
    for part in partials:
        total = part if total is None else total + part
    if total is None:
        raise ValueError("merge() of no partials")
    previous = np.asarray(previous, dtype=np.float64)
    new = previous.copy()
    filled = total.counts > 0
    new[filled] = total.sums[filled] / total.counts[filled, None]
    return new, total.error / max(int(total.counts.sum()), 1)


def lloyd_step(data: Dataset | npt.ArrayLike, centroids: npt.ArrayLike) -> tuple[npt.NDArray[np.float64], float]:
    """The single-process Lloyd step (one worker holding every row)."""
    return merge([lloyd_partial(data, centroids)], centroids)


def kmeans_converged(prev_error: float, error: float, threshold: float = KMEANS_THRESHOLD) -> bool:
    """Stop when the mean error changed by less than ``threshold`` relative to the previous one."""
    if not math.isfinite(prev_error):
        return False
    return abs(prev_error - error) <= threshold * max(abs(prev_error), np.finfo(np.float64).tiny)


def lloyd_flops(n_rows: int, n_features: int, k: int) -> float:
    """FLOPs of one local Lloyd step (multiply-add = 2): the X·Cᵀ distance product plus the sums."""
    return 2.0 * n_rows * n_features * k + 2.0 * n_rows * n_features
