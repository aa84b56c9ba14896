"""A virtual deadlock ends the run with an error listing the blocked functions, at once, never a
hang (issue 3, "Tests must show" 5)."""
from __future__ import annotations

import threading
import time

import pytest
from typer.testing import CliRunner

from sls_ray import experiment
from sls_ray.cli import app
from sls_ray.experiment import Experiment
from sls_ray.platform import Strict


def dl_main(ctx, p):
    ctx.invoke("a")
    ctx.invoke("b")
    ctx.storage("s3").wait("never/written", poll_interval=1.0)


def dl_a(ctx, p):
    s3 = ctx.storage("s3")
    s3.wait("from_b")  # b writes it only after a's key exists: neither ever will
    s3.put("from_a", b"1")


def dl_b(ctx, p):
    s3 = ctx.storage("s3")
    s3.wait("from_a")
    s3.put("from_b", b"1")


def test_functions_waiting_on_keys_nobody_writes_end_the_run_as_a_deadlock(sim):
    r = sim({"main": dl_main, "a": dl_a, "b": dl_b}, ("main", None))
    s = r.summary  # (how fast in real time: benchmarks/speed_checks.py)
    assert s["status"] == "deadlock"
    msg = s["deadlock"]
    for needle in ("3 functions", "fid 1 (main)", "fid 2 (a)", "fid 3 (b)",
                   "s3.wait('never/written')", "s3.wait('from_b')", "s3.wait('from_a')"):
        assert needle in msg, needle
    # every blocked function is recorded, ended at the deadlock's virtual time, and billed
    inv = r.invocations
    assert list(inv["handler"]) == ["main", "a", "b"]
    assert set(inv["status"]) == {"VirtualDeadlock"}
    assert inv["end_s"].max() == pytest.approx(s["makespan_s"])
    assert s["makespan_s"] > 1.0
    assert (inv["billed_ms"] > 0).all()
    assert s["cost_usd"]["lambda_compute"] > 0
    assert s["failures"] == {"VirtualDeadlock": 3}
    # a deadlocked function is not retried: the run is over
    assert s["counts"]["retries"] == 0


def test_a_deadlock_through_a_sync_invoke_lists_caller_and_callee(sim):
    def main(ctx, p):
        ctx.invoke("callee", None, sync=True)

    def callee(ctx, p):
        ctx.storage("memcached").get_wait("nothing")

    r = sim({"main": main, "callee": callee}, ("main", None))
    assert r.summary["status"] == "deadlock"
    assert "invoke callee (sync)" in r.summary["deadlock"]
    assert "memcached.get_wait('nothing')" in r.summary["deadlock"]
    assert set(r.invocations["status"]) == {"VirtualDeadlock"}


def test_function_threads_end_after_a_deadlock(sim):
    before = threading.active_count()
    sim({"main": dl_main, "a": dl_a, "b": dl_b}, ("main", None))
    deadline = time.time() + 30  # a liveness bound, generous for a loaded CI machine
    while threading.active_count() > before and time.time() < deadline:
        time.sleep(0.01)
    assert threading.active_count() <= before


def test_waits_with_a_timeout_or_a_long_poll_are_not_deadlocks(sim):
    def main(ctx, p):
        from sls_ray.errors import WaitTimeout

        try:
            ctx.storage("s3").wait("never", timeout=5.0)
        except WaitTimeout:
            ctx.log("timed_out", t=ctx.now)
        ctx.log("sqs", got=ctx.storage("sqs").receive("empty", wait=20.0) is None, t=ctx.now)

    r = sim({"main": main}, ("main", None))
    assert r.summary["status"] == "ok"
    assert bool(r.metric("sqs")["got"].iloc[0])


def test_the_polls_a_deadlocked_wait_made_are_billed(sim):
    """A literal poller would have sent a GET every latency + interval until the run ended."""
    r = sim({"main": dl_main, "a": dl_a, "b": dl_b}, ("main", None))
    end = r.summary["makespan_s"]
    # main's wait arrived at 0.55 and polls every 0.02 + 1.0 s; a's and b's every 0.12 s
    inv = r.invocations.set_index("handler")
    expected = 0
    for h, period in (("main", 1.02), ("a", 0.12), ("b", 0.12)):
        arrive = inv.loc[h, "start_s"] + 0.01 + (0.04 if h == "main" else 0.0)
        expected += int((end - arrive + 1e-9) // period) + 1
    assert r.storage.set_index("service").loc["s3", "req_GET"] == expected


# ------------------------------------------------------------------ through the CLI
class NoParams(Strict):
    """The CLI experiment below takes no parameters."""


class DeadlockExperiment(Experiment):
    name = "t_deadlock"
    Params = NoParams

    def handlers(self):
        return {"main": dl_main, "a": dl_a, "b": dl_b}

    def entry(self):
        return "main", None


def test_the_cli_reports_a_deadlock_with_the_blocked_list_and_fails(tmp_path, monkeypatch):
    monkeypatch.setitem(experiment.EXPERIMENTS, "t_deadlock", f"{__name__}:DeadlockExperiment")
    cfg = tmp_path / "dl.yaml"
    cfg.write_text("experiment: t_deadlock\n")
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["run", str(cfg), "--out", str(out)])
    assert res.exit_code == 1, res.output
    assert "deadlock" in res.output and "fid 2 (a)" in res.output
    assert "Traceback" not in res.output
    assert (out / "summary.json").exists() and (out / "invocations.csv").exists()
