"""INFless's control plane (§4.3-4.4) and the baselines', as decisions from plain data.

* ``Candidate``: a configuration (b, c, g) of one function with its predicted t_exec (COP, +10%
  margin), batch timeout t_slo - t_exec, and rate band r_low = b / (t_slo - t_exec),
  r_up = b / t_exec; only configurations with t_exec <= t_slo / 2 qualify.
* ``dispatch_rates``: the band rule. R_max = Σ r_up, R_min = Σ r_low; for R_min <= R <= R_max
  instance i gets r_i = r_up_i - (R_max - R) / (R_max - R_min) (r_up_i - r_low_i); outside the
  band the nearer end (r_low below, r_up above).
* ``greedy_place``: INFless's heuristic for the placement integer program. Repeatedly take the
  (configuration, slot) maximising (r_up / price of its resources) / (ε + fragment it leaves),
  among configurations whose r_low the residual load can still fill (a batch that never fills
  wastes its timeout), until the residual is covered or nothing fits; a remainder that no
  batch can fill gets the cheapest configuration that covers it.
* ``Autoscaler``: one function-set's state machine. ``tick(t, rates)`` takes the observed
  rates and returns the decisions (placements, releases, dispatch rates), already applied to
  the ``Cluster``; ``validate()`` checks them. Scale out when R > R_max (for the residual);
  release an instance when the others still cover R at α = 0.8 of their R_max (hysteresis:
  the band's upper 20% absorbs bursts without scaling).

Policies: ``infless`` (all of the above), ``openfaas`` (OpenFaaS+: b = 1, the cheapest
configuration meeting the SLO, first-fit placement, even dispatch), ``batch`` (BATCH, SC'20: one
configuration per function, from the same (b, c, g) grid so it runs on the same cluster,
chosen by an analytical model from the function's mean rate — the best throughput per
dollar whose batch fills at that rate — used for every instance; even dispatch, first-fit,
and a buffer hop on top of the platform; ``batch_gpu=False`` confines it to CPUs as on Lambda).
``infless`` ablations: ``batching=False`` (b = 1),
``resource_aware=False`` (one uniform configuration, first-fit).
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from pydantic import Field

from sls_ray.api import Strict
from sls_ray.infless.cluster import Cluster, Instance, InstanceConfig
from sls_ray.infless.cop import ProfileDB

ALPHA = 0.8                 # INFless's band constant [paper]
MARGIN = 0.10               # COP safety margin [paper]
FRAGMENT_EPS = 0.05         # keeps the greedy score finite for a perfect fit [est]


class Pricing(Strict):
    """USD per hour of a CPU thread and of a whole GPU, from one documented GPU instance.

    AWS g4dn.xlarge: 4 vCPUs and one GPU for $0.526/h (us-east-1 on-demand) [doc]; a vCPU at the
    c5 rate, $0.085/h per 2 vCPUs = $0.0425/h [doc]; the GPU is the remainder, $0.356/h [est].
    An instance costs its threads and GPU share for every second it is placed, idle or not.
    """

    thread_per_h: float = Field(0.0425, ge=0, description="USD per CPU thread-hour (c5 vCPU) [doc]")
    gpu_per_h: float = Field(0.356, ge=0, description="USD per whole-GPU hour (g4dn.xlarge minus 4 vCPUs) [est]")

    def per_s(self, threads, gpu_pct):
        return (threads * self.thread_per_h + gpu_pct / 100 * self.gpu_per_h) / 3600


class PolicyConfig(Strict):
    system: str = Field("infless", description="infless, openfaas (OpenFaaS+) or batch (BATCH)")
    batching: bool = Field(True, description="INFless ablation: False = no built-in batching (b = 1)")
    resource_aware: bool = Field(True, description="INFless ablation: False = one uniform config, first-fit")
    profile_error: float = Field(1.0, ge=0, description="scales COP's prediction error (component analysis: 1.5, 2)")
    max_batch: int = Field(32, ge=1, description="largest candidate batch (powers of two up to it) [paper]")
    threads: list[int] = Field([1, 2, 4, 8, 12, 16], description="candidate CPU threads [paper]")
    gpu_pcts: list[int] = Field([0, 10, 20, 30, 40, 50], description="candidate GPU shares (%) [paper]")
    batch_buffer_s: float = Field(0.005, ge=0, description="BATCH's buffer hop in front of the platform [est]")
    batch_gpu: bool = Field(True, description="BATCH may use GPU shares (same cluster); False = CPU only, "
                            "as on the commercial platform BATCH was built for (AWS Lambda)")


@dataclass(frozen=True)
class Candidate:
    config: InstanceConfig
    exec_s: float            # what a batch really takes (the profile's prediction is the ground truth)
    planned_s: float         # what the planner believes: prediction x error, + margin
    timeout_s: float
    r_low: float
    r_up: float
    price_per_s: float


def prediction_error(model: str, cfg: InstanceConfig, scale: float, seed: int) -> float:
    """A fixed relative COP error per (model, configuration), uniform in ±10% x scale [paper: <10%].

    Drawn from a CRC of the key (cheap and stable across processes, unlike ``hash``).
    """
    key = f"{seed}/{model}/{cfg.batch}/{cfg.threads}/{cfg.gpu_pct}".encode()
    u = zlib.crc32(key) / 2**32
    return float((2 * u - 1) * 0.1 * scale)


def candidates(db: ProfileDB, model: str, slo_s: float, policy: PolicyConfig, pricing: Pricing,
               seed: int = 0) -> list[Candidate]:
    """Every (b, c, g) whose planned t_exec is at most t_slo / 2, best throughput per dollar first.

    Memoised on the profile table per (model, SLO, policy, pricing, seed): many functions share a model.
    """
    key = (model, slo_s, policy.model_dump_json(), pricing.model_dump_json(), seed)
    if key not in db.memo:
        db.memo[key] = _candidates(db, model, slo_s, policy, pricing, seed)
    return db.memo[key]


def _candidates(db: ProfileDB, model: str, slo_s: float, policy: PolicyConfig, pricing: Pricing,
                seed: int) -> list[Candidate]:
    batches = [b for b in (1, 2, 4, 8, 16, 32, 64, 128) if b <= policy.max_batch]
    if policy.system == "openfaas" or not policy.batching:
        batches = [1]
    gpus = [0] if (policy.system == "batch" and not policy.batch_gpu) else policy.gpu_pcts
    out = []
    for b in batches:
        for c in policy.threads:
            for g in gpus:
                cfg = InstanceConfig(b, c, g)
                t = db.exec_time(model, b, c, g)
                planned = t * (1 + prediction_error(model, cfg, policy.profile_error, seed)) * (1 + MARGIN)
                if planned > slo_s / 2:
                    continue
                out.append(Candidate(cfg, t, planned, slo_s - planned, b / (slo_s - planned), b / planned,
                                     pricing.per_s(c, g)))
    out.sort(key=lambda k: (-k.r_up / k.price_per_s, k.config))
    return out


def dispatch_rates(R: float, r_low: np.ndarray, r_up: np.ndarray) -> np.ndarray:
    """Per-instance rates r_i (INFless §4.3): the band rule, clipped to the band's ends."""
    R_min, R_max = float(r_low.sum()), float(r_up.sum())
    if R >= R_max or R_max == R_min:
        return r_up.astype(float).copy()
    if R <= R_min:
        return r_low.astype(float).copy()
    return r_up - (R_max - R) / (R_max - R_min) * (r_up - r_low)


@lru_cache(maxsize=4096)
def _columns(cands: tuple[Candidate, ...]) -> tuple[np.ndarray, ...]:
    """Candidate fields as arrays (threads, GPU %, r_up per dollar, r_low, r_up, price), memoised."""
    return (np.array([k.config.threads for k in cands]), np.array([k.config.gpu_pct for k in cands]),
            np.array([k.r_up / k.price_per_s for k in cands]), np.array([k.r_low for k in cands]),
            np.array([k.r_up for k in cands]), np.array([k.price_per_s for k in cands]))


def greedy_place(cluster: Cluster, cands: list[Candidate], residual: float) -> tuple[list[tuple[Candidate, int]], int]:
    """(candidate, slot) choices covering ``residual`` req/s, and how many pairs were scored.

    Does not change the cluster (the caller places); tracks free resources itself.
    """
    if not cands or residual <= 0:
        return [], 0
    th, gp, eff, r_low, r_up, price = _columns(tuple(cands))
    free_t = cluster.free_threads.astype(float).copy()
    free_g = cluster.free_gpu.astype(float).copy()
    cap_t = cluster.cap_threads.astype(float)
    cap_g = np.maximum(cluster.cap_gpu.astype(float), 1.0)
    chosen: list[tuple[Candidate, int]] = []
    scored = 0
    while residual > 1e-9:
        room = (free_t[:, None] >= th[None, :]) & (free_g[:, None] >= gp[None, :])
        if not room.any():
            break
        fits = room & (r_low <= residual)[None, :]
        frag = ((free_t[:, None] - th[None, :]) / cap_t[:, None] + (free_g[:, None] - gp[None, :]) / cap_g[:, None]) / 2
        if fits.any():
            with np.errstate(divide="ignore", invalid="ignore"):
                score = np.where(fits, eff[None, :] / (FRAGMENT_EPS + np.maximum(frag, 0)), -np.inf)
        else:   # a remainder no batch can fill: the cheapest instance that covers it (else the largest)
            covers = room & (r_up >= residual)[None, :]
            fits = covers if covers.any() else room
            key = -(price[None, :] + 0 * frag) if covers.any() else r_up[None, :] + 0 * frag
            score = np.where(fits, key, -np.inf)
        scored += int(fits.sum())
        s, k = np.unravel_index(int(np.argmax(score)), score.shape)
        chosen.append((cands[k], int(s)))
        free_t[s] -= th[k]
        free_g[s] -= gp[k]
        residual -= r_up[k]
    return chosen, scored


def first_fit(cluster: Cluster, cand: Candidate, residual: float) -> list[tuple[Candidate, int]]:
    """The baselines: as many copies of one configuration as cover the residual, first slot that fits."""
    free_t = cluster.free_threads.copy()
    free_g = cluster.free_gpu.copy()
    out = []
    while residual > 1e-9:
        ok = np.nonzero((free_t >= cand.config.threads) & (free_g >= cand.config.gpu_pct))[0]
        if not ok.size:
            break
        s = int(ok[0])
        free_t[s] -= cand.config.threads
        free_g[s] -= cand.config.gpu_pct
        out.append((cand, s))
        residual -= cand.r_up
    return out


@dataclass
class Decisions:
    placed: list[Instance] = field(default_factory=list)
    released: list[int] = field(default_factory=list)
    scored: int = 0


class Autoscaler:
    """Scaling and dispatch for a set of functions on one cluster (events in, decisions out).

    Per-instance state lives in arrays indexed by instance id, so a tick finds the functions
    that need a decision with a few numpy passes and runs Python only for those.
    """

    def __init__(self, cluster: Cluster, policy: PolicyConfig, cands: list[list[Candidate]],
                 mean_rates: np.ndarray, cold_start_s: float) -> None:
        self.cluster = cluster
        self.policy = policy
        self.cands = cands
        self.cold_ns = int(cold_start_s * 1e9)
        self.members: list[list[int]] = [[] for _ in cands]       # instance ids per function, oldest first
        self.cand_of: dict[int, Candidate] = {}
        self.uniform = [self._uniform(c, float(r)) for c, r in zip(cands, mean_rates)]
        self.func = np.zeros(0, np.int64)
        self.r_low = self.r_up = self.price = np.zeros(0)
        self.ready = np.zeros(0, np.int64)
        self.alive = np.zeros(0, bool)

    def _uniform(self, cands: list[Candidate], mean_rate: float) -> Candidate | None:
        """The one configuration of OpenFaaS+, BATCH and the no-resource-aware ablation."""
        if not cands:
            return None
        if self.policy.system == "openfaas":
            return min(cands, key=lambda k: (k.price_per_s, k.config))
        fill = [k for k in cands if k.r_low <= mean_rate] or [min(cands, key=lambda k: (k.r_low, k.config))]
        return max(fill, key=lambda k: (k.r_up / k.price_per_s, k.config))

    def band(self, f: int) -> tuple[np.ndarray, np.ndarray]:
        m = np.array(self.members[f], dtype=np.int64)
        return self.r_low[m], self.r_up[m]

    def _sums(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        F = len(self.cands)
        a = self.alive
        f = self.func[a]
        return (np.bincount(f, self.r_low[a], F), np.bincount(f, self.r_up[a], F), np.bincount(f, minlength=F))

    def tick(self, t_ns: int, rates: np.ndarray, idle: np.ndarray | None = None, warm_now: bool = False) -> Decisions:
        """Observed rates per function -> placements and releases (applied to the cluster).

        ``idle`` (an array indexed by instance id) says whether an instance has nothing queued;
        only those are released. ``warm_now`` places instances warm (initial provisioning).
        """
        d = Decisions()
        ready = t_ns if warm_now else t_ns + self.cold_ns
        _, R_max, count = self._sums()
        out = rates > R_max
        # release candidates: per function its least efficient instance (ties: the newest)
        worst = np.full(len(self.cands), -1, np.int64)
        ids = np.nonzero(self.alive)[0]
        if ids.size:
            order = np.lexsort((-ids, self.r_up[ids] / self.price[ids], self.func[ids]))
            ids = ids[order]
            first = np.r_[True, self.func[ids][1:] != self.func[ids][:-1]]
            worst[self.func[ids[first]]] = ids[first]
        rest = R_max - np.where(worst >= 0, self.r_up[np.maximum(worst, 0)] if self.r_up.size else 0.0, 0.0)
        shrink = ~out & (count > 1) & (rates < ALPHA * rest)
        if idle is not None and shrink.any():
            shrink &= np.where(worst >= 0, idle[np.maximum(worst, 0)], False)
        for f in np.nonzero(out | shrink)[0]:
            if out[f]:
                d.scored += self._scale_out(int(f), float(rates[f] - R_max[f]), ready, d)
            else:
                w = int(worst[f])
                self.members[f].remove(w)
                del self.cand_of[w]
                self.alive[w] = False
                self.cluster.release(w)
                d.released.append(w)
        return d

    def _grow(self, n: int) -> None:
        if n <= self.alive.size:
            return
        cap = max(64, 2 * n)

        def ext(a, fill):
            out = np.full(cap, fill, dtype=a.dtype)
            out[:a.size] = a
            return out
        self.func, self.r_low, self.r_up = ext(self.func, -1), ext(self.r_low, 0.0), ext(self.r_up, 0.0)
        self.price, self.ready, self.alive = ext(self.price, 1.0), ext(self.ready, 0), ext(self.alive, False)

    def _scale_out(self, f: int, residual: float, ready_ns: int, d: Decisions) -> int:
        p = self.policy
        if p.system == "infless" and p.resource_aware:
            chosen, scored = greedy_place(self.cluster, self.cands[f], residual)
        else:
            u = self.uniform[f]
            chosen, scored = (first_fit(self.cluster, u, residual), 0) if u is not None else ([], 0)
        for cand, slot in chosen:
            inst = self.cluster.place(f, cand.config, slot, ready_ns)
            self.members[f].append(inst.iid)
            self.cand_of[inst.iid] = cand
            self._grow(inst.iid + 1)
            i = inst.iid
            self.func[i], self.r_low[i], self.r_up[i], self.price[i] = f, cand.r_low, cand.r_up, cand.price_per_s
            self.ready[i], self.alive[i] = ready_ns, True
            d.placed.append(inst)
        return scored

    def routing(self, t_ns: int, rates: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(instance ids grouped by function, their functions, routing weights) at ``t_ns``.

        INFless routes by the band rule (``dispatch_rates``, vectorised over functions); the
        baselines evenly. Only warm instances get requests; a function whose instances are all
        still cold queues at the one that starts first.
        """
        ids = np.nonzero(self.alive)[0]
        ids = ids[np.argsort(self.func[ids], kind="stable")]
        f = self.func[ids]
        if self.policy.system == "infless":
            R_min, R_max, _ = self._sums()
            R = rates[f]
            lo, hi = R_min[f], R_max[f]
            with np.errstate(divide="ignore", invalid="ignore"):
                mid = self.r_up[ids] - (hi - R) / (hi - lo) * (self.r_up[ids] - self.r_low[ids])
            w = np.where((R >= hi) | (hi == lo), self.r_up[ids], np.where(R <= lo, self.r_low[ids], mid))
        else:
            w = np.ones(ids.size)
        warm = self.ready[ids] <= t_ns
        any_warm = np.bincount(f, warm, len(self.cands)) > 0
        cold_f = ~any_warm[f]
        if cold_f.any():
            # all cold: the earliest-ready instance of the function (first of ties) takes the load
            key = np.where(cold_f, self.ready[ids], np.iinfo(np.int64).max)
            order = np.lexsort((np.arange(ids.size), key, f))
            firsts = order[np.r_[True, f[order][1:] != f[order][:-1]]]
            pick = np.zeros(ids.size, bool)
            pick[firsts] = True
            warm = np.where(cold_f, pick, warm)
        return ids, f, np.where(warm, w, 0.0)

    def validate(self) -> None:
        self.cluster.validate()
        ids = [i for m in self.members for i in m]
        assert len(ids) == len(set(ids)), "an instance belongs to two functions"
        assert set(ids) == set(self.cluster.instances) == set(self.cand_of), "instance sets out of step"
        assert set(np.nonzero(self.alive)[0].tolist()) == set(ids), "instance arrays out of step"
        for f, m in enumerate(self.members):
            assert all(self.cluster.instances[i].func == f for i in m), "instance filed under the wrong function"
