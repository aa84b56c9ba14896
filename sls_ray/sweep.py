"""Parameter sweeps: one run per grid point, points in parallel as Ray tasks, resumable.

A point is finished once its ``summary.json`` exists (written last, atomically), so a sweep
that was interrupted reruns only the points that did not finish. ``sweep.csv`` joins every
point's parameters and summary, one row per point.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import shutil
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import yaml

from sls_ray.config import apply_set, load_config, parse_set, read_yaml
from sls_ray.errors import ConfigError
from sls_ray.results import (
    SUMMARY,
    check_out,
    flatten_summary,
    is_finished,
    jsonable,
    read_summary,
    write_csv,
    write_json,
    write_run,
)


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """``--grid KEY=V1,V2`` or ``--grid 'KEY=[V1, V2]'`` (a YAML list) -> {key: values}."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        path, value = parse_set(item, flag="--grid")
        raw = item.split("=", 1)[1]
        if isinstance(value, list):
            values = value
        elif raw.strip().startswith(("[", "{")):
            raise ConfigError(f"--grid {item!r}: the values must be a list, e.g. --grid 'workers=[1, 2, 4]' "
                              f"or --grid workers=1,2,4")
        else:
            try:
                values = [yaml.safe_load(v) for v in raw.split(",") if v.strip()]
            except yaml.YAMLError:
                raise ConfigError(f"--grid {item!r}: a value in {raw!r} is not valid YAML; write e.g. "
                                  f"--grid workers=1,2,4") from None
        if not values:
            raise ConfigError(f"--grid {item!r}: no values; write e.g. --grid workers=1,2,4")
        key = grid_key(".".join(path))
        if key in grid:
            raise ConfigError(f"--grid {item!r}: '{key}' is already swept by another --grid; give each key once")
        grid[key] = values
    return grid


def config_grid(where: str, section: Any) -> dict[str, list[Any]]:
    """A config's ``sweep:`` section as a grid; every key needs a non-empty list of values."""
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: sweep: must map keys to lists of values, e.g. sweep: {{workers: [1, 2, 4]}}")
    grid = {}
    for key, values in section.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: sweep.{key}: needs a non-empty list of values, e.g. [1, 2, 4] "
                              f"(got {values!r})")
        grid[grid_key(str(key))] = values
    return grid


def grid_key(key: str) -> str:
    """Bare names are experiment parameters (``workers`` means ``params.workers``), except the
    config's own top-level keys: ``--grid seed=0,1,2`` sweeps the run seed."""
    from sls_ray.config import ExperimentConfig

    return key if "." in key or key in ExperimentConfig.model_fields else f"params.{key}"


def expand(raw: dict, grid: dict[str, list[Any]]) -> list[tuple[dict, dict]]:
    """Every combination: (point's config data, {grid key: value})."""
    keys = list(grid)
    points = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        data = raw
        for k, v in zip(keys, combo):
            data = apply_set(data, k.split("."), v)
        points.append((data, dict(zip(keys, combo))))
    return points


POINT = "point.json"  # the point's own config data: a finished directory counts only for the same point


def _run_point(data: dict, out: str, result=None, address: str | None = None) -> dict:
    """Run a point (or take its ``result``, computed on a cluster node) and write its directory.

    ``address``: the cluster a point on the Ray transport spreads its hosts over.
    """
    out_dir = Path(out)
    (out_dir / SUMMARY).unlink(missing_ok=True)  # a stale summary must not mark this point finished
    if result is None:
        cfg = load_config(data=data)
        if address is not None:
            cfg.run.address = address
        result = _simulate_point(cfg)
    write_run(out_dir, result, extra={POINT: data})  # the point's directory is replaced whole
    return result.summary


def _simulate_point(cfg):
    """A point's RunResult, without its experiment object (it crosses processes as a Ray task's value)."""
    from sls_ray.runtime import simulate

    result = simulate(cfg)
    result.experiment = None
    return result


def _simulate_on_node(cfg):
    """A point run as a Ray task; the node it ran on joins the summary's nondeterministic block."""
    import ray

    result = _simulate_point(cfg)
    result.summary["nondeterministic"]["node"] = ray.get_runtime_context().get_node_id()
    return result


def config_hash(resolved: Any) -> str:
    """A stable digest of a resolved config: equal iff the run would be the same run."""
    text = json.dumps(resolved, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def point_finished(point_dir: Path, data: dict, resolved: dict) -> bool:
    """summary.json exists (written last) and the directory holds this very point: the same
    config data (not a point of an earlier sweep with another grid) resolved to the same run (not
    one made before an edit to a platform profile the data names by path, or a new default)."""
    if not is_finished(point_dir) or not (point_dir / POINT).exists():
        return False
    if json.loads((point_dir / POINT).read_text()) != json.loads(json.dumps(data, default=jsonable)):
        return False
    written = point_dir / "config.yaml"
    return written.exists() and config_hash(yaml.safe_load(written.read_text())) == config_hash(resolved)


def run_sweep(config_path: str, grid_items: list[str], sets: list[str], out: Path,
              on_point: Callable[[int, int], None] | None = None, parallel: bool = True,
              address: str | None = None) -> pd.DataFrame:
    """Run every point not finished yet and join them into sweep.csv.

    Points on the local transport run as Ray tasks (one CPU each) on a local instance, or,
    with ``address``, spread over that cluster's nodes; their results come back to this
    process, which writes every directory (no shared filesystem needed). Points on the Ray
    transport run one after another, each spreading its hosts over the cluster.
    """
    raw = read_yaml(Path(config_path))
    for item in sets:
        k, v = parse_set(item)
        raw = apply_set(raw, k, v)
    grid = parse_grid(grid_items) if grid_items else config_grid(config_path, raw.get("sweep"))
    if not grid:
        raise ConfigError(f"{config_path}: nothing to sweep; pass --grid KEY=V1,V2 or add a 'sweep:' section")
    points = expand(raw, grid)
    from sls_ray.runtime import build, resolved_config

    resolved_configs = []
    for data, _ in points:  # validate every point before running any
        cfg = load_config(data=data)
        resolved_configs.append(resolved_config(cfg, *build(cfg)))
    check_out(out, sweep=True)
    out.mkdir(parents=True, exist_ok=True)
    # nothing of an earlier sweep may be read as this one's: its sweep.csv goes now (rewritten at the
    # end), points beyond this grid go, and a kept point reruns unless it holds the very same point
    (out / "sweep.csv").unlink(missing_ok=True)
    for stale in out.glob("point-*"):
        if stale.is_dir() and stale.name not in {f"point-{i:03d}" for i in range(len(points))}:
            shutil.rmtree(stale)
    write_json(out / "grid.json", grid)
    dirs = [out / f"point-{i:03d}" for i in range(len(points))]
    todo = [i for i in range(len(points)) if not point_finished(dirs[i], points[i][0], resolved_configs[i])]
    done = len(points) - len(todo)
    if on_point:
        on_point(done, len(points))
    if todo:
        use_ray = parallel and (address is not None or len(todo) > 1) and all(
            p[0].get("run", {}).get("transport", "local") == "local" for p in points)
        if use_ray:
            import ray

            from sls_ray.actors.ray_session import ensure_ray

            ensure_ray(address)
            task = ray.remote(num_cpus=1, max_retries=0, scheduling_strategy="SPREAD")(_simulate_on_node)
            pending = {task.remote(load_config(data=points[i][0])): i for i in todo}
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    i = pending.pop(ref)
                    _run_point(points[i][0], str(dirs[i]), ray.get(ref))
                    done += 1
                    if on_point:
                        on_point(done, len(points))
        else:
            for i in todo:
                _run_point(points[i][0], str(dirs[i]), address=address)
                done += 1
                if on_point:
                    on_point(done, len(points))
    rows = []
    for (_, values), d in zip(points, dirs):
        resolved = yaml.safe_load((d / "config.yaml").read_text())
        row = flatten_summary(read_summary(d), resolved["params"])
        for k, v in values.items():
            row.setdefault(k, v)
        row["point"] = d.name
        rows.append(row)
    df = pd.DataFrame(rows)
    write_csv(out / "sweep.csv", df)
    return df
