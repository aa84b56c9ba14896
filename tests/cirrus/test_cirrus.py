"""Cirrus on the simulated cloud: the parameter server, workers, iterator, preprocessing, tuning.

Small datasets (thousands of rows in 2,000-5,000-row objects) keep each simulation to seconds;
the mechanisms are the ones the figures run at full size.
"""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from sls_ray.api import load_config, simulate, simulate_handlers
from sls_ray.cirrus import data as d
from sls_ray.cirrus import preprocess
from sls_ray.cirrus.experiment import CirrusExperiment, CirrusParams
from sls_ray.cirrus.grid import grid_configs, median_rule
from sls_ray.cirrus.iterator import object_order
from sls_ray.cirrus.ps import BACKEND, Optimizer, PSClient, serve
from sls_ray.cirrus.training import lr_gradient, worker
from sls_ray.cirrus.workflow import PROFILE

SMALL = {"rows": 6000, "test_rows": 1000, "object_rows": 2000, "model_bits": 14}


def run(faults=(), profile=None, **params):
    data = {"experiment": "cirrus", "platform": PROFILE, "params": {**SMALL, **params}, "faults": list(faults),
            "profile": profile or {}}
    return simulate(load_config(data=data))


def ps_done(result) -> dict:
    rows = result.metric("ps_done")
    assert len(rows) == 1
    return rows.iloc[0].to_dict()


def minibatches(objects: dict, keys: list[str], seed: tuple, rows: int):
    for key in object_order(keys, "random", seed):
        obj = objects[key]
        for lo in range(0, len(obj), rows):
            yield obj.rows(lo, min(lo + rows, len(obj)))


def test_sync_ps_equals_single_process_sgd_on_the_same_minibatch_order():
    """BSP through the VM parameter server = sequential rounds of the same gradients, bit for bit."""
    result = run(n_workers=2, asynchronous=False, train_s=1.0, eval_every_s=0.5, keep_model=True,
                 opt_method="adagrad", learning_rate=0.1)
    exp = result.experiment
    assert exp.final_model is not None
    p = exp.task_payload()
    objects = exp.preload()["s3"]
    rounds = int(ps_done(result)["rounds"])
    assert rounds > 50
    w = np.zeros(p["model_size"])
    opt = Optimizer(p["opt_method"], p["learning_rate"], p["momentum"], size=w.size)
    streams = [minibatches(objects, p["train_keys"], (p["seed"], r, 0), p["minibatch_size"]) for r in range(2)]
    for _ in range(rounds):
        grads = []
        for s in streams:
            mb = next(s)
            uniq, inv = np.unique(mb.idx, return_inverse=True)
            grads.append((uniq, lr_gradient(mb, w[uniq], inv.reshape(mb.idx.shape), p["epsilon"])))
        for uniq, g in grads:
            opt.apply(w, uniq, g)
    np.testing.assert_array_equal(exp.final_model, w)


def test_async_training_converges_below_the_base_rate_loss():
    result = run(n_workers=4, rows=20000, object_rows=5000, train_s=4.0)
    curve = result.tables["curve"].sort_values("elapsed_s")
    base_rate = -(0.25 * np.log(0.25) + 0.75 * np.log(0.75))  # predicting 25% for everyone
    assert curve["value"].iloc[0] == pytest.approx(np.log(2))
    assert curve["value"].iloc[-1] < base_rate - 0.1
    assert result.summary["updates_per_s"] > 100
    assert result.summary["status"] == "ok"


def test_mf_beats_the_item_mean_baseline():
    result = run(workload="mf", n_users=1000, n_items=200, n_ratings=30_000, object_rows=2500, n_workers=4,
                 train_s=3.0)
    assert result.summary["final_value"] < result.summary["item_mean_rmse"]


def test_a_duplicate_worker_invocation_is_rejected():
    """At-least-once delivery: the second invocation of one (slot, generation) may not train."""
    exp = CirrusExperiment(CirrusParams(**SMALL, n_workers=1, train_s=1.0), None)
    p = exp.task_payload()
    objects = exp.preload()["s3"]

    def main(ctx, _):
        s3 = ctx.storage("s3")
        for k, v in objects.items():
            s3.put(k, v)
        ctx.start_vm_process("ps_serve", p, service="vm")
        ps = PSClient(ctx, "vm", BACKEND)
        st = ps.status()  # the server is up (the VM takes 90 s to start)
        ctx.invoke("worker", {"p": p, "worker": 0, "generation": 0})
        ctx.invoke("worker", {"p": p, "worker": 0, "generation": 0})
        ctx.sleep(2.0)
        ps.stop()
        while any(s["alive"] for s in ps.status()["workers"].values()):
            ctx.sleep(0.1)
        ps.shutdown()
        return st

    result = simulate_handlers({"main": main, "ps_serve": serve, "worker": worker}, ("main", None),
                               platform=PROFILE, memory={"worker": 128})
    rejected = result.metric("rejected")
    assert len(rejected) == 1 and "already registered" in rejected["reason"].iloc[0]
    assert ps_done(result)["rejected"] == 1
    assert ps_done(result)["steps_w0"] > 100  # the first invocation trained


def test_workers_relaunched_at_their_time_limit_continue_the_same_training():
    result = run(n_workers=2, time_limit_s=3.0, margin_s=0.5, train_s=8.0, rows=20000, object_rows=5000)
    gens = result.metric("generation")
    assert sorted(set(gens["generation"].astype(int))) == [0, 1, 2]
    inv = result.invocations[result.invocations["handler"] == "worker"]
    assert (inv["status"] == "ok").all() and ((inv["end_s"] - inv["start_s"]) <= 3.0).all()
    done = ps_done(result)
    for slot in (0, 1):  # the server's count continues across generations: no restart from zero
        assert done[f"steps_w{slot}"] == gens[gens["worker"] == slot]["steps"].sum()
    assert (gens["steps"] > 100).all()  # every generation trained on
    assert result.summary["final_value"] < 0.5


@pytest.mark.parametrize("method,scaler", [(preprocess.MIN_MAX_SCALING, MinMaxScaler),
                                            (preprocess.NORMAL, StandardScaler)])
def test_normalize_equals_scikit_learn(method, scaler):
    raw = d.criteo_raw(900, seed=3)
    rows = d.SparseRows(np.zeros((900, d.CRITEO_INT_COLUMNS), np.int32), raw.ints, raw.y)
    objects = d.load_libsvm(rows, "in", 300)
    cols = list(range(d.CRITEO_INT_COLUMNS))

    def main(ctx, _):
        s3 = ctx.storage("s3")
        for k, v in objects.items():
            s3.put(k, v)
        times = preprocess.normalize(ctx, sorted(objects), "out", method, cols)
        out = np.concatenate([s3.get(f"out/{i:05d}").val for i in range(3)])
        return out, times

    got = {}

    def capture(ctx, _):
        got["out"], got["times"] = main(ctx, _)

    result = simulate_handlers({"main": capture, **preprocess.HANDLERS}, ("main", None))
    assert result.summary["status"] == "ok"
    want = scaler().fit_transform(raw.ints.astype(np.float64))
    np.testing.assert_allclose(got["out"], want.astype(np.float32), rtol=1e-5, atol=1e-5)
    assert got["times"]["stats_s"] > 0 and got["times"]["scale_s"] > 0
    assert result.invocations["handler"].value_counts().to_dict() == {"normalize_stats": 3, "normalize_scale": 3,
                                                                      "main": 1}


def test_the_prefetcher_never_holds_more_than_its_buffer():
    result = run(n_workers=1, train_s=2.0, object_rows=2000, refill_below=50)
    g = result.metric("generation").iloc[0]
    per_object = 2000 // 20
    row_bytes = result.experiment.task_payload()["row_bytes"]
    capacity = (50 + per_object) * 20 * row_bytes
    assert 0 < g["peak_buffer_bytes"] <= capacity
    assert g["stall_s"] < 0.5  # after the first object, prefetching hides S3


def test_a_buffer_larger_than_the_function_fails_as_the_sandbox_would():
    """A 300,000-row object (97 MB) does not fit beside the 60 MB runtime in a 128 MB function."""
    result = run(n_workers=1, train_s=2.0, rows=300_000, object_rows=300_000, worker_size=128, lease_s=1.0)
    inv = result.invocations[result.invocations["handler"] == "worker"]
    assert (inv["status"] == "MemoryLimitExceeded").any()


def test_a_killed_worker_loses_at_most_its_in_flight_gradient():
    faults = [{"kind": "kill_fraction", "fraction": 0.5, "t0_s": 91.0, "t1_s": 92.0, "handler": "worker"}]
    result = run(faults, n_workers=4, train_s=8.0, trace_steps=True, lease_s=1.0, register_grace_s=1.0,
                 profile={"functions": {"async_retries": 0}})
    inv = result.invocations[result.invocations["handler"] == "worker"]
    killed = inv[inv["status"] == "FunctionKilled"]
    assert len(killed) == 2
    sent = result.metric("sent")
    done = ps_done(result)
    for slot in range(4):
        lost = int((sent["worker"] == slot).sum()) - int(done[f"steps_w{slot}"])
        assert 0 <= lost <= 1
    relaunched = set(sent[sent["generation"] >= 1]["worker"].astype(int))
    assert len(relaunched) == 2  # both killed slots came back and trained on


def test_grid_search_stops_configurations_by_the_median_rule():
    assert median_rule({"a": (5.0, 0.3), "b": (5.0, 0.5), "c": (5.0, 0.4)}, {"a", "b", "c"}, 4.0) == ["b"]
    assert median_rule({"a": (3.0, 0.3), "b": (3.0, 0.5)}, {"a", "b"}, 4.0) == []
    assert len(grid_configs({"learning_rate": [0.1, 1.0], "minibatch_size": [20, 200]})) == 4
    with pytest.raises(ValueError, match="cannot vary"):
        grid_configs({"rows": [1]})
    result = run(n_workers=1, train_s=6.0, eval_every_s=1.0, grid={"learning_rate": [0.0001, 0.1, 1.0]},
                 grid_min_s=2.0, grid_check_s=1.0, profile={"services": {"vm": {"nodes": None}}})
    curve = result.tables["curve"]
    stopped = curve.groupby("config")["early_stopped"].first()
    assert stopped.loc[0] and not stopped.loc[1]  # the tiny learning rate is stopped, a good one is not
    assert curve[curve["config"] == 0]["elapsed_s"].max() < 6.0


def test_same_config_same_trace_hash():
    a, b = run(n_workers=2, train_s=1.0), run(n_workers=2, train_s=1.0)
    assert a.summary["trace_hash"] == b.summary["trace_hash"]


def test_libsvm_round_trip_and_feature_hashing(tmp_path):
    rows = d.criteo(50, seed=1, bits=10)
    assert rows.idx.shape == (50, 40) and rows.idx.max() < 1024
    d.write_libsvm(rows, tmp_path / "x.svm")
    back = d.read_libsvm(tmp_path / "x.svm")
    np.testing.assert_array_equal(back.idx, rows.idx)
    np.testing.assert_allclose(back.val, rows.val, rtol=1e-5)
    objs = d.load_libsvm(tmp_path / "x.svm", "train", 20)
    assert [len(o) for o in objs.values()] == [20, 20, 10]
    big = d.criteo_raw(20000, seed=0)
    assert abs(big.y.mean() - 0.25) < 0.02


@pytest.mark.parametrize("name", ["lr_systems", "pywren", "ablation", "scaling", "mf", "grid"])
def test_every_config_builds_and_names_its_figure(name):
    """Each config validates (params, profile, services) and is swept by the figure of its name."""
    from pathlib import Path

    from sls_ray.api import load_figures
    from sls_ray.runtime import build

    path = Path(__file__).resolve().parents[2] / "configs" / "cirrus" / f"{name}.yaml"
    assert path.read_text().startswith(f"# sls-ray reproduce cirrus/{name}")
    exp, profile = build(load_config(path))
    assert set(exp.required_services()) <= set(profile.services)
    assert f"cirrus/{name}" in load_figures()


def test_the_pywren_step_gradient_is_cirrus_s_sparse_gradient_made_dense():
    from sls_ray.cirrus.baselines import dense_lr_gradient

    rows = d.criteo(500, seed=2, bits=12)
    w = np.random.default_rng(0).normal(0, 0.1, 1 << 12)
    uniq, inv = np.unique(rows.idx, return_inverse=True)
    sparse = lr_gradient(rows, w[uniq], inv.reshape(rows.idx.shape), 1e-3)
    dense, touched = dense_lr_gradient(rows, w, 1e-3)
    assert touched == uniq.size
    np.testing.assert_allclose(dense[uniq], sparse, rtol=1e-12, atol=1e-15)
    assert not dense[np.setdiff1d(np.arange(w.size), uniq)].any()


def test_the_workflow_api_runs_a_task_and_a_grid_search():
    from sls_ray.cirrus.workflow import CollaborativeFiltering, GridSearch, LogisticRegression

    lr = LogisticRegression(n_workers=2, model_size=1 << 14, train_set=(0, 3), test_set=(3, 4), timeout=2.0,
                            object_rows=2000)
    curve = lr.run()
    assert curve["elapsed_s"].max() == pytest.approx(2.0) and curve["value"].iloc[-1] < np.log(2)
    assert 0 < lr.cost_usd < 0.01
    gs = GridSearch(lr, {"learning_rate": [0.001, 0.1]}, early_stop=False)
    gs.run()
    top = gs.get_top(1)
    assert top["learning_rate"].iloc[0] == 0.1 and not top["early_stopped"].iloc[0]
    with pytest.raises(ValueError, match="power of two"):
        LogisticRegression(model_size=1000)
    assert CollaborativeFiltering(users=100).params["n_users"] == 100
