"""The workflow API as Cirrus users wrote it (Cirrus §3): tasks, ``run()``, ``GridSearch``.

    lr = LogisticRegression(n_workers=10, n_ps=1, worker_size=128, epsilon=1e-4,
                            model_size=2**19, learning_rate=0.1, minibatch_size=20,
                            opt_method="adagrad", train_set=(0, 6), test_set=(6, 7), timeout=60)
    curve = lr.run()                        # test loss over training time (a DataFrame)
    gs = GridSearch(lr, {"learning_rate": [0.01, 0.05, 0.2], "minibatch_size": [20, 200]})
    gs.run(); gs.get_top(2)

Each ``run`` is one simulation of the ``cirrus`` experiment kind on the Cirrus platform
profile; ``task.result`` keeps the whole ``RunResult`` (summary with cost, CSV tables).
Object ranges (``train_set``/``test_set``) count ~50,000-row objects, as ``load_libsvm``
made them; ``timeout`` is the training budget in virtual seconds.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from sls_ray.api import RunResult, load_config, simulate
from sls_ray.cirrus import data as d

PROFILE = str(Path(__file__).resolve().parents[2] / "configs" / "cirrus" / "platform.yaml")


class Task:
    workload = "lr"

    def __init__(self, *, seed: int = 0, profile: dict | None = None, **params: Any) -> None:
        self.params = {"workload": self.workload, **params}
        self.seed = seed
        self.profile = profile or {}
        self.result: RunResult | None = None

    def config(self, **extra: Any) -> dict:
        return {"experiment": "cirrus", "seed": self.seed, "platform": PROFILE, "profile": self.profile,
                "params": {**self.params, **extra}}

    def run(self) -> pd.DataFrame:
        """Train; the loss (LR) or RMSE (MF) curve over training time."""
        self.result = simulate(load_config(data=self.config()))
        return self.result.tables.get("curve", pd.DataFrame())

    @property
    def cost_usd(self) -> float:
        if self.result is None:
            raise RuntimeError("run() the task first")
        return float(self.result.summary["cost_usd"]["total"])


def _ranges(train_set: tuple[int, int], test_set: tuple[int, int], object_rows: int) -> dict:
    for name, (lo, hi) in (("train_set", train_set), ("test_set", test_set)):
        if not 0 <= lo < hi:
            raise ValueError(f"{name}={(lo, hi)}: need 0 <= start < end (object indices)")
    return {"rows": (train_set[1] - train_set[0]) * object_rows, "test_rows": (test_set[1] - test_set[0]) * object_rows,
            "object_rows": object_rows}


class LogisticRegression(Task):
    """Sparse logistic regression on Criteo-shaped data (Cirrus's LR task)."""

    workload = "lr"

    def __init__(self, n_workers: int = 10, n_ps: int = 1, worker_size: int = 128, epsilon: float = 1e-4,
                 model_size: int = 1 << d.MODEL_BITS, learning_rate: float = 0.1, minibatch_size: int = 20,
                 opt_method: str = "adagrad", train_set: tuple[int, int] = (0, 6), test_set: tuple[int, int] = (6, 7),
                 timeout: float = 60.0, object_rows: int = d.OBJECT_ROWS, **knobs: Any) -> None:
        bits = model_size.bit_length() - 1
        if 1 << bits != model_size:
            raise ValueError(f"model_size={model_size} must be a power of two (features hash into 2^bits)")
        super().__init__(n_workers=n_workers, n_ps=n_ps, worker_size=worker_size, epsilon=epsilon, model_bits=bits,
                         learning_rate=learning_rate, minibatch_size=minibatch_size, opt_method=opt_method,
                         train_s=timeout, **_ranges(train_set, test_set, object_rows), **knobs)


class CollaborativeFiltering(Task):
    """Matrix factorisation on Netflix-shaped data (Cirrus's CF task, 10 factors with biases)."""

    workload = "mf"

    def __init__(self, n_workers: int = 10, n_ps: int = 1, worker_size: int = 128, learning_rate: float = 0.05,
                 minibatch_size: int = 1000, users: int = 20_000, items: int = 2_000, ratings: int = 600_000,
                 factors: int = d.MF_FACTORS, timeout: float = 60.0, **knobs: Any) -> None:
        super().__init__(n_workers=n_workers, n_ps=n_ps, worker_size=worker_size, learning_rate=learning_rate,
                         minibatch_size=minibatch_size, n_users=users, n_items=items, n_ratings=ratings,
                         factors=factors, train_s=timeout, **knobs)


class GridSearch:
    """Every configuration of ``hyper_params`` trains concurrently, each with its own PS; bad ones
    are stopped by the median stopping rule (grid.py) unless ``early_stop=False``."""

    def __init__(self, task: Task, hyper_params: dict[str, list[Any]], early_stop: bool = True,
                 check_s: float = 2.0, min_s: float = 4.0) -> None:
        self.task, self.hyper_params = task, dict(hyper_params)
        self.early_stop, self.check_s, self.min_s = early_stop, check_s, min_s
        self.result: RunResult | None = None

    def run(self) -> pd.DataFrame:
        """All configurations' curves (long format: one row per configuration and evaluation)."""
        profile = {**self.task.profile, "services": {"vm": {"nodes": None}}}  # a PS instance per configuration
        data = {**self.task.config(grid=self.hyper_params, early_stop=self.early_stop, grid_check_s=self.check_s,
                                   grid_min_s=self.min_s), "profile": profile}
        self.result = simulate(load_config(data=data))
        return self.result.tables["curve"]

    @property
    def cost_usd(self) -> float:
        if self.result is None:
            raise RuntimeError("run() the grid search first")
        return float(self.result.summary["cost_usd"]["total"])

    def get_top(self, n: int) -> pd.DataFrame:
        """The n configurations with the lowest final test loss (or RMSE)."""
        if self.result is None:
            raise RuntimeError("run() the grid search first")
        curve = self.result.tables["curve"]
        last = curve.sort_values("elapsed_s").groupby("config").tail(1)
        cols = ["config", *sorted(self.hyper_params), "value", "elapsed_s", "early_stopped", "cost_usd"]
        return last.sort_values(["value", "config"])[cols].head(n).reset_index(drop=True)
