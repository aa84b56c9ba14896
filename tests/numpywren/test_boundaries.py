"""NumPyWren's lease boundaries (issue 8, "Done when"): a task held longer than the lease renews
it in time, and an executor killed after its writes but before its post-op loses nothing once
its lease expires (numpywren.md, "Runtime": leases are the recovery)."""
from __future__ import annotations

import pytest

from sls_ray.numpywren.executor import TaskExecutor
from tests.numpywren.conftest import run_numpywren


def test_a_task_held_longer_than_its_lease_renews_it_in_time():
    """Folded 4096-blocks: a syrk/gemm reads two 134 MB blocks (~4 s at 70 MB/s), computes ~5.8 s
    and writes ~2 s: about 12 s per task against an 8 s lease renewed every 4 s."""
    params = {"program": "cholesky", "blocks": 3, "block_size": 4, "model_block_size": 4096, "lease_s": 8.0,
              "compute_slice_s": 1.0, "policy": "fixed", "max_executors": 1, "baselines": False}
    r = run_numpywren(params)
    s = r.summary
    assert s["status"] == "ok" and s["correct"] is True
    tasks = r.metric("task")
    held = tasks["t"] - tasks["recv"]
    assert (held > 8.0).sum() >= 3, "some tasks must outlive one lease for this test to mean anything"
    assert r.metric("lease_lost").empty
    assert not tasks["repeat"].any(), "no task ran twice"
    assert len(tasks) == tasks["task"].nunique() == 3 + 3 + 4  # 3 chol, 3 trsm, 4 syrk: each once


@pytest.fixture
def logged_writes(monkeypatch):
    """Each retire logs the instant its writes are all done (ctx.clock: exact, since the gather
    just returned; a log costs no virtual time), then runs the runtime's own post-op."""
    original = TaskExecutor._retire

    def retire(self, slot, inflight):
        self.ctx.gather(slot.writes)
        self.ctx.log("written", task=slot.task.key, at=self.ctx.clock)
        original(self, slot, inflight)  # its gather finds the writes done: no second request

    monkeypatch.setattr(TaskExecutor, "_retire", retire)


def test_an_executor_killed_between_its_writes_and_its_post_op_lets_the_program_finish(logged_writes):
    params = {"program": "cholesky", "blocks": 3, "block_size": 4, "lease_s": 10.0, "policy": "fixed",
              "max_executors": 2, "baselines": False}
    base = run_numpywren(params)
    assert base.summary["correct"] is True
    written = base.metric("written").iloc[0]
    fid, at, task = int(written["fid"]), float(written["at"]), written["task"]
    # the post-op's Redis transaction leaves at `at` and lands 0.25 ms later: kill in between
    kill_at = at + 0.0001
    r = run_numpywren(params, faults=[{"kind": "kill", "fid": fid, "at_s": kill_at}])
    assert r.summary["status"] == "ok" and r.summary["correct"] is True
    victim = r.invocations.set_index("id").loc[fid]
    assert victim["status"] == "FunctionKilled"
    assert victim["end_s"] == pytest.approx(kill_at, abs=1e-9)
    tasks = r.metric("task")
    done = tasks[tasks["task"] == task]
    assert len(done) == 1, "the killed task's post-op never ran; it ran once more, elsewhere"
    rerun = done.iloc[0]
    assert rerun["fid"] != fid and bool(rerun["repeat"])
    tasks_before = base.metric("task")
    received = float(tasks_before[tasks_before["task"] == task]["recv"].iloc[0])  # identical run up to the kill
    assert at - received < 5.0  # held less than half a lease: never renewed
    assert rerun["recv"] >= received + 10.0 - 1e-9  # only once its lease (from the first receive) expired
    assert set(tasks["task"]) == set(base.metric("task")["task"])
