"""Block kernels of NumPyWren's programs, each with its FLOP count (numpywren.md, LAMBDAPACK).

The simulator charges a task's compute time from :attr:`Kernel.flops` at the function's
FLOP rate, so the counts follow LAPACK's operation counts (one multiply-add = 2 FLOPs)
rather than whatever numpy happens to do. Every kernel works on ragged edge blocks (blocks
smaller than the block size at the bottom/right edge of a matrix): shapes are read from the
arrays, never assumed square.

Orthogonal factors are kept explicit: ``qr_factor`` returns the complete Q of the stacked
blocks it was given, and ``qr_apply`` multiplies by Qᵀ. That costs the same FLOPs as compact
WY for the 2-block stacks of a TSQR tree and keeps every task a pure function of its inputs
(idempotent, as LAMBDAPACK's static single assignment requires). The LQ kernels used by
BDFAC are the QR kernels applied to transposes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.linalg

__all__ = ["KERNELS", "Kernel", "Shape", "get_kernel", "geqrf_flops", "orgqr_flops"]

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Kernel:
    """A block kernel: ``compute(*blocks) -> tuple of blocks`` plus its cost model.

    ``out_shapes`` predicts the output shapes from the input shapes (so a zero block read
    in place of a missing intermediate gets the right shape, and FLOPs can be charged
    without data); ``flops`` is the operation count for those input shapes.
    """

    name: str
    compute: Callable[..., tuple[np.ndarray, ...]]
    flops: Callable[[Sequence[Shape]], float]
    out_shapes: Callable[[Sequence[Shape]], tuple[Shape, ...]]
    min_inputs: int
    max_inputs: int | None  # None: any number of stacked blocks
    doc: str

    def __call__(self, *blocks: np.ndarray) -> tuple[np.ndarray, ...]:
        self.check_arity(len(blocks))
        return self.compute(*blocks)

    def check_arity(self, num_inputs: int) -> None:
        if num_inputs < self.min_inputs or (self.max_inputs is not None and num_inputs > self.max_inputs):
            most = "any number of" if self.max_inputs is None else f"at most {self.max_inputs}"
            raise ValueError(f"kernel {self.name} takes at least {self.min_inputs} and {most} blocks, got {num_inputs}")

    def num_outputs(self, num_inputs: int) -> int:
        self.check_arity(num_inputs)
        return len(self.out_shapes([(1, 1)] * num_inputs))


# ----------------------------------------------------------------------------------------
# LAPACK operation counts.


def geqrf_flops(m: int, n: int) -> float:
    """Householder QR of an m x n matrix: 2mn² - 2n³/3 for m >= n (and the transpose rule)."""
    k = min(m, n)
    return 4.0 * m * n * k - 2.0 * (m + n) * k * k + 4.0 * k**3 / 3.0


def orgqr_flops(m: int, n: int, k: int) -> float:
    """Forming m x n of Q from k reflectors (4n³/3 for a square Q from n reflectors)."""
    return 4.0 * m * n * k - 2.0 * (m + n) * k * k + 4.0 * k**3 / 3.0


def _rows(shapes: Sequence[Shape]) -> int:
    return sum(s[0] for s in shapes)


def _cols(shapes: Sequence[Shape]) -> int:
    return sum(s[1] for s in shapes)


def _same_width(blocks: Sequence[np.ndarray], what: str) -> None:
    widths = {b.shape[1] for b in blocks}
    if len(widths) != 1:
        raise ValueError(f"{what}: stacked blocks must share their column count, got {sorted(widths)}")


def _same_height(blocks: Sequence[np.ndarray], what: str) -> None:
    heights = {b.shape[0] for b in blocks}
    if len(heights) != 1:
        raise ValueError(f"{what}: side-by-side blocks must share their row count, got {sorted(heights)}")


def _split_rows(matrix: np.ndarray, like: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
    edges = np.cumsum([b.shape[0] for b in like])[:-1]
    return tuple(np.ascontiguousarray(part) for part in np.split(matrix, edges, axis=0))


def _split_cols(matrix: np.ndarray, like: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
    edges = np.cumsum([b.shape[1] for b in like])[:-1]
    return tuple(np.ascontiguousarray(part) for part in np.split(matrix, edges, axis=1))


# ----------------------------------------------------------------------------------------
# Cholesky.


def _chol(a: np.ndarray) -> tuple[np.ndarray]:
    # numpy reads only the lower triangle, which is what the syrk updates keep exact.
    return (np.linalg.cholesky(a),)


def _trsm(l: np.ndarray, b: np.ndarray) -> tuple[np.ndarray]:
    # X Lᵀ = B  <=>  L Xᵀ = Bᵀ: the panel below a diagonal block of the Cholesky factor.
    return (np.ascontiguousarray(scipy.linalg.solve_triangular(l, b.T, lower=True).T),)


def _syrk(s: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray]:
    # Trailing-matrix update S - X Yᵀ (a true SYRK when X is Y, on diagonal blocks).
    return (s - x @ y.T,)


# ----------------------------------------------------------------------------------------
# GEMM.


def _matmul(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray]:
    return (a @ b,)


def _add(*blocks: np.ndarray) -> tuple[np.ndarray]:
    # One node of GEMM's reduction tree over k; missing operands arrive as zero blocks.
    total = blocks[0].copy()
    for block in blocks[1:]:
        total += block
    return (total,)


# ----------------------------------------------------------------------------------------
# QR (TSQR, CAQR, BDFAC column panels).


def _qr_r(*blocks: np.ndarray) -> tuple[np.ndarray]:
    # TSQR needs only R: a leaf gets one row block, a tree node the stacked R factors.
    _same_width(blocks, "qr_r")
    return (np.linalg.qr(np.vstack(blocks), mode="r"),)


def _qr_factor(*blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Q is complete (p x p for p stacked rows) so the trailing update keeps every row.
    _same_width(blocks, "qr_factor")
    stacked = np.vstack(blocks)
    q, r = np.linalg.qr(stacked, mode="complete")
    return q, np.ascontiguousarray(r[: min(stacked.shape)])


def _qr_apply(q: np.ndarray, *blocks: np.ndarray) -> tuple[np.ndarray, ...]:
    # Qᵀ [X1; X2; ...], split back into blocks of the input heights (first = stays in the tree).
    _same_width(blocks, "qr_apply")
    return _split_rows(q.T @ np.vstack(blocks), blocks)


def _qr_r_shapes(shapes: Sequence[Shape]) -> tuple[Shape]:
    rows, cols = _rows(shapes), shapes[0][1]
    return ((min(rows, cols), cols),)


def _qr_factor_shapes(shapes: Sequence[Shape]) -> tuple[Shape, Shape]:
    rows, cols = _rows(shapes), shapes[0][1]
    return (rows, rows), (min(rows, cols), cols)


def _qr_factor_flops(shapes: Sequence[Shape]) -> float:
    rows, cols = _rows(shapes), shapes[0][1]
    return geqrf_flops(rows, cols) + orgqr_flops(rows, rows, min(rows, cols))


# ----------------------------------------------------------------------------------------
# LQ (BDFAC row panels): X = L Q, computed as the QR of Xᵀ.


def _lq_factor(*blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Returns (Q1, L) with [X1, X2, ...] Q1 = [L, 0]; Q1 is the complete Q of the transpose.
    _same_height(blocks, "lq_factor")
    stacked = np.hstack(blocks)
    q1, r1 = np.linalg.qr(stacked.T, mode="complete")
    return q1, np.ascontiguousarray(r1[: min(stacked.shape)].T)


def _lq_apply(q1: np.ndarray, *blocks: np.ndarray) -> tuple[np.ndarray, ...]:
    # [X1, X2, ...] Q1, split back into blocks of the input widths (first = stays in the tree).
    _same_height(blocks, "lq_apply")
    return _split_cols(np.hstack(blocks) @ q1, blocks)


def _lq_factor_shapes(shapes: Sequence[Shape]) -> tuple[Shape, Shape]:
    rows, cols = shapes[0][0], _cols(shapes)
    return (cols, cols), (rows, min(rows, cols))


def _lq_factor_flops(shapes: Sequence[Shape]) -> float:
    rows, cols = shapes[0][0], _cols(shapes)
    return geqrf_flops(cols, rows) + orgqr_flops(cols, cols, min(rows, cols))


# ----------------------------------------------------------------------------------------
# Registry.


def _first(shapes: Sequence[Shape]) -> tuple[Shape]:
    return (tuple(shapes[0]),)


def _identity(a: np.ndarray) -> tuple[np.ndarray]:
    return (np.array(a, copy=True),)


KERNELS: dict[str, Kernel] = {
    kernel.name: kernel
    for kernel in (
        Kernel(
            "chol", _chol,
            flops=lambda s: s[0][0] ** 3 / 3.0,
            out_shapes=_first, min_inputs=1, max_inputs=1,
            doc="Cholesky factor L (lower) of an SPD diagonal block.",
        ),
        Kernel(
            "trsm", _trsm,
            flops=lambda s: float(s[1][0] * s[1][1] ** 2),
            out_shapes=lambda s: (tuple(s[1]),), min_inputs=2, max_inputs=2,
            doc="trsm(L, B) = B L^-T, a block of the Cholesky panel.",
        ),
        Kernel(
            "syrk", _syrk,
            flops=lambda s: 2.0 * s[1][0] * s[2][0] * s[1][1] + s[0][0] * s[0][1],
            out_shapes=_first, min_inputs=3, max_inputs=3,
            doc="syrk(S, X, Y) = S - X Y^T, the Cholesky trailing update.",
        ),
        Kernel(
            "matmul", _matmul,
            flops=lambda s: 2.0 * s[0][0] * s[0][1] * s[1][1],
            out_shapes=lambda s: ((s[0][0], s[1][1]),), min_inputs=2, max_inputs=2,
            doc="matmul(A, B) = A B, one (i, j, k) product of GEMM.",
        ),
        Kernel(
            "add", _add,
            flops=lambda s: float((len(s) - 1) * s[0][0] * s[0][1]),
            out_shapes=_first, min_inputs=1, max_inputs=None,
            doc="Sum of blocks: one node of GEMM's reduction tree.",
        ),
        Kernel(
            "identity", _identity,
            flops=lambda s: 0.0,
            out_shapes=_first, min_inputs=1, max_inputs=1,
            doc="A copy: the original compiler's copy-out of a tree root into the output matrix.",
        ),
        Kernel(
            "qr_r", _qr_r,
            flops=lambda s: geqrf_flops(_rows(s), s[0][1]),
            out_shapes=_qr_r_shapes, min_inputs=1, max_inputs=None,
            doc="R of the QR of vertically stacked blocks (TSQR leaf or tree node).",
        ),
        Kernel(
            "qr_factor", _qr_factor,
            flops=_qr_factor_flops,
            out_shapes=_qr_factor_shapes, min_inputs=1, max_inputs=None,
            doc="(Q, R) of vertically stacked blocks; Q complete, for trailing updates.",
        ),
        Kernel(
            "qr_apply", _qr_apply,
            flops=lambda s: 2.0 * s[0][0] * s[0][1] * s[1][1],
            out_shapes=lambda s: tuple(tuple(x) for x in s[1:]), min_inputs=2, max_inputs=None,
            doc="qr_apply(Q, X1, X2, ...) = Q^T [X1; X2; ...] split by input heights.",
        ),
        Kernel(
            "lq_factor", _lq_factor,
            flops=_lq_factor_flops,
            out_shapes=_lq_factor_shapes, min_inputs=1, max_inputs=None,
            doc="(Q1, L) with [X1, X2, ...] Q1 = [L, 0]: an LQ panel of BDFAC.",
        ),
        Kernel(
            "lq_apply", _lq_apply,
            flops=lambda s: 2.0 * s[1][0] * s[0][0] * s[0][1],
            out_shapes=lambda s: tuple(tuple(x) for x in s[1:]), min_inputs=2, max_inputs=None,
            doc="lq_apply(Q1, X1, X2, ...) = [X1, X2, ...] Q1 split by input widths.",
        ),
    )
}


def get_kernel(name: str) -> Kernel:
    """The kernel called ``name``; an unknown name fails with the list of known ones."""
    try:
        return KERNELS[name]
    except KeyError:
        raise KeyError(f"unknown kernel {name!r}; known kernels: {sorted(KERNELS)}") from None
