"""Load for INFless: request-rate patterns and the Azure Functions 2019 trace format.

Patterns (INFless §6: traces with sporadic, periodic and bursty shapes derived from
production), each a per-second rate series with exactly the requested mean:

* ``poisson``: constant rate.
* ``periodic``: a sinusoid, ±60% around the mean with a 10-minute period (a diurnal cycle
  compressed into the hour a run replays) [est].
* ``sporadic``: on/off — quiet periods at 10% of the peak (mean 60 s) and active periods
  (mean 20 s), exponential lengths [est].
* ``bursty``: a steady base with bursts at 5x the base for ~10 s, about one a minute [est].

Arrivals within each second are Poisson (``arrivals`` draws them per window, so no
per-request list is ever held for the whole run).

Azure Functions 2019 (Shahrad et al., ATC'20) publishes per-minute invocation counts per
function, one CSV per day: ``HashOwner,HashApp,HashFunction,Trigger,1,...,1440``. ``read_azure``
takes those files where a user has them; ``generate_azure`` writes a synthetic trace of the
same format and published shape: daily invocation counts log-normal with 45% of functions
invoked at most once an hour and 81% at most once a minute on average (so the top 18.6% carry
>99% of invocations) [paper: ATC'20 §3]; ~30% timer-triggered (strictly periodic, periods of 1
minute to a day); the rest Poisson with a diurnal sinusoid (phases aligned: people keep one clock)
or on/off bursts. ``shape_stats``
measures those statistics on any trace.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm

PATTERNS = ("poisson", "periodic", "sporadic", "bursty")
MINUTES_PER_DAY = 1440


def rate_series(pattern: str, mean_rate: float, duration_s: int, seed: int) -> np.ndarray:
    """Requests per second for each second of the run, averaging exactly ``mean_rate``."""
    if pattern not in PATTERNS:
        raise ValueError(f"pattern {pattern!r} unknown; known patterns: {list(PATTERNS)}")
    rng = np.random.default_rng([seed, PATTERNS.index(pattern), 0xA2])
    t = np.arange(duration_s, dtype=float)
    if pattern == "poisson":
        shape = np.ones(duration_s)
    elif pattern == "periodic":
        shape = 1 + 0.6 * np.sin(2 * np.pi * t / 600.0 + rng.uniform(0, 2 * np.pi))
    elif pattern == "sporadic":
        shape = np.empty(duration_s)
        i, on = 0, bool(rng.integers(2))
        while i < duration_s:
            n = max(1, int(rng.exponential(20.0 if on else 60.0)))
            shape[i:i + n] = 1.0 if on else 0.1
            i += n
            on = not on
    else:
        shape = np.ones(duration_s)
        for start in np.nonzero(rng.random(duration_s) < 1 / 60)[0]:
            shape[start:start + max(1, int(rng.exponential(10.0)))] = 5.0
    return shape * (mean_rate / shape.mean())


def arrivals(rates: np.ndarray, t0_s: float, dt_s: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Poisson arrivals of every function in [t0, t0 + dt): (function ids, times ns), sorted by (function, time).

    ``rates`` is the per-function rate over the window.
    """
    counts = rng.poisson(np.maximum(rates, 0) * dt_s)
    func = np.repeat(np.arange(rates.size, dtype=np.int64), counts)
    span = int(dt_s * 1e9)
    offset = (rng.random(func.size) * span).astype(np.int64)
    key = np.sort(func * span + offset)               # sorts by (function, time) in one pass
    return key // span, key % span + int(t0_s * 1e9)


# ----------------------------------------------------------------------------- Azure Functions 2019
def read_azure(paths: list[str | Path]) -> tuple[pd.DataFrame, np.ndarray]:
    """Per-minute counts from one or more daily files: (functions' ids, counts[function, minute])."""
    days = [pd.read_csv(p) for p in paths]
    key = ["HashOwner", "HashApp", "HashFunction"]
    minutes = [str(m) for m in range(1, MINUTES_PER_DAY + 1)]
    for p, d in zip(paths, days):
        missing = [c for c in key + minutes[:1] if c not in d.columns]
        if missing:
            raise ValueError(f"{p}: not an Azure Functions 2019 invocation file (missing {missing})")
    ids = days[0][key + ["Trigger"]]
    blocks = []
    for d in days:
        d = ids.merge(d, on=key + ["Trigger"], how="left")
        blocks.append(d[minutes].fillna(0).to_numpy(dtype=np.int64))
    return ids.reset_index(drop=True), np.concatenate(blocks, axis=1)


def write_azure(path: str | Path, counts: np.ndarray, triggers: list[str], day: int = 0) -> None:
    from sls_ray.api import write_csv

    block = counts[:, day * MINUTES_PER_DAY:(day + 1) * MINUTES_PER_DAY]
    df = pd.DataFrame(block, columns=[str(m) for m in range(1, block.shape[1] + 1)])
    ids = pd.DataFrame({"HashOwner": [f"o{i:05d}" for i in range(len(block))],
                        "HashApp": [f"a{i:05d}" for i in range(len(block))],
                        "HashFunction": [f"f{i:05d}" for i in range(len(block))], "Trigger": triggers})
    write_csv(Path(path), pd.concat([ids, df], axis=1))


def _lognormal_fit() -> tuple[float, float]:
    """log10 mean daily invocations ~ N(mu, sigma) through ATC'20's two published points."""
    a, b = np.log10(24), np.log10(1440)           # once an hour, once a minute
    za, zb = norm.ppf(0.45), norm.ppf(0.81)
    sigma = (b - a) / (zb - za)
    return a - za * sigma, sigma


def generate_azure(functions: int, days: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """Synthetic per-minute counts [functions, days x 1440] with ATC'20's shape, and triggers."""
    rng = np.random.default_rng([seed, 0xA25E])
    mu, sigma = _lognormal_fit()
    daily = 10 ** rng.normal(mu, sigma, functions)
    minutes = days * MINUTES_PER_DAY
    m = np.arange(minutes)
    counts = np.zeros((functions, minutes), dtype=np.int64)
    triggers = []
    for i in range(functions):
        kind = rng.random()
        per_min = daily[i] / MINUTES_PER_DAY
        if kind < 0.3:                                   # timer: strictly periodic
            want = MINUTES_PER_DAY / max(daily[i], 1.0)
            period = min((1, 5, 10, 15, 30, 60, 120, 240, 720, 1440), key=lambda p: abs(np.log(p / want)))
            phase = int(rng.integers(period))
            counts[i, (m % period) == phase] = max(1, int(round(per_min * period)))
            triggers.append("timer")
        elif kind < 0.7:                                 # diurnal Poisson
            lam = per_min * (1 + 0.8 * np.sin(2 * np.pi * (m / MINUTES_PER_DAY + 0.05 * rng.standard_normal())))
            counts[i] = rng.poisson(lam)
            triggers.append("http")
        else:                                            # on/off bursts
            on = np.zeros(minutes, dtype=bool)
            j, state = 0, False
            while j < minutes:
                n = max(1, int(rng.exponential(30 if state else 240)))
                on[j:j + n] = state
                j += n
                state = not state
            share = max(on.mean(), 1e-3)
            counts[i] = rng.poisson(np.where(on, per_min / share, 0.0))
            triggers.append("queue")
    return counts, triggers


def shape_stats(counts: np.ndarray) -> dict[str, float]:
    """ATC'20's headline shape statistics of a per-minute trace."""
    per_day = counts.sum(axis=1) / (counts.shape[1] / MINUTES_PER_DAY)
    order = np.sort(per_day)[::-1]
    top = max(1, int(round(0.186 * len(order))))
    total = counts.sum(axis=0).astype(float)
    lag = MINUTES_PER_DAY if total.size > 2 * MINUTES_PER_DAY else 60
    x = total - total.mean()
    ac = float((x[:-lag] * x[lag:]).sum() / max((x * x).sum(), 1e-12))
    active = counts[counts.sum(axis=1) > 0]
    cv = active.std(axis=1) / np.maximum(active.mean(axis=1), 1e-12)
    return {"share_at_most_hourly": float((per_day <= 24).mean()),
            "share_at_most_per_minute": float((per_day <= 1440).mean()),
            "top_18.6pct_invocation_share": float(order[:top].sum() / max(order.sum(), 1e-12)),
            "aggregate_autocorrelation_at_lag": ac, "lag_minutes": lag,
            "median_per_minute_cv": float(np.median(cv)) if cv.size else float("nan")}
