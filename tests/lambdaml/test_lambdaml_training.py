"""LambdaML jobs on the simulator compute what the centralised algorithms compute (LambdaML §3-4)."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans

from sls_ray.config import load_config
from sls_ray.lambdaml import algorithms as alg
from sls_ray.lambdaml import datasets as ds
from sls_ray.lambdaml import models as m
from sls_ray.lambdaml.experiment import LambdaMLExperiment, LambdaMLParams
from sls_ray.lambdaml.job import load_dataset, worker_batches
from sls_ray.runtime import simulate

ROWS = 2000  # real_rows = rows: no scaling, so batches are the sizes written here


def run(params: dict, faults: list | None = None, profile: dict | None = None):
    base = {"model": "lr", "dataset": "higgs", "rows": ROWS, "real_rows": ROWS, "workers": 4,
            "batch_size": 100, "epochs": 3}
    cfg = load_config(data={"experiment": "lambdaml", "platform": "aws_2020_lambdaml",
                            "params": {**base, **params}, "faults": faults or [], "profile": profile or {}})
    r = simulate(cfg)
    assert r.summary["status"] == "ok", r.summary.get("deadlock")
    return r


def final_models(r) -> dict[int, np.ndarray]:
    fin = r.metric("final")
    return {int(row.rank): np.asarray(row.model) for row in fin.itertuples()}


def train_shards(params: dict) -> tuple[list[ds.Dataset], dict]:
    q = LambdaMLExperiment(LambdaMLParams(**params), _profile()).payload
    shards = ds.shard(load_dataset(q["dataset"], q["rows"], q["seed"]), q["workers"])
    return [ds.train_val_split(s, q["val_fraction"], seed=q["seed"])[0] for s in shards], q


def _profile():
    from sls_ray.config import load_profile

    return load_profile("aws_2020_lambdaml")


# ---------------------------------------------------------------- GA-SGD
@pytest.mark.parametrize("pattern", ["allreduce", "scatter_reduce"])
def test_sync_ga_sgd_with_w_workers_equals_single_process_sgd_over_the_same_batches(pattern):
    params = {"model": "lr", "dataset": "higgs", "rows": ROWS, "real_rows": ROWS, "workers": 4,
              "batch_size": 100, "epochs": 3, "lr": 0.05, "pattern": pattern}
    r = run(params)
    trains, q = train_shards(params)
    model = m.logistic_regression(28)
    for epoch in range(3):
        batches = [worker_batches(q, rank, epoch, len(t)) for rank, t in enumerate(trains)]
        assert len({len(b) for b in batches}) == 1  # every worker takes the same number of steps
        for step in range(len(batches[0])):
            total = np.zeros(28)
            for rank, t in enumerate(trains):
                idx = batches[rank][step]
                total += m.loss_and_grad(model, t.X[idx], t.y[idx])[1]
            m.add_flat(model, total / 4, -0.05)
    got = final_models(r)
    assert sorted(got) == [0, 1, 2, 3]
    for vec in got.values():
        np.testing.assert_allclose(vec, m.get_flat(model), rtol=1e-10, atol=1e-13)


def test_ga_sgd_is_the_same_model_whatever_the_channel():
    a = final_models(run({"channel": "s3"}))[0]
    for channel in ("memcached", "dynamodb", "vm"):
        np.testing.assert_allclose(final_models(run({"channel": channel}))[0], a, rtol=1e-12)


# ---------------------------------------------------------------- ADMM
def _centralised_l1_lr(shards: list[ds.Dataset], lam: float) -> np.ndarray:
    """min_w Σ_i f_i(w) + lam·‖w‖₁ by L-BFGS-B on w = p − q (p, q ≥ 0)."""
    from scipy.optimize import minimize

    d = shards[0].n_features
    model = m.logistic_regression(d)

    def objective(pq):
        m.set_flat(model, pq[:d] - pq[d:])
        parts = [m.loss_and_grad(model, s.X, s.y) for s in shards]
        g = sum(p[1] for p in parts)
        return sum(p[0] for p in parts) + lam * pq.sum(), np.concatenate([g + lam, -g + lam])

    res = minimize(objective, np.zeros(2 * d), jac=True, method="L-BFGS-B", bounds=[(0, None)] * (2 * d),
                   options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 10_000})
    return res.x[:d] - res.x[d:]


def test_admm_through_the_simulator_reaches_the_centralised_solution():
    params = {"model": "lr", "dataset": "higgs", "rows": ROWS, "real_rows": ROWS, "workers": 4,
              "algorithm": "admm", "admm_lam": 0.08, "admm_rho": 1.0, "admm_local_epochs": 20, "lr": 0.2,
              "batch_size": 10**6, "epochs": 150, "log_rounds": False, "checkpoint_every": 0}
    r = run(params)
    trains, _ = train_shards(params)
    expected = _centralised_l1_lr(trains, 0.08)
    assert 3 <= np.sum(expected == 0) < 28
    for z in final_models(r).values():
        np.testing.assert_allclose(z, expected, atol=2e-4)
        assert np.array_equal(np.abs(z) < 1e-12, expected == 0)


# ---------------------------------------------------------------- k-means
def test_kmeans_matches_sklearn_inertia_from_the_same_initial_centroids():
    params = {"model": "kmeans", "algorithm": "kmeans", "dataset": "higgs", "rows": ROWS, "real_rows": ROWS,
              "workers": 4, "k": 5, "epochs": 300, "kmeans_threshold": 1e-12, "log_rounds": False,
              "checkpoint_every": 0}
    r = run(params)
    trains, q = train_shards(params)
    X = np.concatenate([np.asarray(t.X, dtype=np.float64) for t in trains])
    init = alg.init_centroids(trains[0], 5, seed=q["seed"])
    km = KMeans(n_clusters=5, init=init, n_init=1, max_iter=300, tol=0.0, algorithm="lloyd").fit(X)
    ours = final_models(r)[0].reshape(5, 28)
    _, d2 = alg.assign(X, ours)
    assert r.summary["epochs_run"] < 300  # converged, not cut off
    np.testing.assert_allclose(d2.sum(), km.inertia_, rtol=1e-6)


# ---------------------------------------------------------------- asynchronous
@pytest.mark.parametrize("algorithm", ["ga_sgd", "ma_sgd"])
def test_asynchronous_training_runs_and_its_loss_decreases(algorithm):
    r = run({"protocol": "async", "algorithm": algorithm, "epochs": 6, "lr": 0.05})
    ep = r.metric("epoch")
    for _, rows in ep.groupby("rank"):
        losses = rows.sort_values("epoch")["train_loss"].to_numpy()
        assert losses[-1] < losses[0] - 0.005
    models = final_models(r)
    assert not all(np.array_equal(models[0], v) for v in models.values())  # no barrier: workers differ
    assert r.summary["final_val_loss"] < np.log(2)


# ---------------------------------------------------------------- faults and the 15-minute limit
def test_a_killed_executor_is_retried_resumes_from_its_checkpoint_and_the_job_still_reaches_the_target():
    # the original deletes older merged vectors every round; replay needs them kept ('late'), and the
    # others must out-wait the 60 s retry delay (the original's 60 s load-or-wait would fail them too)
    params = {"epochs": 12, "target_loss": 0.655, "lr": 0.05, "merged_expiry": "late", "wait_timeout_s": 600}
    clean = run(params)
    assert clean.summary["reached_target"]
    ep = clean.tables["epochs"]
    mid = float((ep["t_end"].iloc[3] + ep["t_end"].iloc[4]) / 2)  # inside epoch 4
    victim = int(clean.invocations[clean.invocations["handler"] == "executor"]["id"].iloc[1])
    r = run(params, faults=[{"kind": "kill", "fid": victim, "at_s": mid}])
    inv = r.invocations
    killed = inv[inv["status"] == "FunctionKilled"]
    assert list(killed["id"]) == [victim]
    retry = inv[(inv["invocation"] == victim) & (inv["attempt"] == 1)]
    assert len(retry) == 1 and retry["status"].iloc[0] == "ok"
    assert r.summary["resumes"] == 1
    assert r.summary["reached_target"] and r.summary["final_train_loss"] <= 0.655
    assert r.summary["time_to_target_s"] > clean.summary["time_to_target_s"] + 50  # the platform retries after 60 s
    for rank, vec in final_models(r).items():  # the replayed steps reproduced the same training
        np.testing.assert_array_equal(vec, final_models(clean)[rank])


def test_executors_checkpoint_and_reinvoke_themselves_before_their_timeout():
    params = {"epochs": 10, "lr": 0.05}
    clean = run(params)
    short = run({**params, "timeout_s": 10.0, "reinvoke_margin_s": 2.0})
    assert short.summary["reinvocations"] >= 8 and short.summary["resumes"] == short.summary["reinvocations"]
    assert (short.invocations["status"] == "ok").all()
    assert short.invocations["attempt"].max() == 0  # no timeouts, no retries
    executors = short.invocations[short.invocations["handler"] == "executor"]
    assert (executors["end_s"] - executors["start_s"]).max() < 10.0
    assert len(executors) == 4 + short.summary["reinvocations"]
    for rank, vec in final_models(short).items():
        np.testing.assert_array_equal(vec, final_models(clean)[rank])


def test_cnn_workers_start_from_one_model_and_stay_identical_under_sync_ga_sgd():
    """Workers are threads of one process: model initialisation must not interleave their RNG draws."""
    r = run({"model": "mobilenet", "dataset": "cifar10", "rows": 60, "real_rows": 50_000, "workers": 3,
             "batch_size": 256, "epochs": 1, "max_steps_per_epoch": 2, "max_real_val_rows": 2,
             "checkpoint_every": 0})
    norms = r.metric("final")["model_norm"].to_numpy()
    assert len(norms) == 3 and norms[0] > 0
    assert (norms == norms[0]).all()


def test_lr_learns_sklearns_real_breast_cancer_data_through_the_simulator():
    """A small real-data check: the same job on sklearn's bundled (real) dataset."""
    r = run({"dataset": "breast_cancer", "rows": 569, "real_rows": 569, "workers": 3, "algorithm": "ma_sgd",
             "batch_size": 16, "lr": 0.1, "epochs": 15})
    ep = r.tables["epochs"]
    assert ep["train_loss"].iloc[-1] < 0.5 * ep["train_loss"].iloc[0]
    assert r.summary["final_val_acc"] > 0.9


def test_kmeans_on_yfcc100m_deep_features_converges_and_lowers_the_error():
    r = run({"model": "kmeans", "algorithm": "kmeans", "dataset": "yfcc100m", "rows": 400, "real_rows": 400,
             "workers": 2, "k": 10, "epochs": 50, "log_rounds": False, "checkpoint_every": 0})
    ep = r.tables["epochs"]
    assert r.summary["epochs_run"] < 50
    assert ep["train_loss"].iloc[-1] < 0.9 * ep["train_loss"].iloc[0]
    assert r.summary["vector_bytes"] == (10 * 4096 + 10 + 1) * 8  # centroids, counts and error travel
