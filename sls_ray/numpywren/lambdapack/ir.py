"""LAMBDAPACK's names and intermediate representation (numpywren.md, "LAMBDAPACK").

Errors; :class:`Task` and :class:`BlockRef`, the keys the runtime stores in its queue,
state store and object store; the integer helpers allowed in loop bounds; and the parsed
form of a program: loops, conditions, block accesses and statements.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable, NamedTuple

import sympy


class LambdaPackError(ValueError):
    """A LAMBDAPACK program is malformed or used with bad sizes."""


class LambdaPackSyntaxError(LambdaPackError):
    """The source uses a construct outside LAMBDAPACK; the message names the line."""


class SSAViolation(LambdaPackError):
    """Some block is written twice; the message names both source lines."""


# ----------------------------------------------------------------------------------------
# Tasks and blocks: the names the runtime stores in its queue, state store and object store.


class Task(NamedTuple):
    """One node of the implicit DAG: a statement and the values of its loop variables."""

    stmt: str
    idx: tuple[int, ...]

    @property
    def key(self) -> str:
        """Stable string form, e.g. ``"trsm_1/3,1"`` (queue message body, state-store key)."""
        return f"{self.stmt}/{','.join(map(str, self.idx))}"

    @classmethod
    def from_key(cls, key: str) -> Task:
        """Inverse of :attr:`key`."""
        stmt, sep, rest = key.partition("/")
        if not sep or not stmt:
            raise ValueError(f"task key {key!r} is not of the form 'stmt/i,j,...'")
        return cls(stmt, tuple(int(part) for part in rest.split(",")) if rest else ())


class BlockRef(NamedTuple):
    """One block of one matrix; :attr:`key` is its object-store key (numpywren.md, Storage)."""

    matrix: str
    idx: tuple[int, ...]

    @property
    def key(self) -> str:
        """Stable string form, e.g. ``"L/3/1"``."""
        return "/".join((self.matrix, *map(str, self.idx)))

    @classmethod
    def from_key(cls, key: str) -> BlockRef:
        """Inverse of :attr:`key`."""
        matrix, *parts = key.split("/")
        if not matrix or not parts:
            raise ValueError(f"block key {key!r} is not of the form 'matrix/i/j/...'")
        return cls(matrix, tuple(int(part) for part in parts))

    def __str__(self) -> str:
        return f"{self.matrix}[{', '.join(map(str, self.idx))}]"


# ----------------------------------------------------------------------------------------
# Integer helpers usable in loop bounds and conditions (reduction trees need logarithms).


def ceildiv(a: int, b: int) -> int:
    """``ceil(a / b)`` in exact integer arithmetic."""
    return -(-a // b)


def floor_log2(x: int) -> int:
    """``floor(log2(x))`` for x >= 1, and 0 for x < 1 so a loop over the levels of an empty
    tree is empty."""
    return x.bit_length() - 1 if x >= 1 else 0


def ceil_log(x: int, base: int) -> int:
    """Smallest L >= 0 with ``base**L >= x``: the depth of a ``base``-ary tree over x leaves."""
    if base < 2:
        raise ValueError(f"ceil_log base must be >= 2, got {base}")
    level, reach = 0, 1
    while reach < x:
        level, reach = level + 1, reach * base
    return level


BOUND_FUNCTIONS: dict[str, Callable[..., int]] = {
    "min": min,
    "max": max,
    "ceildiv": ceildiv,
    "floor_log2": floor_log2,
    "ceil_log": ceil_log,
}


# ----------------------------------------------------------------------------------------
# Intermediate representation.


@dataclass(frozen=True)
class Loop:
    """``for var in range(start, stop, step)``; bounds are Python source (steps must be > 0)."""

    var: str
    start: str
    stop: str
    step: str
    deps: frozenset[str]  # outer loop variables the bounds mention
    start_expr: sympy.Expr | None  # sympy forms when expressible, for the symbolic SSA proof
    stop_expr: sympy.Expr | None


@dataclass(frozen=True)
class Condition:
    """An ``if`` test enclosing a statement; ``holds`` is False in the else branch."""

    test: str
    holds: bool
    depth: int  # how many loops enclose the test
    deps: frozenset[str]


@dataclass(frozen=True)
class Access:
    """One block read or written by a statement: ``matrix[index...]``."""

    matrix: str
    index: tuple[str, ...]  # Python source of each index expression
    exprs: tuple[sympy.Expr, ...]  # the same, as sympy expressions over integer symbols

    def __str__(self) -> str:
        return f"{self.matrix}[{', '.join(self.index)}]"


@dataclass(frozen=True)
class Statement:
    """One kernel call with its loop nest and enclosing conditions."""

    name: str  # kernel name, suffixed with an ordinal when several statements call it
    kernel: str
    loops: tuple[Loop, ...]
    conditions: tuple[Condition, ...]
    reads: tuple[Access, ...]
    writes: tuple[Access, ...]
    line: int
    source: str

    @property
    def loop_vars(self) -> tuple[str, ...]:
        return tuple(loop.var for loop in self.loops)

    def describe(self, idx: Sequence[int] | None = None) -> str:
        """``line 7 `T[1, j, k] = syrk(...)` at j=3, k=1`` -- for error messages."""
        where = ""
        if idx is not None and self.loops:
            where = " at " + ", ".join(f"{v}={x}" for v, x in zip(self.loop_vars, idx))
        return f"line {self.line} `{self.source}`{where}"


def integer_symbol(name: str) -> sympy.Symbol:
    return sympy.Symbol(name, integer=True)
