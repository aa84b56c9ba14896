"""Task counts as the original NumPyWren compiler enumerates its programs (``numpywren/algs.py``).

Facts read from Vaishaal/numpywren (no code carried over), for N x N (GEMM: M x N x K) blocks:

- CHOLESKY: ``chol``, then per column the ``trsm`` panel and the ``syrk`` trailing updates —
  the same tasks as our :class:`~sls_ray.numpywren.programs.Cholesky`.
- GEMM: M·N·K ``gemm`` products, a 4-ary ``add_matrices`` tree per output block that
  enumerates ``range(0, K, 4**(level + 1))`` for ``ceil(log4 K)`` levels, then one
  ``identity`` copy-out per output block (``Out[i, j] = identity(Temp[i, j, 0, depth])``).
- TSQR and each CAQR panel: a binary tree of ``ceil(log2 n)`` levels over n leaves that
  enumerates ``range(0, n, 2**(level + 1))`` — ceil(n / 2^(l+1)) nodes at level l, so for n
  not a power of two some nodes combine a block with one past the end (read as missing).
  Ours merges three children instead (floor(n / 2^l) nodes): fewer tasks, one level less.
- QR: per panel i (n = N - i leaves, t = N - i - 1 trailing columns) the leaf ``qr_factor``s,
  the tree's ``qr_factor``s, ``qr_leaf`` updates of every trailing block, a
  ``qr_trailing_update`` per tree node and trailing column, and one ``identity`` copy-out of
  each trailing block of R.
"""
from __future__ import annotations

import math


def _ceil_log(n: int, base: int) -> int:
    depth, reach = 0, 1
    while reach < n:
        reach *= base
        depth += 1
    return depth


def tree_nodes_original(n: int) -> int:
    """Internal nodes of the original's binary tree over n leaves."""
    return sum(-(-n // 2 ** (level + 1)) for level in range(_ceil_log(n, 2)))


def tree_nodes_ours(n: int) -> int:
    """Internal nodes of our tree (binary, 3-ary merge at the end of an odd level)."""
    return sum(n // 2 ** level for level in range(1, int(math.floor(math.log2(n))) + 1)) if n > 1 else 0


def tree_depth_original(n: int) -> int:
    return _ceil_log(n, 2)


def tree_depth_ours(n: int) -> int:
    return int(math.floor(math.log2(n))) if n > 1 else 0


def cholesky_tasks(n: int) -> int:
    return n + n * (n - 1) // 2 + (n - 1) * n * (n + 1) // 6


def gemm_tasks(m: int, n: int, k: int, copy_out: bool = True) -> int:
    tree = sum(-(-k // 4 ** (level + 1)) for level in range(_ceil_log(k, 4)))
    return m * n * k + m * n * tree + (m * n if copy_out else 0)


def tsqr_tasks(m: int) -> int:
    return m + tree_nodes_original(m)


def qr_tasks(n: int, copy_out: bool = True) -> int:
    total = 0
    for i in range(n):
        leaves, trailing = n - i, n - i - 1
        nodes = tree_nodes_original(leaves)
        total += (leaves + nodes) * (1 + trailing) + (trailing if copy_out else 0)
    return total
