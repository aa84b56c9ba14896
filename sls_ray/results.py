"""The result directory, the project's public interface (README, "Result directory").

Every file is written to a temporary name and renamed into place, so an interrupted run
never leaves a half-written file; ``summary.json`` is written last and marks a finished run,
which is how an interrupted sweep knows which points to skip.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

SUMMARY = "summary.json"


def atomic_write(path: Path, data: bytes | str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_csv(path: Path, df: pd.DataFrame) -> None:
    atomic_write(path, df.to_csv(index=False))


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, json.dumps(data, indent=2, sort_keys=True, default=_jsonable) + "\n")


def _jsonable(x: Any) -> Any:
    if hasattr(x, "item"):
        return x.item()
    return str(x)


def write_run(out: Path, result) -> Path:
    """Write one run's directory; summary.json last."""
    out = Path(out)
    atomic_write(out / "config.yaml", yaml.safe_dump(result.config, sort_keys=False))
    write_csv(out / "invocations.csv", result.invocations)
    write_csv(out / "storage.csv", result.storage)
    if not result.metrics.empty:
        write_csv(out / "metrics.csv", result.metrics)
    for name, df in result.tables.items():
        write_csv(out / f"{name}.csv", df)
    write_json(out / SUMMARY, result.summary)
    return out


def is_finished(point_dir: Path) -> bool:
    return (Path(point_dir) / SUMMARY).exists()


def read_summary(point_dir: Path) -> dict:
    return json.loads((Path(point_dir) / SUMMARY).read_text())


def flatten_summary(summary: dict, params: dict) -> dict:
    """One sweep.csv row: the point's parameters plus its summary, nested keys joined by '.'."""
    row = {f"params.{k}": v for k, v in params.items()}
    flat = pd.json_normalize({k: v for k, v in summary.items() if k not in ("notes", "deadlock")}, sep=".")
    row.update(flat.iloc[0].to_dict())
    return row
