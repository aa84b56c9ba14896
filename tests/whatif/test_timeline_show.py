"""The run timeline (gantt.png) and ``sls-ray show``, read from result directories only.

The Gantt chart's bars are invocations.csv's intervals, exactly: one 'run' bar per function
instance from start_s to end_s, one 'init' bar per cold start from start_s - init_s to start_s.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from sls_ray.cli import app
from sls_ray.config import load_config
from sls_ray.results import write_run
from sls_ray.runtime import simulate, simulate_handlers
from sls_ray.timeline import (
    busiest_operations,
    draw_timeline,
    gantt_bars,
    read_invocations,
    slowest_functions,
    step_curve,
)

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def worker(ctx, p):
    ctx.storage("s3").put(f"w/{p['i']}", np.zeros(1000))
    if p["fate"] == "sleep":
        ctx.sleep(p["t"])
    elif p["fate"] == "timeout":
        ctx.sleep(10.0)
    elif p["fate"] == "oom":
        ctx.memory.transient(2 << 30, "a too-big array")
    elif p["fate"] == "error":
        raise ValueError("bad shard")


def main(ctx, p):
    fates = ["sleep"] * 6 + ["timeout", "oom", "error"]
    for i, fate in enumerate(fates):
        ctx.invoke("worker", {"i": i, "fate": fate, "t": 0.5 + 0.25 * i})
    ctx.sleep(1.0)
    for i in range(3):  # a second wave: warm starts where containers are idle
        ctx.invoke("worker", {"i": 100 + i, "fate": "sleep", "t": 0.2})


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    r = simulate_handlers({"main": main, "worker": worker}, ("main", None), platform="aws_2026",
                          memory={"worker": 512}, timeouts={"worker": 3.0},
                          profile={"functions": {"async_retries": 1, "async_retry_delays_s": [1.0]}})
    return write_run(tmp_path_factory.mktemp("run") / "run", r)


def test_gantt_bars_equal_the_invocation_intervals(run_dir):
    inv = pd.read_csv(run_dir / "invocations.csv")
    bars, mode = gantt_bars(read_invocations(run_dir))
    assert mode == "function"
    run = bars[bars["phase"] == "run"].set_index("id").sort_index()
    assert list(run.index) == sorted(inv["id"])
    assert (run["t0"].to_numpy() == inv.set_index("id").sort_index()["start_s"].to_numpy()).all()
    assert (run["t1"].to_numpy() == inv.set_index("id").sort_index()["end_s"].to_numpy()).all()
    init = bars[bars["phase"] == "init"].set_index("id").sort_index()
    cold = inv[inv["init_s"] > 0].set_index("id").sort_index()
    assert list(init.index) == list(cold.index) and len(cold) == inv["cold"].sum()
    assert np.allclose(init["t1"], cold["start_s"]) and np.allclose(init["t1"] - init["t0"], cold["init_s"])
    # the run shows every kind of mark the chart draws
    assert {"FunctionTimeout", "MemoryLimitExceeded", "ValueError"} <= set(inv["status"]) or \
        {"FunctionTimeout", "MemoryLimitExceeded"} <= set(inv["status"])
    assert (inv["attempt"] > 0).sum() == 3 and (~inv["cold"]).any()


@pytest.mark.parametrize("limit,mode", [(3, "packed"), (1, "handler")])
def test_many_functions_share_lanes_without_overlap_then_aggregate(run_dir, limit, mode):
    inv = read_invocations(run_dir)
    bars, got = gantt_bars(inv, limit=max(limit, 1) if mode == "handler" else 100)
    if mode == "packed":
        bars, got = gantt_bars(inv, limit=len(inv) - 1)
        assert got == "packed"
        for _, lane in bars.groupby("lane"):
            spans = sorted(zip(lane["t0"], lane["t1"]))
            assert lane["handler"].nunique() == 1
            assert all(a1 <= b0 + 1e-12 for (_, a1), (b0, _) in zip(spans, spans[1:])), spans
        assert bars["lane"].nunique() < len(inv)
    else:
        assert got == "handler" and bars["lane"].nunique() == inv["handler"].nunique()
    run = bars[bars["phase"] == "run"].sort_values("id")
    assert (run["t1"].to_numpy() == inv.sort_values("id")["end_s"].to_numpy()).all()


def test_concurrency_curve_counts_alive_functions():
    t, level = step_curve(np.array([0.0, 1.0, 1.0]), np.array([2.0, 1.5, 3.0]))
    alive = {tt: lv for tt, lv in zip(t, level)}
    assert alive[2.0] == 1 and level.max() == 3 and level[-1] == 0


def test_plot_draws_the_gantt_chart(run_dir):
    res = runner.invoke(app, ["plot", str(run_dir)])
    assert res.exit_code == 0, res.output
    assert (run_dir / "gantt.png").stat().st_size > 10_000
    assert draw_timeline(run_dir, limit=2) == run_dir / "gantt.png"  # the aggregated form draws too


def test_show_prints_status_cost_failures_storage_and_slowest(run_dir):
    res = runner.invoke(app, ["show", str(run_dir)])
    assert res.exit_code == 0, res.output
    out = res.output
    for needle in ("ok", "makespan", "cost by component", "lambda_compute", "failures by kind",
                   "FunctionTimeout", "MemoryLimitExceeded", "busiest storage operations", "PUT",
                   "slowest functions"):
        assert needle in out, needle
    inv = read_invocations(run_dir)
    slow = slowest_functions(inv, 1).iloc[0]
    assert slow["duration_s"] == (inv["end_s"] - inv["start_s"]).max()
    # 12 invocations + 3 retries
    assert busiest_operations(pd.read_csv(run_dir / "storage.csv"))[0][:3] == ("s3", "PUT", 15)


def test_show_on_a_directory_that_is_not_a_run_exits_2(tmp_path):
    res = runner.invoke(app, ["show", str(tmp_path)])
    assert res.exit_code == 2 and "summary.json" in res.output


TINY = {"lambdaml": ["params.workers=2", "params.epochs=1", "params.max_steps_per_epoch=1", "params.max_real_rows=2",
                     "params.max_real_val_rows=2", "params.rows=40"],
        "numpywren": ["params.blocks=2", "params.baselines=false", "params.max_executors=2"],
        "allreduce": ["params.workers=2", "params.rounds=1"]}
CONFIGS = sorted(p for p in (ROOT / "configs").rglob("*.yaml") if "platforms" not in p.parts)
FAST = {"quickstart", "channels_lr", "systems", "faults"}


def _show_and_plot(path: Path, out: Path) -> None:
    kind = yaml.safe_load(path.read_text())["experiment"]
    r = simulate(load_config(path, TINY[kind]))
    write_run(out, r)
    res = runner.invoke(app, ["show", str(out)])
    assert res.exit_code == 0 and "cost by component" in res.output, res.output
    assert draw_timeline(out).exists()
    bars, _ = gantt_bars(read_invocations(out))
    assert len(bars[bars["phase"] == "run"]) == len(r.invocations)


@pytest.mark.parametrize("path", [p for p in CONFIGS if p.stem in FAST], ids=lambda p: p.stem)
def test_show_and_timeline_work_on_shipped_configs_in_tiny_mode(path, tmp_path):
    _show_and_plot(path, tmp_path / path.stem)


@pytest.mark.slow
@pytest.mark.parametrize("path", [p for p in CONFIGS if p.stem not in FAST], ids=lambda p: p.stem)
def test_show_and_timeline_work_on_every_other_shipped_config_in_tiny_mode(path, tmp_path):
    _show_and_plot(path, tmp_path / path.stem)


def test_storage_waits_are_the_blocked_intervals_and_the_gantt_draws_them(tmp_path):
    """A put, a compute, two back-to-back gets (one merged interval) and an awaited async get:
    each wait is latency + transfer on the hand-computable profile, nothing else."""
    def main(ctx, p):
        c = ctx.storage("s3")
        c.put("a", b"x" * 8)
        ctx.sleep(1.0)
        c.get("a")
        c.get("a")
        pending = c.get_async("a")
        ctx.sleep(0.001)
        pending.result()

    r = simulate_handlers({"main": main}, ("main", None),
                          profile={"functions": {"cold_start_sigma": 0.0, "cold_start_s": 0.5, "nic_mbs": 10.0},
                                   "services": {"s3": {"latency_s": 0.02}}})
    out = write_run(tmp_path / "w", r)
    waits = pd.read_csv(out / "storage_waits.csv")
    xfer = 8 / 10e6
    start = 0.5
    want = [(start, start + 0.02 + xfer),
            (start + 0.02 + xfer + 1.0, start + 1.0 + 2 * (0.02 + xfer) + 0.02 + xfer),
            (start + 1.0 + 3 * (0.02 + xfer) + 0.001, start + 1.0 + 4 * (0.02 + xfer))]
    assert len(waits) == 3
    for (t0, t1), (_, row) in zip(want, waits.iterrows()):
        assert row["t0_s"] == pytest.approx(t0, abs=2e-9) and row["t1_s"] == pytest.approx(t1, abs=2e-9)
    bars, _ = gantt_bars(read_invocations(out), waits=pd.read_csv(out / "storage_waits.csv"))
    drawn = bars[bars["phase"] == "wait"][["t0", "t1"]].to_numpy()
    assert (drawn == waits[["t0_s", "t1_s"]].to_numpy()).all()
    res = runner.invoke(app, ["show", str(out)])
    assert "blocked on storage" in res.output and "storage wait s" in res.output
