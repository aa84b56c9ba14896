"""The rate band and dispatch rule, greedy placement against exhaustive search, and the
autoscaler's scale-out and release on scripted loads (INFless §4.3)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from sls_ray.infless.cluster import Cluster, ClusterConfig, InstanceConfig
from sls_ray.infless.scheduler import ALPHA, Autoscaler, Candidate, PolicyConfig, dispatch_rates, greedy_place


def cand(b, c, g, t_exec, slo, price):
    return Candidate(InstanceConfig(b, c, g), t_exec, t_exec, slo - t_exec, b / (slo - t_exec), b / t_exec, price)


def test_band_ends_and_the_dispatch_formula_by_hand():
    r_low, r_up = np.array([10.0, 20.0]), np.array([40.0, 100.0])     # R_min 30, R_max 140
    assert list(dispatch_rates(140, r_low, r_up)) == [40, 100]
    assert list(dispatch_rates(30, r_low, r_up)) == [10, 20]
    r = dispatch_rates(85, r_low, r_up)                               # (140-85)/(140-30) = 0.5
    assert r == pytest.approx([40 - 0.5 * 30, 100 - 0.5 * 80])
    assert r.sum() == pytest.approx(85)                               # inside the band, rates add up to R
    assert list(dispatch_rates(500, r_low, r_up)) == [40, 100]        # above: everyone at r_up
    assert list(dispatch_rates(5, r_low, r_up)) == [10, 20]           # below: r_low


def _objective(choice):
    return sum(k.price_per_s for k, _ in choice)


def _exhaustive(cluster, cands, residual, most=4):
    best = None
    pairs = [(k, s) for k in cands for s in range(cluster.slots)]
    for n in range(1, most + 1):
        for combo in itertools.combinations_with_replacement(range(len(pairs)), n):
            chosen = [pairs[i] for i in combo]
            th = np.zeros(cluster.slots)
            gp = np.zeros(cluster.slots)
            for k, s in chosen:
                th[s] += k.config.threads
                gp[s] += k.config.gpu_pct
            if (th > cluster.free_threads).any() or (gp > cluster.free_gpu).any():
                continue
            if sum(k.r_up for k, _ in chosen) < residual:
                continue
            if best is None or _objective(chosen) < _objective(best):
                best = chosen
    return best


@pytest.mark.parametrize("residual", [30.0, 120.0, 260.0])
def test_greedy_placement_is_within_1_5x_of_exhaustive_search_on_a_small_cluster(residual):
    """Stated bound: on 1 node x 2 slots, the greedy plan's price per second of resources is at
    most 1.5x the cheapest plan (of up to four instances) that covers the same load."""
    cluster = Cluster(ClusterConfig(nodes=1, slots_per_node=2, threads_per_slot=8))
    price = lambda c, g: (c * 0.0425 + g / 100 * 0.356) / 3600  # noqa: E731
    cands = [cand(1, 2, 0, 0.04, 0.2, price(2, 0)), cand(4, 4, 0, 0.08, 0.2, price(4, 0)),
             cand(8, 2, 30, 0.05, 0.2, price(2, 30)), cand(16, 2, 50, 0.07, 0.2, price(2, 50))]
    greedy, scored = greedy_place(cluster, cands, residual)
    best = _exhaustive(cluster, cands, residual)
    assert scored > 0
    assert sum(k.r_up for k, _ in greedy) >= residual
    assert _objective(greedy) <= 1.5 * _objective(best)


def test_autoscaler_scales_out_past_r_max_and_releases_below_the_alpha_band():
    cluster = Cluster(ClusterConfig(nodes=1, slots_per_node=2))
    k = cand(4, 2, 10, 0.05, 0.2, 1e-5)                                 # r_up = 80, r_low = 4/0.15
    sc = Autoscaler(cluster, PolicyConfig(system="openfaas"), [[k]], np.array([100.0]), cold_start_s=1.0)
    d = sc.tick(0, np.array([200.0]), warm_now=True)                    # needs ceil(200/80) = 3
    assert len(d.placed) == 3 and cluster.used() == (6, 30)
    assert all(i.ready_ns == 0 for i in d.placed)
    d = sc.tick(10**9, np.array([300.0]))                               # residual 60 -> one more, cold
    assert len(d.placed) == 1 and d.placed[0].ready_ns == 2 * 10**9
    sc.validate()
    # 4 x 80 = 320; without one, 240 at alpha = 192: R = 150 releases one, R = 200 keeps them
    assert not sc.tick(2 * 10**9, np.array([200.0])).released
    d = sc.tick(3 * 10**9, np.array([150.0]))
    assert len(d.released) == 1 and len(sc.members[0]) == 3
    assert 150 < ALPHA * 4 * 80
    sc.validate()


def test_cluster_refuses_an_overfull_slot_and_counts_fragments():
    c = Cluster(ClusterConfig(nodes=1, slots_per_node=1, threads_per_slot=20))
    a = c.place(0, InstanceConfig(1, 16, 50), 0, 0)
    with pytest.raises(ValueError, match="does not fit"):
        c.place(0, InstanceConfig(1, 8, 10), 0, 0)
    assert c.fragment_ratio() == pytest.approx((4 / 20 + 50 / 100) / 2)
    c.release(a.iid)
    assert c.fragment_ratio() == 0.0
    c.validate()
