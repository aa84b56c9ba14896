"""The shipped LambdaML configs run, and a small channel table keeps the seed's sides of 1 (LambdaML §5)."""
from __future__ import annotations

from pathlib import Path

import pytest

from sls_ray.config import load_config, load_profile, read_yaml
from sls_ray.errors import ConfigError
from sls_ray.lambdaml.analytical import predict
from sls_ray.lambdaml.experiment import LambdaMLExperiment, LambdaMLParams
from sls_ray.runtime import build, simulate
from sls_ray.sweep import expand, grid_key

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "lambdaml"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_lambdaml_config_starts_with_its_command_and_every_sweep_point_validates(path):
    first = path.read_text().splitlines()[0]
    assert first.startswith("# sls-ray ") and path.name in first
    raw = read_yaml(path)
    points = expand(raw, {grid_key(k): v for k, v in raw.get("sweep", {}).items()}) or [(raw, {})]
    for data, _ in points:
        exp, profile = build(load_config(data=data))
        assert exp.payload["steps_per_epoch"] >= 1


def test_lr_higgs_w10_channel_table_keeps_the_seeds_sides_of_one():
    """Memcached and VM-PS cost more and take longer than S3 end to end (their node's start-up and
    idle billing); DynamoDB is cheaper and faster."""
    out = {}
    for channel in ("s3", "memcached", "dynamodb", "vm"):
        r = simulate(load_config(CONFIGS / "channels_lr.yaml", [f"params.channel={channel}", "params.workers=10"]))
        assert r.summary["status"] == "ok" and r.summary["epochs_run"] == 10
        out[channel] = (r.summary["makespan_s"], r.summary["cost_usd"]["total"])
    t0, c0 = out["s3"]
    for channel in ("memcached", "vm"):
        assert out[channel][0] > 2 * t0 and out[channel][1] > 2 * c0
    assert out["dynamodb"][0] < t0 and out["dynamodb"][1] < c0


def test_an_iaas_cluster_with_a_fixed_size_must_match_the_workers():
    profile = load_profile("aws_2020_lambdaml", {"services": {"cluster": {"nodes": 4}}})
    with pytest.raises(ConfigError, match="nodes=4 but params.workers=5"):
        LambdaMLExperiment(LambdaMLParams(workers=5, deployment="iaas"), profile)


@pytest.mark.parametrize("deployment,channel", [("faas", "s3"), ("faas", "memcached"), ("iaas", "s3")])
def test_the_analytical_model_is_within_a_quarter_of_the_simulator(deployment, channel):
    params = {"model": "lr", "workers": 5, "epochs": 8, "algorithm": "ma_sgd", "deployment": deployment,
              "channel": channel, "log_rounds": False}
    r = simulate(load_config(data={"experiment": "lambdaml", "platform": "aws_2020_lambdaml", "params": params}))
    exp, profile = build(load_config(data={"experiment": "lambdaml", "platform": "aws_2020_lambdaml",
                                           "params": params}))
    pred = predict(exp.payload, profile, 8)
    assert pred["time_s"] == pytest.approx(r.summary["makespan_s"], rel=0.25)
    assert pred["cost_usd"] == pytest.approx(r.summary["cost_usd"]["total"], rel=0.25)


def test_an_unknown_param_or_a_mismatched_model_is_a_config_error_naming_it():
    with pytest.raises(ConfigError, match="params.wrokers"):
        build(load_config(data={"experiment": "lambdaml", "params": {"wrokers": 3}}))
    with pytest.raises(ConfigError, match="k-means"):
        build(load_config(data={"experiment": "lambdaml", "params": {"model": "kmeans", "algorithm": "ga_sgd"}}))
    with pytest.raises(ConfigError, match="ADMM|admm"):
        build(load_config(data={"experiment": "lambdaml",
                                "params": {"model": "mobilenet", "dataset": "cifar10", "algorithm": "admm"}}))
