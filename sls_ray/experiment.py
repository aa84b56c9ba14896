"""Experiment kinds: the registry and the base class a paper system implements.

An experiment is a set of handlers plus an entry invocation, parameters as a pydantic
model, and what it adds to the result directory (extra CSVs and PNGs). Running and plotting
are separate steps: ``plot`` reads only the CSVs a run wrote (STYLE.md, "Experiments → CSV →
figures"). The core never imports a paper system; the registry names them by path.
"""
from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, ClassVar

import pandas as pd
from pydantic import BaseModel

from sls_ray.errors import ConfigError

#: experiment kind -> "module:Class"
EXPERIMENTS: dict[str, str] = {
    "allreduce": "sls_ray.quickstart:AllReduceExperiment",
    "lambdaml": "sls_ray.lambdaml.experiment:LambdaMLExperiment",
    "numpywren": "sls_ray.numpywren.experiment:NumPyWrenExperiment",
    "cirrus": "sls_ray.cirrus.experiment:CirrusExperiment",
    "infless": "sls_ray.infless.experiment:InflessExperiment",
}


def experiment_class(kind: str) -> type["Experiment"]:
    if kind not in EXPERIMENTS:
        raise ConfigError(f"experiment: unknown experiment '{kind}'; known experiments: {sorted(EXPERIMENTS)}")
    module, cls = EXPERIMENTS[kind].split(":")
    return getattr(importlib.import_module(module), cls)


class Experiment(ABC):
    """Base class; subclasses set ``Params`` and implement ``handlers`` and ``entry``."""

    name: ClassVar[str] = "experiment"
    description: ClassVar[str] = ""
    Params: ClassVar[type[BaseModel]]
    #: the run's seed (the config's top-level ``seed``), already set when ``__init__`` runs in a
    #: run (``create``): derive data and random streams from it instead of a ``params.seed``
    seed: int = 0

    def __init__(self, params: BaseModel, profile) -> None:
        self.params = params
        self.profile = profile

    @classmethod
    def create(cls, params: BaseModel, profile, seed: int) -> "Experiment":
        """The experiment of a run with this seed; ``self.seed`` is set before ``__init__`` runs,
        so a subclass may use it there (to generate its inputs) without taking a new argument."""
        exp = cls.__new__(cls)
        exp.seed = seed
        cls.__init__(exp, params, profile)
        return exp

    # -- what runs
    @abstractmethod
    def handlers(self) -> dict[str, Callable]:
        """Handler name -> module-level function ``fn(ctx, payload)``."""

    @abstractmethod
    def entry(self) -> tuple[str, Any]:
        """(handler, payload) the driver invokes asynchronously at t = 0."""

    def handler_memory(self) -> dict[str, int]:
        """Memory size (MB) per handler; unlisted handlers get the profile's default."""
        return {}

    def handler_timeout(self) -> dict[str, float]:
        return {}

    def required_services(self) -> list[str]:
        """Service names the experiment uses; a missing one is a config error naming it."""
        return []

    def reachable_services(self) -> list[str] | None:
        """Every service the functions may touch, or None for all of the profile's.

        Naming them provisions only those: the others are left out of the run, and the kernel's
        lookahead (the smallest one-way latency it must respect) comes from these alone — a run
        on S3 alone need not step in Memcached's quarter-millisecond windows. Virtual results do
        not change; only how many synchronisation windows the run needs (docs/design.md, §1).
        """
        return None

    def faults(self) -> list[dict]:
        """Extra fault specs the experiment adds to the config's own."""
        return []

    def preload(self) -> dict[str, dict[str, Any]]:
        """Objects already in storage at t = 0: service name -> {key: value}.

        For inputs prepared offline (LambdaML partitions its datasets into shards before any
        function runs): no request is billed for them, their bytes are billed as stored.
        """
        return {}

    # -- what it reports
    def check(self, stored) -> dict[str, Any]:
        """Summary fields from what storage holds at the end (``runtime.StoredObjects``).

        An oracle outside virtual time, for checking results against a reference without
        charging the run for reading them back (NumPyWren compares its factor with numpy).
        A ``"correct": False`` field marks the run ``failed`` (exit 1; README, "Statuses").
        """
        return {}

    def tables(self, result) -> dict[str, pd.DataFrame]:
        """Extra long-format CSVs for the result directory, built from the run's records."""
        return {}

    def summary_extra(self, result) -> dict[str, Any]:
        return {}

    @classmethod
    def plot(cls, result_dir: Path) -> list[Path]:
        """PNGs of one run, from its CSVs only."""
        return []

    @classmethod
    def plot_sweep(cls, sweep_dir: Path, sweep: pd.DataFrame) -> list[Path]:
        """PNGs of a sweep, from sweep.csv (and the points' CSVs)."""
        return []
