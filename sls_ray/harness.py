"""Reproducing a paper's figures: run a figure's grids, keep long-format CSVs, redraw from them.

Every committed figure is one :class:`Figure`: the grids it runs (:class:`SweepSpec`, each a
config swept by the core's ``sweep.run_sweep``), a step that turns the finished points into
long-format CSVs (every row carries its parameters), and a plot step that reads only those
CSVs. ``sls-ray reproduce lambdaml/channels`` runs one figure; ``sls-ray reproduce numpywren
--all`` runs a system's; ``--plot-only`` redraws from the committed CSVs (STYLE.md,
"Experiments → CSV → figures").

Runs are resumable: a point whose directory holds a finished run of the same *resolved*
config (the config after the platform profile, its ``extends:`` chain and the experiment's
parameter defaults are filled in) is read back, not redone; a point whose resolved config
changed — an edited profile, a new default — is stale and runs again. Which is which is
decided by a hash of the resolved config (``sweep.config_hash``, checked by ``run_sweep``
for every point), not by file dates.

A paper system adds its figures in ``sls_ray/<system>/figures.py`` as a module-level
``FIGURES`` list and one line in :data:`FIGURE_MODULES` (docs/adding.md, "A figure").
"""
from __future__ import annotations

import importlib
import shutil
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pandas as pd

from sls_ray.config import apply_set, load_config, parse_set, read_yaml
from sls_ray.errors import ConfigError
from sls_ray.plotting import save_png
from sls_ray.results import read_summary, write_csv

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "configs"
RESULTS_DIR = ROOT / "results"  # committed: the CSVs and PNGs of every figure
RUNS_DIR = ROOT / "runs"        # not committed: one directory per point, for resuming

#: paper system -> module holding its ``FIGURES`` (one line per system)
FIGURE_MODULES: dict[str, str] = {
    "quickstart": "sls_ray.quickstart",
    "lambdaml": "sls_ray.lambdaml.figures",
    "numpywren": "sls_ray.numpywren.figures",
    "cirrus": "sls_ray.cirrus.figures",
    "infless": "sls_ray.infless.figures",
}


@dataclass(frozen=True)
class SweepSpec:
    """One config swept over a grid, as a figure needs it.

    ``name`` names the run directory ``runs/<system>/<name>``: two figures that sweep the
    same spec share its points (NumPyWren's N = 256K Cholesky feeds three figures).
    ``grid`` and ``sets`` are ``sls-ray sweep``'s ``--grid``/``--set`` items; an empty grid
    sweeps the config's own ``sweep:`` section, or, if it has none, runs the config once. To
    run one point of a config that has a ``sweep:`` section, give a one-value grid
    (``grid=("policy=fixed",)``): the grid names what the figure varies.
    """

    name: str
    config: str  # relative to configs/, e.g. "lambdaml/channels_lr.yaml", or an absolute path
    grid: tuple[str, ...] = ()
    sets: tuple[str, ...] = ()
    serial: bool = False  # points one at a time (a point that needs the whole machine's memory)

    def config_path(self) -> Path:
        path = Path(self.config)
        return path if path.is_absolute() else CONFIG_DIR / path


@dataclass
class SweepRun:
    """A finished :class:`SweepSpec`: sweep.csv's rows and each point's directory, in grid order."""

    spec: SweepSpec
    table: pd.DataFrame  # one row per point: parameters (params.*) and flattened summary
    dirs: list[Path]
    points: list[dict]   # each point's config data (before the profile and defaults are resolved)

    def point_table(self, csv: str) -> pd.DataFrame:
        """Every point's ``csv`` (e.g. "epochs.csv") concatenated; its rows carry their parameters."""
        frames = [pd.read_csv(d / csv) for d in self.dirs if (d / csv).exists()]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    @cached_property
    def summaries(self) -> list[dict[str, Any]]:
        """Each point's summary.json as written (nested, unlike the flattened table)."""
        return [read_summary(d) for d in self.dirs]

    def experiment(self, i: int) -> tuple[Any, Any]:
        """Point ``i``'s experiment object and resolved platform profile, built but not run.

        For tables that set a model beside the simulation with the very same inputs
        (LambdaML's analytical model reads the experiment's payload and profile).
        """
        from sls_ray.runtime import build

        return build(load_config(data=self.points[i]))


TablesStep = Callable[[Mapping[str, SweepRun]], Mapping[str, pd.DataFrame]]
PlotStep = Callable[[Mapping[str, pd.DataFrame]], Mapping[str, Any]]
ReportStep = Callable[[Mapping[str, pd.DataFrame]], str]


@dataclass(frozen=True)
class Figure:
    """One reproducible figure (or table) of a paper.

    ``tables`` receives the finished sweeps by spec name and returns CSV stem -> long-format
    table; the harness writes them to ``results/<system>/<stem>.csv``. ``plot`` receives
    those CSVs read back (never the runs) and returns PNG stem -> matplotlib figure; the
    harness saves them beside the CSVs. ``report`` (optional) returns text printed after a
    run or a redraw: the numbers beside the paper's.
    """

    key: str  # "system/name", e.g. "lambdaml/channels"
    title: str
    #: the grids it runs, or a function making them when deciding them costs work (NumPyWren
    #: sizes a pipeline from a 350K-task DAG) that ``sls-ray list`` should not pay for
    sweeps: tuple[SweepSpec, ...] | Callable[[], tuple[SweepSpec, ...]]
    tables: TablesStep
    plot: PlotStep
    csvs: tuple[str, ...]  # the stems ``tables`` writes and ``plot`` reads
    report: ReportStep | None = None
    dpi: int = 120
    description: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        parts = self.key.split("/")
        if len(parts) != 2 or not all(parts):
            raise ConfigError(f"figure key {self.key!r}: write it as 'system/name', e.g. 'lambdaml/channels'")
        if not self.csvs:
            raise ConfigError(f"figure {self.key}: csvs is empty; name the CSVs its plot step reads")
        if not callable(self.sweeps):
            self.sweep_specs()

    def sweep_specs(self) -> tuple[SweepSpec, ...]:
        specs = self.sweeps() if callable(self.sweeps) else self.sweeps
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ConfigError(f"figure {self.key}: sweep names repeat ({names}); each names its own directory")
        return tuple(specs)

    @property
    def system(self) -> str:
        return self.key.split("/")[0]

    @property
    def name(self) -> str:
        return self.key.split("/")[1]


# -- the registry

def load_figures() -> dict[str, Figure]:
    """Every registered figure by key, in registry order then each module's order."""
    out: dict[str, Figure] = {}
    for system, module in FIGURE_MODULES.items():
        for fig in importlib.import_module(module).FIGURES:
            if fig.system != system:
                raise ConfigError(f"{module}: figure {fig.key!r} is not under '{system}/'; "
                                  f"name it '{system}/{fig.name}'")
            if fig.key in out:
                raise ConfigError(f"{module}: figure {fig.key!r} is registered twice")
            out[fig.key] = fig
    return out


def check_shared_sweeps(figures: Mapping[str, Figure]) -> None:
    """Two figures of a system that name the same sweep share its directory, so they must
    mean the same sweep; otherwise each would find the other's points stale and rerun them.
    Figures whose sweeps are computed on demand are left out (computing them costs work)."""
    seen: dict[tuple[str, str], tuple[str, SweepSpec]] = {}
    for key, fig in figures.items():
        if callable(fig.sweeps):
            continue
        for spec in fig.sweep_specs():
            other = seen.setdefault((fig.system, spec.name), (key, spec))
            if other[1] != spec:
                raise ConfigError(f"figures {other[0]} and {key} both name sweep '{spec.name}' but differ "
                                  f"({other[1]} vs {spec}); give one another name")


def select_figures(target: str, every: bool = False) -> list[Figure]:
    """The figures ``target`` names: "system/name", or "system" together with ``every``."""
    figures = load_figures()
    if "/" in target:
        if target not in figures:
            raise ConfigError(f"reproduce: unknown figure '{target}'; known figures: {sorted(figures)} "
                              f"(sls-ray list shows them)")
        return [figures[target]]
    if target not in FIGURE_MODULES:
        raise ConfigError(f"reproduce: unknown system '{target}'; known systems: {sorted(FIGURE_MODULES)}")
    if not every:
        names = sorted(k for k in figures if k.startswith(target + "/"))
        raise ConfigError(f"reproduce {target}: name one figure ({names}) or pass --all for every one")
    return [f for k, f in figures.items() if k.startswith(target + "/")]


# -- the run step

def _raw(spec: SweepSpec) -> dict:
    raw = read_yaml(spec.config_path())
    for item in spec.sets:
        key, value = parse_set(item)
        raw = apply_set(raw, key, value)
    return raw


def grid_items(spec: SweepSpec) -> list[str]:
    """The ``--grid`` items ``run_sweep`` gets: the spec's; none for the config's ``sweep:``
    section; for a config without one, the config's own seed — a sweep of one point."""
    if spec.grid:
        return list(spec.grid)
    raw = _raw(spec)
    return [] if raw.get("sweep") else [f"seed={raw.get('seed', 0)}"]


def _points(spec: SweepSpec) -> list[dict]:
    """Each point's config data, in ``run_sweep``'s order (its point-NNN numbering)."""
    from sls_ray.sweep import expand, grid_key, parse_grid

    raw, items = _raw(spec), grid_items(spec)
    grid = parse_grid(items) if items else {grid_key(k): v for k, v in (raw.get("sweep") or {}).items()}
    return [data for data, _ in expand(raw, grid)]


def run_sweep_spec(spec: SweepSpec, runs_dir: Path, serial: bool = False, fresh: bool = False,
                   on_point: Callable[[int, int], None] | None = None) -> SweepRun:
    """Sweep one spec into ``runs_dir/<name>``, resuming finished points of the same config."""
    from sls_ray.sweep import run_sweep

    out = Path(runs_dir) / spec.name
    if fresh and out.exists():
        shutil.rmtree(out)
    df = run_sweep(str(spec.config_path()), grid_items(spec), list(spec.sets), out, on_point,
                   parallel=not (serial or spec.serial))
    return SweepRun(spec, df, [out / p for p in df["point"]], _points(spec))


def run_figure(fig: Figure, results_dir: Path = RESULTS_DIR, runs_dir: Path = RUNS_DIR, serial: bool = False,
               fresh: bool = False, on_sweep: Callable[[SweepSpec], None] | None = None,
               on_point: Callable[[int, int], None] | None = None) -> list[Path]:
    """Run a figure's sweeps, write its CSVs atomically, draw it; returns the files written."""
    runs = {}
    for spec in fig.sweep_specs():
        if on_sweep:
            on_sweep(spec)
        runs[spec.name] = run_sweep_spec(spec, Path(runs_dir) / fig.system, serial, fresh, on_point)
    tables = dict(fig.tables(runs))
    if sorted(tables) != sorted(fig.csvs):
        raise ConfigError(f"figure {fig.key}: its tables step returned {sorted(tables)}, "
                          f"but the figure declares csvs {sorted(fig.csvs)}")
    written = []
    for stem in fig.csvs:
        path = Path(results_dir) / fig.system / f"{stem}.csv"
        write_csv(path, tables[stem])
        written.append(path)
    return written + plot_figure(fig, results_dir)


# -- the plot step

def read_tables(fig: Figure, results_dir: Path = RESULTS_DIR) -> dict[str, pd.DataFrame]:
    """The figure's CSVs as written by its run step; a missing one says how to make it."""
    tables = {}
    for stem in fig.csvs:
        path = Path(results_dir) / fig.system / f"{stem}.csv"
        if not path.exists():
            raise ConfigError(f"{path}: missing, so {fig.key} cannot be drawn; run "
                              f"'sls-ray reproduce {fig.key}' (without --plot-only) to make it")
        tables[stem] = pd.read_csv(path)
    return tables


def plot_figure(fig: Figure, results_dir: Path = RESULTS_DIR) -> list[Path]:
    """Draw a figure's PNGs from its CSVs alone (no run)."""
    pngs = fig.plot(read_tables(fig, results_dir))
    return [save_png(f, Path(results_dir) / fig.system / f"{stem}.png", fig.dpi) for stem, f in pngs.items()]


def report(fig: Figure, results_dir: Path = RESULTS_DIR) -> str:
    """The figure's printed numbers, from its CSVs ("" when it prints none)."""
    return fig.report(read_tables(fig, results_dir)) if fig.report else ""


def figure_table() -> pd.DataFrame:
    """key, title and CSVs of the registered figures (what ``sls-ray list`` shows)."""
    rows = [{"figure": k, "title": f.title, "csvs": ", ".join(f"{c}.csv" for c in f.csvs)}
            for k, f in load_figures().items()]
    return pd.DataFrame(rows, columns=["figure", "title", "csvs"])


def script_main(key: str, argv: Sequence[str] | None = None) -> None:
    """What a thin script in ``experiments/`` runs: ``python experiments/lambdaml/channels.py
    [--plot-only] [--serial] [--fresh]`` is ``sls-ray reproduce lambdaml/channels [...]``."""
    from sls_ray.cli import app

    app(["reproduce", key, *(sys.argv[1:] if argv is None else argv)])
