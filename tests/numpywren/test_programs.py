"""NumPyWren programs run by the sequential reference executor equal numpy/scipy.

numpywren.md, "Other programs": Cholesky, GEMM, TSQR, CAQR and BDFAC, for 1..8 blocks per
side, with and without ragged edge blocks (matrix size not a multiple of the block size).
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from sls_ray.numpywren.kernels import KERNELS, geqrf_flops, get_kernel
from sls_ray.numpywren.lambdapack import BlockRef
from sls_ray.numpywren.programs import GRAPHS, PROGRAMS, get_program
from sls_ray.numpywren.reference import execute, run_reference

BLOCK = 4
RTOL = 1e-10


def sizes(blocks: int) -> list[int]:
    """A size with exactly ``blocks`` full blocks and one whose last block is ragged."""
    return sorted({blocks * BLOCK, blocks * BLOCK - 1 if blocks > 1 else 3, (blocks - 1) * BLOCK + 1})


CASES = [(blocks, n) for blocks in range(1, 9) for n in sizes(blocks)]


def rng_for(*key: int) -> np.random.Generator:
    return np.random.default_rng([20_20, *key])


def assert_close(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * max(1.0, np.abs(want).max()))


def rows_up_to_sign(r: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Flip the rows of ``r`` so its diagonal has the signs of ``reference``'s."""
    k = min(r.shape)
    signs = np.sign(np.diag(r)[:k]) * np.sign(np.diag(reference)[:k])
    return r * signs[:, None]


@pytest.mark.parametrize("blocks, n", CASES)
def test_cholesky_factor_equals_numpy(blocks, n):
    x = rng_for(blocks, n).standard_normal((n, n))
    a = x @ x.T + n * np.eye(n)
    run = run_reference("cholesky", {"A": a}, BLOCK)
    assert_close(run.result, np.linalg.cholesky(a))


@pytest.mark.parametrize("blocks, n", CASES)
def test_gemm_product_equals_numpy(blocks, n):
    rng = rng_for(blocks, n)
    a = rng.standard_normal((n, n + 5))  # K has one or two more blocks than M
    b = rng.standard_normal((n + 5, max(1, n - 3)))
    run = run_reference("gemm", {"A": a, "B": b}, BLOCK)
    assert_close(run.result, a @ b)


@pytest.mark.parametrize("blocks, n", CASES)
def test_tsqr_r_equals_numpy_up_to_row_signs(blocks, n):
    a = rng_for(blocks, n).standard_normal((n, 3))
    run = run_reference("tsqr", {"A": a}, BLOCK)
    want = np.linalg.qr(a, mode="r")
    assert_close(rows_up_to_sign(run.result, want), want)


def test_tsqr_handles_row_blocks_narrower_than_the_matrix():
    a = rng_for(99).standard_normal((37, 6))  # 4-row blocks of a 6-column matrix
    run = run_reference("tsqr", {"A": a}, BLOCK)
    want = np.linalg.qr(a, mode="r")
    assert_close(rows_up_to_sign(run.result, want), want)


@pytest.mark.parametrize("blocks, n", CASES)
@pytest.mark.parametrize("aspect", ["square", "tall", "wide"])
def test_qr_r_equals_numpy_up_to_row_signs(blocks, n, aspect):
    shape = {"square": (n, n), "tall": (n + 7, n), "wide": (max(1, n - 3), n)}[aspect]
    a = rng_for(blocks, n, len(aspect)).standard_normal(shape)
    run = run_reference("qr", {"A": a}, BLOCK)
    want = np.linalg.qr(a, mode="r")
    assert_close(rows_up_to_sign(run.result, want), want)


@pytest.mark.parametrize("blocks, n", CASES)
@pytest.mark.parametrize("aspect", ["square", "tall", "wide"])
def test_bdfac_singular_values_equal_numpy(blocks, n, aspect):
    shape = {"square": (n, n), "tall": (n + 7, n), "wide": (max(1, n - 3), n)}[aspect]
    a = rng_for(blocks, n, len(aspect), 1).standard_normal(shape)
    run = run_reference("bdfac", {"A": a}, BLOCK)
    want = np.linalg.svd(a, compute_uv=False)
    np.testing.assert_allclose(run.result, want, rtol=RTOL, atol=RTOL * want.max())


def test_bdfac_band_is_upper_bidiagonal_by_blocks():
    a = rng_for(7).standard_normal((22, 15))
    algorithm = PROGRAMS["bdfac"]
    plan = algorithm.plan_for({"A": a}, BLOCK)
    band = algorithm.band(plan, execute(plan, plan.split({"A": a})).blocks)
    assert np.allclose(np.tril(band, -1), 0)  # B[j, j] upper triangular, nothing below
    assert np.allclose(np.triu(band, BLOCK + 1), 0)  # B[j, j+1] lower triangular: bandwidth b


# ---------------------------------------------------------------------------------------
# Plans: blocking, shapes, FLOPs, idempotency.


@pytest.mark.parametrize("graph", GRAPHS)
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_predicted_block_shapes_and_flops_match_the_executed_ones(name, graph):
    rng = rng_for(5)
    matrices = {
        "cholesky": lambda: {"A": (lambda x: x @ x.T + 19 * np.eye(19))(rng.standard_normal((19, 19)))},
        "gemm": lambda: {"A": rng.standard_normal((10, 23)), "B": rng.standard_normal((23, 9))},
        "tsqr": lambda: {"A": rng.standard_normal((30, 3))},
        "qr": lambda: {"A": rng.standard_normal((21, 14))},
        "bdfac": lambda: {"A": rng.standard_normal((14, 21))},
    }[name]()
    plan = get_program(name, graph).plan_for(matrices, BLOCK)
    run = execute(plan, plan.split(matrices))
    assert len(run.order) == plan.dag.num_tasks()
    for ref, value in run.blocks.items():
        assert plan.block_shape(ref) == value.shape, ref
    assert sum(plan.task_flops(task) for task in run.order) == pytest.approx(run.flops)
    assert set(plan.output_blocks()) <= set(run.blocks)


def test_tasks_are_idempotent():
    """SSA: re-running a task (an at-least-once redelivery) rewrites identical bytes."""
    a = rng_for(3).standard_normal((18, 18))
    plan = PROGRAMS["qr"].plan_for({"A": a}, BLOCK)
    run = execute(plan, plan.split({"A": a}))
    blocks = run.blocks
    for task in run.order[:: max(1, len(run.order) // 25)]:
        inputs = [blocks[ref] if ref in blocks else plan.zeros(ref) for ref in plan.dag.reads(task)]
        for ref, value in plan.run_task(task, inputs):
            assert np.array_equal(value, blocks[ref])


def test_gemm_reads_missing_partial_sums_as_zeros():
    rng = rng_for(11)
    a, b = rng.standard_normal((4, 4 * 5)), rng.standard_normal((4 * 5, 4))  # K = 5 blocks
    run = run_reference("gemm", {"A": a, "B": b}, BLOCK)
    assert run.execution.zero_reads == 3 + 2  # level 1: node 1 lacks 3 children; level 2: root lacks 2
    assert_close(run.result, a @ b)


def test_cholesky_uploads_only_the_lower_triangle():
    plan = PROGRAMS["cholesky"].plan({"A": (10, 10)}, BLOCK)
    assert sorted(plan.split({"A": np.eye(10)})) == [BlockRef("A", (i, j)) for i in range(3) for j in range(i + 1)]
    assert plan.block_shape(BlockRef("A", (2, 1))) == (2, 4)


@pytest.mark.parametrize(
    "name, shapes, message",
    [
        ("cholesky", {"A": (4, 5)}, "square"),
        ("gemm", {"A": (4, 5), "B": (4, 5)}, "inner dimensions"),
        ("qr", {"B": (4, 4)}, "takes matrices"),
    ],
)
def test_plans_reject_bad_shapes(name, shapes, message):
    with pytest.raises(ValueError, match=message):
        PROGRAMS[name].plan(shapes, BLOCK)


def test_plans_survive_pickling_for_shipping_to_workers():
    plan = PROGRAMS["qr"].plan({"A": (20, 13)}, BLOCK)
    clone = pickle.loads(pickle.dumps(plan))
    for task in plan.dag.all_tasks():
        assert clone.dag.children(task) == plan.dag.children(task)
        assert clone.task_flops(task) == plan.task_flops(task)


def test_unknown_names_list_the_known_ones():
    with pytest.raises(KeyError, match="cholesky"):
        get_program("lu")
    with pytest.raises(KeyError, match="qr_factor"):
        get_kernel("getrf")


# ---------------------------------------------------------------------------------------
# Kernels.


def test_kernel_flop_counts_follow_lapack():
    assert KERNELS["chol"].flops([(6, 6)]) == pytest.approx(6**3 / 3)
    assert KERNELS["matmul"].flops([(2, 3), (3, 5)]) == 2 * 2 * 3 * 5
    assert KERNELS["trsm"].flops([(4, 4), (3, 4)]) == 3 * 16
    assert geqrf_flops(10, 4) == pytest.approx(2 * 10 * 16 - 2 * 64 / 3)
    assert geqrf_flops(4, 10) == pytest.approx(2 * 16 * (10 - 4 / 3))
    assert KERNELS["qr_apply"].flops([(8, 8), (4, 3), (4, 3)]) == 2 * 64 * 3


def test_kernels_handle_ragged_blocks():
    rng = rng_for(1)
    top, ragged = rng.standard_normal((4, 4)), rng.standard_normal((2, 4))
    q, r = KERNELS["qr_factor"](np.triu(top), np.triu(ragged))
    assert q.shape == (6, 6) and r.shape == (4, 4)
    x1, x2 = rng.standard_normal((4, 3)), rng.standard_normal((2, 3))
    y1, y2 = KERNELS["qr_apply"](q, x1, x2)
    assert (y1.shape, y2.shape) == ((4, 3), (2, 3))
    assert np.allclose(np.vstack([y1, y2]), q.T @ np.vstack([x1, x2]))
    q1, lower = KERNELS["lq_factor"](rng.standard_normal((4, 4)), rng.standard_normal((4, 3)))
    assert q1.shape == (7, 7) and lower.shape == (4, 4) and np.allclose(np.triu(lower, 1), 0)
    for name, kernel in KERNELS.items():
        assert kernel.doc and kernel.name == name


def test_kernels_check_their_arity():
    with pytest.raises(ValueError, match="syrk"):
        KERNELS["syrk"](np.eye(2), np.eye(2))
