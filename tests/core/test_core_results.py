"""The result contract (README, "The result directory"): a directory is replaced whole, never
mixed with an earlier run's files; sweeps never mix grids; files honour the umask; the status
says whether the run succeeded (ok 0, failed 1, deadlock 1, bad input 2)."""
from __future__ import annotations

import json
import os
import stat

import pandas as pd
import pytest
from typer.testing import CliRunner

from sls_ray.cli import app
from sls_ray.experiment import EXPERIMENTS
from sls_ray.results import write_run

CONFIG = "experiment: allreduce\nparams: {rounds: 1, floats: 1000, gflop_per_round: 0.1, workers: 2}\n"


def _run(tmp_path, *args, config=CONFIG):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(config)
    return CliRunner().invoke(app, ["run", str(cfg), "--out", str(tmp_path / "out"), *args])


def test_a_second_run_into_the_same_out_replaces_the_first_whole(tmp_path, sim):
    out = tmp_path / "out"

    def logs(ctx, p):
        ctx.log("row", x=1)

    first = sim({"main": logs}, ("main", None))
    first.tables = {"rounds": pd.DataFrame({"a": [1]})}
    write_run(out, first)
    assert (out / "metrics.csv").exists() and (out / "rounds.csv").exists()
    second = sim({"main": lambda ctx, p: None}, ("main", None))
    write_run(out, second)
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "invocations.csv", "storage.csv",
                                                     "storage_waits.csv", "summary.json"]
    assert json.loads((out / "summary.json").read_text())["trace_hash"] == second.summary["trace_hash"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no building or old directory left"


def test_result_files_honour_the_umask(tmp_path, sim):
    old = os.umask(0o022)
    try:
        out = write_run(tmp_path / "out", sim({"main": lambda ctx, p: None}, ("main", None)))
    finally:
        os.umask(old)
    for p in out.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p
    assert stat.S_IMODE(out.stat().st_mode) == 0o755


def test_a_run_refuses_an_out_that_is_someone_elses_directory(tmp_path):
    mine = tmp_path / "out"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    res = _run(tmp_path)
    assert res.exit_code == 2 and "thesis.tex" in res.output
    assert (mine / "thesis.tex").read_text() == "years of work"


def test_a_rerun_with_a_changed_grid_never_leaves_the_old_grids_sweep_csv(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG)
    out = tmp_path / "s"
    args = ["sweep", str(cfg), "--serial", "--no-plot", "--out", str(out)]
    assert CliRunner().invoke(app, [*args, "--grid", "workers=1,2,3"]).exit_code == 0
    assert len(pd.read_csv(out / "sweep.csv")) == 3
    # a new grid whose second point is invalid: refused before anything runs, nothing changes
    res = CliRunner().invoke(app, [*args, "--grid", "workers=1,0"])
    assert res.exit_code == 2
    # a smaller grid: the old grid's third point is gone, sweep.csv holds the new grid only
    assert CliRunner().invoke(app, [*args, "--grid", "workers=[2, 4]"]).exit_code == 0
    df = pd.read_csv(out / "sweep.csv")
    assert list(df["params.workers"]) == [2, 4]
    assert sorted(p.name for p in out.glob("point-*")) == ["point-000", "point-001"]
    assert json.loads((out / "grid.json").read_text()) == {"params.workers": [2, 4]}


def test_a_sweep_whose_run_is_interrupted_leaves_no_sweep_csv_to_plot(tmp_path, monkeypatch):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG)
    out = tmp_path / "s"
    args = ["sweep", str(cfg), "--serial", "--no-plot", "--out", str(out)]
    assert CliRunner().invoke(app, [*args, "--grid", "workers=1,2"]).exit_code == 0

    import sls_ray.runtime

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(sls_ray.runtime, "simulate", interrupted)
    CliRunner().invoke(app, [*args, "--grid", "workers=3,4"])
    assert not (out / "sweep.csv").exists()
    res = CliRunner().invoke(app, ["plot", str(out)])
    assert res.exit_code == 2


# ------------------------------------------------------------------ statuses and exit codes
def test_an_ok_run_exits_0(tmp_path):
    res = _run(tmp_path)
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["status"] == "ok"
    assert "reason" not in json.loads((tmp_path / "out" / "summary.json").read_text())


def test_a_run_whose_entry_invocation_failed_is_failed_and_exits_1(tmp_path):
    res = _run(tmp_path, "--set", "profile.functions.runtime_base_mb=200")  # the 128 MB trigger cannot start
    assert res.exit_code == 1, res.output
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["status"] == "failed"
    assert "entry invocation" in s["reason"] and "MemoryLimitExceeded" in s["reason"]
    assert "3 attempts" in s["reason"]  # Lambda retried the asynchronous entry twice
    assert "MemoryLimitExceeded" in res.output


def test_an_entry_that_fails_then_succeeds_on_retry_is_ok(sim):
    def main(ctx, p):
        if ctx.attempt == 0:
            raise ValueError("transient")

    r = sim({"main": main}, ("main", None))
    assert list(r.invocations["status"]) == ["ValueError", "ok"]
    assert r.summary["status"] == "ok"


def test_failed_workers_with_an_ok_entry_leave_the_run_ok(sim):
    """The entry's own code decides what a worker's failure means; the failures are counted."""

    def main(ctx, p):
        ctx.invoke("w", None)

    r = sim({"main": main, "w": lambda ctx, p: 1 / 0}, ("main", None))
    assert r.summary["status"] == "ok" and r.summary["failures"] == {"ZeroDivisionError": 3}


def test_a_run_whose_own_check_says_incorrect_is_failed(tmp_path, monkeypatch):
    from sls_ray.quickstart import AllReduceExperiment

    class Wrong(AllReduceExperiment):
        def check(self, stored):
            return {"correct": False}

    import sys

    monkeypatch.setattr(sys.modules[__name__], "Wrong", Wrong, raising=False)
    monkeypatch.setitem(EXPERIMENTS, "wrong", f"{__name__}:Wrong")
    res = _run(tmp_path, config=CONFIG.replace("allreduce", "wrong"))
    assert res.exit_code == 1, res.output
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["status"] == "failed" and s["correct"] is False
    assert "correct: false" in s["reason"]


def stuck(ctx, p):
    ctx.storage("s3").wait("never/written")


def test_a_deadlock_exits_1(tmp_path, monkeypatch):
    from sls_ray.quickstart import AllReduceExperiment

    class Stuck(AllReduceExperiment):
        def handlers(self):
            return {"trigger": stuck}

    import sys

    monkeypatch.setattr(sys.modules[__name__], "Stuck", Stuck, raising=False)
    monkeypatch.setitem(EXPERIMENTS, "stuck", f"{__name__}:Stuck")
    res = _run(tmp_path, config=CONFIG.replace("allreduce", "stuck"))
    assert res.exit_code == 1, res.output
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["status"] == "deadlock" and "never/written" in s["deadlock"]


@pytest.mark.parametrize("profile_over,blame", [
    ({"functions": {"nic_mb": 5}}, "the config's 'profile:' section"),
])
def test_an_error_in_the_users_own_profile_section_is_blamed_on_it(profile_over, blame):
    from sls_ray.config import load_profile
    from sls_ray.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        load_profile("aws_2020", profile_over)
    assert blame in str(e.value) and "profile.functions.nic_mb" in str(e.value)
    assert not str(e.value).startswith("configs/platforms")


def test_a_sweep_with_a_failed_point_writes_every_point_and_exits_1(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG)
    out = tmp_path / "s"
    res = CliRunner().invoke(app, ["sweep", str(cfg), "--serial", "--no-plot", "--out", str(out),
                                   "--grid", "profile.functions.runtime_base_mb=60,200"])
    assert res.exit_code == 1, res.output
    df = pd.read_csv(out / "sweep.csv")
    assert list(df["status"]) == ["ok", "failed"]
    assert "point-001 (failed)" in res.output
