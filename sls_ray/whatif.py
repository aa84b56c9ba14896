"""Platform what-ifs: the same experiment under several platform profiles, side by side.

``sls-ray whatif CONFIG --profiles aws_2020,aws_2026`` runs the config's grid (``--grid`` or its
``sweep:`` section; one point when it has neither) once per profile, each profile into its own
sweep directory ``OUT/<profile>/`` through the sweep machinery (Ray tasks, resumable: a rerun
skips finished points), then joins them into ``OUT/whatif.csv`` (one row per profile and point,
the profile in column ``platform``) and draws ``OUT/whatif.png``. A profile may be a YAML path, as
a paper system's own profile is (``configs/cirrus/platform.yaml,configs/cirrus/platform_2026.yaml``):
its directory and column are then the ``name:`` inside the file. Nothing here knows a paper
system: any registered experiment (INFless and Cirrus once they land) works as it is.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pandas as pd
import yaml

from sls_ray.config import apply_set, load_config, load_profile, parse_set, read_yaml
from sls_ray.errors import ConfigError
from sls_ray.results import flatten_summary, read_summary, write_csv, write_run
from sls_ray.sweep import POINT, grid_key, point_finished, run_sweep

WHATIF = "whatif.csv"
#: the columns every what-if figure compares, with their axis labels
METRICS = {"makespan_s": "makespan (virtual s)", "cost_usd.total": "cost (USD)"}


def parse_profiles(text: str) -> list[str]:
    profiles = [p.strip() for p in text.split(",") if p.strip()]
    if len(profiles) < 2:
        raise ConfigError(f"--profiles {text!r}: name two or more platform profiles, e.g. aws_2020,aws_2026")
    for p in profiles:
        load_profile(p)  # an unknown name fails here, listing the known profiles
    return profiles


def profile_label(profile: str) -> str:
    """A profile's column value and directory name: its name; for a YAML path (a paper system's own
    profile, e.g. configs/cirrus/platform_2026.yaml), the ``name:`` inside it, so that an absolute
    path never becomes OUT/<path>."""
    return load_profile(profile).name if Path(profile).suffix else profile


def run_single(config: str, sets: list[str], out: Path) -> pd.DataFrame:
    """A config without a grid: one run, skipped when the same point already finished."""
    from sls_ray.runtime import build, resolved_config, simulate

    raw = read_yaml(Path(config))
    for item in sets:
        k, v = parse_set(item)
        raw = apply_set(raw, k, v)
    point = out / "point-000"
    cfg = load_config(data=raw)
    if not point_finished(point, raw, resolved_config(cfg, *build(cfg))):  # same data, same resolved run
        write_run(point, simulate(cfg), extra={POINT: raw})  # the directory is replaced whole
    resolved = yaml.safe_load((point / "config.yaml").read_text())
    row = flatten_summary(read_summary(point), resolved["params"])
    row["point"] = point.name
    df = pd.DataFrame([row])
    write_csv(out / "sweep.csv", df)
    return df


def run_whatif(config: str, profiles: list[str], grid_items: list[str], sets: list[str], out: Path,
               on_point: Callable[[str, int, int], None] | None = None, parallel: bool = True) -> pd.DataFrame:
    """Run the config under every profile; returns (and writes) the joined what-if table."""
    raw = read_yaml(Path(config))
    has_grid = bool(grid_items) or bool(raw.get("sweep"))
    labels = [profile_label(p) for p in profiles]
    if len(set(labels)) < len(labels):
        raise ConfigError(f"profiles {profiles} share a name ({labels}); give each profile file its own 'name:'")
    frames = []
    for profile, label in zip(profiles, labels):
        prof_sets = list(sets) + [f"platform={profile}"]
        sub = Path(out) / label

        def progress(done: int, total: int, label: str = label) -> None:
            if on_point:
                on_point(label, done, total)

        if has_grid:
            df = run_sweep(config, grid_items, prof_sets, sub, progress, parallel=parallel)
        else:
            df = run_single(config, prof_sets, sub)
            progress(1, 1)
        df.insert(0, "platform", label)
        frames.append(df)
    table = pd.concat(frames, ignore_index=True)
    write_csv(Path(out) / WHATIF, table)
    return table


def varying_columns(table: pd.DataFrame, out: Path) -> list[str]:
    """The grid's columns (what tells points apart), from each profile's grid.json."""
    cols: list[str] = []
    for profile in table["platform"].unique():
        grid_file = Path(out) / str(profile) / "grid.json"
        if grid_file.exists():
            for key in json.loads(grid_file.read_text()):
                col = key if key in table.columns else grid_key(key)
                if col in table.columns and col not in cols:
                    cols.append(col)
    return cols


def point_label(row: pd.Series, cols: list[str]) -> str:
    if not cols:
        return "run"
    return ", ".join(f"{c.removeprefix('params.')}={row[c]}" for c in cols)


def plot_whatif(out: Path) -> Path:
    """Bars per point, one colour per profile, for makespan and cost; the ratio to the first
    profile is written above each later profile's bar."""
    from sls_ray.plotting import pyplot

    out = Path(out)
    table = pd.read_csv(out / WHATIF)
    cols = varying_columns(table, out)
    table["label"] = [point_label(r, cols) for _, r in table.iterrows()]
    profiles = list(dict.fromkeys(table["platform"]))
    labels = list(dict.fromkeys(table["label"]))
    plt = pyplot()
    fig, axes = plt.subplots(1, len(METRICS), figsize=(max(7.0, 1.2 * len(labels) * len(profiles)), 4.2))
    width = 0.8 / len(profiles)
    for ax, (metric, axis) in zip(axes, METRICS.items()):
        base = table[table["platform"] == profiles[0]].set_index("label")[metric]
        for i, prof in enumerate(profiles):
            sub = table[table["platform"] == prof].set_index("label").reindex(labels)
            xs = [j + (i - (len(profiles) - 1) / 2) * width for j in range(len(labels))]
            bars = ax.bar(xs, sub[metric], width, label=prof)
            if i > 0:
                for bar, lab in zip(bars, labels):
                    v, b = sub.loc[lab, metric], base.get(lab)
                    if pd.notna(v) and b is not None and pd.notna(b) and b > 0:
                        ax.annotate(f"{v / b:.2f}x", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                                    ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(axis)
        ax.set_title(axis.split(" (")[0])
    axes[0].legend(fontsize=8)
    kind = _experiment(out, profiles[0])
    fig.suptitle(f"what-if: {kind} under {', '.join(profiles)} (ratios vs {profiles[0]})", fontsize=10)
    fig.tight_layout()
    path = out / "whatif.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _experiment(out: Path, profile: str) -> str:
    first = sorted((out / profile).glob("point-*/config.yaml"))
    return yaml.safe_load(first[0].read_text())["experiment"] if first else "experiment"

