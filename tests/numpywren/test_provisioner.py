"""Provisioning policies on scripted queue histories, and the driver that applies them in a run."""
from __future__ import annotations

import math

import pytest

from sls_ray.numpywren.provisioner import DynamicPolicy, FixedPolicy, policy_from_state
from tests.numpywren.conftest import run_numpywren


def test_the_dynamic_policy_launches_exactly_what_its_formula_says():
    """Trigger: up < ceil(sf * waiting / pw), at most once per granularity; launch ceil(waiting / pw) - up."""
    policy = DynamicPolicy(sf=0.5, pipeline_width=2, launch_granularity_s=60.0, max_executors=50)
    history = [  # (now, waiting, up) -> launched
        ((0.0, 1, 0), 1),        # ceil(0.5 * 1 / 2) = 1 > 0: launch ceil(1 / 2) - 0 = 1
        ((5.0, 40, 1), 0),       # wants 10, but the last launch was 5 s ago
        ((60.0, 40, 1), 0),      # exactly 60 s: not yet (the source tests "> granularity")
        ((65.0, 40, 1), 19),     # 1 < 10: launch ceil(40 / 2) - 1 = 19
        ((130.0, 40, 12), 0),    # 12 >= ceil(0.5 * 40 / 2) = 10: enough
        ((200.0, 400, 12), 38),  # 12 < 100 (capped at 50): launch min(200, 50) - 12 = 38
        ((300.0, 400, 50), 0),   # at the cap
        ((400.0, 0, 0), 0),      # nothing waits
    ]
    got = [policy.decide(*args) for args, _ in history]
    assert got == [want for _, want in history]
    for sf, waiting, up in [(0.25, 37, 3), (1.0, 37, 3), (0.5, 1000, 0)]:
        p = DynamicPolicy(sf=sf, pipeline_width=3, max_executors=1000)
        want = math.ceil(waiting / 3) - up if up < math.ceil(sf * waiting / 3) else 0
        assert p.decide(0.0, waiting, up) == want


def test_the_fixed_pool_relaunches_every_fraction_of_the_budget_and_policies_survive_a_handover():
    policy = FixedPolicy(executors=8, relaunch_every_s=0.85 * 140)
    assert [policy.decide(t, 0, 99) for t in (0.0, 100.0, 119.0, 119.5, 200.0, 240.0)] == [8, 0, 0, 8, 0, 8]
    clone = policy_from_state(policy.state())
    assert clone == policy and clone.decide(300.0, 0, 0) == 0
    dyn = DynamicPolicy(sf=0.25, pipeline_width=4, max_executors=10, last_launch_s=42.0)
    assert policy_from_state(dyn.state()) == dyn
    with pytest.raises(ValueError, match="unknown provisioning policy"):
        policy_from_state({"kind": "magic"})


def test_the_driver_launches_what_the_policy_decides_on_the_queue_it_saw():
    """Replaying the dynamic policy over the driver's own polls gives the launches it made."""
    r = run_numpywren({"program": "cholesky", "blocks": 8, "block_size": 4, "model_block_size": 2048,
                       "pipeline_width": 2, "policy": "dynamic", "sf": 0.5, "launch_granularity_s": 20.0,
                       "baselines": False})
    assert r.summary["correct"]
    sched = r.metric("sched")
    sched = sched[~sched["final"].astype(bool)]
    replay = DynamicPolicy(sf=0.5, pipeline_width=2, launch_granularity_s=20.0, max_executors=1000)
    expected = [replay.decide(t, int(w), int(u)) for t, w, u in zip(sched["t"], sched["waiting"], sched["up"])]
    assert list(sched["launched"].astype(int)) == expected
    assert sum(expected) == r.summary["executors"] > 1
