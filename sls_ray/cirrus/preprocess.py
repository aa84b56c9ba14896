"""Cirrus's preprocessing stage (Cirrus §3, "preprocess"): normalisation as two fan-outs.

``normalize(s3_input, s3_output, MIN_MAX_SCALING | NORMAL)`` runs one function per object in
two phases: each computes its object's local statistics of the chosen columns (min and max;
or count, mean and sum of squared deviations) and writes them to S3; the coordinator reads
them all and combines them into global statistics (Chan et al.'s parallel variance, so the
result equals a single pass); then one function per object scales its object and writes
it. The result equals scikit-learn's ``MinMaxScaler`` / ``StandardScaler`` (population std,
a constant column left at 0 / unscaled) on the same rows.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from sls_ray.cirrus.data import SparseRows

MIN_MAX_SCALING = "min_max"
NORMAL = "normal"
Method = Literal["min_max", "normal"]


@dataclass
class LocalStats:
    count: int
    lo: np.ndarray
    hi: np.ndarray
    mean: np.ndarray
    m2: np.ndarray


def local_stats(val: np.ndarray) -> LocalStats:
    v = val.astype(np.float64)
    mean = v.mean(axis=0)
    return LocalStats(v.shape[0], v.min(axis=0), v.max(axis=0), mean, ((v - mean) ** 2).sum(axis=0))


def combine(parts: list[LocalStats]) -> LocalStats:
    """Global statistics from per-object ones (Chan's pairwise update: exact up to rounding)."""
    total = parts[0]
    for s in parts[1:]:
        n = total.count + s.count
        delta = s.mean - total.mean
        mean = total.mean + delta * s.count / n
        m2 = total.m2 + s.m2 + delta ** 2 * total.count * s.count / n
        total = LocalStats(n, np.minimum(total.lo, s.lo), np.maximum(total.hi, s.hi), mean, m2)
    return total


def scale(val: np.ndarray, g: LocalStats, method: Method) -> np.ndarray:
    """sklearn's conventions: a zero range / zero variance column is not divided by zero."""
    v = val.astype(np.float64)
    if method == MIN_MAX_SCALING:
        rng = g.hi - g.lo
        return (v - g.lo) / np.where(rng == 0, 1.0, rng)
    std = np.sqrt(g.m2 / g.count)
    return (v - g.mean) / np.where(std == 0, 1.0, std)


def normalize_stats(ctx, a: dict) -> None:
    """Phase 1, one function per object: local statistics of the chosen columns."""
    s3 = ctx.storage("s3")
    obj: SparseRows = s3.get(a["key"])
    cols = np.asarray(a["columns"])
    stats = local_stats(obj.val[:, cols])
    ctx.compute(flops=5 * len(obj) * cols.size)
    s3.put(f"{a['out']}_stats/{a['i']:05d}", stats)


def normalize_scale(ctx, a: dict) -> None:
    """Phase 2, one function per object: scale with the global statistics, write the object."""
    s3 = ctx.storage("s3")
    obj: SparseRows = s3.get(a["key"])
    g: LocalStats = s3.get(f"{a['out']}_stats/global")
    cols = np.asarray(a["columns"])
    val = obj.val.copy()
    val[:, cols] = scale(obj.val[:, cols], g, a["method"]).astype(np.float32)
    ctx.compute(flops=2 * len(obj) * cols.size)
    s3.put(f"{a['out']}/{a['i']:05d}", SparseRows(obj.idx, val, obj.y))


def normalize(ctx, s3_input: list[str], s3_output: str, method: Method, columns: list[int]) -> dict:
    """Run both phases from the calling function (the user's front end); returns phase times."""
    if method not in (MIN_MAX_SCALING, NORMAL):
        raise ValueError(f"normalize: method={method!r}; allowed: {MIN_MAX_SCALING!r}, {NORMAL!r}")
    s3 = ctx.storage("s3")
    t0 = ctx.now
    for i, key in enumerate(s3_input):
        ctx.invoke("normalize_stats", {"key": key, "i": i, "out": s3_output, "columns": list(columns)})
    keys = s3.wait_count(f"{s3_output}_stats/", len(s3_input), poll_interval=0.05)
    parts = s3.mget(keys)
    g = combine([parts[k] for k in sorted(parts)])
    s3.put(f"{s3_output}_stats/global", g)
    t1 = ctx.now
    for i, key in enumerate(s3_input):
        ctx.invoke("normalize_scale", {"key": key, "i": i, "out": s3_output, "columns": list(columns),
                                       "method": method})
    s3.wait_count(f"{s3_output}/", len(s3_input), poll_interval=0.05)
    t2 = ctx.now
    ctx.log("normalize", method=method, objects=len(s3_input), stats_s=t1 - t0, scale_s=t2 - t1)
    return {"stats_s": t1 - t0, "scale_s": t2 - t1}


HANDLERS = {"normalize_stats": normalize_stats, "normalize_scale": normalize_scale}
