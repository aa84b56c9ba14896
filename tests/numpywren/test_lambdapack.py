"""LAMBDAPACK analysis: keys, parsing, SSA, and the implicit DAG against a brute-force one.

numpywren.md, LAMBDAPACK: the runtime never materialises the task graph, so here every
program's symbolic children/parents are compared with a graph built by enumerating all
tasks and matching written blocks to read blocks.
"""

from __future__ import annotations

import itertools

import pytest

from sls_ray.numpywren.lambdapack import (
    BlockRef,
    ImplicitDAG,
    LambdaPackError,
    LambdaPackSyntaxError,
    Program,
    SSAViolation,
    Task,
    ceil_log,
    ceildiv,
    floor_log2,
)
from sls_ray.numpywren.programs import GRAPHS, PROGRAMS, get_program

# ---------------------------------------------------------------------------------------
# Keys and helpers.


def test_task_key_round_trips_and_tasks_are_hashable_and_ordered():
    task = Task("trsm_1", (3, 1))
    assert task.key == "trsm_1/3,1"
    assert Task.from_key(task.key) == task
    assert Task.from_key("chol_0/") == Task("chol_0", ())
    assert Task("chol_0", ()).key == "chol_0/"
    assert sorted([Task("b", (1,)), Task("a", (2,)), Task("a", (1,))])[0] == Task("a", (1,))
    assert len({task, Task("trsm_1", (3, 1))}) == 1
    with pytest.raises(ValueError):
        Task.from_key("no-slash")


def test_block_key_round_trips():
    block = BlockRef("L", (3, 1))
    assert block.key == "L/3/1"
    assert BlockRef.from_key("L/3/1") == block
    assert BlockRef.from_key("T/2/0/5") == BlockRef("T", (2, 0, 5))
    assert str(block) == "L[3, 1]"


def test_bound_helpers():
    assert [floor_log2(x) for x in (0, 1, 2, 3, 4, 7, 8)] == [0, 0, 1, 1, 2, 2, 3]
    assert [ceil_log(x, 4) for x in (1, 2, 4, 5, 16, 17)] == [0, 1, 1, 2, 2, 3]
    assert ceildiv(7, 4) == 2 and ceildiv(8, 4) == 2 and ceildiv(0, 4) == 0


# ---------------------------------------------------------------------------------------
# Parsing errors name the line.


@pytest.mark.parametrize(
    "source, fragment",
    [
        ("def p(N):\n    while N:\n        X[0] = f(A[0])\n", "line 2"),
        ("def p(N):\n    for i in range(N):\n        X[i // 2] = f(A[i])\n", "line 3"),
        ("def p(N):\n    for i in range(N):\n        X[i] = f(A[q])\n", "line 3"),
        ("def p(N):\n    for i in range(N):\n        A[i] = f(A[i])\n", "line 3"),
        ("def p(N):\n    for i in range(sorted(N)):\n        X[i] = f(A[i])\n", "line 2"),
        ("def p(N):\n    for i in range(N):\n        for i in range(N):\n            X[i] = f(A[i])\n", "line 3"),
    ],
)
def test_parser_rejects_non_lambdapack_and_names_the_line(source, fragment):
    with pytest.raises(LambdaPackSyntaxError, match=fragment):
        Program(source, inputs=["A"], outputs=["X"])


def test_unknown_sizes_are_rejected_with_the_expected_names():
    program = PROGRAMS["cholesky"].program
    with pytest.raises(LambdaPackError, match="takes sizes"):
        program.dag(M=3)


# ---------------------------------------------------------------------------------------
# Static single assignment.


def test_ssa_rejects_a_block_written_twice_by_one_statement_and_names_the_line():
    source = """
def bad(N):
    for i in range(N):
        for j in range(N):
            X[i] = f(A[i, j])
"""
    with pytest.raises(SSAViolation, match=r"line 4 `X\[i\] = f\(A\[i, j\]\)`") as err:
        Program(source, inputs=["A"], outputs=["X"])
    assert "written twice" in str(err.value)


def test_ssa_rejects_a_block_written_by_two_statements_and_names_both_lines():
    source = """
def bad(N):
    for i in range(N):
        X[i] = f(A[i, 0])
    for j in range(N - 1):
        X[j + 1] = g(A[j, 1])
"""
    with pytest.raises(SSAViolation) as err:
        Program(source, inputs=["A"], outputs=["X"])
    assert "line 3" in str(err.value) and "line 5" in str(err.value)


def test_ssa_accepts_branches_that_split_the_writes():
    source = """
def good(N):
    for i in range(N):
        if i % 2 == 0:
            X[i] = f(A[i])
        else:
            X[i] = g(A[i])
"""
    program = Program(source, inputs=["A"], outputs=["X"])
    assert [s.name for s in program.statements] == ["f", "g"]


def test_cholesky_writes_are_proven_disjoint_symbolically():
    program = PROGRAMS["cholesky"].program
    writes = [(s, a) for s in program.statements for a in s.writes]
    same_matrix_pairs = sum(
        1 for (s1, a1), (s2, a2) in itertools.combinations_with_replacement(writes, 2) if a1.matrix == a2.matrix
    )
    assert len(program.proven_disjoint) == same_matrix_pairs


# ---------------------------------------------------------------------------------------
# The implicit DAG equals the materialised one.


def brute_force(dag: ImplicitDAG):
    tasks = list(dag.all_tasks())
    writer: dict[BlockRef, Task] = {}
    readers: dict[BlockRef, set[Task]] = {}
    for task in tasks:
        for block in dag.writes(task):
            assert block not in writer, f"{block} written twice"
            writer[block] = task
        for block in dag.reads(task):
            readers.setdefault(block, set()).add(task)
    children = {t: {c for b in dag.writes(t) for c in readers.get(b, ())} for t in tasks}
    parents = {t: {writer[b] for b in dag.reads(t) if b in writer} for t in tasks}
    return tasks, writer, readers, children, parents


SIZES = {
    "cholesky": [{"N": n} for n in (1, 2, 3, 5, 10)],
    "gemm": [
        {"M": 1, "N": 1, "K": 1},
        {"M": 2, "N": 3, "K": 5},
        {"M": 2, "N": 1, "K": 17},
        {"M": 10, "N": 10, "K": 10},
    ],
    "tsqr": [{"M": m} for m in (1, 2, 3, 5, 6, 7, 10, 13)],
    "qr": [{"M": m, "N": n} for m, n in ((1, 1), (1, 3), (3, 1), (4, 4), (7, 3), (3, 7), (10, 10))],
    "bdfac": [{"M": m, "N": n} for m, n in ((1, 1), (2, 1), (3, 3), (7, 4), (10, 10))],
}


@pytest.mark.parametrize("graph", GRAPHS)
@pytest.mark.parametrize("name, sizes", [(name, s) for name, sizes in SIZES.items() for s in sizes], ids=str)
def test_symbolic_children_and_parents_equal_the_materialised_dag(name, sizes, graph):
    dag = get_program(name, graph).program.dag(**sizes)
    tasks, writer, readers, children, parents = brute_force(dag)
    for task in tasks:
        got_children = dag.children(task)
        assert len(got_children) == len(set(got_children)), task
        assert set(got_children) == children[task], task
        got_parents = dag.parents(task)
        assert set(got_parents) == parents[task], task
        assert dag.num_parents(task) == len(parents[task])
        assert dag.is_task(task)
    for block, task in writer.items():
        assert dag.writer(block) == task
    for block, who in readers.items():
        assert set(dag.readers(block)) == who
        if block not in writer and not dag.is_input(block):
            assert dag.writer(block) is None  # a never-written intermediate: read as zeros
    assert sorted(dag.starting_tasks()) == sorted(t for t in tasks if not parents[t])
    assert dag.num_output_tasks() == sum(1 for t in tasks if any(dag.is_output(b) for b in dag.writes(t)))
    # Every task leads to an output, so "all output tasks done" means "program done".
    sinks = [t for t in tasks if not children[t]]
    assert all(any(dag.is_output(b) for b in dag.writes(t)) for t in sinks)


def test_out_of_range_tasks_are_not_tasks():
    dag = PROGRAMS["cholesky"].program.dag(N=4)
    assert not dag.is_task(Task("syrk_1", (1, 2, 3)))  # k > j
    assert not dag.is_task(Task("trsm_1", (0, 1)))  # i starts at 1
    assert not dag.is_task(Task("nope", ()))


def test_nonlinear_index_expressions_are_solved_by_enumeration():
    source = """
def tri(N):
    for i in range(N):
        for j in range(2 * i + 1):
            Y[i, i * i + j] = f(X[i, j])
    for i in range(N):
        Z[i] = g(Y[i, i * i + 2 * i], Y[i, i * i])
"""
    dag = Program(source, inputs=["X"], outputs=["Z"]).dag(N=6)
    tasks, _, _, children, parents = brute_force(dag)
    assert len(tasks) == 36 + 6
    for task in tasks:
        assert set(dag.children(task)) == children[task]
        assert set(dag.parents(task)) == parents[task]


# ---------------------------------------------------------------------------------------
# Task counts.


def _tree_nodes(n: int) -> int:
    """Internal nodes of the pair/triple tree over n leaves: sum_{l>=1} floor(n / 2^l)."""
    return sum(n // 2**level for level in range(1, floor_log2(n) + 1)) if n >= 1 else 0


def _count_by_kernel(dag: ImplicitDAG) -> dict[str, int]:
    counts: dict[str, int] = {}
    for task in dag.all_tasks():
        counts[dag.kernel_name(task)] = counts.get(dag.kernel_name(task), 0) + 1
    return counts


@pytest.mark.parametrize("n", range(1, 13))
def test_cholesky_task_counts(n):
    """N chol + N(N-1)/2 trsm + sum_i (N-1-i)(N-i)/2 = (N-1)N(N+1)/6 syrk."""
    counts = _count_by_kernel(PROGRAMS["cholesky"].program.dag(N=n))
    assert counts.get("chol", 0) == n
    assert counts.get("trsm", 0) == n * (n - 1) // 2
    assert counts.get("syrk", 0) == sum((n - 1 - i) * (n - i) // 2 for i in range(n)) == (n - 1) * n * (n + 1) // 6


@pytest.mark.parametrize("m, n, k", [(1, 1, 1), (2, 3, 4), (3, 2, 5), (1, 1, 17), (2, 2, 64)])
def test_gemm_task_counts(m, n, k):
    """M·N·K products + M·N·sum_{l=1..L} ceil(K/4^l) additions, L = ceil(log4 K)."""
    counts = _count_by_kernel(get_program("gemm", "compact").program.dag(M=m, N=n, K=k))
    assert counts["matmul"] == m * n * k
    assert counts.get("add", 0) == m * n * sum(ceildiv(k, 4**level) for level in range(1, ceil_log(k, 4) + 1))


@pytest.mark.parametrize("m", range(1, 17))
def test_tsqr_task_counts(m):
    """Compact graph: M leaf QRs + sum_{l>=1} floor(M/2^l) tree nodes (the original graph's
    counts: test_original_counts.py)."""
    assert get_program("tsqr", "compact").program.dag(M=m).num_tasks() == m + _tree_nodes(m)


@pytest.mark.parametrize("m, n", [(1, 1), (1, 4), (4, 1), (5, 5), (9, 4), (4, 9)])
def test_qr_task_counts(m, n):
    """Per panel j: (leaves + tree nodes) x (1 factor + one update per trailing column)."""
    expected = sum((m - j + _tree_nodes(m - j)) * (n - j) for j in range(min(m, n)))
    assert get_program("qr", "compact").program.dag(M=m, N=n).num_tasks() == expected


@pytest.mark.parametrize("m, n", [(1, 1), (4, 1), (5, 5), (9, 4)])
def test_bdfac_task_counts(m, n):
    """Per panel j: a QR panel as in CAQR plus an LQ panel over N-j-1 column blocks that
    updates the M-j-1 rows below."""
    expected = 0
    for j in range(n):
        expected += (m - j + _tree_nodes(m - j)) * (n - j)
        expected += (n - j - 1 + _tree_nodes(n - j - 1)) * (m - j)
    assert get_program("bdfac", "compact").program.dag(M=m, N=n).num_tasks() == expected


def test_gemm_products_all_start_and_missing_partial_sums_have_no_writer():
    dag = get_program("gemm", "compact").program.dag(M=2, N=2, K=5)
    assert sorted(dag.starting_tasks()) == sorted(t for t in dag.all_tasks() if dag.kernel_name(t) == "matmul")
    assert dag.writer(BlockRef("P", (0, 0, 0, 7))) is None
    assert not dag.is_input(BlockRef("P", (0, 0, 0, 7)))
    assert dag.is_input(BlockRef("A", (0, 0)))


# ---------------------------------------------------------------------------------------
# The paper's size (its speed, per children() call: benchmarks/speed_checks.py).


def test_children_of_a_64_block_cholesky_are_found_for_every_task():
    dag = PROGRAMS["cholesky"].program.dag(N=64)
    tasks = list(dag.all_tasks())
    assert len(tasks) == 64 + 64 * 63 // 2 + 63 * 64 * 65 // 6 == 45_760
    assert dag.starting_tasks() == [Task("chol_0", ())]
    assert dag.num_output_tasks() == 64 + 64 * 63 // 2
    sample = tasks[::7]
    edges = sum(len(list(dag.children(task))) for task in sample)
    assert edges > len(sample) // 2
