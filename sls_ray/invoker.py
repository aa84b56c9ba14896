"""Lambda's invocation front end: warm containers, cold starts, concurrency accounting.

Plain state (no events): the kernel asks it questions at virtual times. A container
stays warm for ``keep_alive_s`` after its function ends (platform.md, "cold start");
the account's concurrency limit counts functions from acceptance until they end.
Cold-start latencies are lognormal around the profile's median, drawn from a stream keyed
by (run seed, invocation, attempt) so they never depend on real arrival order.
"""
from __future__ import annotations

import numpy as np

from sls_ray.platform import FunctionsProfile
from sls_ray.vtime import to_ns


class WarmPool:
    """Idle containers per (handler, memory size), each with the time it went idle."""

    def __init__(self, keep_alive_ns: int) -> None:
        self.keep_alive_ns = keep_alive_ns
        self._idle: dict[tuple[str, int], list[int]] = {}

    def take(self, handler: str, memory_mb: int, t_ns: int) -> bool:
        """Claim a warm container if one is idle and not yet expired at t."""
        idle = self._idle.get((handler, memory_mb))
        while idle:
            since = idle.pop()  # most recently used first, as Lambda does
            if t_ns - since <= self.keep_alive_ns:
                return True
            idle.clear()  # older ones expired too
        return False

    def release(self, handler: str, memory_mb: int, t_ns: int) -> None:
        self._idle.setdefault((handler, memory_mb), []).append(t_ns)


class Invoker:
    def __init__(self, profile: FunctionsProfile, seed: int) -> None:
        self.profile = profile
        self.seed = seed
        self.pool = WarmPool(to_ns(profile.keep_alive_s))
        self.active = 0
        self.peak_active = 0

    def has_capacity(self) -> bool:
        return self.active < self.profile.concurrency_limit

    def admit(self) -> None:
        self.active += 1
        self.peak_active = max(self.peak_active, self.active)

    def release(self) -> None:
        self.active -= 1

    def start_latency_ns(self, cold: bool, invocation: int, attempt: int) -> int:
        if not cold:
            return to_ns(self.profile.warm_start_s)
        rng = np.random.default_rng([self.seed, invocation, attempt, 0xC01D])
        return to_ns(self.profile.cold_start_s * float(np.exp(self.profile.cold_start_sigma * rng.standard_normal())))

    def backoff_ns(self, invocation: int, tries: int) -> int:
        """Exponential backoff with full jitter, as the AWS SDKs retry a 429."""
        rng = np.random.default_rng([self.seed, invocation, tries, 0xBAC0])
        cap = min(self.profile.throttle_backoff_max_s, self.profile.throttle_backoff_s * 2 ** tries)
        return to_ns(cap * (0.5 + 0.5 * float(rng.random())))

    def duplicate(self, invocation: int) -> bool:
        p = self.profile.duplicate_delivery_prob
        if p <= 0:
            return False
        return float(np.random.default_rng([self.seed, invocation, 0xD0B1]).random()) < p
