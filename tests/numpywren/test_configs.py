"""Every shipped NumPyWren config validates, starts with the command that runs it, and runs in tiny mode."""
from __future__ import annotations

from pathlib import Path

import pytest

from sls_ray.config import load_config
from sls_ray.runtime import build, simulate

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs" / "numpywren").glob("*.yaml"))


def test_there_is_a_config_per_reproduced_figure():
    names = {p.stem for p in CONFIGS}
    assert {"systems", "size_scaling", "strong_scaling", "weak_scaling", "profile", "faults", "autoscale",
            "pipeline"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_each_config_runs_in_tiny_mode(path):
    first = path.read_text().splitlines()[0]
    assert first.startswith("# sls-ray ") or first.startswith("# python "), first
    cfg = load_config(path, ["params.blocks=3", "params.baselines=false", "params.max_executors=3"])
    build(cfg)
    r = simulate(cfg)
    assert r.summary["status"] == "ok" and r.summary["correct"], r.invocations["error"].tolist()
