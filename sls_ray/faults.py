"""Fault injection in virtual time, deterministic with the run's seed.

Kinds: kill one function at t; kill a fraction p of the functions running at t0 at random
times in [t0, t1]; a Memcached/Redis node loses its data at t; a service slows down
(latency x factor, bandwidth / factor) during [t0, t1]. Each is a kernel event.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

import numpy as np
from pydantic import ConfigDict, Field, model_validator

from sls_ray.platform import Strict
from sls_ray.vtime import FID_FAULT, RANK_FAULT, to_ns


class _Fault(Strict):
    """Base of the fault specs: times and factors are finite numbers."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class _Window(_Fault):
    """A fault with a window [t0_s, t1_s] in virtual time; an inverted window is an error."""

    if TYPE_CHECKING:  # declared (with their ranges) by each subclass; named here for the validator
        t0_s: float
        t1_s: float

    @model_validator(mode="after")
    def _ordered(self):
        if self.t1_s < self.t0_s:
            raise ValueError(f"t1_s={self.t1_s:g} is before t0_s={self.t0_s:g}; the window ends after it starts "
                             f"(swap them)")
        return self


class KillFunction(_Fault):
    kind: Literal["kill"] = "kill"
    fid: int = Field(ge=1, description="function id to kill (ids are deterministic: see invocations.csv)")
    at_s: float = Field(ge=0, description="virtual time of the kill")

    def install(self, kernel, index: int) -> None:
        def fire(t: int) -> None:
            if not kernel.kill(self.fid, t, f"fault #{index}"):  # a silent no-op would read as "it survived"
                kernel.fault_notes.append(
                    f"fault #{index} (kill fid {self.fid} at {self.at_s:g} s) killed nothing: no function with "
                    f"that id was running then (not started yet, still in its cold start, or already ended; "
                    f"ids and times are in invocations.csv)")

        kernel.schedule(to_ns(self.at_s), RANK_FAULT, FID_FAULT, index, fire)


class KillFraction(_Window):
    kind: Literal["kill_fraction"] = "kill_fraction"
    fraction: float = Field(gt=0, le=1, description="share of the functions running at t0 to kill")
    t0_s: float = Field(ge=0, description="window start")
    t1_s: float = Field(ge=0, description="window end (each victim dies at a uniform time in [t0, t1])")
    handler: str | None = Field(None, description="only functions of this handler")

    def install(self, kernel, index: int) -> None:
        def choose(t: int) -> None:
            live = sorted(r.fid for r in kernel.functions.values()
                          if r.state in ("running", "blocked") and r.dead_ns is None and not r.is_vm
                          and (self.handler is None or r.handler == self.handler))
            rng = np.random.default_rng([kernel.seed, index, 0xFA17])
            n = int(round(self.fraction * len(live)))
            victims = sorted(rng.choice(live, size=n, replace=False).tolist()) if n else []
            times = rng.uniform(self.t0_s, max(self.t0_s, self.t1_s), size=len(victims))
            for fid, at in zip(victims, times):
                kernel.schedule(max(t, to_ns(float(at))), RANK_FAULT, FID_FAULT, index,
                                lambda tt, f=fid: kernel.kill(f, tt, f"fault #{index} (kill_fraction)"))

        kernel.schedule(to_ns(self.t0_s), RANK_FAULT, FID_FAULT, index, choose)


class LoseData(_Fault):
    kind: Literal["lose_data"] = "lose_data"
    service: str = Field(description="a memcached or redis service")
    at_s: float = Field(ge=0, description="virtual time of the node failure")

    def install(self, kernel, index: int) -> None:
        svc = kernel.services[self.service]
        kernel.schedule(to_ns(self.at_s), RANK_FAULT, FID_FAULT, index, lambda t: svc.lose_data(t))


class SlowDown(_Window):
    kind: Literal["slowdown"] = "slowdown"
    service: str = Field(description="the service that slows down (or speeds up: factor < 1)")
    factor: float = Field(gt=0, description="latency x factor, bandwidth / factor")
    t0_s: float = Field(ge=0, description="window start")
    t1_s: float = Field(ge=0, description="window end")

    def install(self, kernel, index: int) -> None:
        svc = kernel.services[self.service]
        svc.slow_windows.append((to_ns(self.t0_s), to_ns(self.t1_s), self.factor))  # latency, by send time

        def set_factor(t: int, f: float) -> None:
            link = svc.link()
            if link is not None:
                link.slowdown = f
                kernel.network.reshare_link(t, link)

        kernel.schedule(to_ns(self.t0_s), RANK_FAULT, FID_FAULT, index, lambda t: set_factor(t, self.factor))
        kernel.schedule(to_ns(self.t1_s), RANK_FAULT, FID_FAULT, index, lambda t: set_factor(t, 1.0))


FaultSpec = Annotated[KillFunction | KillFraction | LoseData | SlowDown, Field(discriminator="kind")]
