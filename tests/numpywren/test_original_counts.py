"""NumPyWren task counts against the original compiler's (numpywren/algs.py; sls_ray/numpywren/original.py).

The default graph (``original``) has the original's count for every program at every size,
powers of two or not; the ``compact`` graph (no copy-outs, 3-ary merges) has ours. At the
paper's DAG (64 blocks a side): Cholesky 45,760 in both; GEMM 352,256 (compact 348,160);
QR 183,334 (171,760); SVD's BDFAC 358,606 (339,232); TSQR over 64 row blocks 127 (127:
a power of two).
"""
from __future__ import annotations

import numpy as np
import pytest

from sls_ray.numpywren import original as orig
from sls_ray.numpywren.experiment import NumPyWrenParams
from sls_ray.numpywren.job import JobSpec
from sls_ray.numpywren.programs import get_program
from sls_ray.numpywren.reference import run_reference


def tasks(name: str, blocks: int, graph: str = "original") -> int:
    sizes = {"cholesky": {"N": blocks}, "gemm": {"M": blocks, "N": blocks, "K": blocks}, "tsqr": {"M": blocks},
             "qr": {"M": blocks, "N": blocks}, "bdfac": {"M": blocks, "N": blocks}}[name]
    return get_program(name, graph).program.dag(**sizes).num_tasks()


def original_count(name: str, n: int) -> int:
    return {"cholesky": orig.cholesky_tasks(n), "gemm": orig.gemm_tasks(n, n, n), "tsqr": orig.tsqr_tasks(n),
            "qr": orig.qr_tasks(n), "bdfac": orig.bdfac_tasks(n)}[name]


def compact_count(name: str, n: int) -> int:
    """Our compact graphs, from their own formulas (3-ary merges: tree_nodes_ours)."""
    nodes = orig.tree_nodes_ours
    if name == "cholesky":
        return orig.cholesky_tasks(n)
    if name == "gemm":
        return orig.gemm_tasks(n, n, n, copy_out=False)
    if name == "tsqr":
        return n + nodes(n)
    if name == "qr":
        return sum((m + nodes(m)) * m for m in range(1, n + 1))
    return sum((m + nodes(m)) * m + (m - 1 + nodes(m - 1)) * m for m in range(1, n + 1))


PROGRAM_NAMES = ["cholesky", "gemm", "tsqr", "qr", "bdfac"]
SIZES = [1, 2, 3, 4, 5, 6, 7, 8, 11, 13, 16]  # powers of two and not (every panel height occurs)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name", PROGRAM_NAMES)
def test_the_default_graph_has_the_originals_task_count(name, n):
    assert tasks(name, n) == original_count(name, n)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name", PROGRAM_NAMES)
def test_the_compact_graph_has_ours(name, n):
    assert tasks(name, n, "compact") == compact_count(name, n)


def test_the_original_counts_written_out_by_hand():
    # QR over 3 blocks: panel 0 has 3 leaves and ceil(3/2) + ceil(3/4) = 3 tree nodes, each with a
    # factor and 2 trailing updates (18), plus 2 copy-outs; panel 1: 2 leaves + 1 node, x 2, + 1
    # copy-out; panel 2: one leaf factor. 18 + 2 + 6 + 1 + 1 = 28.
    assert orig.qr_tasks(3) == tasks("qr", 3) == 28
    # TSQR over 5 row blocks: 5 leaves, then 3 + 2 + 1 nodes (ceil(log2 5) = 3 levels)
    assert orig.tsqr_tasks(5) == tasks("tsqr", 5) == 11 and tasks("tsqr", 5, "compact") == 5 + 2 + 1
    # GEMM 2x2x5: 20 products, ceil(5/4) + ceil(5/16) = 3 adds per output, 4 copy-outs
    assert orig.gemm_tasks(2, 2, 5) == 20 + 4 * 3 + 4
    # BDFAC over 3 blocks: QR panels (3+3)x3, (2+1)x2, 1; LQ panels (2+1)x3, (1+0)x2
    assert orig.bdfac_tasks(3) == tasks("bdfac", 3) == 18 + 6 + 1 + 9 + 2


PAPER_COUNTS = {  # 64 blocks a side (TSQR: 64 and 63 row blocks): (original, compact)
    ("cholesky", 64): (45_760, 45_760), ("gemm", 64): (352_256, 348_160), ("qr", 64): (183_334, 171_760),
    ("bdfac", 64): (358_606, 339_232), ("tsqr", 64): (127, 127), ("tsqr", 63): (126, 120),
}


@pytest.mark.parametrize("name, n", sorted(PAPER_COUNTS), ids=str)
def test_the_paper_dag_built_in_both_graphs_has_the_quoted_counts(name, n):
    """The DAGs themselves at the paper's 64 blocks (a few seconds each: sizes are symbolic)."""
    assert (tasks(name, n), tasks(name, n, "compact")) == PAPER_COUNTS[name, n]
    assert PAPER_COUNTS[name, n] == (original_count(name, n), compact_count(name, n))


def test_the_paper_dag_counts_quoted_in_results_readme():
    assert orig.cholesky_tasks(64) == 45_760
    assert orig.gemm_tasks(64, 64, 64) == 352_256 and compact_count("gemm", 64) == 348_160
    assert orig.qr_tasks(64) == 183_334 and compact_count("qr", 64) == 171_760
    assert orig.bdfac_tasks(64) == 358_606 and compact_count("bdfac", 64) == 339_232
    assert orig.tsqr_tasks(64) == compact_count("tsqr", 64) == 127
    # TSQR over 63 leaves: the original enumerates 63 tree nodes in 6 levels, ours 57 in 5
    assert (orig.tree_nodes_original(63), orig.tree_depth_original(63)) == (63, 6)
    assert (orig.tree_nodes_ours(63), orig.tree_depth_ours(63)) == (57, 5)


@pytest.mark.parametrize("name", ["gemm", "tsqr", "qr", "bdfac"])
def test_both_graphs_compute_the_same_result_with_ragged_blocks(name):
    rng = np.random.default_rng(3)
    mats = {"A": rng.standard_normal((22, 17))}
    if name == "gemm":
        mats["B"] = rng.standard_normal((17, 6))
    if name == "tsqr":
        mats = {"A": rng.standard_normal((27, 5))}
    got = run_reference(get_program(name, "original"), mats, 4)
    want = run_reference(get_program(name, "compact"), mats, 4)
    if name in ("qr", "tsqr"):  # R up to the signs of its rows
        np.testing.assert_allclose(np.abs(got.result), np.abs(want.result), rtol=1e-12, atol=1e-12)
    else:
        np.testing.assert_allclose(got.result, want.result, rtol=1e-12, atol=1e-12)
    if name != "gemm":  # the original's trees read children past the end (as zeros); ours never do
        assert got.execution.zero_reads > 0 and want.execution.zero_reads == 0


def test_retired_program_names_fail_with_the_fix():
    for old, new in (("gemm_copyout", "gemm"), ("qr_copyout", "qr")):
        with pytest.raises(ValueError, match=f"write program: {new}"):
            NumPyWrenParams(program=old)
        with pytest.raises(KeyError, match="graph: original"):
            get_program(old)
    with pytest.raises(KeyError, match="known graphs"):
        JobSpec.make("qr", 3, 4, graph="faithful")
    assert NumPyWrenParams().graph == "original"
