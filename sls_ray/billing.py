"""Dollars for a run (platform.md, "Cost accounting").

Functions: GB-seconds at the billing granularity (100 ms in 2020) plus a price per request.
Services: their own ``cost()`` (requests, pro-rated GB-months, node-hours while up).
"""
from __future__ import annotations

import math

from sls_ray.platform import FunctionsProfile


def billed_ms(duration_ns: int, granularity_ms: float) -> float:
    ms = duration_ns / 1e6
    if granularity_ms <= 0:
        return ms
    return max(1, math.ceil(ms / granularity_ms - 1e-9)) * granularity_ms


def function_cost(rows: list[dict], prof: FunctionsProfile) -> dict[str, float]:
    gb_s = sum(r["billed_ms"] / 1000.0 * r["memory_mb"] / 1024.0 for r in rows)
    return {"lambda_compute": gb_s * prof.price_per_gb_s, "lambda_requests": len(rows) * prof.price_per_request}


def provisioned(services, required: list[str]) -> dict:
    """Services the run brought up: those the experiment declares, plus any it touched.

    An unused Memcached node in the profile costs nothing; a declared one is billed from
    t = 0 even when idle, as a node that was launched for the job would be.
    """
    return {n: s for n, s in services.items() if n in required or s.usage.total_requests > 0}


def cost_breakdown(rows: list[dict], prof: FunctionsProfile, services, end_ns: int) -> dict[str, float]:
    out = function_cost(rows, prof)
    for name, svc in services.items():
        for component, usd in svc.cost(end_ns).items():
            if usd:
                out[f"{name}_{component}"] = usd
    out = {k: float(v) for k, v in out.items()}
    out["total"] = float(sum(out.values()))
    return out
