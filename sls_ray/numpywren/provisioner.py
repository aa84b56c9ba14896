"""Provisioning policies: how many executors to launch, decoupled from scheduling (numpywren.md, "Autoscaling").

Plain classes with no I/O: the driver polls the queue and the heartbeats every
``poll_interval_s`` of virtual time and asks its policy ``decide(now, waiting, up)``.

- :class:`DynamicPolicy` (the paper's): when ``up < ceil(sf * waiting / pipeline_width)``
  (and below ``max_executors``), at most once every ``launch_granularity_s``, launch
  ``min(ceil(waiting / pipeline_width), max_executors) - up`` executors: the trigger scales
  with sf, the launch fills one executor per ``pipeline_width`` waiting tasks, exactly as the
  source scripts' driver does (experiments/cholesky_experiment.py, ``autoscale_policy ==
  "dynamic"``, sf = 0.5) [src]. Executors then hover between the two bounds.
- :class:`FixedPolicy` (the source's ``constant_timeout``): launch ``executors`` at the
  start and again every ``0.85 x`` the executors' time budget, whatever the queue holds
  [src], so a pool of about that size is always up.

Executors exit on their own when idle or at their time budget; neither policy ever stops one.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass
class DynamicPolicy:
    sf: float = 0.5
    pipeline_width: int = 1
    launch_granularity_s: float = 60.0
    max_executors: int = 1000
    last_launch_s: float = -math.inf

    def __post_init__(self) -> None:
        if self.sf <= 0 or self.pipeline_width < 1 or self.max_executors < 1:
            raise ValueError(f"dynamic policy: sf={self.sf} must be > 0, pipeline_width={self.pipeline_width} "
                             f"and max_executors={self.max_executors} >= 1")

    def target(self, waiting: int) -> int:
        return math.ceil(self.sf * waiting / self.pipeline_width)

    def decide(self, now: float, waiting: int, up: int) -> int:
        """Executors to launch now, given the visible queue length and the live executors."""
        if now - self.last_launch_s > self.launch_granularity_s and up < min(self.target(waiting), self.max_executors):
            self.last_launch_s = now
            return min(math.ceil(waiting / self.pipeline_width), self.max_executors) - up
        return 0

    def state(self) -> dict:
        return {"kind": "dynamic", **asdict(self)}


@dataclass
class FixedPolicy:
    executors: int = 32
    relaunch_every_s: float = 0.85 * 140.0
    last_launch_s: float = -math.inf

    def __post_init__(self) -> None:
        if self.executors < 1 or self.relaunch_every_s <= 0:
            raise ValueError(f"fixed policy: executors={self.executors} must be >= 1 and "
                             f"relaunch_every_s={self.relaunch_every_s} > 0")

    def decide(self, now: float, waiting: int, up: int) -> int:
        if now - self.last_launch_s > self.relaunch_every_s:
            self.last_launch_s = now
            return self.executors
        return 0

    def state(self) -> dict:
        return {"kind": "fixed", **asdict(self)}


def policy_from_state(state: dict) -> DynamicPolicy | FixedPolicy:
    """Rebuild a policy from ``state()`` (the driver re-invokes itself before its timeout)."""
    state = dict(state)
    kind = state.pop("kind")
    if kind == "dynamic":
        return DynamicPolicy(**state)
    if kind == "fixed":
        return FixedPolicy(**state)
    raise ValueError(f"unknown provisioning policy '{kind}'; known: dynamic, fixed")
