"""NumPyWren's programs: LAMBDAPACK sources plus how to block, and un-block, their matrices.

numpywren.md, LAMBDAPACK and "Other programs": Cholesky, GEMM, TSQR, communication-avoiding
QR and BDFAC (the band bidiagonal first stage of SVD). Each :class:`Algorithm` knows its
source, how matrices of given shapes are cut into blocks (``block_size`` square blocks with
smaller ragged blocks at the bottom/right edge), which blocks form the output and how to
assemble the final result. :meth:`Algorithm.plan` binds shapes and block size into a
:class:`Plan`, the object the runtime and the reference executor work from.

Each program comes in two graphs (:data:`GRAPHS`; the experiment's ``graph`` knob):

- ``original`` (the default): the task graph the original compiler enumerates
  (Vaishaal/numpywren ``numpywren/algs.py``; counts in ``original.py``). GEMM and QR end with
  one ``identity`` copy-out per output block; the reduction trees of TSQR, CAQR and BDFAC
  panels are binary over n leaves with ``ceil(n / 2**(l+1))`` nodes at level l+1, node k
  combining nodes 2k and 2k+1 of the level below: for n not a power of two the last node of
  a level reads a child past the end, which no task writes and which reads as a zero block of
  its sibling's shape (the original's matrices fill unwritten blocks with zeros,
  ``parent_fn=constant_zeros``), and writes that child's finished rows past the end, where
  nothing reads them. ``ceil(log2 n)`` levels.
- ``compact`` (ours): no copy-outs (the tree roots write the output), and trees with
  ``n // 2**l`` nodes at level l whose last node also takes child 2k+2 when its level is
  odd: no node reads a missing child, ``floor(log2 n)`` levels, fewer tasks.

Indices stay solvable in both (``2*k + 1``; the rows a tree node finalises,
``j + (2*k + 1) * 2**l``, are solved by enumerating the level l).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar

import numpy as np

from sls_ray.numpywren.kernels import Kernel, Shape, get_kernel
from sls_ray.numpywren.lambdapack import BlockRef, ImplicitDAG, LambdaPackError, Program, Task

__all__ = [
    "GRAPHS",
    "PROGRAMS",
    "RETIRED_PROGRAMS",
    "Algorithm",
    "Bdfac",
    "BdfacOriginal",
    "BlockGrid",
    "Caqr",
    "CaqrOriginal",
    "Cholesky",
    "Gemm",
    "GemmOriginal",
    "Plan",
    "Tsqr",
    "TsqrOriginal",
    "get_program",
    "retired_message",
]


@dataclass(frozen=True)
class BlockGrid:
    """How one matrix is cut: ``row_block`` x ``col_block`` blocks, smaller at the far edges."""

    rows: int
    cols: int
    row_block: int
    col_block: int

    def __post_init__(self) -> None:
        if self.rows < 1 or self.cols < 1 or self.row_block < 1 or self.col_block < 1:
            raise ValueError(f"matrix {self.rows}x{self.cols} with blocks {self.row_block}x{self.col_block}: "
                             "all must be >= 1")

    @property
    def num_row_blocks(self) -> int:
        return -(-self.rows // self.row_block)

    @property
    def num_col_blocks(self) -> int:
        return -(-self.cols // self.col_block)

    def row_size(self, i: int) -> int:
        self._check(i, self.num_row_blocks, "row")
        return min(self.row_block, self.rows - i * self.row_block)

    def col_size(self, j: int) -> int:
        self._check(j, self.num_col_blocks, "column")
        return min(self.col_block, self.cols - j * self.col_block)

    def shape(self, i: int, j: int) -> Shape:
        return (self.row_size(i), self.col_size(j))

    def block(self, matrix: np.ndarray, i: int, j: int) -> np.ndarray:
        rows, cols = self.shape(i, j)
        r0, c0 = i * self.row_block, j * self.col_block
        return np.ascontiguousarray(matrix[r0 : r0 + rows, c0 : c0 + cols], dtype=np.float64)

    @staticmethod
    def _check(index: int, count: int, what: str) -> None:
        if not 0 <= index < count:
            raise IndexError(f"block {what} {index} outside 0..{count - 1}")


class Algorithm(ABC):
    """One NumPyWren program: LAMBDAPACK source, blocking, output blocks and assembly."""

    name: ClassVar[str]
    source: ClassVar[str]
    inputs: ClassVar[tuple[str, ...]]
    outputs: ClassVar[tuple[str, ...]]

    def ssa_sizes(self) -> list[dict[str, int]] | None:
        """Sizes at which the SSA check enumerates writes (None: the default grid)."""
        return None

    @cached_property
    def program(self) -> Program:
        """The analysed program (sympy runs here, once per process)."""
        program = Program(self.source, self.inputs, self.outputs, ssa_sizes=self.ssa_sizes())
        for stmt in program.statements:
            kernel = get_kernel(stmt.kernel)
            if kernel.num_outputs(len(stmt.reads)) != len(stmt.writes):
                raise LambdaPackError(
                    f"{stmt.describe()}: kernel {kernel.name} returns {kernel.num_outputs(len(stmt.reads))} "
                    f"blocks for {len(stmt.reads)} inputs, but {len(stmt.writes)} are assigned"
                )
        return program

    def plan(self, shapes: Mapping[str, tuple[int, int]], block_size: int) -> Plan:
        """Bind matrix shapes and the block size: the DAG, block shapes and assembly."""
        if set(shapes) != set(self.inputs):
            raise ValueError(f"{self.name} takes matrices {list(self.inputs)}, got {sorted(shapes)}")
        if type(block_size) is not int or block_size < 1:
            raise ValueError(f"block_size must be a positive int, got {block_size!r}")
        for name, shape in shapes.items():
            if len(shape) != 2 or min(shape) < 1:
                raise ValueError(f"matrix {name} must be 2-D and non-empty, got shape {tuple(shape)}")
        grids = self.grids({k: (int(v[0]), int(v[1])) for k, v in shapes.items()}, block_size)
        return Plan(self, block_size, grids, self.program.dag(**self.sizes(grids)))

    def plan_for(self, matrices: Mapping[str, np.ndarray], block_size: int) -> Plan:
        return self.plan({name: np.shape(m) for name, m in matrices.items()}, block_size)

    @abstractmethod
    def grids(self, shapes: Mapping[str, tuple[int, int]], block_size: int) -> dict[str, BlockGrid]:
        """Block grid of each input (after :meth:`prepare_input`); checks compatibility."""

    @abstractmethod
    def sizes(self, grids: Mapping[str, BlockGrid]) -> dict[str, int]:
        """The program's size parameters (block counts)."""

    @abstractmethod
    def assemble(self, plan: Plan, blocks: Mapping[BlockRef, np.ndarray]) -> np.ndarray:
        """The final result from the output blocks."""

    def prepare_input(self, name: str, matrix: np.ndarray) -> np.ndarray:
        """The matrix that is actually blocked (BDFAC transposes wide inputs)."""
        return matrix

    def input_blocks(self, name: str, grid: BlockGrid) -> Iterable[tuple[int, int]]:
        """Which blocks of an input the program reads (all by default)."""
        for i in range(grid.num_row_blocks):
            for j in range(grid.num_col_blocks):
                yield (i, j)

    def missing_block_shape(self, plan: Plan, ref: BlockRef) -> Shape:
        """Shape of a never-written intermediate, read as zeros; only some programs read one."""
        raise LambdaPackError(f"{self.name} reads {ref}, which no task writes and is not an input")


class Plan:
    """A program bound to matrix shapes and a block size: everything a runtime needs.

    ``dag`` answers the graph queries; :meth:`split` makes the input blocks,
    :meth:`run_task` runs a kernel, :meth:`task_flops` prices it, :meth:`block_shape` gives
    the shape of any block (zeros for missing intermediates), :meth:`assemble` builds the
    result from :meth:`output_blocks`.
    """

    def __init__(self, algorithm: Algorithm, block_size: int, grids: Mapping[str, BlockGrid], dag: ImplicitDAG):
        self.algorithm = algorithm
        self.block_size = block_size
        self.grids: dict[str, BlockGrid] = dict(grids)
        self.dag = dag
        self._shapes: dict[BlockRef, Shape] = {}

    @property
    def sizes(self) -> dict[str, int]:
        return self.dag.sizes

    def split(self, matrices: Mapping[str, np.ndarray]) -> dict[BlockRef, np.ndarray]:
        """Input blocks keyed by :class:`BlockRef` (``ref.key`` is the object-store key)."""
        blocks: dict[BlockRef, np.ndarray] = {}
        for name in self.algorithm.inputs:
            if name not in matrices:
                raise ValueError(f"{self.algorithm.name} needs matrix {name}; got {sorted(matrices)}")
            matrix = np.asarray(self.algorithm.prepare_input(name, np.asarray(matrices[name])))
            grid = self.grids[name]
            if matrix.shape != (grid.rows, grid.cols):
                raise ValueError(f"matrix {name} has shape {matrix.shape}, "
                                 f"the plan was made for {(grid.rows, grid.cols)}")
            for i, j in self.algorithm.input_blocks(name, grid):
                blocks[BlockRef(name, (i, j))] = grid.block(matrix, i, j)
        return blocks

    def output_blocks(self) -> list[BlockRef]:
        """Every output block, in the order output tasks are enumerated."""
        return [ref for task in self.dag.output_tasks() for ref in self.dag.writes(task) if self.dag.is_output(ref)]

    def assemble(self, blocks: Mapping[BlockRef, np.ndarray]) -> np.ndarray:
        return self.algorithm.assemble(self, blocks)

    def kernel(self, task: Task) -> Kernel:
        return get_kernel(self.dag.kernel_name(task))

    def run_task(self, task: Task, inputs: Sequence[np.ndarray]) -> list[tuple[BlockRef, np.ndarray]]:
        """Run the task's kernel on its input blocks (in :meth:`ImplicitDAG.reads` order)."""
        outputs = self.kernel(task)(*inputs)
        return list(zip(self.dag.writes(task), outputs, strict=True))

    def task_flops(self, task: Task) -> float:
        """FLOPs of the task's kernel at its block shapes (no data needed)."""
        return self.kernel(task).flops([self.block_shape(ref) for ref in self.dag.reads(task)])

    def zeros(self, ref: BlockRef) -> np.ndarray:
        """What reading a never-written intermediate block returns."""
        return np.zeros(self.block_shape(ref))

    def block_shape(self, ref: BlockRef) -> Shape:
        """Shape of any block: inputs from their grid, written blocks by propagating kernel
        output shapes from the inputs (memoised, iterative: chains can be long)."""
        memo = self._shapes
        stack = [ref]
        while stack:
            top = stack[-1]
            if top in memo:
                stack.pop()
                continue
            if self.dag.is_input(top):
                memo[top] = self.grids[top.matrix].shape(*top.idx)
                stack.pop()
                continue
            writer = self.dag.writer(top)
            if writer is None:
                memo[top] = self.algorithm.missing_block_shape(self, top)
                stack.pop()
                continue
            reads = self.dag.reads(writer)
            pending = [r for r in reads if r not in memo]
            if pending:
                stack.extend(pending)
                continue
            shapes = self.kernel(writer).out_shapes([memo[r] for r in reads])
            for written, shape in zip(self.dag.writes(writer), shapes, strict=True):
                memo[written] = tuple(shape)
            stack.pop()
        return memo[ref]

    def __repr__(self) -> str:
        return f"Plan({self.algorithm.name!r}, block_size={self.block_size}, sizes={self.sizes})"


def _square_grid(rows: int, cols: int, block_size: int) -> BlockGrid:
    return BlockGrid(rows, cols, block_size, block_size)


def _missing_tree_child(plan: Plan, ref: BlockRef, trees: Mapping[str, tuple[int, str, int]]) -> Shape | None:
    """Shape of a child past the end of an original-graph tree level (None: not such a child).

    The original compiler's trees enumerate ``ceil(n / 2**(l+1))`` nodes per level, so the
    last node of a level may read child 2k+1, which no task writes; the original's matrices
    fill unwritten blocks with zeros of the matrix's block shape (``parent_fn=constant_zeros``),
    the shape of the left sibling 2k. ``trees`` maps each tree matrix to (the index position of
    its node number, the tree's factor matrix, the axis blocks are stacked along: 0 for QR's
    rows, 1 for LQ's columns). One exception keeps ragged real blocks exact: where the
    sibling's factor is not full (a panel's last, shorter block) the zero block is empty
    along the stacking axis, so the node's factor keeps the rows its update keeps. Folded
    runs have whole blocks, so the model always charges the full zero block.
    """
    tree = trees.get(ref.matrix)
    if tree is None:
        return None
    position, factor, axis = tree
    if ref.idx[position] % 2 == 0:
        return None
    sibling = ref.idx[:position] + (ref.idx[position] - 1,) + ref.idx[position + 1 :]
    shape = list(plan.block_shape(BlockRef(ref.matrix, sibling)))
    factor_shape = plan.block_shape(BlockRef(factor, sibling[: position + 1]))
    if factor_shape[axis] < factor_shape[1 - axis]:
        shape[axis] = 0
    return (shape[0], shape[1])


# ----------------------------------------------------------------------------------------
# Cholesky.


class Cholesky(Algorithm):
    """A = L Lᵀ with a 3-D trailing matrix T[iteration, row, column] (numpywren.md).

    Tasks: N chol + N(N-1)/2 trsm + sum_i (N-1-i)(N-i)/2 = (N-1)N(N+1)/6 syrk.
    """

    name = "cholesky"
    inputs = ("A",)
    outputs = ("L",)
    source = '''
def cholesky(N):
    L[0, 0] = chol(A[0, 0])
    for j in range(1, N):
        L[j, 0] = trsm(L[0, 0], A[j, 0])
        for k in range(1, j + 1):
            T[1, j, k] = syrk(A[j, k], L[j, 0], L[k, 0])
    for i in range(1, N):
        L[i, i] = chol(T[i, i, i])
        for j in range(i + 1, N):
            L[j, i] = trsm(L[i, i], T[i, j, i])
            for k in range(i + 1, j + 1):
                T[i + 1, j, k] = syrk(T[i, j, k], L[j, i], L[k, i])
'''

    def grids(self, shapes: Mapping[str, tuple[int, int]], block_size: int) -> dict[str, BlockGrid]:
        rows, cols = shapes["A"]
        if rows != cols:
            raise ValueError(f"cholesky needs a square matrix, got {rows}x{cols}")
        return {"A": _square_grid(rows, cols, block_size)}

    def sizes(self, grids: Mapping[str, BlockGrid]) -> dict[str, int]:
        return {"N": grids["A"].num_row_blocks}

    def input_blocks(self, name: str, grid: BlockGrid) -> Iterable[tuple[int, int]]:
        # Only the lower triangle is read; the upper blocks are never uploaded.
        for i in range(grid.num_row_blocks):
            for j in range(i + 1):
                yield (i, j)

    def assemble(self, plan: Plan, blocks: Mapping[BlockRef, np.ndarray]) -> np.ndarray:
        grid = plan.grids["A"]
        factor = np.zeros((grid.rows, grid.cols))
        b = grid.row_block
        for i in range(grid.num_row_blocks):
            for j in range(i + 1):
                rows, cols = grid.shape(i, j)
                factor[i * b : i * b + rows, j * b : j * b + cols] = blocks[BlockRef("L", (i, j))]
        return factor


# ----------------------------------------------------------------------------------------
# GEMM.


class Gemm(Algorithm):
    """C = A B: all M·N·K block products start at once, then a 4-ary sum tree over k.

    P[i, j, l, k] is node k of level l of the tree for C[i, j]; the last node of a level
    may lack children, which are then read as zero blocks (NumPyWren's missing-block rule).
    Tasks: M·N·K + M·N·sum_{l=1..L} ceil(K / 4^l), L = ceil(log4 K).
    """

    name = "gemm"
    inputs = ("A", "B")
    outputs = ("C",)
    source = '''
def gemm(M, N, K):
    for i in range(M):
        for j in range(N):
            for k in range(K):
                if K == 1:
                    C[i, j] = matmul(A[i, k], B[k, j])
                else:
                    P[i, j, 0, k] = matmul(A[i, k], B[k, j])
            for l in range(ceil_log(K, 4)):
                for k in range(ceildiv(K, 4 ** (l + 1))):
                    if l + 1 == ceil_log(K, 4):
                        C[i, j] = add(P[i, j, l, 4 * k], P[i, j, l, 4 * k + 1],
                                      P[i, j, l, 4 * k + 2], P[i, j, l, 4 * k + 3])
                    else:
                        P[i, j, l + 1, k] = add(P[i, j, l, 4 * k], P[i, j, l, 4 * k + 1],
                                                P[i, j, l, 4 * k + 2], P[i, j, l, 4 * k + 3])
'''

    def grids(self, shapes: Mapping[str, tuple[int, int]], block_size: int) -> dict[str, BlockGrid]:
        (m, k), (k2, n) = shapes["A"], shapes["B"]
        if k != k2:
            raise ValueError(f"gemm: A is {m}x{k} but B is {k2}x{n}; inner dimensions differ")
        return {"A": _square_grid(m, k, block_size), "B": _square_grid(k, n, block_size)}

    def sizes(self, grids: Mapping[str, BlockGrid]) -> dict[str, int]:
        return {"M": grids["A"].num_row_blocks, "N": grids["B"].num_col_blocks, "K": grids["A"].num_col_blocks}

    def missing_block_shape(self, plan: Plan, ref: BlockRef) -> Shape:
        if ref.matrix != "P":
            return super().missing_block_shape(plan, ref)
        i, j = ref.idx[0], ref.idx[1]
        return (plan.grids["A"].row_size(i), plan.grids["B"].col_size(j))

    def assemble(self, plan: Plan, blocks: Mapping[BlockRef, np.ndarray]) -> np.ndarray:
        a, b = plan.grids["A"], plan.grids["B"]
        product = np.zeros((a.rows, b.cols))
        size = plan.block_size
        for i in range(a.num_row_blocks):
            for j in range(b.num_col_blocks):
                rows, cols = a.row_size(i), b.col_size(j)
                product[i * size : i * size + rows, j * size : j * size + cols] = blocks[BlockRef("C", (i, j))]
        return product


class GemmOriginal(Gemm):
    """GEMM as the original compiler enumerates it (numpywren ``algs.GEMM``): the same 4-ary
    tree, whose root is copied into C by one identity task per output block, M·N tasks more
    than :class:`Gemm` (4,096 at the paper's 64 x 64 blocks), each reading and writing one
    block. With K = 1 the product itself is copied, as the original's depth-0 tree does."""

    source = Gemm.source.replace("C[i, j] = ", "Root[i, j] = ").rstrip("\n") + '''
            C[i, j] = identity(Root[i, j])
'''


# ----------------------------------------------------------------------------------------
# TSQR.


class Tsqr(Algorithm):
    """R of a tall-skinny A: QR of each row block, then a binary tree of QRs of stacked R's.

    Blocks are ``block_size`` rows by all columns. Rt[l, k] is node k of level l.
    Tasks: M + sum_{l=1..floor(log2 M)} floor(M / 2^l).
    """

    name = "tsqr"
    inputs = ("A",)
    outputs = ("R",)
    source = '''
def tsqr(M):
    for i in range(M):
        if M == 1:
            R[0, 0] = qr_r(A[i, 0])
        else:
            Rt[0, i] = qr_r(A[i, 0])
    for l in range(floor_log2(M)):
        for k in range(M // 2 ** (l + 1)):
            if 2 * k + 3 == M // 2 ** l:
                if l + 1 == floor_log2(M):
                    R[0, 0] = qr_r(Rt[l, 2 * k], Rt[l, 2 * k + 1], Rt[l, 2 * k + 2])
                else:
                    Rt[l + 1, k] = qr_r(Rt[l, 2 * k], Rt[l, 2 * k + 1], Rt[l, 2 * k + 2])
            elif l + 1 == floor_log2(M):
                R[0, 0] = qr_r(Rt[l, 2 * k], Rt[l, 2 * k + 1])
            else:
                Rt[l + 1, k] = qr_r(Rt[l, 2 * k], Rt[l, 2 * k + 1])
'''

    def ssa_sizes(self) -> list[dict[str, int]]:
        return [{"M": m} for m in range(1, 20)]

    def grids(self, shapes: Mapping[str, tuple[int, int]], block_size: int) -> dict[str, BlockGrid]:
        rows, cols = shapes["A"]
        return {"A": BlockGrid(rows, cols, block_size, cols)}

    def sizes(self, grids: Mapping[str, BlockGrid]) -> dict[str, int]:
        return {"M": grids["A"].num_row_blocks}

    def assemble(self, plan: Plan, blocks: Mapping[BlockRef, np.ndarray]) -> np.ndarray:
        return np.array(blocks[BlockRef("R", (0, 0))])


class TsqrOriginal(Tsqr):
    """TSQR as the original compiler enumerates it (numpywren ``algs.TSQR``): ``ceil(log2 M)``
    levels of ``ceil(M / 2**(l+1))`` binary nodes; a node whose right child lies past the end
    stacks a zero block under its left child's R. Tasks: M + sum_l ceil(M / 2^(l+1))."""

    source = '''
def tsqr(M):
    for i in range(M):
        if M == 1:
            R[0, 0] = qr_r(A[i, 0])
        else:
            Rt[0, i] = qr_r(A[i, 0])
    for l in range(ceil_log(M, 2)):
        for k in range(ceildiv(M, 2 ** (l + 1))):
            if l + 1 == ceil_log(M, 2):
                R[0, 0] = qr_r(Rt[l, 2 * k], Rt[l, 2 * k + 1])
            else:
                Rt[l + 1, k] = qr_r(Rt[l, 2 * k], Rt[l, 2 * k + 1])
'''

    def missing_block_shape(self, plan: Plan, ref: BlockRef) -> Shape:
        shape = _missing_tree_child(plan, ref, {"Rt": (1, "Rt", 0)})
        return super().missing_block_shape(plan, ref) if shape is None else shape


# ----------------------------------------------------------------------------------------
# Communication-avoiding QR.


class Caqr(Algorithm):
    """R of A by communication-avoiding QR: a TSQR panel per block column j over rows
    j..M-1, whose Q factors update the trailing columns along the same tree.

    S[j, i, c] is the trailing matrix entering panel j (panel 0 reads A). In panel j,
    Qt/Rt[j, l, k] are the Q and R of tree node k at level l, and W[j, l, k, c] is that
    node's top block of column c; the other blocks a node's update produces are final for
    the panel and go to S[j + 1]. The root writes row j of R.
    Tasks per panel, with n = M - j leaves and t = N - j - 1 trailing columns:
    (n + sum_{l>=1} floor(n / 2^l)) * (1 + t).
    """

    name = "qr"
    inputs = ("A",)
    outputs = ("R",)
    source = '''
def qr(M, N):
    for j in range(min(M, N)):
        for k in range(M - j):
            if j == 0:
                if M - j == 1:
                    Qt[j, 0, k], R[j, j] = qr_factor(A[j + k, j])
                else:
                    Qt[j, 0, k], Rt[j, 0, k] = qr_factor(A[j + k, j])
            elif M - j == 1:
                Qt[j, 0, k], R[j, j] = qr_factor(S[j, j + k, j])
            else:
                Qt[j, 0, k], Rt[j, 0, k] = qr_factor(S[j, j + k, j])
            for c in range(j + 1, N):
                if j == 0:
                    if M - j == 1:
                        R[j, c] = qr_apply(Qt[j, 0, k], A[j + k, c])
                    else:
                        W[j, 0, k, c] = qr_apply(Qt[j, 0, k], A[j + k, c])
                elif M - j == 1:
                    R[j, c] = qr_apply(Qt[j, 0, k], S[j, j + k, c])
                else:
                    W[j, 0, k, c] = qr_apply(Qt[j, 0, k], S[j, j + k, c])
        for l in range(floor_log2(M - j)):
            for k in range((M - j) // 2 ** (l + 1)):
                if 2 * k + 3 == (M - j) // 2 ** l:
                    if l + 1 == floor_log2(M - j):
                        Qt[j, l + 1, k], R[j, j] = qr_factor(
                            Rt[j, l, 2 * k], Rt[j, l, 2 * k + 1], Rt[j, l, 2 * k + 2])
                        for c in range(j + 1, N):
                            R[j, c], S[j + 1, j + (2 * k + 1) * 2 ** l, c], S[j + 1, j + (2 * k + 2) * 2 ** l, c] = qr_apply(
                                Qt[j, l + 1, k], W[j, l, 2 * k, c], W[j, l, 2 * k + 1, c], W[j, l, 2 * k + 2, c])
                    else:
                        Qt[j, l + 1, k], Rt[j, l + 1, k] = qr_factor(
                            Rt[j, l, 2 * k], Rt[j, l, 2 * k + 1], Rt[j, l, 2 * k + 2])
                        for c in range(j + 1, N):
                            W[j, l + 1, k, c], S[j + 1, j + (2 * k + 1) * 2 ** l, c], S[j + 1, j + (2 * k + 2) * 2 ** l, c] = qr_apply(
                                Qt[j, l + 1, k], W[j, l, 2 * k, c], W[j, l, 2 * k + 1, c], W[j, l, 2 * k + 2, c])
                elif l + 1 == floor_log2(M - j):
                    Qt[j, l + 1, k], R[j, j] = qr_factor(Rt[j, l, 2 * k], Rt[j, l, 2 * k + 1])
                    for c in range(j + 1, N):
                        R[j, c], S[j + 1, j + (2 * k + 1) * 2 ** l, c] = qr_apply(
                            Qt[j, l + 1, k], W[j, l, 2 * k, c], W[j, l, 2 * k + 1, c])
                else:
                    Qt[j, l + 1, k], Rt[j, l + 1, k] = qr_factor(Rt[j, l, 2 * k], Rt[j, l, 2 * k + 1])
                    for c in range(j + 1, N):
                        W[j, l + 1, k, c], S[j + 1, j + (2 * k + 1) * 2 ** l, c] = qr_apply(
                            Qt[j, l + 1, k], W[j, l, 2 * k, c], W[j, l, 2 * k + 1, c])
'''

    def grids(self, shapes: Mapping[str, tuple[int, int]], block_size: int) -> dict[str, BlockGrid]:
        rows, cols = shapes["A"]
        return {"A": _square_grid(rows, cols, block_size)}

    def sizes(self, grids: Mapping[str, BlockGrid]) -> dict[str, int]:
        return {"M": grids["A"].num_row_blocks, "N": grids["A"].num_col_blocks}

    def assemble(self, plan: Plan, blocks: Mapping[BlockRef, np.ndarray]) -> np.ndarray:
        grid = plan.grids["A"]
        panels = min(grid.num_row_blocks, grid.num_col_blocks)
        heights = [blocks[BlockRef("R", (j, j))].shape[0] for j in range(panels)]
        factor = np.zeros((sum(heights), grid.cols))
        top = 0
        for j in range(panels):
            for c in range(j, grid.num_col_blocks):
                block = blocks[BlockRef("R", (j, c))]
                left = c * grid.col_block
                factor[top : top + heights[j], left : left + block.shape[1]] = block
            top += heights[j]
        return factor


class CaqrOriginal(Caqr):
    """CAQR as the original compiler enumerates it (numpywren ``algs.QR``): the panel trees
    have ``ceil(log2 n)`` levels of ``ceil(n / 2**(l+1))`` binary nodes (a right child past
    the end reads as a zero block; the rows it would finalise land past the end, unread), and
    the root's trailing row goes to Wr (indexed like W, so each copy finds its writer), from
    which one identity task per trailing column copies it into R: sum_j (N - j - 1) copy-outs
    (2,016 at 64 blocks). Per panel: (n + sum_l ceil(n / 2^(l+1))) * (1 + t) + t tasks."""

    source = '''
def qr(M, N):
    for j in range(min(M, N)):
        for k in range(M - j):
            if j == 0:
                if M - j == 1:
                    Qt[j, 0, k], R[j, j] = qr_factor(A[j + k, j])
                else:
                    Qt[j, 0, k], Rt[j, 0, k] = qr_factor(A[j + k, j])
            elif M - j == 1:
                Qt[j, 0, k], R[j, j] = qr_factor(S[j, j + k, j])
            else:
                Qt[j, 0, k], Rt[j, 0, k] = qr_factor(S[j, j + k, j])
            for c in range(j + 1, N):
                if j == 0:
                    if M - j == 1:
                        Wr[j, 0, k, c] = qr_apply(Qt[j, 0, k], A[j + k, c])
                        R[j, c] = identity(Wr[j, 0, k, c])
                    else:
                        W[j, 0, k, c] = qr_apply(Qt[j, 0, k], A[j + k, c])
                elif M - j == 1:
                    Wr[j, 0, k, c] = qr_apply(Qt[j, 0, k], S[j, j + k, c])
                    R[j, c] = identity(Wr[j, 0, k, c])
                else:
                    W[j, 0, k, c] = qr_apply(Qt[j, 0, k], S[j, j + k, c])
        for l in range(ceil_log(M - j, 2)):
            for k in range(ceildiv(M - j, 2 ** (l + 1))):
                if l + 1 == ceil_log(M - j, 2):
                    Qt[j, l + 1, k], R[j, j] = qr_factor(Rt[j, l, 2 * k], Rt[j, l, 2 * k + 1])
                    for c in range(j + 1, N):
                        Wr[j, l + 1, k, c], S[j + 1, j + (2 * k + 1) * 2 ** l, c] = qr_apply(
                            Qt[j, l + 1, k], W[j, l, 2 * k, c], W[j, l, 2 * k + 1, c])
                        R[j, c] = identity(Wr[j, l + 1, k, c])
                else:
                    Qt[j, l + 1, k], Rt[j, l + 1, k] = qr_factor(Rt[j, l, 2 * k], Rt[j, l, 2 * k + 1])
                    for c in range(j + 1, N):
                        W[j, l + 1, k, c], S[j + 1, j + (2 * k + 1) * 2 ** l, c] = qr_apply(
                            Qt[j, l + 1, k], W[j, l, 2 * k, c], W[j, l, 2 * k + 1, c])
'''

    def ssa_sizes(self) -> list[dict[str, int]]:
        return [{"M": m, "N": n} for m in range(1, 8) for n in range(1, m + 1)]

    def missing_block_shape(self, plan: Plan, ref: BlockRef) -> Shape:
        shape = _missing_tree_child(plan, ref, {"Rt": (2, "Rt", 0), "W": (2, "Rt", 0)})
        return super().missing_block_shape(plan, ref) if shape is None else shape


# ----------------------------------------------------------------------------------------
# BDFAC.


class Bdfac(Algorithm):
    """Band bidiagonal factorisation, the first stage of SVD: A = U B Vᵀ with B upper band.

    Panel j: a CAQR panel on block column j (rows j..M-1) whose root gives the upper
    triangular B[j, j] and row j of the trailing columns (Z[j, c]); then an LQ panel on
    Z[j, j+1..N-1] whose root gives the lower triangular B[j, j+1], with its Q applied to
    the remaining rows from the right. X[j] is the matrix entering panel j (panel 0 reads A),
    Y[j] the rows below j after the QR half. The band is assembled and its singular values
    taken with numpy locally. Wide inputs are transposed first (same singular values), so
    M >= N always holds.
    """

    name = "bdfac"
    inputs = ("A",)
    outputs = ("B",)
    source = '''
def bdfac(M, N):
    for j in range(N):
        for k in range(M - j):
            if j == 0:
                if M - j == 1:
                    Qq[j, 0, k], B[j, j] = qr_factor(A[j + k, j])
                else:
                    Qq[j, 0, k], Rq[j, 0, k] = qr_factor(A[j + k, j])
            elif M - j == 1:
                Qq[j, 0, k], B[j, j] = qr_factor(X[j, j + k, j])
            else:
                Qq[j, 0, k], Rq[j, 0, k] = qr_factor(X[j, j + k, j])
            for c in range(j + 1, N):
                if j == 0:
                    if M - j == 1:
                        Z[j, c] = qr_apply(Qq[j, 0, k], A[j + k, c])
                    else:
                        Wq[j, 0, k, c] = qr_apply(Qq[j, 0, k], A[j + k, c])
                elif M - j == 1:
                    Z[j, c] = qr_apply(Qq[j, 0, k], X[j, j + k, c])
                else:
                    Wq[j, 0, k, c] = qr_apply(Qq[j, 0, k], X[j, j + k, c])
        for l in range(floor_log2(M - j)):
            for k in range((M - j) // 2 ** (l + 1)):
                if 2 * k + 3 == (M - j) // 2 ** l:
                    if l + 1 == floor_log2(M - j):
                        Qq[j, l + 1, k], B[j, j] = qr_factor(
                            Rq[j, l, 2 * k], Rq[j, l, 2 * k + 1], Rq[j, l, 2 * k + 2])
                        for c in range(j + 1, N):
                            Z[j, c], Y[j, j + (2 * k + 1) * 2 ** l, c], Y[j, j + (2 * k + 2) * 2 ** l, c] = qr_apply(
                                Qq[j, l + 1, k], Wq[j, l, 2 * k, c], Wq[j, l, 2 * k + 1, c], Wq[j, l, 2 * k + 2, c])
                    else:
                        Qq[j, l + 1, k], Rq[j, l + 1, k] = qr_factor(
                            Rq[j, l, 2 * k], Rq[j, l, 2 * k + 1], Rq[j, l, 2 * k + 2])
                        for c in range(j + 1, N):
                            Wq[j, l + 1, k, c], Y[j, j + (2 * k + 1) * 2 ** l, c], Y[j, j + (2 * k + 2) * 2 ** l, c] = qr_apply(
                                Qq[j, l + 1, k], Wq[j, l, 2 * k, c], Wq[j, l, 2 * k + 1, c], Wq[j, l, 2 * k + 2, c])
                elif l + 1 == floor_log2(M - j):
                    Qq[j, l + 1, k], B[j, j] = qr_factor(Rq[j, l, 2 * k], Rq[j, l, 2 * k + 1])
                    for c in range(j + 1, N):
                        Z[j, c], Y[j, j + (2 * k + 1) * 2 ** l, c] = qr_apply(
                            Qq[j, l + 1, k], Wq[j, l, 2 * k, c], Wq[j, l, 2 * k + 1, c])
                else:
                    Qq[j, l + 1, k], Rq[j, l + 1, k] = qr_factor(Rq[j, l, 2 * k], Rq[j, l, 2 * k + 1])
                    for c in range(j + 1, N):
                        Wq[j, l + 1, k, c], Y[j, j + (2 * k + 1) * 2 ** l, c] = qr_apply(
                            Qq[j, l + 1, k], Wq[j, l, 2 * k, c], Wq[j, l, 2 * k + 1, c])
        for p in range(N - j - 1):
            if N - j - 1 == 1:
                Ql[j, 0, p], B[j, j + 1] = lq_factor(Z[j, j + 1 + p])
            else:
                Ql[j, 0, p], Lt[j, 0, p] = lq_factor(Z[j, j + 1 + p])
            for i in range(j + 1, M):
                if N - j - 1 == 1:
                    X[j + 1, i, j + 1 + p] = lq_apply(Ql[j, 0, p], Y[j, i, j + 1 + p])
                else:
                    V[j, 0, p, i] = lq_apply(Ql[j, 0, p], Y[j, i, j + 1 + p])
        for l in range(floor_log2(N - j - 1)):
            for p in range((N - j - 1) // 2 ** (l + 1)):
                if 2 * p + 3 == (N - j - 1) // 2 ** l:
                    if l + 1 == floor_log2(N - j - 1):
                        Ql[j, l + 1, p], B[j, j + 1] = lq_factor(
                            Lt[j, l, 2 * p], Lt[j, l, 2 * p + 1], Lt[j, l, 2 * p + 2])
                        for i in range(j + 1, M):
                            X[j + 1, i, j + 1], X[j + 1, i, j + 1 + (2 * p + 1) * 2 ** l], X[j + 1, i, j + 1 + (2 * p + 2) * 2 ** l] = lq_apply(
                                Ql[j, l + 1, p], V[j, l, 2 * p, i], V[j, l, 2 * p + 1, i], V[j, l, 2 * p + 2, i])
                    else:
                        Ql[j, l + 1, p], Lt[j, l + 1, p] = lq_factor(
                            Lt[j, l, 2 * p], Lt[j, l, 2 * p + 1], Lt[j, l, 2 * p + 2])
                        for i in range(j + 1, M):
                            V[j, l + 1, p, i], X[j + 1, i, j + 1 + (2 * p + 1) * 2 ** l], X[j + 1, i, j + 1 + (2 * p + 2) * 2 ** l] = lq_apply(
                                Ql[j, l + 1, p], V[j, l, 2 * p, i], V[j, l, 2 * p + 1, i], V[j, l, 2 * p + 2, i])
                elif l + 1 == floor_log2(N - j - 1):
                    Ql[j, l + 1, p], B[j, j + 1] = lq_factor(Lt[j, l, 2 * p], Lt[j, l, 2 * p + 1])
                    for i in range(j + 1, M):
                        X[j + 1, i, j + 1], X[j + 1, i, j + 1 + (2 * p + 1) * 2 ** l] = lq_apply(
                            Ql[j, l + 1, p], V[j, l, 2 * p, i], V[j, l, 2 * p + 1, i])
                else:
                    Ql[j, l + 1, p], Lt[j, l + 1, p] = lq_factor(Lt[j, l, 2 * p], Lt[j, l, 2 * p + 1])
                    for i in range(j + 1, M):
                        V[j, l + 1, p, i], X[j + 1, i, j + 1 + (2 * p + 1) * 2 ** l] = lq_apply(
                            Ql[j, l + 1, p], V[j, l, 2 * p, i], V[j, l, 2 * p + 1, i])
'''

    def ssa_sizes(self) -> list[dict[str, int]]:
        return [{"M": m, "N": n} for m in range(1, 9) for n in range(1, m + 1)]

    def prepare_input(self, name: str, matrix: np.ndarray) -> np.ndarray:
        return matrix.T if matrix.shape[0] < matrix.shape[1] else matrix

    def grids(self, shapes: Mapping[str, tuple[int, int]], block_size: int) -> dict[str, BlockGrid]:
        rows, cols = shapes["A"]
        return {"A": _square_grid(max(rows, cols), min(rows, cols), block_size)}

    def sizes(self, grids: Mapping[str, BlockGrid]) -> dict[str, int]:
        return {"M": grids["A"].num_row_blocks, "N": grids["A"].num_col_blocks}

    def band(self, plan: Plan, blocks: Mapping[BlockRef, np.ndarray]) -> np.ndarray:
        """The n x n upper band matrix with A's singular values."""
        grid = plan.grids["A"]
        size, panels = grid.col_block, grid.num_col_blocks
        band = np.zeros((grid.cols, grid.cols))
        for j in range(panels):
            for c in (j, j + 1):
                if c < panels:
                    block = blocks[BlockRef("B", (j, c))]
                    band[j * size : j * size + block.shape[0], c * size : c * size + block.shape[1]] = block
        return band

    def assemble(self, plan: Plan, blocks: Mapping[BlockRef, np.ndarray]) -> np.ndarray:
        return np.linalg.svd(self.band(plan, blocks), compute_uv=False)


class BdfacOriginal(Bdfac):
    """BDFAC with the original compiler's trees (numpywren ``algs.BDFAC``): each QR and LQ panel
    tree has ``ceil(log2 n)`` levels of ``ceil(n / 2**(l+1))`` binary nodes; a right child past
    the end reads as a zero block and the rows (QR) or columns (LQ) it would finalise land past
    the end, unread. The original writes no output matrix (its band stays in the S_QR/S_LQ
    intermediates), so there are no copy-outs here either; B is written by the tree roots."""

    source = Bdfac.source[: Bdfac.source.index("        for l in range(floor_log2(M - j)):")] + '''\
        for l in range(ceil_log(M - j, 2)):
            for k in range(ceildiv(M - j, 2 ** (l + 1))):
                if l + 1 == ceil_log(M - j, 2):
                    Qq[j, l + 1, k], B[j, j] = qr_factor(Rq[j, l, 2 * k], Rq[j, l, 2 * k + 1])
                    for c in range(j + 1, N):
                        Z[j, c], Y[j, j + (2 * k + 1) * 2 ** l, c] = qr_apply(
                            Qq[j, l + 1, k], Wq[j, l, 2 * k, c], Wq[j, l, 2 * k + 1, c])
                else:
                    Qq[j, l + 1, k], Rq[j, l + 1, k] = qr_factor(Rq[j, l, 2 * k], Rq[j, l, 2 * k + 1])
                    for c in range(j + 1, N):
                        Wq[j, l + 1, k, c], Y[j, j + (2 * k + 1) * 2 ** l, c] = qr_apply(
                            Qq[j, l + 1, k], Wq[j, l, 2 * k, c], Wq[j, l, 2 * k + 1, c])
''' + Bdfac.source[Bdfac.source.index("        for p in range(N - j - 1):"):
                     Bdfac.source.index("        for l in range(floor_log2(N - j - 1)):")] + '''\
        for l in range(ceil_log(N - j - 1, 2)):
            for p in range(ceildiv(N - j - 1, 2 ** (l + 1))):
                if l + 1 == ceil_log(N - j - 1, 2):
                    Ql[j, l + 1, p], B[j, j + 1] = lq_factor(Lt[j, l, 2 * p], Lt[j, l, 2 * p + 1])
                    for i in range(j + 1, M):
                        X[j + 1, i, j + 1], X[j + 1, i, j + 1 + (2 * p + 1) * 2 ** l] = lq_apply(
                            Ql[j, l + 1, p], V[j, l, 2 * p, i], V[j, l, 2 * p + 1, i])
                else:
                    Ql[j, l + 1, p], Lt[j, l + 1, p] = lq_factor(Lt[j, l, 2 * p], Lt[j, l, 2 * p + 1])
                    for i in range(j + 1, M):
                        V[j, l + 1, p, i], X[j + 1, i, j + 1 + (2 * p + 1) * 2 ** l] = lq_apply(
                            Ql[j, l + 1, p], V[j, l, 2 * p, i], V[j, l, 2 * p + 1, i])
'''

    def missing_block_shape(self, plan: Plan, ref: BlockRef) -> Shape:
        shape = _missing_tree_child(
            plan, ref, {"Rq": (2, "Rq", 0), "Wq": (2, "Rq", 0), "Lt": (2, "Lt", 1), "V": (2, "Lt", 1)})
        return super().missing_block_shape(plan, ref) if shape is None else shape


# ----------------------------------------------------------------------------------------
# Registry.

GRAPHS: tuple[str, ...] = ("original", "compact")

_CHOLESKY = Cholesky()  # one graph: the original's Cholesky is ours task for task
_BY_GRAPH: dict[str, dict[str, Algorithm]] = {
    "original": {"cholesky": _CHOLESKY, "gemm": GemmOriginal(), "tsqr": TsqrOriginal(), "qr": CaqrOriginal(),
                 "bdfac": BdfacOriginal()},
    "compact": {"cholesky": _CHOLESKY, "gemm": Gemm(), "tsqr": Tsqr(), "qr": Caqr(), "bdfac": Bdfac()},
}
PROGRAMS: dict[str, Algorithm] = _BY_GRAPH["original"]  # the default graph

# Program names of an earlier round, now the default graph of another name.
RETIRED_PROGRAMS: dict[str, str] = {"gemm_copyout": "gemm", "qr_copyout": "qr"}


def retired_message(name: str) -> str:
    """Why a retired program name fails, and what to write instead."""
    return (f"program {name!r} is retired: the original compiler's copy-out tasks are now the default "
            f"(graph: original); write program: {RETIRED_PROGRAMS[name]} (graph: compact for the graph "
            f"without them)")


def get_program(name: str, graph: str = "original") -> Algorithm:
    """The registered program ``name`` in ``graph`` (``original`` or ``compact``); unknown names
    and graphs fail with the known ones, retired names with their replacement."""
    if name in RETIRED_PROGRAMS:
        raise KeyError(retired_message(name))
    if graph not in _BY_GRAPH:
        raise KeyError(f"unknown NumPyWren graph {graph!r}; known graphs: {list(GRAPHS)}")
    try:
        return _BY_GRAPH[graph][name]
    except KeyError:
        raise KeyError(f"unknown NumPyWren program {name!r}; known programs: {sorted(PROGRAMS)}") from None
