"""Combined operator profiling (COP, INFless §4.2) and the GPU-share scaling model.

The database holds ⟨operator signature, batch, threads, GPU %, seconds⟩ rows. ``profile_host``
fills it by timing real torch operators on this machine's CPU (one thread, the models of
``models.py`` at small inputs, well under a minute), plus each whole model, so prediction can
be checked against measurement. A model's latency is predicted by walking its operator graph:
operator times add along a chain; parallel branches add on a CPU (eager torch runs them in
turn) and overlap on a GPU (the slowest branch). The planner adds the +10% safety margin.

This machine has no GPU and two cores, so configurations (b, c, g) beyond one CPU thread come
from a documented scaling model applied to the 1-thread rows, unless the database has a row for
that exact (threads, GPU %) — a table measured on a real GPU server (``sls-ray profile`` writes
the same format) overrides the model row by row:

* CPU, c threads: ``t1 · (σ + (1 − σ) / c)``, Amdahl with serial fraction σ = 0.15 [est].
* GPU share g% (SMs partitioned, MPS-style): ``launch · ops + Σ t1 · (1 + b½ / b) / (S · g / 100)``.
  S = 130: a whole GPU runs a saturating batch 130x faster than one host thread, fit [est] so
  that ResNet-50 on the paper's 11 GB GPU (a GTX 1080 Ti) takes ~10 ms at b = 1 and ~46 ms at
  b = 32 (~700 images/s, public fp32 benchmark figures [est]). b½ = 2: a small batch leaves SMs
  idle, so the GPU's advantage grows with the batch (why batching matters on GPUs, INFless §2).
  Kernel launch 30 µs per operator [est]; plus 1 ms per request of CPU pre/post-processing
  spread over the c threads [est]. The host's 1-thread matmul FLOP/s is recorded in the table
  (``calibration`` row) so tables from different hosts can be compared.

Virtual results never depend on host timing: experiments read the committed table
(``configs/infless/profile.csv``); profiling only writes a new file.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sls_ray.infless.models import MODELS, ModelSpec, Node, Op, Seq, flat_ops, out_shape, signature

PROFILE_BATCHES = (1, 2, 4, 8, 16, 32)
COLUMNS = ["kind", "name", "batch", "threads", "gpu_pct", "seconds"]
DEFAULT_PROFILE = Path(__file__).resolve().parents[2] / "configs" / "infless" / "profile.csv"


@dataclass(frozen=True)
class ScalingModel:
    """Constants of the scaling model, each with its provenance (module docstring)."""

    serial_fraction: float = 0.15        # Amdahl σ for CPU threads [est]
    gpu_speedup: float = 130.0           # whole GPU vs one host thread at a saturating batch [est][fit]
    half_batch: float = 2.0              # batch at which half the GPU's advantage is reached [est]
    launch_s: float = 30e-6              # kernel launch per operator [est]
    preprocess_s: float = 1e-3           # CPU pre/post-processing per request [est]


class ProfileDB:
    """Operator and model timings; predicts t_exec(model, b, c, g) along the operator graph."""

    def __init__(self, table: pd.DataFrame, scaling: ScalingModel = ScalingModel()) -> None:
        missing = set(COLUMNS) - set(table.columns)
        if missing:
            raise ValueError(f"profile table lacks columns {sorted(missing)}; expected {COLUMNS}")
        self.table = table[COLUMNS].copy()
        self.scaling = scaling
        self._rows = {(r.kind, r.name, int(r.batch), int(r.threads), int(r.gpu_pct)): float(r.seconds)
                      for r in self.table.itertuples()}
        cal = self.table[self.table.kind == "calibration"]
        if cal.empty:
            raise ValueError("profile table has no 'calibration' row (host FLOP/s per thread)")
        self.host_flops = float(cal.seconds.iloc[0])
        self._cache: dict[tuple, float] = {}
        self._gpu_unit: dict[tuple, float] = {}    # (model, batch) -> GPU graph time x S / (1 + b½/b)
        ops = self.table[self.table.kind == "op"]
        self._only_host_rows = bool(((ops.threads == 1) & (ops.gpu_pct == 0)).all())
        self._ops = {m: len(flat_ops(spec.graph, spec.input_shape)[0]) for m, spec in MODELS.items()}
        #: derived tables of planners that use this profile (scheduler.candidates), keyed by their inputs
        self.memo: dict[tuple, object] = {}

    @classmethod
    def load(cls, path: str | Path = DEFAULT_PROFILE) -> "ProfileDB":
        return cls(pd.read_csv(path))

    # ------------------------------------------------------------------ operator times
    def op_time(self, sig: str, batch: int, threads: int, gpu_pct: int) -> float:
        exact = self._rows.get(("op", sig, batch, threads, gpu_pct))
        if exact is not None:
            return exact
        t1 = self._rows.get(("op", sig, batch, 1, 0))
        if t1 is None:
            t1 = self._interpolate(sig, batch)
        s = self.scaling
        if gpu_pct == 0:
            return t1 * (s.serial_fraction + (1 - s.serial_fraction) / threads)
        return t1 * (1 + s.half_batch / batch) / (s.gpu_speedup * gpu_pct / 100)

    def _interpolate(self, sig: str, batch: int) -> float:
        """Linear in the batch between profiled batches (CPU time is affine in the batch)."""
        pts = sorted((b, t) for (k, n, b, c, g), t in self._rows.items()
                     if k == "op" and n == sig and c == 1 and g == 0)
        if not pts:
            raise KeyError(f"operator {sig!r} is not in the profile table; profile it (sls-ray profile)")
        bs, ts = zip(*pts)
        if len(bs) == 1:
            return ts[0] * batch / bs[0]
        return float(np.interp(batch, bs, ts, left=None, right=None)) if batch <= bs[-1] else \
            ts[-1] + (ts[-1] - ts[-2]) / (bs[-1] - bs[-2]) * (batch - bs[-1])

    def _walk(self, node: Node, shape: tuple, batch: int, threads: int, gpu_pct: int) -> tuple[float, tuple]:
        if isinstance(node, Op):
            return self.op_time(signature(node, shape), batch, threads, gpu_pct), out_shape(node, shape)
        if isinstance(node, Seq):
            total = 0.0
            for k in node.items:
                t, shape = self._walk(k, shape, batch, threads, gpu_pct)
                total += t
            return total, shape
        times, outs = [], []
        for b in node.branches:
            t, o = self._walk(b, shape, batch, threads, gpu_pct)
            times.append(t)
            outs.append(o)
        combined = max(times) if gpu_pct > 0 else sum(times)
        out = outs[0] if node.merge == "add" else (sum(int(np.prod(o)) for o in outs),)
        return combined, out

    def graph_time(self, model: str, batch: int, threads: int = 1, gpu_pct: int = 0) -> float:
        """Predicted latency of one batch at the *profiled* input size (no margin)."""
        key = (model, batch, threads, gpu_pct)
        if key not in self._cache:
            spec = MODELS[model]
            if self._only_host_rows and (threads, gpu_pct) != (1, 0):
                # the scaling model multiplies every operator by one factor: walk once per batch
                s = self.scaling
                if gpu_pct == 0:
                    unit = self.graph_time(model, batch, 1, 0)
                else:
                    if (model, batch) not in self._gpu_unit:
                        t = self._walk(spec.graph, spec.input_shape, batch, 1, 100)[0]
                        self._gpu_unit[(model, batch)] = t * s.gpu_speedup / (1 + s.half_batch / batch)
                    unit = self._gpu_unit[(model, batch)]
                factor = (s.serial_fraction + (1 - s.serial_fraction) / threads) if gpu_pct == 0 else \
                    (1 + s.half_batch / batch) / (s.gpu_speedup * gpu_pct / 100)
                self._cache[key] = unit * factor
            else:
                self._cache[key] = self._walk(spec.graph, spec.input_shape, batch, threads, gpu_pct)[0]
        return self._cache[key]

    def exec_time(self, model: str, batch: int, threads: int, gpu_pct: int) -> float:
        """t_exec at the paper's input size: graph time x the input FLOP ratio, + preprocessing."""
        s = self.scaling
        spec = MODELS[model]
        t = self.graph_time(model, batch, threads, gpu_pct) * spec.paper_flops_scale
        if gpu_pct > 0:   # launches do not grow with the input size
            t += s.launch_s * self._ops[model]
        return t + s.preprocess_s * batch / max(threads, 1)

    def measured(self, model: str, batch: int) -> float | None:
        return self._rows.get(("model", model, batch, 1, 0))


# ---------------------------------------------------------------------------- profiling on the host
def _time(fn, reps: int) -> float:
    fn()                                      # warm-up (allocations, one-time dispatch)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def profile_host(models: list[str] | None = None, batches: tuple[int, ...] = PROFILE_BATCHES, reps: int = 3,
                 log=None) -> pd.DataFrame:
    """Time every distinct operator of the models, and each whole model, on one host thread.

    Best of ``reps`` after a warm-up (the minimum is the least disturbed by other processes).
    Returns the table; ``ProfileDB(table)`` uses it.
    """
    import torch

    from sls_ray.infless.torch_models import GraphModule, OpModule, example_input, op_input

    torch.set_num_threads(1)
    rows: list[dict] = []
    a = torch.randn(512, 512)
    t = _time(lambda: a @ a, 5)
    rows.append({"kind": "calibration", "name": "matmul512", "batch": 1, "threads": 1, "gpu_pct": 0,
                 "seconds": 2 * 512 ** 3 / t})       # host FLOP/s per thread (stored in 'seconds')
    seen: set[str] = set()
    with torch.no_grad():
        for name in models or list(MODELS):
            spec: ModelSpec = MODELS[name]
            ops, _ = flat_ops(spec.graph, spec.input_shape)
            for op, shape in ops:
                sig = signature(op, shape)
                if sig in seen:
                    continue
                seen.add(sig)
                mod = OpModule(op).eval()
                for b in batches:
                    x = op_input(op, shape, b)
                    rows.append({"kind": "op", "name": sig, "batch": b, "threads": 1, "gpu_pct": 0,
                                 "seconds": _time(lambda: mod(x), reps)})
            model = GraphModule(spec.graph).eval()
            for b in batches:
                x = example_input(spec, b)
                rows.append({"kind": "model", "name": name, "batch": b, "threads": 1, "gpu_pct": 0,
                             "seconds": _time(lambda: model(x), reps)})
            if log:
                log(f"profiled {name}: {len(seen)} operators so far")
    return pd.DataFrame(rows, columns=COLUMNS)


def accuracy(db: ProfileDB) -> pd.DataFrame:
    """Predicted (graph walk, 1 thread, no margin) vs measured whole-model latency, per model and batch."""
    rows = []
    for r in db.table[db.table.kind == "model"].itertuples():
        pred = db.graph_time(r.name, int(r.batch), 1, 0)
        rows.append({"model": r.name, "batch": int(r.batch), "measured_s": float(r.seconds), "predicted_s": pred,
                     "predicted_margin_s": pred * 1.1, "error": pred / float(r.seconds) - 1})
    return pd.DataFrame(rows)


def profile_command(out: Path, models: list[str] | None, reps: int, log) -> str:
    """What ``sls-ray profile`` does for INFless: time the models on this host, write the table to
    ``out`` and return a one-line report (COP's mean error per model, no margin).

    The CLI reaches this through its ``PROFILERS`` registry, by path, so the core never imports
    INFless. An unknown model name is a ConfigError naming the known ones.
    """
    from sls_ray.api import ConfigError, write_csv

    unknown = sorted(set(models or []) - set(MODELS))
    if unknown:
        raise ConfigError(f"--model {unknown}: unknown; known models: {sorted(MODELS)}")
    table = profile_host(list(models) if models else None, reps=reps, log=log)
    write_csv(out, table)
    err = accuracy(ProfileDB(table)).groupby("model").error.apply(lambda e: e.abs().mean() * 100).round(1)
    return f"{len(table)} rows -> {out}; COP mean |error| per model (%, no margin): {err.to_dict()}"
