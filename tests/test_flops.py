"""ctx.np runs the real numpy call and charges the LAPACK operation count at the function's speed."""
from __future__ import annotations

import numpy as np
import pytest

from sls_ray import flops
from sls_ray.runtime import simulate_handlers


def _worker(ctx, p):
    a = np.random.default_rng(0).standard_normal((200, 200))
    spd = a @ a.T + 200 * np.eye(200)
    t0 = ctx.now
    c = ctx.np.matmul(a, a)
    t1 = ctx.now
    L = ctx.np.cholesky(spd)
    t2 = ctx.now
    x = ctx.np.solve_triangular(L, a, lower=True)
    t3 = ctx.now
    assert np.allclose(c, a @ a) and np.allclose(L @ L.T, spd) and np.allclose(L @ x, a)
    ctx.log("t", matmul=t1 - t0, chol=t2 - t1, trsm=t3 - t2)


ONE_MB_STEPS = {"functions": {"memory_step_mb": 1}}  # 1,769 MB (one vCPU) is off 2020's 64 MB grid


def test_metered_numpy_charges_the_flop_formulas_at_the_functions_rate():
    r = simulate_handlers({"w": _worker}, ("w", None), memory={"w": 1769}, profile=ONE_MB_STEPS)
    assert r.summary["status"] == "ok" and set(r.invocations["status"]) == {"ok"}
    row = r.metric("t").iloc[0]
    rate = 14e9  # 1,769 MB = one vCPU at 14 GFLOP/s (aws_2020)
    assert row["matmul"] == pytest.approx(flops.matmul(200, 200, 200) / rate, abs=2e-9)
    assert row["chol"] == pytest.approx(flops.cholesky(200) / rate, abs=2e-9)
    assert row["trsm"] == pytest.approx(flops.triangular_solve(200, 200) / rate, abs=2e-9)


def test_half_the_memory_runs_at_half_the_speed():
    fast = simulate_handlers({"w": _worker}, ("w", None), memory={"w": 1769}, profile=ONE_MB_STEPS).metric("t").iloc[0]
    slow = (
        simulate_handlers({"w": _worker}, ("w", None), memory={"w": 1769 // 2 + 1}, profile=ONE_MB_STEPS)
        .metric("t")
        .iloc[0]
    )
    assert slow["matmul"] / fast["matmul"] == pytest.approx(1769 / (1769 // 2 + 1), rel=1e-3)
