"""Build a simulation from a config, run it on a transport, and collect its records.

``simulate(cfg)`` is the one entry point the CLI, sweeps, experiments and tests share.
Everything in ``RunResult.summary`` except the ``nondeterministic`` block is a pure function
of the config and seed: the trace hash pins it (docs/design.md, "Determinism").
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import pandas as pd

from sls_ray.billing import billed_ms, cost_breakdown, provisioned
from sls_ray.config import ExperimentConfig, load_config, load_profile, resolve_params
from sls_ray.errors import ConfigError
from sls_ray.experiment import Experiment, experiment_class
from sls_ray.kernel import DRIVER, SimKernel
from sls_ray.payload import decode_stored, encode
from sls_ray.platform import Strict
from sls_ray.storage import service_class
from sls_ray.vtime import to_s

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # functions share cores: BLAS threads would escape the model


@dataclass
class RunResult:
    config: dict
    summary: dict
    invocations: pd.DataFrame
    storage: pd.DataFrame
    metrics: pd.DataFrame
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    experiment: Experiment | None = None

    def metric(self, kind: str) -> pd.DataFrame:
        """The metrics rows of one kind, with their fields as columns."""
        if self.metrics.empty:
            return self.metrics
        return self.metrics[self.metrics["kind"] == kind].dropna(axis=1, how="all").reset_index(drop=True)


def limit_threads() -> None:
    from threadpoolctl import threadpool_limits  # ships with scikit-learn, a dependency

    threadpool_limits(1)
    torch = sys.modules.get("torch")  # only if some module already uses it: importing costs seconds
    if torch is not None:
        torch.set_num_threads(1)


def build(cfg: ExperimentConfig, experiment: Experiment | None = None) -> tuple[Experiment, Any]:
    """The experiment object and its resolved platform profile, validated.

    ``experiment`` is an already-built one (``simulate_handlers``); else the registry's.
    """
    profile = load_profile(cfg.platform, cfg.profile)
    if experiment is None:
        exp_cls = experiment_class(cfg.experiment)
        params = resolve_params(cfg, exp_cls.Params)
        exp = exp_cls.create(params, profile, cfg.seed)
    else:
        exp = experiment
        exp.profile = profile
        exp.seed = cfg.seed
    for name in exp.required_services():
        if name not in profile.services:
            raise ConfigError(f"experiment '{cfg.experiment}' needs a storage service named '{name}', "
                              f"but profile '{profile.name}' has only {sorted(profile.services)}; "
                              f"add it under profile.services or pick another service")
    reachable = exp.reachable_services()
    if reachable is not None:
        missing = [n for n in reachable if n not in profile.services]
        if missing:
            raise ConfigError(f"experiment '{cfg.experiment}' uses services {missing} that profile "
                              f"'{profile.name}' lacks; known: {sorted(profile.services)}")
        profile.services = {n: v for n, v in profile.services.items()
                            if n in reachable or n in exp.required_services()}
    for handler, mb in exp.handler_memory().items():
        profile.functions.check_memory(mb, f"memory of handler '{handler}'")
    for handler, seconds in exp.handler_timeout().items():
        if not seconds > 0:
            raise ConfigError(f"timeout of handler '{handler}': {seconds!r} s; a timeout must be > 0 seconds "
                              f"(at most functions.max_duration_s={profile.functions.max_duration_s:g})")
    entry_handler, entry_payload = exp.entry()
    size = encode(entry_payload)[1]
    if size > profile.functions.payload_async_bytes:  # the driver's invoke is asynchronous, as any other
        raise ConfigError(f"experiment '{cfg.experiment}': the entry invocation of '{entry_handler}' carries {size} "
                          f"bytes, above the asynchronous payload limit functions.payload_async_bytes="
                          f"{profile.functions.payload_async_bytes}; pass large inputs through storage "
                          f"(Experiment.preload) or raise the limit in the profile")
    handler_names = sorted(exp.handlers())
    for fault in cfg.faults:
        if fault.kind == "kill_fraction" and fault.handler is not None and fault.handler not in handler_names:
            raise ConfigError(f"faults: kill_fraction names handler '{fault.handler}', which experiment "
                              f"'{cfg.experiment}' does not have; its handlers: {handler_names}")
        svc = getattr(fault, "service", None)
        if svc is not None and svc not in profile.services:
            raise ConfigError(f"faults: service '{svc}' is not in the profile; known: {sorted(profile.services)}")
        if fault.kind == "lose_data" and not service_class(profile.service_config(svc).kind).volatile:
            raise ConfigError(f"faults: lose_data on '{svc}', a durable service that cannot lose data; "
                              f"target a memcached, redis or vm service")
    return exp, profile


def check_address(address: str | None, timeout_s: float = 5.0) -> None:
    """Refuse a Ray address nothing answers at, in seconds, before anything starts.

    ``ray.init`` would otherwise retry for minutes; ``auto`` (a cluster found through
    RAY_ADDRESS or ``ray start``) is left to Ray.
    """
    if address is None or address == "auto":
        return
    hostport = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--address {address!r} (run.address): expected HOST:PORT (e.g. 10.0.0.5:6379, "
                          f"ray://10.0.0.5:10001) or 'auto'")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as e:
        raise ConfigError(f"--address {address} (run.address): nothing answers at {host}:{port} "
                          f"({e.strerror or e}); start the cluster there (ray start --head) "
                          "or fix the address") from None


def resolved_config(cfg: ExperimentConfig, exp: Experiment, profile) -> dict:
    data = cfg.model_dump(mode="json")
    data["params"] = exp.params.model_dump(mode="json")
    data["profile"] = profile.model_dump(mode="json")
    return data


def simulate(cfg: ExperimentConfig, progress: Callable | None = None,
             experiment: Experiment | None = None) -> RunResult:
    exp, profile = build(cfg, experiment)
    limit_threads()
    wall0 = time.perf_counter()
    handlers = exp.handlers()
    if cfg.run.transport == "ray":
        from sls_ray.actors.ray_transport import RayTransport  # imports Ray: only Ray runs pay for it

        check_address(cfg.run.address)
        result = RayTransport(RunPlan(cfg.model_dump(mode="json"), experiment), cfg.run).execute_remote()
        result.experiment = exp
        result.summary["nondeterministic"]["host_wall_s"] = round(time.perf_counter() - wall0, 3)
        return result
    from sls_ray.transport.local import LocalTransport

    transport = LocalTransport(handlers, watchdog_s=cfg.run.watchdog_s)
    transport.progress = progress
    kernel, status = transport.execute(lambda hooks: make_kernel(cfg, exp, profile, hooks))
    wall = time.perf_counter() - wall0
    return collect(cfg, exp, profile, kernel, status, wall, transport_name=cfg.run.transport)


class RunPlan:
    """A run as a transport in other processes rebuilds it: its config, and the steps from
    config to handlers, kernel and result.

    The Ray actors receive it (pickled: only the config travels) instead of importing this
    module, so imports point one way, runtime -> transports (docs/design.md, "Transports").
    Each process builds the experiment once, on first use. ``experiment``: an already-built
    one (``simulate_handlers``), which then travels too (Ray pickles its handlers by value).
    """

    def __init__(self, cfg_data: dict, experiment: Experiment | None = None) -> None:
        self.cfg_data = cfg_data
        self.experiment = experiment
        self._built: tuple[ExperimentConfig, Experiment, Any] | None = None

    def __getstate__(self) -> dict:
        return {"cfg_data": self.cfg_data, "experiment": self.experiment, "_built": None}

    def _build(self) -> tuple[ExperimentConfig, Experiment, Any]:
        if self._built is None:
            cfg = load_config(data=self.cfg_data)
            self._built = (cfg, *build(cfg, self.experiment))
        return self._built

    def handlers(self) -> dict[str, Callable]:
        """The handlers, in a process whose BLAS and torch threads are held to one."""
        limit_threads()
        return self._build()[1].handlers()

    def kernel(self, hooks, store: Callable[[dict], dict] | None = None) -> SimKernel:
        """The run's kernel; ``store`` encodes preloaded objects (see ``make_kernel``)."""
        cfg, exp, profile = self._build()
        return make_kernel(cfg, exp, profile, hooks, store)

    def result(self, kernel: SimKernel, status: str, wall: float, transport_name: str) -> RunResult:
        cfg, exp, profile = self._build()
        result = collect(cfg, exp, profile, kernel, status, wall, transport_name)
        result.experiment = None  # it stays in the process that built it; the driver sets its own
        return result


class _NoParams(Strict):
    """Inline experiments take no parameters: their handlers close over what they need."""


class InlineExperiment(Experiment):
    """Handlers passed as functions rather than a registered experiment kind (see simulate_handlers)."""

    name = "inline"
    Params = _NoParams

    def __init__(self, handlers: dict[str, Callable], entry: tuple[str, Any], memory: dict[str, int],
                 timeouts: dict[str, float], services: list[str]) -> None:
        super().__init__(_NoParams(), None)
        self._handlers, self._entry = dict(handlers), entry
        self._memory, self._timeouts, self._services = dict(memory), dict(timeouts), list(services)

    def handlers(self):
        return self._handlers

    def entry(self):
        return self._entry

    def handler_memory(self):
        return self._memory

    def handler_timeout(self):
        return self._timeouts

    def required_services(self):
        return self._services


def simulate_handlers(handlers: dict[str, Callable], entry: tuple[str, Any], *, profile: dict | None = None,
                      seed: int = 0, memory: dict[str, int] | None = None, timeouts: dict[str, float] | None = None,
                      services: list[str] = (), faults: list[dict] = (), platform: str = "aws_2020",
                      run: dict | None = None) -> RunResult:
    """Run handler functions without registering an experiment kind (tests, notebooks, benchmarks).

    ``entry`` = (handler, payload) invoked asynchronously at t = 0; ``profile`` overrides the
    platform profile as a config's ``profile:`` section does; ``memory``/``timeouts`` per
    handler; ``services`` are billed from t = 0 even if idle (declared nodes); ``faults`` and
    ``run`` as in a config. Everything is validated as a config would be.
    """
    cfg = load_config(data={"experiment": "inline", "seed": seed, "platform": platform, "profile": profile or {},
                            "faults": list(faults), "run": run or {}})
    exp = InlineExperiment(handlers, entry, memory or {}, timeouts or {}, list(services))
    return simulate(cfg, experiment=exp)


def encode_all(objects: dict[str, Any]) -> dict[str, tuple[Any, int]]:
    """Each preloaded object as (handle, wire size): private in-process copies."""
    return {key: encode(value) for key, value in objects.items()}


def make_kernel(cfg: ExperimentConfig, exp: Experiment, profile, hooks,
                store: Callable[[dict], dict] | None = None) -> SimKernel:
    """The run's kernel with its faults, preloaded objects and entry invocation.

    ``store`` turns one service's preloaded objects into (handle, size) pairs; the Ray
    transport passes one that leaves large values in the function hosts' object stores, so
    the kernel process keeps only their refs (docs/cluster.md, "Where blocks live").
    """
    store = store or encode_all
    kernel = SimKernel(profile, cfg.seed, hooks, exp.handler_memory(), exp.handler_timeout())
    kernel.apply_faults(list(cfg.faults) + [_fault(f) for f in exp.faults()])
    for name, objects in exp.preload().items():
        if name not in kernel.services:
            raise ConfigError(f"experiment '{cfg.experiment}' preloads objects into service '{name}', which "
                              f"profile '{profile.name}' lacks; known: {sorted(kernel.services)}")
        for key, (handle, size) in store(objects).items():
            kernel.services[name].preload(key, handle, size)
    handler, payload = exp.entry()
    handle, size = encode(payload)
    kernel.invoke_entry(handler, handle, size)
    return kernel


def _fault(spec: dict):
    from pydantic import TypeAdapter

    from sls_ray.faults import FaultSpec

    return TypeAdapter(FaultSpec).validate_python(spec)


def collect(cfg: ExperimentConfig, exp: Experiment, profile, kernel: SimKernel, status: str, wall: float,
            transport_name: str) -> RunResult:
    fprof = profile.functions
    rows = []
    for rec in sorted(kernel.functions.values(), key=lambda r: r.fid):
        if rec.fid == DRIVER or rec.end_ns is None or rec.state != "done":
            continue
        duration = rec.end_ns - rec.start_ns + (rec.init_ns if fprof.bill_init else 0)
        rows.append({
            "id": rec.fid, "invocation": rec.invocation, "attempt": rec.attempt, "handler": rec.handler,
            "memory_mb": rec.memory_mb if not rec.is_vm else 0, "start_s": to_s(rec.start_ns),
            "end_s": to_s(rec.end_ns),
            "billed_ms": billed_ms(duration, fprof.billing_granularity_ms) if not rec.is_vm else 0.0,
            "cold": bool(rec.cold), "status": rec.status, "error": rec.error.split("\n")[0][:300],
            "vm": rec.is_vm, "init_s": to_s(rec.init_ns),
        })
    lambda_rows = [r for r in rows if not r["vm"]]
    end_ns = kernel.makespan_ns()
    services = provisioned(kernel.services, exp.required_services())
    costs = cost_breakdown(lambda_rows, fprof, services, end_ns)
    storage_rows = []
    for name, svc in services.items():
        u = svc.usage
        svc_cost = {k: v for k, v in costs.items() if k.startswith(name + "_")}
        row = {"service": name, "kind": svc.kind, "requests": u.total_requests, "bytes_in": u.bytes_in,
               "bytes_out": u.bytes_out, "throttles": u.throttles, "cost_usd": sum(svc_cost.values())}
        for op, n in sorted(u.requests.items()):
            row[f"req_{op}"] = n
        storage_rows.append(row)
    failures: dict[str, int] = {}
    for r in rows:
        if r["status"] != "ok":
            failures[r["status"]] = failures.get(r["status"], 0) + 1
    metrics = _metrics_frame(_alive_rows(kernel))
    summary = {
        "experiment": cfg.experiment, "seed": cfg.seed, "status": "ok" if status == "done" else status,
        "makespan_s": to_s(end_ns),
        "cost_usd": costs,
        "counts": {**kernel.counts, "functions": len(lambda_rows), "vm_processes": len(rows) - len(lambda_rows),
                   "peak_concurrency": kernel.invoker.peak_active},
        "failures": failures,
        "storage_requests": {r["service"]: r["requests"] for r in storage_rows},
        "services": {n: r for n, s in services.items() if (r := s.report())},
        "notes": [n for n in (s.startup_note() for s in services.values()) if n] + kernel.fault_notes,
    }
    if kernel.deadlock is not None:
        summary["deadlock"] = str(kernel.deadlock)
    inv = pd.DataFrame(rows, columns=["id", "invocation", "attempt", "handler", "memory_mb", "start_s", "end_s",
                                      "billed_ms", "cold", "status", "error", "vm", "init_s"])
    storage = pd.DataFrame(storage_rows)
    result = RunResult(resolved_config(cfg, exp, kernel.profile), summary, inv, storage, metrics, experiment=exp)
    summary.update(exp.check(StoredObjects(services)))
    if summary["status"] == "ok":
        reason = failure_reason(kernel, summary)
        if reason:
            summary["status"], summary["reason"] = "failed", reason
    result.tables = {"storage_waits": storage_waits_frame(kernel), **exp.tables(result)}
    summary.update(exp.summary_extra(result))
    summary["trace_hash"] = trace_hash(result)
    summary["nondeterministic"] = {"host_wall_s": round(wall, 3), "transport": transport_name,
                                   "hosts": cfg.run.hosts if transport_name == "ray" else 1,
                                   "note": "host wall time depends on the machine and its load; nothing else does"}
    return result


def failure_reason(kernel: SimKernel, summary: dict) -> str:
    """Why a run that ended (no deadlock) failed, or '' when it did not (README, "Statuses").

    A run fails when no attempt of its entry invocation ended ok (every retry included), or
    when the experiment's own check of its result says ``correct: false``.
    """
    entry = [r for r in kernel.functions.values()
             if r.fid != DRIVER and not r.is_vm and r.invocation == kernel.entry_invocation and r.state == "done"]
    if not any(r.status == "ok" for r in entry):
        if not entry:
            return "the entry invocation never ran"
        last = max(entry, key=lambda r: (r.attempt, r.fid))
        first_line = last.error.split("\n")[0][:300]
        return (f"the entry invocation ({last.handler}, {len(entry)} attempt{'s' if len(entry) > 1 else ''}) "
                f"failed: {last.status}: {first_line}")
    if summary.get("correct") is False:
        return "the experiment's own check of its result failed (correct: false)"
    return ""


def storage_waits_frame(kernel: SimKernel) -> pd.DataFrame:
    """storage_waits.csv: when each function was blocked on storage requests (or an await of them),
    back-to-back requests merged into one interval; a wait cut short by the function's death ends there."""
    raw = list(kernel.storage_waits)
    raw += [(r.fid, r.wait_from, r.dead_ns) for r in kernel.functions.values()
            if r.wait_from is not None and r.dead_ns is not None and r.dead_ns >= r.wait_from]
    merged: list[list[int]] = []
    for fid, t0, t1 in sorted(raw):
        if merged and merged[-1][0] == fid and t0 <= merged[-1][2]:
            merged[-1][2] = max(merged[-1][2], t1)
        else:
            merged.append([fid, t0, t1])
    return pd.DataFrame([{"id": fid, "t0_s": to_s(t0), "t1_s": to_s(t1)} for fid, t0, t1 in merged],
                        columns=["id", "t0_s", "t1_s"])


class StoredObjects:
    """What the services hold when the run ended, read outside virtual time (``Experiment.check``)."""

    def __init__(self, services: dict) -> None:
        self._services = services

    def keys(self, service: str, prefix: str = "") -> list[str]:
        return self._services[service].stored_keys(prefix) if service in self._services else []

    def get(self, service: str, key: str, default: Any = None) -> Any:
        svc = self._services.get(service)
        handle = None if svc is None else svc.stored_handle(key)
        return default if handle is None else decode_stored(handle)


def _alive_rows(kernel: SimKernel) -> list[tuple]:
    """Metrics rows, less those a function stamped after its death (its chain ran ahead of the kill)."""
    dead = {r.fid: r.dead_ns for r in kernel.functions.values() if r.dead_ns is not None}
    if not dead:
        return kernel.metrics
    return [m for m in kernel.metrics if m[1] not in dead or m[0] <= dead[m[1]]]


def _metrics_frame(raw: list[tuple]) -> pd.DataFrame:
    if not raw:
        return pd.DataFrame(columns=["t", "fid", "seq", "handler", "kind"])
    rows = [{"t": to_s(t), "fid": fid, "seq": seq, "handler": h, "kind": kind, **fields}
            for t, fid, seq, h, kind, fields in sorted(raw, key=lambda r: r[:3])]
    return pd.DataFrame(rows)


def trace_hash(result: RunResult) -> str:
    """A digest of every virtual outcome: equal hashes mean bit-identical runs."""
    h = hashlib.sha256()
    # init_s is left out: it is the cold-start draw already fixed by start_s and the invoke time,
    # and leaving it out keeps every hash recorded before the column existed comparable
    h.update(result.invocations.drop(columns=["init_s"], errors="ignore").to_csv(index=False).encode())
    h.update(result.storage.to_csv(index=False).encode())
    h.update(result.metrics.to_csv(index=False).encode())
    core = {k: v for k, v in result.summary.items() if k not in ("nondeterministic", "trace_hash")}
    h.update(json.dumps(core, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]
