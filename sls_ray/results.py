"""The result directory, the project's public interface (README, "Result directory").

Every file is written to a temporary name and renamed into place, so an interrupted run
never leaves a half-written file; ``summary.json`` is written last and marks a finished run,
which is how an interrupted sweep knows which points to skip.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

SUMMARY = "summary.json"


def _umask() -> int:
    with _UMASK_LOCK:  # os.umask can only be read by setting it
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


_UMASK_LOCK = threading.Lock()


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write ``path`` through a temporary file and a rename; the file gets the mode a plain
    ``open`` would give it (0666 less the umask: 0644 by default), not mkstemp's 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            os.fchmod(f.fileno(), 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_csv(path: Path, df: pd.DataFrame) -> None:
    atomic_write(path, df.to_csv(index=False))


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, json.dumps(data, indent=2, sort_keys=True, default=jsonable) + "\n")


def jsonable(x: Any) -> Any:
    if hasattr(x, "item"):
        return x.item()
    return str(x)


def write_run(out: Path, result, extra: dict[str, Any] | None = None) -> Path:
    """Write one run's directory whole: built beside ``out``, then moved into its place.

    The files go to a temporary sibling directory (summary.json last) that is renamed to
    ``out``; an earlier run's directory there is moved away first and then removed, so no
    file of it (a metrics.csv this run does not write) can be read beside this run's summary.
    Only a directory ``check_out`` accepts is ever replaced. ``extra``: more JSON files
    (name -> data) that belong to the run, written before its summary.
    """
    out = Path(out)
    check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.building."))
    try:
        os.chmod(build, 0o777 & ~_umask())
        atomic_write(build / "config.yaml", yaml.safe_dump(result.config, sort_keys=False))
        write_csv(build / "invocations.csv", result.invocations)
        write_csv(build / "storage.csv", result.storage)
        if not result.metrics.empty:
            write_csv(build / "metrics.csv", result.metrics)
        for name, df in result.tables.items():
            write_csv(build / f"{name}.csv", df)
        for name, data in (extra or {}).items():
            write_json(build / name, data)
        write_json(build / SUMMARY, result.summary)
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old.")) / out.name
            os.replace(out, old)
        os.replace(build, out)
        if old is not None:
            shutil.rmtree(old.parent)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    return out


#: what a run directory holds besides its tables: a directory with other files is not replaced
RUN_FILES = frozenset({"config.yaml", SUMMARY, "invocations.csv", "storage.csv", "metrics.csv", "point.json"})


def check_out(out: Path, sweep: bool = False) -> None:
    """Refuse an output directory before anything runs (ConfigError, exit 2) when results could
    not be written there or would mix with, or replace, something that is not a result.

    Accepted: a path that does not exist yet (under a writable directory), an empty directory,
    or an earlier result directory of the same kind (a run's: config.yaml and CSVs or PNGs
    only; a sweep's: grid.json, sweep.csv, point-* directories and PNGs).
    """
    from sls_ray.errors import ConfigError

    out = Path(out)
    flag = f"--out {out}"
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{flag}: is a file, not a directory; pass a new or empty directory")
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"{flag}: '{parent}' is a file, so nothing can be created under it; pick another path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag}: '{parent}' is not writable; pick a directory you can write to")
    if parent != out or not any(out.iterdir()):
        return
    names = {p.name for p in out.iterdir() if not p.name.startswith(".")}
    if sweep:
        foreign = [n for n in names if not (n in ("grid.json", "sweep.csv") or n.startswith("point-")
                                            or n.endswith(".png"))]
        kind = "a sweep's"
    else:
        foreign = [n for n in names if not (n in RUN_FILES or n.endswith((".csv", ".png")))]
        if not foreign and "config.yaml" not in names:
            foreign = sorted(names)  # CSVs alone are someone's data, not a run of ours
        kind = "a run's"
    if foreign:
        raise ConfigError(f"{flag}: a non-empty directory that is not {kind} result directory (it holds "
                          f"{sorted(foreign)[:5]}); results would replace or mix with it. Pass a new or empty "
                          f"directory")
    if not os.access(out, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag}: not writable; pick a directory you can write to")


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
