"""The serving simulation never loses or duplicates a request, is deterministic with the
seed, and is bit-identical on both transports."""
from __future__ import annotations

import numpy as np
import pytest

from sls_ray.api import load_config, simulate
from sls_ray.infless.cluster import ClusterConfig
from sls_ray.infless.cop import ProfileDB
from sls_ray.infless.scheduler import PolicyConfig
from sls_ray.infless.serving import FunctionLoad, ServingConfig, simulate_serving
from sls_ray.infless.streams import rate_series


def _loads(rate):
    return [FunctionLoad("mobilenet", 0.2, rate_series("bursty", rate, 40, 1)),
            FunctionLoad("lstm", 0.1, rate_series("sporadic", rate, 40, 2)),
            FunctionLoad("resnet50", 0.3, rate_series("periodic", rate, 40, 3))]


@pytest.mark.parametrize("system", ["infless", "batch", "openfaas"])
def test_arrived_equals_served_plus_dropped_per_function_at_every_interval(system):
    # check=True asserts arrived = served + dropped + queued per function after every interval;
    # a small cluster under heavy load forces drops, cold starts and releases
    r = simulate_serving(_loads(900.0), PolicyConfig(system=system), ServingConfig(duration_s=40), ProfileDB.load(),
                         ClusterConfig(nodes=1, slots_per_node=2), seed=4, check=True)
    f = r.functions
    assert (f.arrived == f.served + f.dropped).all()          # after the final drain nothing is queued
    assert f.dropped.sum() > 0 and f.served.sum() > 0
    assert (f.within_slo <= f.served).all()


def test_same_seed_same_latencies_other_seed_other_arrivals():
    db = ProfileDB.load()
    run = lambda seed: simulate_serving(_loads(200.0), PolicyConfig(), ServingConfig(duration_s=40), db,  # noqa: E731
                                        seed=seed)
    a, b, c = run(1), run(1), run(2)
    assert a.functions.equals(b.functions) and a.timeline.equals(b.timeline)
    assert not a.functions.arrived.equals(c.functions.arrived)


def test_infless_batches_and_meets_the_slo_at_light_load():
    r = simulate_serving(_loads(100.0), PolicyConfig(), ServingConfig(duration_s=40), ProfileDB.load(), seed=0)
    assert r.functions.within_slo.sum() / r.functions.arrived.sum() > 0.95
    sizes = np.nonzero(r.batch_sizes)[0]
    assert sizes.max() > 1                                     # non-uniform batches, not one request each
    o = simulate_serving(_loads(100.0), PolicyConfig(system="openfaas"), ServingConfig(duration_s=40),
                         ProfileDB.load(), seed=0)
    assert np.nonzero(o.batch_sizes)[0].tolist() == [1]


def _cfg(transport):
    return load_config(data={"experiment": "infless", "seed": 0, "run": {"transport": transport},
                             "params": {"duration_s": 20, "load_rps": 300, "pattern": "bursty"}})


def test_the_experiment_run_is_deterministic_in_process():
    a, b = simulate(_cfg("local")), simulate(_cfg("local"))
    assert a.summary["status"] == "ok"
    assert a.summary["trace_hash"] == b.summary["trace_hash"]
    assert a.tables["functions"].equals(b.tables["functions"])
    assert a.summary["infless"]["arrived"] == a.tables["functions"].arrived.sum()


@pytest.mark.ray
def test_same_seed_same_latencies_on_both_transports(ray_session):
    local, remote = simulate(_cfg("local")), simulate(_cfg("ray"))
    assert remote.summary["status"] == "ok"
    assert remote.summary["trace_hash"] == local.summary["trace_hash"]
    assert remote.tables["functions"].equals(local.tables["functions"])


@pytest.mark.parametrize("name", ["serving", "throughput", "coldstart", "cop", "large_scale"])
def test_every_shipped_config_runs_in_tiny_mode(name):
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "configs" / "infless" / f"{name}.yaml"
    cfg = load_config(str(path), ["params.duration_s=5", "params.load_rps=200", "params.trace_functions=10",
                                  "params.trace_days=1"])
    r = simulate(cfg)
    assert r.summary["status"] == "ok"
    assert r.summary["infless"]
    assert r.tables


def test_azure_pattern_replays_a_trace_file_scaled_to_the_load(tmp_path):
    from sls_ray.infless.experiment import InflessParams, _loads
    from sls_ray.infless.streams import generate_azure, write_azure

    counts, triggers = generate_azure(50, 1, 7)
    write_azure(tmp_path / "day.csv", counts, triggers)
    p = InflessParams(pattern="azure", azure_trace=str(tmp_path / "day.csv"), load_rps=500, duration_s=180).model_dump()
    loads = _loads(p)
    assert len(loads) == 5
    assert sum(ld.rates.mean() for ld in loads) == pytest.approx(500)
    busiest = np.argsort(-counts.sum(axis=1), kind="stable")[0]
    shape = np.repeat(counts[busiest, :3].astype(float), 60) + 1e-9      # minute counts, held per second
    assert loads[0].rates == pytest.approx(shape * 100 / shape.mean())
