"""The run's seed (the config's top-level ``seed``) reaches the experiment object: a system
needs no ``params.seed`` of its own (sls_ray/experiment.py, ``Experiment.create``)."""
from __future__ import annotations

from sls_ray.api import Experiment, load_config
from sls_ray.runtime import build


def test_the_config_seed_is_the_experiments_seed():
    exp, _ = build(load_config(data={"experiment": "allreduce", "seed": 7}))
    assert exp.seed == 7
    exp, _ = build(load_config(data={"experiment": "allreduce"}))
    assert exp.seed == 0


def test_the_seed_is_set_before_init_runs():
    seen = []

    class Seeded(Experiment):
        def __init__(self, params, profile) -> None:
            super().__init__(params, profile)
            seen.append(self.seed)  # e.g. generating the inputs

        def handlers(self):
            return {}

        def entry(self):
            return ("main", None)

    exp = Seeded.create(None, None, seed=42)
    assert seen == [42] and exp.seed == 42
    assert Seeded(None, None).seed == 0, "built directly (tests), the seed is the default"


def test_a_grid_over_seed_sweeps_the_run_seed_not_a_parameter():
    from sls_ray.sweep import grid_key, parse_grid

    assert parse_grid(["seed=1,2"]) == {"seed": [1, 2]}
    assert parse_grid(["workers=1,2"]) == {"params.workers": [1, 2]}
    assert grid_key("platform") == "platform" and grid_key("params.seed") == "params.seed"
