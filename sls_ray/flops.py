"""FLOP counts of the dense kernels the systems use, and numpy calls that charge them.

Compute time is modelled (docs/design.md): a function is charged FLOPs / its FLOP rate.
Formulas are the standard LAPACK operation counts (a multiply-add is 2 FLOPs), as PyWren
and NumPyWren count them. ``ctx.np.<op>(...)`` runs the real numpy/scipy call and charges
its count, so code need not compute FLOPs by hand; torch code uses ``ctx.compute_torch``.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import scipy.linalg


def matmul(m: int, k: int, n: int) -> float:
    return 2.0 * m * k * n


def cholesky(n: int) -> float:
    return n ** 3 / 3.0


def triangular_solve(n: int, nrhs: int) -> float:
    return float(n * n * nrhs)


def qr(m: int, n: int) -> float:
    """Householder QR of an m x n matrix (m >= n), R only: 2mn^2 - 2n^3/3."""
    if m < n:
        m, n = n, m
    return 2.0 * m * n * n - 2.0 * n ** 3 / 3.0


def svd(m: int, n: int) -> float:
    """Golub-Kahan-Reinsch SVD, singular values and vectors: ~4m n^2 + 8 n^3 (m >= n)."""
    if m < n:
        m, n = n, m
    return 4.0 * m * n * n + 8.0 * n ** 3


def lu_solve(n: int, nrhs: int) -> float:
    return 2.0 * n ** 3 / 3.0 + 2.0 * n * n * nrhs


def _2d(a: np.ndarray) -> tuple[int, int]:
    return (a.shape[0], a.shape[1] if a.ndim > 1 else 1)


class MeteredNumpy:
    """``ctx.np``: real numpy/scipy calls that charge their FLOPs to the function."""

    def __init__(self, charge: Callable[[float], Any]) -> None:
        self._charge = charge

    def matmul(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        (m, k), n = _2d(a), _2d(b)[1]
        self._charge(matmul(m, k, n))
        return a @ b

    def cholesky(self, a: np.ndarray) -> np.ndarray:
        self._charge(cholesky(a.shape[0]))
        return np.linalg.cholesky(a)

    def solve_triangular(self, a: np.ndarray, b: np.ndarray, lower: bool = False, trans: int = 0) -> np.ndarray:
        self._charge(triangular_solve(a.shape[0], _2d(b)[1]))
        return scipy.linalg.solve_triangular(a, b, lower=lower, trans=trans)

    def qr(self, a: np.ndarray, mode: str = "reduced"):
        self._charge(qr(*_2d(a)) * (2.0 if mode != "r" else 1.0))
        return np.linalg.qr(a, mode=mode)  # type: ignore[call-overload]  # mode is chosen at run time

    def svd(self, a: np.ndarray, compute_uv: bool = True):
        self._charge(svd(*_2d(a)) if compute_uv else 4.0 * max(_2d(a)) * min(_2d(a)) ** 2)
        return np.linalg.svd(a, full_matrices=False, compute_uv=compute_uv)  # type: ignore[call-overload]

    def solve(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        self._charge(lu_solve(a.shape[0], _2d(b)[1]))
        return np.linalg.solve(a, b)
