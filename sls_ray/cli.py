"""The ``sls-ray`` command line: run, sweep, plot, list (README, "CLI").

Bad input exits with status 2 and one paragraph naming the field and the fix — never a
traceback. Outputs go to ``runs/<config name>`` unless ``--out`` says otherwise.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from sls_ray.errors import ConfigError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="A deterministic virtual-time serverless cloud on Ray.")
console = Console(stderr=True)


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def _default_out(config: str) -> Path:
    return Path("runs") / Path(config).stem


@app.command()
def run(config: str = typer.Argument(..., help="experiment config (YAML)"),
        set_: list[str] | None = typer.Option(None, "--set", help="override, e.g. params.workers=8"),
        out: Path | None = typer.Option(None, "--out", help="result directory"),
        transport: str | None = typer.Option(None, "--transport", help="local or ray"),
        hosts: int | None = typer.Option(None, "--hosts", help="FunctionHost actors (ray transport)"),
        address: str | None = typer.Option(None, "--address", help="Ray cluster address")) -> None:
    """Run one experiment and write its result directory."""
    from sls_ray.config import load_config
    from sls_ray.results import check_out, write_run
    from sls_ray.runtime import build, check_address, simulate

    sets = list(set_ or [])
    if transport is not None:
        if transport not in ("local", "ray"):
            _fail(f"--transport {transport!r}: must be 'local' or 'ray'")
        sets.append(f"run.transport={transport}")
    if hosts is not None:
        sets.append(f"run.hosts={hosts}")
    if address is not None:
        sets.append(f"run.address={address}")
    out = out or _default_out(config)
    try:  # everything a user can get wrong is found before anything runs
        cfg = load_config(config, sets)
        if cfg.run.transport != "ray" and (hosts is not None or address is not None):
            flags = " and ".join(f for f, v in (("--hosts", hosts), ("--address", address)) if v is not None)
            raise ConfigError(f"{flags}: only for the Ray transport, but this run is local; add --transport ray "
                              f"(it is not implied) or drop {flags}")
        build(cfg)
        check_out(out)
        if cfg.run.transport == "ray":
            check_address(cfg.run.address)
    except ConfigError as e:
        _fail(str(e))
    with Progress(TextColumn("{task.description}"), TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("starting", total=None)
        last = [0.0]

        def progress(kernel) -> None:
            now = time.perf_counter()
            if now - last[0] > 0.2:
                last[0] = now
                done = sum(1 for r in kernel.functions.values() if r.state == "done") - 1
                bar.update(task, description=f"virtual t={kernel.now_ns / 1e9:9.2f}s  functions done={done}")

        try:
            result = simulate(cfg, progress=progress)
        except ConfigError as e:  # found only once the run was built (e.g. a preload into a missing service)
            _fail(str(e))
    try:
        write_run(out, result)
    except ConfigError as e:
        _fail(str(e))
    s = result.summary
    console.print(f"{s['status']}: makespan {s['makespan_s']:.3f}s virtual, cost ${s['cost_usd']['total']:.6f}, "
                  f"{s['counts']['functions']} functions, failures {s['failures'] or 'none'} -> {out}")
    for note in s.get("notes", []):
        console.print(f"note: {escape(note)}", highlight=False, soft_wrap=True)
    if s["status"] != "ok":  # the result directory is written; the run itself failed (README, "Statuses")
        console.print(escape(s.get("deadlock") or s.get("reason") or ""), highlight=False, soft_wrap=True)
        raise typer.Exit(code=1)


@app.command()
def sweep(config: str = typer.Argument(..., help="experiment config (YAML)"),
          grid: list[str] | None = typer.Option(None, "--grid", help="e.g. workers=1,2,4,8 (repeatable)"),
          set_: list[str] | None = typer.Option(None, "--set", help="override applied to every point"),
          out: Path | None = typer.Option(None, "--out", help="sweep directory"),
          serial: bool = typer.Option(False, "--serial", help="run points one by one in this process"),
          plot: bool = typer.Option(True, "--plot/--no-plot", help="draw the sweep's figure"),
          address: str | None = typer.Option(
              None, "--address", help="Ray cluster to spread the points over (docs/cluster.md)")) -> None:
    """Run every grid point (in parallel as Ray tasks); resumes an interrupted sweep."""
    from sls_ray.results import check_out
    from sls_ray.sweep import run_sweep

    out = out or _default_out(config)
    try:
        check_out(out, sweep=True)
    except ConfigError as e:
        _fail(str(e))
    t0 = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("sweep points", total=None)

        def on_point(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        try:
            df = run_sweep(config, list(grid or []), list(set_ or []), out, on_point, parallel=not serial,
                           address=address)
        except ConfigError as e:
            _fail(str(e))
    console.print(f"{len(df)} points -> {out / 'sweep.csv'} ({time.perf_counter() - t0:.1f}s real)")
    if plot:
        for p in _plot(out):
            console.print(f"figure: {p}")
    bad = df[df["status"] != "ok"] if "status" in df else df.iloc[0:0]
    if len(bad):  # every point ran and was written; some did not succeed (README, "Statuses")
        console.print(f"{len(bad)} of {len(df)} points did not end ok: "
                      f"{', '.join(f'{p} ({st})' for p, st in zip(bad['point'], bad['status']))}",
                      highlight=False, soft_wrap=True)
        raise typer.Exit(code=1)


def _plot(directory: Path) -> list[Path]:
    import pandas as pd
    import yaml

    from sls_ray.experiment import experiment_class

    directory = Path(directory)
    if (directory / "whatif.csv").exists():
        from sls_ray.whatif import plot_whatif

        return [plot_whatif(directory)]
    if (directory / "sweep.csv").exists():
        first = sorted(directory.glob("point-*/config.yaml"))
        if not first:
            _fail(f"{directory}: sweep.csv has no point directories beside it")
        kind = yaml.safe_load(first[0].read_text())["experiment"]
        return experiment_class(kind).plot_sweep(directory, pd.read_csv(directory / "sweep.csv"))
    if (directory / "config.yaml").exists():
        from sls_ray.experiment import EXPERIMENTS
        from sls_ray.timeline import draw_timeline

        kind = yaml.safe_load((directory / "config.yaml").read_text())["experiment"]
        own = experiment_class(kind).plot(directory) if kind in EXPERIMENTS else []  # 'inline': handlers only
        return own + [draw_timeline(directory)]
    _fail(f"{directory}: not a result directory (no config.yaml or sweep.csv); pass a run's or a sweep's --out")
    return []


@app.command()
def plot(directory: Path = typer.Argument(..., help="a run or sweep directory")) -> None:
    """Draw PNG figures from a result directory's CSVs (no rerun)."""
    paths = _plot(directory)
    for p in paths:
        console.print(f"figure: {p}")
    if not paths:
        console.print("this experiment draws no figure for a single run; sweep it or see its CSVs")


@app.command("list")
def list_() -> None:
    """Experiments, platform profiles, storage services and shipped configs."""
    from sls_ray.config import PROFILE_DIR
    from sls_ray.experiment import EXPERIMENTS, experiment_class
    from sls_ray.storage import REGISTRY

    out = Console()
    out.print("[bold]experiments[/]")
    for name in sorted(EXPERIMENTS):
        try:
            desc = experiment_class(name).description
        except ImportError as e:
            desc = f"(unavailable: {e})"
        out.print(f"  {name:12s} {desc}")
    out.print("[bold]platform profiles[/]")
    for p in sorted(PROFILE_DIR.glob("*.yaml")):
        out.print(f"  {p.stem}")
    out.print("[bold]storage services[/]")
    for kind, path in sorted(REGISTRY.items()):
        out.print(f"  {kind:12s} {path}")
    out.print("[bold]configs[/]")
    for p in sorted((PROFILE_DIR.parent).rglob("*.yaml")):
        if p.parent != PROFILE_DIR:
            out.print(f"  {p.relative_to(PROFILE_DIR.parent.parent)}")
    _list_figures(out)


def _list_figures(out: Console) -> None:
    """The reproducible figures (sls_ray/harness.py), one line each: what `sls-ray reproduce` takes."""
    from sls_ray.harness import figure_table

    out.print("[bold]figures[/] (sls-ray reproduce KEY, or SYSTEM --all)")
    for row in figure_table().itertuples():
        out.print(f"  {row.figure:28s} {row.title}  [{row.csvs}]", highlight=False)


@app.command()
def reproduce(target: str = typer.Argument(..., help="a figure 'system/name' (sls-ray list), or a system with --all"),
              every: bool = typer.Option(False, "--all", help="every figure of the system"),
              plot_only: bool = typer.Option(False, "--plot-only", help="redraw PNGs from the committed CSVs"),
              serial: bool = typer.Option(False, "--serial", help="run points one by one in this process"),
              fresh: bool = typer.Option(False, "--fresh", help="discard finished points and rerun them all"),
              results: Path | None = typer.Option(None, "--results", help="where CSVs and PNGs go "
                                                                             "(default: the repo's results/)"),
              runs: Path | None = typer.Option(None, "--runs", help="where point directories go "
                                                                       "(default: the repo's runs/)")) -> None:
    """Regenerate a paper figure: run its grids (resuming), write its CSVs, draw it beside the paper."""
    from sls_ray.harness import RESULTS_DIR, RUNS_DIR, plot_figure, report, run_figure, select_figures

    results = results or RESULTS_DIR
    runs = runs or RUNS_DIR
    try:
        figures = select_figures(target, every)
    except ConfigError as e:
        _fail(str(e))
    for fig in figures:
        console.print(f"[bold]{fig.key}[/]: {fig.title}", highlight=False)
        t0 = time.perf_counter()
        try:
            if plot_only:
                paths = plot_figure(fig, results)
            else:
                with Progress(TextColumn("{task.description}"), BarColumn(),
                              TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                              console=console, transient=True) as bar:
                    task = bar.add_task("points", total=None)

                    def on_sweep(spec) -> None:
                        bar.update(task, description=f"{spec.name} ({spec.config})", completed=0, total=None)

                    def on_point(done: int, total: int) -> None:
                        bar.update(task, completed=done, total=total)

                    paths = run_figure(fig, results, runs, serial=serial, fresh=fresh,
                                       on_sweep=on_sweep, on_point=on_point)
            text = report(fig, results)
        except ConfigError as e:
            _fail(str(e))
        if text:
            Console().print(text, highlight=False, soft_wrap=True)
        for p in paths:
            console.print(f"wrote {p}", highlight=False)
        console.print(f"{fig.key}: done ({time.perf_counter() - t0:.1f}s real)", highlight=False)


@app.command()
def whatif(config: str = typer.Argument(..., help="experiment config (YAML)"),
           profiles: str = typer.Option(..., "--profiles", help="platform profiles, e.g. aws_2020,aws_2026"),
           grid: list[str] | None = typer.Option(None, "--grid", help="e.g. workers=10,50 (default: the "
                                                                          "config's sweep: section, else one run)"),
           set_: list[str] | None = typer.Option(None, "--set", help="override applied to every run"),
           out: Path | None = typer.Option(None, "--out", help="what-if directory"),
           serial: bool = typer.Option(False, "--serial", help="run points one by one in this process")) -> None:
    """Run the same experiment under each platform profile and draw them side by side (resumable)."""
    from sls_ray.whatif import WHATIF, parse_profiles, plot_whatif, run_whatif

    out = out or Path("runs") / f"whatif-{Path(config).stem}"
    t0 = time.perf_counter()
    try:
        names = parse_profiles(profiles)
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TimeElapsedColumn(), console=console, transient=True) as bar:
            task = bar.add_task("what-if points", total=None)

            def on_point(profile: str, done: int, total: int) -> None:
                bar.update(task, description=f"{profile}", completed=done, total=total)

            table = run_whatif(config, names, list(grid or []), list(set_ or []), out, on_point, parallel=not serial)
    except ConfigError as e:
        _fail(str(e))
    console.print(f"{len(table)} runs under {', '.join(names)} -> {out / WHATIF} "
                  f"({time.perf_counter() - t0:.1f}s real)")
    console.print(f"figure: {plot_whatif(out)}")


@app.command()
def show(directory: Path = typer.Argument(..., help="a run directory (or a sweep point)")) -> None:
    """One screen on a finished run: status, makespan, cost, failures, busiest storage operations, slowest functions."""
    from sls_ray.timeline import summary_renderables

    try:
        parts = summary_renderables(directory)
    except ConfigError as e:
        _fail(str(e))
    out = Console()
    for part in parts:
        out.print(part)


#: paper systems that can profile this host, by path (the core never imports a paper system):
#: system -> "module:function(out, models, reps, log) -> report line"
PROFILERS: dict[str, str] = {"infless": "sls_ray.infless.cop:profile_command"}


@app.command()
def profile(out: Path = typer.Option(Path("profile.csv"), "--out", help="CSV to write (the committed table "
                                     "configs/infless/profile.csv is only replaced if you name it)"),
            models: list[str] | None = typer.Option(None, "--model", help="resnet50, mobilenet, ssd, lstm, "
                                                       "textcnn (repeatable; default: all five)"),
            reps: int = typer.Option(3, "--reps", min=1, help="timed repetitions per entry (the best is kept)"),
            system: str = typer.Option("infless", "--system", help=f"whose operators: {sorted(PROFILERS)}")) -> None:
    """Time a system's operators and models on this host (INFless's COP, one thread) and write a profile table.

    Real host timing, so the file differs from machine to machine; experiments read whichever
    table ``params.profile_csv`` names, so their virtual results never depend on this host.
    """
    import importlib

    if system not in PROFILERS:
        _fail(f"--system {system!r}: unknown; systems that profile: {sorted(PROFILERS)}")
    module, fn = PROFILERS[system].split(":")
    t0 = time.perf_counter()
    try:
        report = getattr(importlib.import_module(module), fn)(out, list(models or []) or None, reps,
                                                             lambda m: console.print(m))
    except ConfigError as e:
        _fail(str(e))
    console.print(f"{report} ({time.perf_counter() - t0:.1f}s real)", highlight=False)


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
