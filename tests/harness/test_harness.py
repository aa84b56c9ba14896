"""The figure harness (sls_ray/harness.py): run a figure's grid, resume it, detect stale points,
write long-format CSVs, redraw from CSVs alone, and the `sls-ray reproduce` command."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from sls_ray.api import (
    FIGURE_MODULES,
    ConfigError,
    Figure,
    SweepSpec,
    load_figures,
    plot_figure,
    run_figure,
    select_figures,
)
from sls_ray.cli import app
from sls_ray.sweep import config_hash

ROOT = Path(__file__).resolve().parents[2]

# two cheap all-reduce points through S3: ~0.1 s of host time each
TINY = SweepSpec("tiny", "quickstart.yaml", grid=("workers=1,2",),
                 sets=("params.service=s3", "params.rounds=1", "params.floats=64"))


def _tables(runs):
    sweep = runs["tiny"].table
    return {"tiny": sweep[["params.workers", "params.service", "makespan_s", "cost_usd.total", "trace_hash"]]}


def _plot(csvs):
    from sls_ray.api import overlay_paper, pyplot

    plt = pyplot()
    fig, ax = plt.subplots()
    df = csvs["tiny"]
    ax.plot(df["params.workers"], df["makespan_s"], "o-", label="ours")
    overlay_paper(ax, [1, 2], [float("nan"), 1.0], annotate=True)
    ax.legend()
    return {"tiny": fig}


TOY = Figure(key="toy/tiny", title="two all-reduce points", sweeps=(TINY,), tables=_tables, plot=_plot,
             csvs=("tiny",), report=lambda csvs: csvs["tiny"].to_string(index=False))


def test_run_writes_long_format_csv_and_png_and_resumes(tmp_path):
    results, runs = tmp_path / "results", tmp_path / "runs"
    written = run_figure(TOY, results, runs, serial=True)
    assert written == [results / "toy" / "tiny.csv", results / "toy" / "tiny.png"]
    df = pd.read_csv(results / "toy" / "tiny.csv")
    assert list(df["params.workers"]) == [1, 2] and set(df["params.service"]) == {"s3"}
    assert (df["makespan_s"] > 0).all()
    assert (results / "toy" / "tiny.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in (runs / "toy" / "tiny").glob("point-*")) == ["point-000", "point-001"]

    progress = []
    run_figure(TOY, results, runs, serial=True, on_point=lambda done, total: progress.append((done, total)))
    assert progress == [(2, 2)], "a second run reads both finished points back instead of redoing them"
    assert pd.read_csv(results / "toy" / "tiny.csv").equals(df), "same config + seed => the same CSV"


def test_a_point_whose_resolved_config_changed_is_stale_and_reruns(tmp_path):
    results, runs = tmp_path / "results", tmp_path / "runs"
    run_figure(TOY, results, runs, serial=True)
    out = runs / "toy" / "tiny"
    # as if the platform profile had been edited since point-001 ran: its point.json (the
    # unresolved data) still matches, only the resolved config written beside it differs
    written = out / "point-001" / "config.yaml"
    resolved = yaml.safe_load(written.read_text())
    resolved["profile"]["functions"]["cold_start_s"] = 99.0
    written.write_text(yaml.safe_dump(resolved, sort_keys=False))
    kept = (out / "point-000" / "summary.json").stat().st_mtime_ns
    progress = []
    run_figure(TOY, results, runs, serial=True, on_point=lambda done, total: progress.append((done, total)))
    assert progress == [(1, 2), (2, 2)], "only the stale point runs again"
    assert (out / "point-000" / "summary.json").stat().st_mtime_ns == kept  # the fresh point is read back
    assert yaml.safe_load(written.read_text())["profile"]["functions"]["cold_start_s"] != 99.0  # the stale one reran


def test_config_hash_is_order_free_and_value_sensitive():
    assert config_hash({"a": 1, "b": {"c": 2.5}}) == config_hash({"b": {"c": 2.5}, "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_plot_only_needs_only_the_csvs(tmp_path):
    results, runs = tmp_path / "results", tmp_path / "runs"
    run_figure(TOY, results, runs, serial=True)
    shutil.rmtree(runs)
    (results / "toy" / "tiny.png").unlink()
    assert plot_figure(TOY, results) == [results / "toy" / "tiny.png"]
    (results / "toy" / "tiny.csv").unlink()
    with pytest.raises(ConfigError, match="sls-ray reproduce toy/tiny"):
        plot_figure(TOY, results)


def test_tables_step_must_write_exactly_the_declared_csvs(tmp_path):
    wrong = Figure(key="toy/wrong", title="t", sweeps=(TINY,), tables=lambda runs: {"other": pd.DataFrame()},
                   plot=_plot, csvs=("tiny",))
    with pytest.raises(ConfigError, match=r"returned \['other'\].*declares csvs \['tiny'\]"):
        run_figure(wrong, tmp_path / "results", tmp_path / "runs", serial=True)


def test_figure_keys_and_selection():
    with pytest.raises(ConfigError, match="'system/name'"):
        Figure(key="nokey", title="t", sweeps=(), tables=_tables, plot=_plot, csvs=("x",))
    with pytest.raises(ConfigError, match="sweep names repeat"):
        Figure(key="toy/x", title="t", sweeps=(TINY, TINY), tables=_tables, plot=_plot, csvs=("x",))
    figures = load_figures()
    assert "quickstart/allreduce" in figures
    assert all(k.split("/")[0] in FIGURE_MODULES for k in figures)
    assert select_figures("quickstart/allreduce") == [figures["quickstart/allreduce"]]
    assert select_figures("quickstart", every=True) == [f for k, f in figures.items() if k.startswith("quickstart/")]
    with pytest.raises(ConfigError, match="pass --all"):
        select_figures("quickstart")
    with pytest.raises(ConfigError, match="unknown figure 'quickstart/nope'"):
        select_figures("quickstart/nope")
    with pytest.raises(ConfigError, match="unknown system 'nope'"):
        select_figures("nope", every=True)


def test_cli_reproduce_plot_only_redraws_the_committed_quickstart_figure(tmp_path):
    (tmp_path / "quickstart").mkdir()
    shutil.copy(ROOT / "results" / "quickstart" / "sweep.csv", tmp_path / "quickstart" / "sweep.csv")
    res = CliRunner().invoke(app, ["reproduce", "quickstart/allreduce", "--plot-only", "--results", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "quickstart" / "allreduce.png").read_bytes()[:4] == b"\x89PNG"
    res = CliRunner().invoke(app, ["reproduce", "quickstart", "--plot-only", "--results", str(tmp_path)])
    assert res.exit_code == 2 and "--all" in res.output
    res = CliRunner().invoke(app, ["list"])
    assert res.exit_code == 0 and "quickstart/allreduce" in res.output


def test_committed_quickstart_csv_is_what_the_harness_writes():
    """The README figure's CSV is the harness's output: one row per grid point, in grid order."""
    df = pd.read_csv(ROOT / "results" / "quickstart" / "sweep.csv")
    grid = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())["sweep"]
    assert len(df) == len(grid["workers"]) * len(grid["service"])
    assert list(df["point"]) == [f"point-{i:03d}" for i in range(len(df))]
    assert json.loads(json.dumps(sorted(set(df["params.service"])))) == sorted(grid["service"])


@pytest.mark.parametrize("key", sorted(load_figures()))
def test_every_registered_figure_redraws_from_its_committed_csvs(key, tmp_path):
    """--plot-only needs nothing but the CSVs in results/: each committed figure redraws from them."""
    fig = load_figures()[key]
    for stem in fig.csvs:
        src = ROOT / "results" / fig.system / f"{stem}.csv"
        assert src.exists(), f"{key}: {src} is not committed"
        (tmp_path / fig.system).mkdir(exist_ok=True)
        shutil.copy(src, tmp_path / fig.system / src.name)
    pngs = plot_figure(fig, tmp_path)
    assert pngs and all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)


def test_figures_that_share_a_sweep_mean_the_same_sweep():
    from sls_ray.harness import check_shared_sweeps

    check_shared_sweeps(load_figures())
    other = Figure(key="toy/other", title="t", sweeps=(SweepSpec("tiny", "quickstart.yaml"),), tables=_tables,
                   plot=_plot, csvs=("tiny",))
    with pytest.raises(ConfigError, match="both name sweep 'tiny'"):
        check_shared_sweeps({"toy/tiny": TOY, "toy/other": other})
