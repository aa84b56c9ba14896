"""The public API: everything handler code, paper systems and scripts may import.

Paper systems (``sls_ray/<system>/``) and ``experiments/`` import from here and nowhere else
in the core, so the core can be reorganised without breaking them (issue 9). A name not
listed in ``__all__`` is private to the core.
"""
from __future__ import annotations

from sls_ray.collectives import COLLECTIVES, ArrayChannel, allreduce, scatter_reduce
from sls_ray.collectives import gather_sum, input_key, merged_key, part_bounds, part_key, reduced_key, result_keys
from sls_ray.collectives import Pattern as CollectivePattern
from sls_ray.config import ExperimentConfig, load_config, load_profile
from sls_ray.context import FunctionContext, Pending
from sls_ray.errors import (
    ConfigError,
    FunctionEnded,
    FunctionError,
    FunctionKilled,
    FunctionTimeout,
    ItemTooLarge,
    KeyNotFound,
    MemoryLimitExceeded,
    NotSupported,
    PayloadTooLarge,
    PlatformError,
    QueueError,
    Throttled,
    WaitTimeout,
)
from sls_ray.experiment import EXPERIMENTS, Experiment, experiment_class
from sls_ray.harness import (
    FIGURE_MODULES, Figure, SweepRun, SweepSpec, load_figures, plot_figure, run_figure, script_main, select_figures,
)
from sls_ray.payload import Sized
from sls_ray.platform import PlatformProfile, Strict
from sls_ray.plotting import overlay_paper, pyplot, save_png
from sls_ray.results import is_finished, read_summary, write_csv, write_json
from sls_ray.runtime import RunResult, StoredObjects, simulate, simulate_handlers
from sls_ray.errors import InvalidParameterValue  # noqa: E402,I001  (issue 8: appended, not reordered)
# serving as data (issue 10): batch queues in lock step and streaming latency histograms
from sls_ray.storage.requests import BatchRun, LatencyHistogram, serve_batches

__all__ = [
    "COLLECTIVES", "ArrayChannel", "allreduce", "scatter_reduce",
    "ExperimentConfig", "load_config", "load_profile",
    "FunctionContext", "Pending",
    "ConfigError", "FunctionEnded", "FunctionError", "FunctionKilled", "FunctionTimeout",
    "ItemTooLarge", "KeyNotFound", "MemoryLimitExceeded", "NotSupported", "PayloadTooLarge",
    "PlatformError", "QueueError", "Throttled", "WaitTimeout",
    "EXPERIMENTS", "Experiment", "experiment_class",
    "Sized",
    "PlatformProfile", "Strict",
    "is_finished", "read_summary", "write_csv", "write_json",
    "RunResult", "StoredObjects", "simulate", "simulate_handlers",
    "InvalidParameterValue",
    # the figure harness (sls_ray/harness.py) and plotting (sls_ray/plotting.py)
    "FIGURE_MODULES", "Figure", "SweepRun", "SweepSpec", "load_figures", "plot_figure", "run_figure",
    "script_main", "select_figures", "overlay_paper", "pyplot", "save_png",
    "BatchRun", "LatencyHistogram", "serve_batches",
    "gather_sum", "input_key", "merged_key", "part_bounds", "part_key", "reduced_key", "result_keys",
    "CollectivePattern",
]
