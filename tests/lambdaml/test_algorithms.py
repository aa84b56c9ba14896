"""Per-worker math of GA-SGD, MA-SGD, ADMM and k-means reproduces the centralised computation (LambdaML §3.2)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize
from sklearn.cluster import KMeans

from sls_ray.lambdaml import algorithms as alg
from sls_ray.lambdaml import datasets as ds
from sls_ray.lambdaml import models as m

# --------------------------------------------------------------------------- SGD settings


def test_paper_sgd_defaults_and_batch_scaling():
    assert (alg.HIGGS_SGD.lr, alg.HIGGS_SGD.batch_size) == (0.01, 100_000)
    assert (alg.CNN_SGD.lr, alg.CNN_SGD.batch_size) == (0.01, 256)
    assert alg.HIGGS_SGD.scaled(ds.row_scale("higgs")).batch_size == 1_000
    with pytest.raises(ValueError, match="batch_size=0"):
        alg.SGD(0.01, 0)


def test_iter_batches_covers_every_row_once():
    data = ds.higgs(250, seed=0)
    for seed in (None, 3):
        batches = alg.iter_batches(data, 100, seed=seed)
        assert [len(y) for _, y in batches] == [100, 100, 50]
        rows = np.concatenate([X for X, _ in batches])
        assert sorted(map(tuple, rows.tolist())) == sorted(map(tuple, data.X.tolist()))


# --------------------------------------------------------------------------- GA-SGD


@pytest.mark.parametrize("name,kind", [("higgs", "lr"), ("higgs", "svm"), ("rcv1", "lr"), ("rcv1", "svm")])
def test_averaged_shard_gradients_equal_the_full_batch_gradient(name, kind):
    """GA-SGD over W equal shards takes exactly the centralised full-batch step."""
    data = ds.make_dataset(name, 1200, seed=0)
    model = m.build_model(kind, n_features=data.n_features)
    m.set_flat(model, np.random.default_rng(0).standard_normal(data.n_features) * 0.1)
    _, full = m.loss_and_grad(model, data.X, data.y)
    shards = ds.shard(data, 4)
    avg = alg.average([alg.local_gradient(model, (s.X, s.y))[1] for s in shards])
    np.testing.assert_allclose(avg, full, rtol=1e-10, atol=1e-15)
    before = m.get_flat(model)
    after = alg.apply_gradient(model, avg, 0.01)
    np.testing.assert_array_equal(after, before - 0.01 * avg)


# --------------------------------------------------------------------------- MA-SGD


def test_local_epoch_is_sequential_sgd_and_lowers_the_loss():
    data = ds.higgs(3000, seed=0)
    batches = alg.iter_batches(data, 300)
    model = m.logistic_regression(28)
    start = m.loss(model, data.X, data.y)
    w = m.get_flat(model)
    for X, y in batches:  # the same SGD written out by hand
        probe = m.logistic_regression(28)
        m.set_flat(probe, w)
        w = w - 0.05 * m.loss_and_grad(probe, X, y)[1]
    new = alg.local_epoch(model, batches, lr=0.05)
    np.testing.assert_array_equal(new, w)
    assert m.loss(model, data.X, data.y) < start


# --------------------------------------------------------------------------- ADMM


def test_soft_threshold_shrinks_toward_zero():
    np.testing.assert_array_equal(alg.soft_threshold([-3.0, -0.5, 0.0, 0.2, 2.0], 1.0), [-2.0, 0.0, 0.0, 0.0, 1.0])


def _centralised_l1_lr(shards: list[ds.Dataset], lam: float) -> np.ndarray:
    """min_w Σ_i f_i(w) + lam·‖w‖₁ by L-BFGS-B on the split w = p − q, p, q ≥ 0 (smooth, exact)."""
    d = shards[0].n_features
    model = m.logistic_regression(d)

    def objective(pq):
        m.set_flat(model, pq[:d] - pq[d:])
        parts = [m.loss_and_grad(model, s.X, s.y) for s in shards]
        f = sum(p[0] for p in parts) + lam * pq.sum()
        g = sum(p[1] for p in parts)
        return f, np.concatenate([g + lam, -g + lam])

    result = minimize(
        objective, np.zeros(2 * d), jac=True, method="L-BFGS-B", bounds=[(0, None)] * (2 * d),
        options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 10_000},
    )
    return result.x[:d] - result.x[d:]


def test_admm_over_workers_reaches_the_centralised_l1_solution():
    n_workers, lam, rho = 4, 0.08, 1.0
    shards = ds.shard(ds.higgs(2000, seed=3), n_workers)
    expected = _centralised_l1_lr(shards, lam)
    assert 5 <= np.sum(expected == 0) <= 23  # the L1 term is active but does not zero everything

    models = [m.logistic_regression(28) for _ in shards]
    workers = [alg.AdmmWorker.start(model, n_workers, lam=lam, rho=rho) for model in models]
    batches = [alg.iter_batches(s, len(s)) for s in shards]
    for _ in range(150):
        for worker, model, b in zip(workers, models, batches):
            worker.local_update(model, b, lr=0.2, local_epochs=20)
        payloads = [w.payload(model) for w, model in zip(workers, models)]
        assert payloads[0].nbytes == 2 * m.nbytes(models[0])  # [w, u] per round
        summed = np.sum(payloads, axis=0)  # the all-reduce
        zs = [w.apply_round(model, summed) for w, model in zip(workers, models)]
    assert all(np.array_equal(zs[0], z) for z in zs)  # every worker holds the same consensus
    np.testing.assert_allclose(zs[0], expected, atol=1e-4)
    assert np.array_equal(zs[0] == 0, expected == 0)


def test_admm_round_follows_the_paper_update():
    model = m.logistic_regression(3)
    m.set_flat(model, [1.0, -2.0, 0.001])
    worker = alg.AdmmWorker(u=np.array([0.5, 0.0, 0.0]), z=np.zeros(3), n_workers=2)  # lam = rho = 0.01
    assert (worker.lam, worker.rho) == (0.01, 0.01)
    other = np.array([3.0, -2.0, 0.0, 0.5, 0.0, 0.0])  # the second worker's [w, u]
    z = worker.apply_round(model, worker.payload(model) + other)
    # mean(w) + mean(u) = [2.5, -2, 0.0005]; threshold lam/(W rho) = 0.5
    np.testing.assert_allclose(z, [2.0, -1.5, 0.0])
    np.testing.assert_allclose(worker.u, [0.5 + 1.0 - 2.0, -2.0 + 1.5, 0.001])


# --------------------------------------------------------------------------- k-means


def _integer_mixture(n: int = 900, d: int = 6, k: int = 5, seed: int = 0) -> np.ndarray:
    """Overlapping clusters with integer coordinates, so every sum is exact in float64."""
    rng = np.random.default_rng(seed)
    centres = rng.integers(-60, 60, size=(k, d))
    return (centres[rng.integers(0, k, n)] + rng.integers(-30, 31, size=(n, d))).astype(np.float64)


def test_kmeans_partials_over_shards_equal_the_single_process_lloyd_step_exactly():
    X = _integer_mixture()
    data = ds.Dataset("mix", X, np.zeros(len(X), dtype=np.int64), 1)
    shards = ds.shard(data, 4)
    centroids = alg.init_centroids(shards[0], 5, seed=1)
    assert any(np.array_equal(c, row) for c in centroids for row in shards[0].X)  # seeded from rank 0
    k, d = centroids.shape
    errors = []
    for _ in range(30):
        flat = np.sum([alg.lloyd_partial(s, centroids).to_flat() for s in shards], axis=0)  # all-reduce
        distributed, error = alg.merge([alg.LloydPartial.from_flat(flat, k, d)], centroids)
        central, central_error = alg.lloyd_step(X, centroids)
        assert np.array_equal(distributed, central) and error == central_error
        centroids = distributed
        if errors and alg.kmeans_converged(errors[-1], error):
            break
        errors.append(error)
    assert len(errors) < 30
    inertia = alg.lloyd_partial(X, centroids).error
    reference = KMeans(5, init=alg.init_centroids(shards[0], 5, seed=1), n_init=1, algorithm="lloyd", tol=0).fit(X)
    assert inertia == pytest.approx(reference.inertia_, rel=1e-9)
    np.testing.assert_allclose(np.sort(centroids, axis=0), np.sort(reference.cluster_centers_, axis=0), atol=1e-9)


def test_kmeans_on_yfcc_features_matches_sklearn_within_float_tolerance():
    data = ds.yfcc100m(400, seed=0, n_components=4)
    shards = ds.shard(data, 3)
    start = alg.init_centroids(shards[0], 4, seed=0)
    centroids, prev = start, float("inf")
    for _ in range(50):
        centroids, error = alg.merge([alg.lloyd_partial(s, centroids) for s in shards], centroids)
        if alg.kmeans_converged(prev, error):
            break
        prev = error
    reference = KMeans(4, init=start, n_init=1, algorithm="lloyd", tol=0).fit(data.X.astype(np.float64))
    assert alg.lloyd_partial(data, centroids).error == pytest.approx(reference.inertia_, rel=1e-6)


def test_merge_keeps_an_empty_centroid_and_flat_partials_round_trip():
    X = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 10.0]])
    centroids = np.array([[1.0, 0.0], [10.0, 10.0], [-50.0, -50.0]])
    part = alg.lloyd_partial(X, centroids)
    assert part.counts.tolist() == [2, 1, 0] and part.error == 2.0
    again = alg.LloydPartial.from_flat(part.to_flat(), 3, 2)
    assert np.array_equal(again.sums, part.sums) and np.array_equal(again.counts, part.counts)
    new, error = alg.merge([part], centroids)
    np.testing.assert_array_equal(new, [[1.0, 0.0], [10.0, 10.0], [-50.0, -50.0]])
    assert error == pytest.approx(2.0 / 3)


def test_kmeans_convergence_threshold_is_relative_1e_4():
    assert alg.KMEANS_THRESHOLD == 1e-4
    assert alg.kmeans_converged(100.0, 100.0 - 0.5e-2)
    assert not alg.kmeans_converged(100.0, 100.0 - 2e-2)
    assert not alg.kmeans_converged(float("inf"), 5.0)
    assert alg.lloyd_flops(10, 4, 3) == 2 * 10 * 4 * 3 + 2 * 10 * 4
