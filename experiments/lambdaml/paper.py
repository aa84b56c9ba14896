"""The seed's LambdaML numbers, and the sweep runner the figure scripts share.

Numbers are from ../shared/papers/lambdaml.md ("Figures and tables to reproduce", [seed]).
Each script in this directory runs its configs with ``sls_ray.sweep.run_sweep`` (points in
parallel as Ray tasks), keeps the point directories under ``results/lambdaml/runs/`` (not
committed), and writes one long-format CSV and one PNG to ``results/lambdaml/``. Passing
``--plot-only`` redraws the PNG from the committed CSV without running anything.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import pandas as pd

from sls_ray.results import write_csv

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs" / "lambdaml"
RESULTS = ROOT / "results" / "lambdaml"

#: workload -> channel -> (cost relative to S3, slowdown relative to S3); None = N/A
CHANNEL_TABLE: dict[str, dict[str, tuple[float, float] | None]] = {
    "LR, Higgs, W=10": {"memcached": (5.0, 4.17), "dynamodb": (0.95, 0.83), "vm": (4.7, 3.85)},
    "LR, Higgs, W=50": {"memcached": (4.5, 3.70), "dynamodb": (0.92, 0.81), "vm": (4.47, 3.70)},
    "KMeans, Higgs, W=50, k=10": {"memcached": (1.58, 1.32), "dynamodb": (1.13, 0.93), "vm": (1.48, 1.23)},
    "KMeans, Higgs, W=50, k=1K": {"memcached": (1.43, 1.19), "dynamodb": (1.03, 0.90), "vm": (1.52, 1.27)},
    "MobileNet, Cifar10, W=10": {"memcached": (0.9, 0.77), "dynamodb": None, "vm": (4.8, 4.01)},
    "MobileNet, Cifar10, W=50": {"memcached": (0.89, 0.75), "dynamodb": None, "vm": (4.85, 4.03)},
}

#: workload -> (model bytes as the seed states it, AllReduce s/round, ScatterReduce s/round)
COMM_TABLE: dict[str, tuple[str, float, float]] = {
    "LR, Higgs, W=50": ("224B", 9.2, 9.8),
    "MobileNet, Cifar10, W=10": ("12MB", 3.3, 3.1),
    "ResNet, Cifar10, W=10": ("89MB", 17.3, 8.5),
}


def cli(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--plot-only", action="store_true", help="redraw the PNG from the committed CSV")
    parser.add_argument("--serial", action="store_true", help="run points one by one in this process")
    return parser.parse_args()


def sweep(config: str, sets: list[str] = (), grid: list[str] = (), serial: bool = False,
          name: str | None = None) -> pd.DataFrame:
    """Run one config's sweep from scratch; returns sweep.csv with a 'dir' column per point."""
    from sls_ray.sweep import run_sweep

    out = RESULTS / "runs" / (name or Path(config).stem)
    if out.exists():
        shutil.rmtree(out)  # a committed result must come from the committed config, not a stale point
    print(f"running {config} -> {out.relative_to(ROOT)}", file=sys.stderr, flush=True)
    df = run_sweep(str(CONFIGS / config), list(grid), list(sets), out, parallel=not serial)
    df["dir"] = [str(out / p) for p in df["point"]]
    return df


def point_table(df: pd.DataFrame, name: str) -> pd.DataFrame:
    """Every point's ``name``.csv, concatenated (each row already carries its parameters)."""
    frames = [pd.read_csv(Path(d) / name) for d in df["dir"] if (Path(d) / name).exists()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def epochs_of(df: pd.DataFrame) -> pd.DataFrame:
    return point_table(df, "epochs.csv")


def rounds_of(df: pd.DataFrame) -> pd.DataFrame:
    return point_table(df, "rounds.csv")


def save_figure(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_final_epochs(ep: pd.DataFrame, keys: list[str]) -> None:
    """The last epoch of each run: where each curve ended, in time, dollars and loss."""
    last = ep.sort_values("epoch").groupby(keys).tail(1)
    print(last[keys + ["epoch", "t_end", "cost_usd", "train_loss", "val_loss"]].round(4).to_string(index=False))


def within(ours: float, paper: float, tol: float = 0.25) -> bool:
    """Within ``tol`` of the seed's value and on the same side of 1."""
    return abs(ours / paper - 1.0) <= tol and (ours - 1.0) * (paper - 1.0) > 0


def save(df: pd.DataFrame, name: str) -> Path:
    path = RESULTS / name
    write_csv(path, df)  # atomic, as every result file
    print(f"wrote {path.relative_to(ROOT)}", file=sys.stderr)
    return path
