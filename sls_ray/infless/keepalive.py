"""Cold-start policies: INFless's LSTH against HHP (Shahrad et al., ATC'20), per-minute traces.

As in ATC'20 §4, time is in 1-minute steps and each function is an application with one
instance. After every invocation the policy gives a *pre-warm* window (the instance is
unloaded, then loaded again that many minutes after the invocation) and a *keep-alive* window
(how long it then stays loaded). The next invocation is warm iff it falls inside the loaded
span; the loaded minutes without an invocation are the wasted memory the policy costs.

* ``fixed``: no pre-warm, a fixed keep-alive (10 minutes: the platform default of the time).
* ``hhp`` (hybrid histogram): a histogram of the function's idle times (IT) over a 4-hour
  range in 1-minute bins; pre-warm = 5th percentile − 10%, keep-alive = 99th percentile + 10%
  (minus the pre-warm). Fallbacks: fewer than ``min_samples`` ITs, or a coefficient of variation
  of the bin counts below 2 (no clear mode) → no pre-warm and the whole 4-hour range kept
  alive; more than half the ITs out of range → a time-series prediction of the next IT (ATC'20
  uses ARIMA; here the median of the last 5 ITs, a documented simpler predictor), loaded from
  15% before it for 30% of it.
* ``lsth`` (INFless §4.5, long-short term histograms): the same percentile rule on two
  histograms — the long one over every IT seen (the periodic, diurnal pattern) and a short one
  over the ITs of the last ``short_window_min`` minutes (the current burst) — combined as
  pre-warm = γ·L + (1−γ)·S and keep-alive = γ·L + (1−γ)·S. With no recent ITs the short
  histogram defers to the long one.

``simulate_keepalive`` is a state machine per function fed by the invocation minutes; it
returns one row per function: invocations (minutes with calls), cold starts, loaded minutes,
wasted (idle loaded) minutes.
"""
from __future__ import annotations

from collections import deque

import numpy as np
import pandas as pd

RANGE_MIN = 240          # HHP histogram range: 4 hours of 1-minute bins [paper ATC'20]
HEAD_Q, TAIL_Q = 5, 99   # percentiles [paper ATC'20]
MARGIN = 0.10            # ±10% [paper ATC'20]


class ITHistogram:
    """Idle times in 1-minute bins over RANGE_MIN, plus an out-of-range count; O(1) updates.

    Keeps the sum of squared bin counts so the coefficient of variation (HHP's
    representativeness test) costs nothing per update; percentiles scan from the nearer end.
    """

    def __init__(self) -> None:
        self.bins = [0] * RANGE_MIN
        self.oob = 0
        self.n = 0           # in range
        self.sq = 0          # sum of squared bin counts

    def add(self, it: int, k: int = 1) -> None:
        if it >= RANGE_MIN:
            self.oob += k
            return
        c = self.bins[it]
        self.sq += (c + k) ** 2 - c * c
        self.bins[it] = c + k
        self.n += k

    def representative(self) -> bool:
        """CV of the bin counts >= 2 (ATC'20)."""
        if self.n == 0:
            return False
        mean = self.n / RANGE_MIN
        var = self.sq / RANGE_MIN - mean * mean
        return var >= 4 * mean * mean

    def window(self) -> tuple[float, float]:
        """(pre-warm, keep-alive) minutes: 5th percentile − 10%, 99th percentile + 10% (minus the pre-warm)."""
        head_left = HEAD_Q / 100 * self.n
        acc, head = 0, 0
        for i, c in enumerate(self.bins):
            acc += c
            if acc >= head_left and acc > 0:
                head = i
                break
        tail_right = (1 - TAIL_Q / 100) * self.n
        acc, tail = 0, RANGE_MIN - 1
        for i in range(RANGE_MIN - 1, -1, -1):
            acc += self.bins[i]
            if acc > tail_right:
                tail = i
                break
        pre = head * (1 - MARGIN)
        return pre, max(tail * (1 + MARGIN) - pre, 1.0)


class Policy:
    """One function's keep-alive state: ``observe(it, now)`` after each idle time, ``window()`` next."""

    def __init__(self, kind: str, gamma: float = 0.5, fixed_min: float = 10.0, min_samples: int = 5,
                 short_window_min: int = 60) -> None:
        if kind not in ("fixed", "hhp", "lsth"):
            raise ValueError(f"keep-alive policy {kind!r} unknown; known: fixed, hhp, lsth")
        self.kind, self.gamma, self.fixed, self.min_samples = kind, gamma, fixed_min, min_samples
        self.short_window = short_window_min
        self.long = ITHistogram()
        self.short = ITHistogram()
        self.recent: deque[tuple[int, int]] = deque()     # (minute, IT) inside the short window
        self.last_its: deque[int] = deque(maxlen=5)

    def observe(self, it: int, now: int) -> None:
        self.long.add(it)
        self.last_its.append(it)
        if self.kind == "lsth":
            self.short.add(it)
            self.recent.append((now, it))
            while self.recent and self.recent[0][0] < now - self.short_window:
                self.short.add(self.recent.popleft()[1], -1)

    def _hybrid(self, h: ITHistogram) -> tuple[float, float] | None:
        """HHP's rule on one histogram; None when it has too few samples to say anything."""
        total = h.n + h.oob
        if total < self.min_samples:
            return None
        if h.oob > total / 2:                             # mostly out of range: predict the next IT
            pred = float(np.median(self.last_its))
            return pred * 0.85, max(pred * 0.3, 1.0)
        if not h.representative():
            return 0.0, float(RANGE_MIN)
        return h.window()

    def window(self) -> tuple[float, float]:
        if self.kind == "fixed":
            return 0.0, self.fixed
        long = self._hybrid(self.long) or (0.0, float(RANGE_MIN))
        if self.kind == "hhp":
            return long
        short = self._hybrid(self.short) or long
        g = self.gamma
        return g * long[0] + (1 - g) * short[0], g * long[1] + (1 - g) * short[1]


def simulate_keepalive(counts: np.ndarray, kind: str, gamma: float = 0.5, fixed_min: float = 10.0) -> pd.DataFrame:
    """Cold starts and loaded minutes per function of a per-minute trace under one policy."""
    rows = []
    for f in range(counts.shape[0]):
        minutes = np.nonzero(counts[f])[0]
        pol = Policy(kind, gamma, fixed_min)
        cold = 1 if minutes.size else 0                   # the very first call is always cold
        loaded = 0.0
        for prev, cur in zip(minutes[:-1], minutes[1:]):
            it = int(cur - prev)
            pre, keep = pol.window()
            warm = pre <= it <= pre + keep if pre > 0 else it <= keep
            cold += 0 if warm else 1
            # loaded from prev + pre to min(prev + pre + keep, cur): minutes held waiting
            start = prev + (pre if pre > 0 else 0)
            loaded += max(0.0, min(start + keep, cur) - start)
            pol.observe(it, int(cur))
        if minutes.size:
            pre, keep = pol.window()
            loaded += min(keep, counts.shape[1] - minutes[-1])
        rows.append({"function": f, "invocations": int(minutes.size), "cold_starts": cold,
                     "loaded_min": loaded, "wasted_min": max(loaded - max(minutes.size - 1, 0), 0.0)})
    return pd.DataFrame(rows)
