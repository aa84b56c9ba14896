"""Cirrus's hyperparameter search (Cirrus §3, "tune"): many tasks at once, watched live, pruned.

Every configuration of the Cartesian product is a full training task with its own backend
and its own parameter server (a process on its own VM instance); all run concurrently, as
Cirrus's ``GridSearch`` launches them. The grid driver (on the user's machine) reads each
task's latest test loss as its backend publishes it and applies the **median stopping rule**
(Google Vizier's): at every check, once a task has trained ``min_s``, it is stopped if its
latest loss is worse than the median of the latest losses of every task still running.
Stopped tasks release their workers and parameter server, which is where the sweep's cost
goes down.
"""
from __future__ import annotations

import itertools
from typing import Any

import numpy as np

#: task parameters a grid may vary (the payload's names)
GRID_KEYS = {"learning_rate", "minibatch_size", "opt_method", "epsilon", "n_workers", "momentum"}


def grid_configs(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The Cartesian product, in a fixed order (keys sorted, values as given)."""
    bad = sorted(set(grid) - GRID_KEYS)
    if bad:
        raise ValueError(f"grid: cannot vary {bad}; allowed: {sorted(GRID_KEYS)}")
    keys = sorted(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def task_prefix(i: int) -> str:
    return f"t{i:02d}/"


def median_rule(latest: dict[str, tuple[float, float]], running: set[str], min_s: float) -> list[str]:
    """Tasks to stop: trained >= min_s and latest loss above the running tasks' median loss.

    ``latest``: task -> (elapsed_s, loss). Pure: tested directly.
    """
    live = [t for t in sorted(running) if t in latest]
    if len(live) < 2:
        return []
    median = float(np.median([latest[t][1] for t in live]))
    return [t for t in live if latest[t][0] >= min_s and latest[t][1] > median]


def grid_driver(ctx, args: dict) -> dict:
    """Start every configuration's backend, watch their losses, stop the bad ones (if enabled)."""
    base, configs = args["base"], args["configs"]
    control = ctx.storage("client")
    tasks = []
    for i, overrides in enumerate(configs):
        prefix = task_prefix(i)
        ctx.start_vm_process("backend", {**base, **overrides, "task_prefix": prefix, "grid": True}, service="client")
        tasks.append(prefix)
    running, stopped = set(tasks), []
    while running:
        ctx.sleep(args["check_s"])
        got = control.mget([f"{t}value" for t in tasks] + [f"{t}done" for t in tasks])
        for t in list(running):
            if f"{t}done" in got:
                running.discard(t)
        if args["early_stop"]:
            latest = {t: got[f"{t}value"] for t in running if f"{t}value" in got}
            for t in median_rule(latest, running, args["min_s"]):
                control.put(f"{t}stop", True)
                running.discard(t)
                stopped.append(t)
                ctx.log("grid_stop", task=t, elapsed_s=latest[t][0], value=latest[t][1])
    ctx.log("grid_done", stopped=len(stopped), tasks=len(tasks))
    return {"stopped": stopped}
