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
- BDFAC: per step i a QR panel over n = N - i row blocks (``qr_factor`` per leaf and tree
  node, ``qr_leaf`` / ``qr_trailing_update`` per leaf or node and trailing column, N - i - 1
  of them) and an LQ panel over m = N - i - 1 column blocks (``lq_factor`` per leaf and node,
  an update per leaf or node and trailing row, m of them); both trees as TSQR's
  (``range(i, N, 2**level)`` for level 1..ceil(log2 n)). No output matrix, so no copy-outs.

``programs.py`` builds these graphs (``graph: original``, the default) and, as an option,
our compact ones (``graph: compact``: no copy-outs, trees that merge three children at the
end of an odd level); ``tree_nodes_ours`` counts the latter.
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


def bdfac_tasks(n: int) -> int:
    total = 0
    for i in range(n):
        rows, cols = n - i, n - i - 1  # QR panel leaves; LQ panel leaves (= its trailing rows)
        total += (rows + tree_nodes_original(rows)) * (1 + cols)
        total += (cols + tree_nodes_original(cols)) * (1 + cols)
    return total
