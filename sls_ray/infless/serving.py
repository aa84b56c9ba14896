"""The INFless request-level serving simulation: control plane in Python, data plane in arrays.

Design choice (issue 10, "serving at speed"): the whole serving simulation runs inside one
function of the core's runtime (``experiment.serve``, the experiment's single handler). The
serving cluster is *not* made of platform functions: its instances are rows of arrays, its
requests are int64 arrival times, and its batches are formed by the core's ``serve_batches``
(sls_ray/storage/requests.py) in lock step across instances. What runs as real code at each
decision point is the system's own control plane: every ``interval_s`` the ``Autoscaler``
(scheduler.py) sees the rates observed in the last interval and decides placements,
releases and dispatch rates. Because the simulation is pure computation on seeded numpy
generators, it gives the same bytes on any transport — the local one, or Ray, where the
handler runs in a FunctionHost actor — and its virtual clock is the trace's, independent of
how long the host takes.

Per interval [t0, t0 + Δ): (1) decide from the previous interval's observed rate; (2) draw the
interval's Poisson arrivals; (3) route each function's requests over its warm instances in
proportion to their dispatch rates (a golden-ratio low-discrepancy sequence: deterministic,
well interleaved, no per-request RNG); a function with no instance at all drops them; (4) add
the requests still queued from before and run every instance's batches that start before
t0 + Δ; (5) requests left queued carry over; any that waited longer than the gateway timeout
are dropped. Conservation (arrived = served + dropped + queued, per function) is checked at
every interval when ``check`` is on.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import Field

from sls_ray.api import LatencyHistogram, Strict, serve_batches
from sls_ray.infless.cluster import Cluster, ClusterConfig
from sls_ray.infless.cop import ProfileDB
from sls_ray.infless.scheduler import Autoscaler, PolicyConfig, Pricing, candidates
from sls_ray.infless.streams import arrivals

PHI = (np.sqrt(5) - 1) / 2


class ServingConfig(Strict):
    duration_s: int = Field(300, ge=1, description="virtual seconds of load replayed")
    interval_s: int = Field(1, ge=1, description="control interval: the scaler decides this often [est]")
    cold_start_s: float = Field(1.5, ge=0, description="instance start-up: container + model load [est]")
    request_timeout_s: float = Field(2.0, gt=0, description="gateway drops a request queued longer than this [est]")
    log_every_s: int = Field(10, ge=1, description="timeline row spacing")


@dataclass(frozen=True)
class FunctionLoad:
    model: str
    slo_s: float
    rates: np.ndarray            # requests per second, one entry per second of the run


@dataclass
class ServingResult:
    functions: pd.DataFrame      # one row per function: arrived, served, dropped, within SLO, percentiles
    timeline: pd.DataFrame       # one row per log period: instances, resources, load, violations
    configs: pd.DataFrame        # one row per instance ever placed: (b, c, g), slot, lifetime
    batch_sizes: np.ndarray      # count of batches run by size (index = size)
    cost_usd: float
    scored_pairs: int            # (configuration, slot) pairs the placement scored: scheduler work
    fragment_ratio_mean: float


class _Table:
    """Per-instance arrays, indexed by instance id (ids are dense: the cluster numbers them)."""

    def __init__(self) -> None:
        self.n = 0
        self.cap = 0
        self.batch = self.timeout = self.exec = self.free = self.func = self.price = np.zeros(0, np.int64)
        self.alive = np.zeros(0, bool)

    def grow(self, n: int) -> None:
        if n <= self.cap:
            return
        cap = max(64, 2 * n)

        def ext(a, fill, dtype):
            out = np.full(cap, fill, dtype=dtype)
            out[:a.size] = a
            return out
        self.batch, self.timeout = ext(self.batch, 1, np.int64), ext(self.timeout, 0, np.int64)
        self.exec, self.free = ext(self.exec, 0, np.int64), ext(self.free, 0, np.int64)
        self.func, self.price = ext(self.func, -1, np.int64), ext(self.price, 0.0, np.float64)
        self.alive = ext(self.alive, False, bool)
        self.cap = cap


def simulate_serving(loads: list[FunctionLoad], policy: PolicyConfig, cfg: ServingConfig, db: ProfileDB,
                     cluster_cfg: ClusterConfig | None = None, pricing: Pricing | None = None, seed: int = 0,
                     check: bool = False) -> ServingResult:
    cluster_cfg = cluster_cfg or ClusterConfig()  # fresh defaults per call, never one shared instance
    pricing = pricing or Pricing()
    F = len(loads)
    dt = cfg.interval_s
    dt_ns = dt * 1_000_000_000
    rates = np.stack([np.resize(ld.rates, cfg.duration_s) for ld in loads])
    cands = [candidates(db, ld.model, ld.slo_s, policy, pricing, seed) for ld in loads]
    cluster = Cluster(cluster_cfg)
    scaler = Autoscaler(cluster, policy, cands, rates.mean(axis=1), cfg.cold_start_s)
    slo_ns = np.array([int(ld.slo_s * 1e9) for ld in loads], dtype=np.int64)
    buffer_ns = int(policy.batch_buffer_s * 1e9) if policy.system == "batch" else 0
    hist = LatencyHistogram(F, slo_ns)
    tab = _Table()
    rng = np.random.default_rng([seed, 0x5E4E])
    arrived = np.zeros(F, np.int64)
    served = np.zeros(F, np.int64)
    dropped = np.zeros(F, np.int64)
    sizes = np.zeros(max(policy.max_batch, 1) + 1, np.int64)
    pend_i = np.zeros(0, np.int64)
    pend_t = np.zeros(0, np.int64)
    placed_rows: list[dict] = []
    released_at: dict[int, float] = {}
    timeline: list[dict] = []
    period = {"arrived": 0, "within": 0, "served": 0, "dropped": 0}
    cost = 0.0
    scored = 0
    frag_sum = 0.0
    timeout_ns = int(cfg.request_timeout_s * 1e9)
    observed = rates[:, 0].copy()

    def apply(dec, t_ns: int) -> None:
        for inst in dec.placed:
            c = scaler.cand_of[inst.iid]
            tab.grow(inst.iid + 1)
            tab.batch[inst.iid] = c.config.batch
            tab.exec[inst.iid] = int(round(c.exec_s * 1e9))
            tab.timeout[inst.iid] = int(round(c.timeout_s * 1e9))
            tab.free[inst.iid] = inst.ready_ns
            tab.func[inst.iid] = inst.func
            tab.price[inst.iid] = c.price_per_s
            tab.alive[inst.iid] = True
            placed_rows.append({"instance": inst.iid, "function": inst.func, "model": loads[inst.func].model,
                                "batch": c.config.batch, "threads": c.config.threads, "gpu_pct": c.config.gpu_pct,
                                "slot": inst.slot, "placed_s": t_ns / 1e9})
        for iid in dec.released:
            tab.alive[iid] = False
            released_at[iid] = t_ns / 1e9

    n_ticks = -(-cfg.duration_s // dt)
    for k in range(n_ticks + 1):
        t0 = k * dt_ns
        last = k == n_ticks
        if not last:
            if k == 0:
                dec = scaler.tick(0, observed, warm_now=True)
            else:
                queued = np.bincount(pend_i, minlength=tab.cap)[:tab.cap]
                idle = (queued == 0) & (tab.free[:tab.cap] <= t0)
                dec = scaler.tick(t0, observed, idle)
            scored += dec.scored
            apply(dec, t0)
            # ---- arrivals and routing
            window = rates[:, k * dt:(k + 1) * dt].mean(axis=1)
            fid, t_new = arrivals(window, k * dt, dt, rng)
            counts = np.bincount(fid, minlength=F)
            arrived += counts
            observed = counts / dt
            inst_new, lost = _route(scaler, tab, fid, counts, observed, t0)
            if lost.any():
                dropped += np.bincount(fid[lost], minlength=F)
                t_new = t_new[~lost]
            all_i = np.concatenate([pend_i, inst_new])
            all_t = np.concatenate([pend_t, t_new])
            horizon = t0 + dt_ns
        else:
            all_i, all_t, horizon = pend_i, pend_t, np.iinfo(np.int64).max // 4
        all_i, all_t = _by_instance(all_i, all_t)
        offsets = np.searchsorted(all_i, np.arange(tab.cap + 1))
        run = serve_batches(all_t, offsets, tab.batch[:tab.cap], tab.timeout[:tab.cap], tab.exec[:tab.cap],
                            tab.free[:tab.cap], horizon)
        tab.free[:tab.cap] = run.free_ns
        sizes += np.bincount(np.minimum(run.batch_sizes, sizes.size - 1), minlength=sizes.size)
        ok = run.done_ns >= 0
        f_all = tab.func[all_i]
        lat = run.done_ns[ok] - all_t[ok] + buffer_ns
        within0 = hist.within.sum()
        hist.add(f_all[ok], lat)
        served += np.bincount(f_all[ok], minlength=F)
        # still queued: carry over, unless the gateway gave up on them
        rest_i, rest_t = all_i[~ok], all_t[~ok]
        stale = rest_t < (t0 + dt_ns - timeout_ns) if not last else np.zeros(rest_t.size, bool)
        if stale.any():
            dropped += np.bincount(tab.func[rest_i[stale]], minlength=F)
        pend_i, pend_t = rest_i[~stale], rest_t[~stale]
        if last:
            break
        alive = tab.alive[:tab.cap]
        cost += float(tab.price[:tab.cap][alive].sum()) * dt
        frag_sum += cluster.fragment_ratio()
        period["arrived"] += int(counts.sum())
        period["served"] += int(ok.sum())
        period["within"] += int(hist.within.sum() - within0)
        period["dropped"] += int(stale.sum()) + int(lost.sum())
        if check:
            queued_f = np.bincount(tab.func[pend_i], minlength=F)
            assert (arrived == served + dropped + queued_f).all(), "a request was lost or served twice"
            scaler.validate()
        if (k + 1) * dt % cfg.log_every_s == 0:
            th, gp = cluster.used()
            timeline.append({"t_s": (k + 1) * dt, "instances": int(alive.sum()), "threads": th, "gpu_pct": gp,
                             "fragment_ratio": cluster.fragment_ratio(),
                             "offered_rps": period["arrived"] / cfg.log_every_s,
                             "goodput_rps": period["within"] / cfg.log_every_s,
                             "violations": period["served"] - period["within"] + period["dropped"],
                             "requests": period["arrived"]})
            period = {"arrived": 0, "within": 0, "served": 0, "dropped": 0}
    rows = []
    for f, ld in enumerate(loads):
        rows.append({"function": f, "model": ld.model, "slo_s": ld.slo_s, "arrived": int(arrived[f]),
                     "served": int(served[f]), "dropped": int(dropped[f]), "within_slo": int(hist.within[f]),
                     "p50_s": hist.percentile(50, f), "p99_s": hist.percentile(99, f),
                     "mean_s": float(hist.total_ns[f] / max(served[f], 1) / 1e9)})
    cfg_df = pd.DataFrame(placed_rows, columns=["instance", "function", "model", "batch", "threads", "gpu_pct",
                                                "slot", "placed_s"])
    cfg_df["released_s"] = cfg_df.instance.map(released_at).astype(float)
    return ServingResult(pd.DataFrame(rows), pd.DataFrame(timeline), cfg_df, sizes, cost, scored,
                         frag_sum / max(n_ticks, 1))


def _by_instance(inst: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Requests sorted by (instance, arrival): one sort of a packed key when it fits in 63 bits."""
    if not t.size:
        return inst, t
    shift = int(t.max()).bit_length()
    if int(inst.max()).bit_length() + shift < 63:
        order = np.argsort((inst << shift) | t, kind="stable")
    else:
        order = np.lexsort((t, inst))
    return inst[order], t[order]


def _route(scaler: Autoscaler, tab: _Table, fid: np.ndarray, counts: np.ndarray, observed: np.ndarray,
           t0: int) -> tuple[np.ndarray, np.ndarray]:
    """Instance of every new request (in proportion to the routing weights) and the lost mask."""
    ids, f, w = scaler.routing(t0, observed)
    F = counts.size
    total = np.bincount(f, w, F)
    has = total > 0
    lost = ~has[fid]
    if not ids.size or not has.any():
        return np.zeros(0, np.int64), lost
    keep = total[f] > 0
    ids, f, w = ids[keep], f[keep], w[keep]
    c = np.cumsum(w)
    start = np.r_[0.0, c][np.searchsorted(f, np.arange(F))]        # cumulative weight before each function
    bounds = f + (c - start[f]) / total[f]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(fid.size) - starts[fid]
    u = np.mod((rank + 1) * PHI + fid * 0.1234567, 1.0)
    g = fid[~lost]
    pos = np.searchsorted(bounds, g + u[~lost], side="right")
    return ids[np.minimum(pos, ids.size - 1)], lost
