"""LAMBDAPACK: NumPyWren's program language, analysed and never run (numpywren.md, "LAMBDAPACK").

A program is the source of one restricted Python function whose parameters are size
parameters (block counts such as ``N``)::

    def cholesky(N):
        L[0, 0] = chol(A[0, 0])
        for j in range(1, N):
            L[j, 0] = trsm(L[0, 0], A[j, 0])

Allowed: ``for v in range(...)`` whose bounds are integer expressions of outer loop
variables and size parameters, ``if/elif/else`` on integer conditions, and statements
``OUT[idx], ... = kernel(IN[idx], ...)`` on matrix blocks. Index expressions use ``+ - * **``
only, so they can be solved; bounds and conditions may also use ``// %``, comparisons,
``and/or/not`` and the functions in :data:`BOUND_FUNCTIONS`.

Why this shape: the runtime never materialises the task graph (it can have millions of
nodes). A task is (statement, loop-variable values); its children are the tasks whose *read*
index expressions equal one of its concrete written blocks, and its parents the writers of
its read blocks. At analysis time sympy solves, once per (statement, access), "index
expression == given block" for the statement's loop variables; variables that appear
non-linearly (``2**l``) or that the equations leave free are enumerated within their loop
bounds instead. The solution is compiled to plain-integer Python, so a query costs
microseconds. Static single assignment (each block written once) is what makes tasks
idempotent; :class:`Program` rejects a program that breaks it, naming the source lines.
"""

from sls_ray.numpywren.lambdapack.dag import ImplicitDAG, Program
from sls_ray.numpywren.lambdapack.ir import (
    BOUND_FUNCTIONS,
    BlockRef,
    LambdaPackError,
    LambdaPackSyntaxError,
    SSAViolation,
    Statement,
    Task,
    ceil_log,
    ceildiv,
    floor_log2,
)

__all__ = [
    "BOUND_FUNCTIONS",
    "BlockRef",
    "ImplicitDAG",
    "LambdaPackError",
    "LambdaPackSyntaxError",
    "Program",
    "SSAViolation",
    "Statement",
    "Task",
    "ceil_log",
    "ceildiv",
    "floor_log2",
]
