"""NumPyWren's runtime on the simulated cloud: exact results, leases, replays, faults, memory.

Every test runs real functions in virtual time (``sls_ray.numpywren.executor``) against the
S3, SQS and Redis stand-ins, and checks the stored result against numpy/scipy.
"""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from sls_ray.numpywren import protocol as P
from sls_ray.numpywren.executor import TaskExecutor, executor
from sls_ray.numpywren.job import JobSpec
from sls_ray.numpywren.lambdapack import Task
from sls_ray.runtime import simulate_handlers
from tests.numpywren.conftest import NO_RETRIES, run_numpywren

ROUND_OFF = 1e-12  # relative deviation from numpy allowed for float64 round-off at these sizes

CASES = [  # (program, blocks, block_size, n, graph): 1 block, several, ragged edges, 8 blocks
    ("cholesky", 1, 8, None, "original"), ("cholesky", 3, 8, 21, "original"), ("cholesky", 8, 4, None, "original"),
    ("gemm", 1, 8, None, "original"), ("gemm", 3, 8, 19, "original"), ("gemm", 5, 4, None, "original"),
    ("tsqr", 1, 6, None, "original"), ("tsqr", 5, 6, 27, "original"), ("tsqr", 8, 4, None, "original"),
    ("qr", 1, 8, None, "original"), ("qr", 3, 8, 22, "original"), ("qr", 6, 4, None, "original"),
    ("bdfac", 1, 8, None, "original"), ("bdfac", 3, 8, 23, "original"), ("bdfac", 5, 4, None, "original"),
    # our compact graphs: no copy-outs, 3-ary merges instead of children past the end
    ("gemm", 3, 8, 19, "compact"), ("tsqr", 5, 6, 27, "compact"), ("qr", 6, 4, None, "compact"),
    ("bdfac", 5, 4, None, "compact"),
]


@pytest.mark.parametrize("program, blocks, block_size, n, graph", CASES, ids=str)
def test_each_program_run_by_executors_equals_numpy(program, blocks, block_size, n, graph):
    r = run_numpywren({"program": program, "graph": graph, "blocks": blocks, "block_size": block_size, "n": n,
                       "pipeline_width": 2, "cache_blocks": 3, "baselines": False})
    s = r.summary
    assert s["status"] == "ok" and s["program_status"] == "done", r.invocations["error"].tolist()
    assert s["correct"] and s["max_rel_error"] < ROUND_OFF
    expected = JobSpec.make(program, blocks, block_size, n=n, graph=graph).plans()[0].dag.num_tasks()
    assert s["tasks_finished"] == s["tasks_total"] == expected and s["graph"] == graph
    assert s["repeated_tasks"] == 0
    assert s["leftover_intermediates"] == 0  # every consumed intermediate was garbage-collected


def test_a_long_run_with_several_executors_and_duplicate_deliveries_is_still_exact():
    """SQS delivers some messages twice (at-least-once): tasks run twice, every edge counts once."""
    r = run_numpywren({"program": "cholesky", "blocks": 6, "block_size": 4, "model_block_size": 1024,
                       "pipeline_width": 2, "policy": "fixed", "max_executors": 4, "baselines": False},
                      profile={"services": {"sqs": {"duplicate_prob": 0.3, "seed": 3}}})
    s = r.summary
    assert s["correct"] and s["max_rel_error"] < ROUND_OFF
    assert s["tasks_finished"] == s["tasks_total"] == 56
    assert s["task_executions"] >= s["tasks_total"]


# ---------------------------------------------------------------------- the post-op protocol
def _post_op_twice(ctx, p):
    """Run trsm(1,0)'s post-op twice (a replay), then trsm(2,0)'s, straight against Redis."""
    job = JobSpec(**p)
    dag = job.plans()[0].dag
    redis = ctx.storage("redis")
    t1, t2 = Task("trsm_0", (1,)), Task("trsm_0", (2,))
    log = []
    for task in (t1, t1, t2):
        op = P.post_op(dag, task)
        decision = P.decide(op, redis.transaction(op.ops))
        log.append(sorted(c.key for c in decision.enqueue))
    counts = {c.key: redis.getv(P.count_key(c)) for c in dag.children(t1) + dag.children(t2)}
    ctx.log("post_op", first=str(log[0]), replay=str(log[1]), other=str(log[2]), counts=str(sorted(counts.items())))


def test_a_replayed_parent_increments_each_child_once():
    job = JobSpec.make("cholesky", 3, 4)
    r = simulate_handlers({"main": _post_op_twice}, ("main", job.to_dict()), profile=NO_RETRIES)
    row = r.metric("post_op").iloc[0]
    # trsm(1,0)'s children: syrk(1,1,1) (needs only it) and syrk(1,2,1) (also needs trsm(2,0))
    assert row["first"] == "['syrk_0/1,1']"
    assert row["replay"] == "['syrk_0/1,1']"  # re-sent at least once (it never started), not re-counted
    assert row["other"] == "['syrk_0/2,1', 'syrk_0/2,2']"
    assert row["counts"] == "[('syrk_0/1,1', 1), ('syrk_0/2,1', 2), ('syrk_0/2,2', 1)]"


def _dies_after_writing(ctx, p):
    """An executor that computes and writes chol(0) and then 'dies' before its post-op."""
    job = JobSpec(**p["job"])
    ex = TaskExecutor(ctx, job, p["cfg"])
    msg = ctx.storage("sqs").receive(P.QUEUE, visibility_timeout=p["cfg"]["lease_s"])
    slot = ex._admit(msg)
    ex._compute(slot, [slot])
    ctx.gather(slot.writes)
    first = ctx.storage("s3").get("L/0/0")
    ctx.log("first_write", blob=pickle.dumps(first).hex(), receive_count=msg.receive_count)
    ex._release(slot)


def _lease_main(ctx, p):
    redis, sqs = ctx.storage("redis"), ctx.storage("sqs")
    redis.setv(P.PROGRAM, P.PROGRAM_RUNNING)
    sqs.send(P.QUEUE, "chol_0/")
    ctx.now
    ctx.invoke("dies", p)
    ctx.sleep(p["cfg"]["lease_s"] + 5.0)  # the lease runs out: the message is visible again
    ctx.invoke("executor", p)


def test_a_task_rerun_after_lease_expiry_rewrites_identical_bytes_and_counts_as_repeated():
    job = JobSpec.make("cholesky", 2, 8)
    real, _ = job.plans()
    cfg = {"pipeline_width": 1, "cache_blocks": 0, "lease_s": 10.0, "budget_s": 140.0, "idle_timeout_s": 30.0,
           "compute_slice_s": 5.0, "max_wait_s": 5.0, "heartbeat_s": 10.0}
    inputs = real.split(job.inputs())
    from sls_ray.runtime import InlineExperiment

    class Exp(InlineExperiment):
        def preload(self):
            return {"s3": {ref.key: v for ref, v in inputs.items()}}

        def check(self, stored):
            return {"final_L00": pickle.dumps(stored.get("s3", "L/0/0")).hex()}

    from sls_ray.config import load_config
    from sls_ray.runtime import simulate

    exp = Exp({"main": _lease_main, "dies": _dies_after_writing, "executor": executor},
              ("main", {"job": job.to_dict(), "cfg": cfg}),
              {}, {}, ["s3", "redis", "sqs"])
    r = simulate(load_config(data={"experiment": "inline", "profile": NO_RETRIES}), experiment=exp)
    assert r.summary["status"] == "ok", r.invocations["error"].tolist()
    first = r.metric("first_write").iloc[0]
    assert first["receive_count"] == 1
    assert r.summary["final_L00"] == first["blob"]  # the rerun wrote the very same bytes
    tasks = r.metric("task")
    chol = tasks[tasks["task"] == "chol_0/"].iloc[0]
    assert bool(chol["repeat"])  # the second start of chol(0) is repeated work
    assert set(tasks["task"]) == {"chol_0/", "trsm_0/1", "syrk_0/1,1", "chol_1/1"}
    np.testing.assert_allclose(np.linalg.cholesky(job.inputs()["A"])[:8, :8],
                               pickle.loads(bytes.fromhex(r.summary["final_L00"])), rtol=1e-13)


# ---------------------------------------------------------------------- faults
def test_killing_half_the_executors_mid_run_still_gives_the_exact_factor():
    params = {"program": "cholesky", "blocks": 6, "block_size": 4, "model_block_size": 2048, "pipeline_width": 2,
              "policy": "fixed", "max_executors": 6, "lease_s": 20.0, "baselines": False}
    clean = run_numpywren(params)
    hit = run_numpywren(params, faults=[{"kind": "kill_fraction", "fraction": 0.5, "t0_s": 20.0, "t1_s": 21.0,
                                         "handler": "executor"}])
    s, s0 = hit.summary, clean.summary
    assert s["correct"] and s["max_rel_error"] < ROUND_OFF
    assert s["executor_failures"] == 3 and s0["executor_failures"] == 0
    assert s["repeated_tasks"] > 0 and s0["repeated_tasks"] == 0
    assert s["completion_s"] > s0["completion_s"]  # the lease-expiry gap shows as a slowdown
    killed = hit.invocations[hit.invocations["status"] == "FunctionKilled"]
    assert len(killed) == 3 and (killed["handler"] == "executor").all()


# ---------------------------------------------------------------------- memory
def test_a_block_over_the_function_memory_fails_with_the_memory_error_naming_the_block_size():
    r = run_numpywren({"program": "cholesky", "blocks": 3, "block_size": 4, "model_block_size": 8192,
                       "pipeline_width": 2, "policy": "fixed", "max_executors": 2, "stall_timeout_s": 60.0,
                       "baselines": False, "verify": False})
    ex = r.invocations[r.invocations["handler"] == "executor"]
    failed = ex[ex["status"] == "MemoryLimitExceeded"]
    assert len(failed) >= 1
    assert all("8192x8192" in e for e in failed["error"]), failed["error"].tolist()
    assert r.summary["program_status"] == "stalled" and r.summary["completion_s"] is None
    # the same program fits at the paper's block size 4096 with one task in flight
    ok = run_numpywren({"program": "cholesky", "blocks": 3, "block_size": 4, "model_block_size": 4096,
                        "pipeline_width": 1, "baselines": False})
    assert ok.summary["correct"] and ok.summary["executor_failures"] == 0


def test_priority_queues_send_critical_path_tasks_to_the_queue_executors_read_first():
    """The later source runtime's priority queues (option): same exact result; the Cholesky
    critical path chol(0) -> trsm(1,0) -> syrk -> chol(1) ... travels through the high queue."""
    params = {"program": "cholesky", "blocks": 6, "block_size": 4, "model_block_size": 1024,
              "policy": "fixed", "max_executors": 4, "baselines": False, "priority_queues": True}
    r = run_numpywren(params)
    s = r.summary
    assert s["correct"] and s["tasks_finished"] == s["tasks_total"] == 56
    from sls_ray.numpywren.job import critical_tasks

    crit = critical_tasks(JobSpec.make("cholesky", 6, 4, 1024))
    # chol, trsm and syrk per column but the last (chol only): the diagonal chain
    assert sorted(crit) == sorted(["chol_0/", "trsm_0/1", "syrk_0/1,1"]
                                  + [f"chol_1/{i}" for i in range(1, 6)]
                                  + [f"trsm_1/{i},{i + 1}" for i in range(1, 5)]
                                  + [f"syrk_1/{i},{i + 1},{i + 1}" for i in range(1, 5)])
