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

from __future__ import annotations

import ast
import builtins
import itertools
import keyword
import textwrap
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Callable, NamedTuple

import sympy
from sympy.polys.polyerrors import PolynomialError

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


def _integer_symbol(name: str) -> sympy.Symbol:
    return sympy.Symbol(name, integer=True)


_RESERVED = set(BOUND_FUNCTIONS) | {"range"} | set(dir(builtins))
_BOUND_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Mod, ast.Pow)
_INDEX_BINOPS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Pow: lambda a, b: a**b,
}


class _Parser:
    """Turns LAMBDAPACK source into statements; every error names the offending line."""

    def __init__(self, source: str):
        self.source = textwrap.dedent(source).strip("\n") + "\n"
        try:
            module = ast.parse(self.source)
        except SyntaxError as err:
            raise LambdaPackSyntaxError(f"line {err.lineno}: {err.msg}") from None
        funcs = [node for node in module.body if isinstance(node, ast.FunctionDef)]
        if len(funcs) != 1 or len(module.body) != 1:
            raise LambdaPackSyntaxError("a LAMBDAPACK source holds exactly one `def` and nothing else")
        func = funcs[0]
        args = func.args
        if args.vararg or args.kwarg or args.kwonlyargs or args.defaults or args.posonlyargs:
            self._fail(func, "size parameters must be plain positional names")
        self.name = func.name
        self.params = tuple(arg.arg for arg in args.args)
        for param in self.params:
            self._check_name(func, param, "size parameter")
        self.symbols = {name: _integer_symbol(name) for name in self.params}
        # (kernel, loops, conditions, reads, writes, line, source text) per statement, in order.
        self.raw: list[tuple[str, tuple[Loop, ...], tuple[Condition, ...], tuple[Access, ...], tuple[Access, ...], int, str]] = []
        self._block(func.body, (), (), is_top=True)

    # -- errors and names --------------------------------------------------------------

    def _fail(self, node: ast.AST, message: str) -> None:
        raise LambdaPackSyntaxError(f"line {getattr(node, 'lineno', '?')}: {message}")

    def _check_name(self, node: ast.AST, name: str, what: str) -> None:
        if name.startswith("_") or keyword.iskeyword(name) or name in _RESERVED:
            self._fail(node, f"{what} {name!r} is reserved (no leading underscore, keyword or builtin)")

    # -- statements --------------------------------------------------------------------

    def _block(self, body: list[ast.stmt], loops: tuple[Loop, ...], conds: tuple[Condition, ...], is_top: bool = False) -> None:
        scope = {loop.var for loop in loops}
        for position, node in enumerate(body):
            if isinstance(node, ast.For):
                self._for(node, loops, conds, scope)
            elif isinstance(node, ast.If):
                test, deps = self._bound_expr(node.test, scope, what="condition")
                self._block(node.body, loops, conds + (Condition(test, True, len(loops), deps),))
                if node.orelse:
                    self._block(node.orelse, loops, conds + (Condition(test, False, len(loops), deps),))
            elif isinstance(node, ast.Assign):
                self._assign(node, loops, conds, scope)
            elif isinstance(node, ast.Pass):
                continue
            elif is_top and position == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                continue  # docstring
            else:
                self._fail(node, f"{type(node).__name__} is not LAMBDAPACK (only for/if/else and `BLOCKS = kernel(BLOCKS)`)")

    def _for(self, node: ast.For, loops: tuple[Loop, ...], conds: tuple[Condition, ...], scope: set[str]) -> None:
        if not isinstance(node.target, ast.Name):
            self._fail(node, "a loop variable must be a single name")
        var = node.target.id
        self._check_name(node, var, "loop variable")
        if var in scope or var in self.params:
            self._fail(node, f"loop variable {var!r} shadows an enclosing loop variable or size parameter")
        if node.orelse:
            self._fail(node, "for/else is not LAMBDAPACK")
        call = node.iter
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "range" and not call.keywords and 1 <= len(call.args) <= 3):
            self._fail(node, "loops must iterate over range(stop), range(start, stop) or range(start, stop, step)")
        parts = list(call.args)
        if len(parts) == 1:
            parts.insert(0, ast.Constant(0))
        if len(parts) == 2:
            parts.append(ast.Constant(1))
        (start, start_deps), (stop, stop_deps), (step, step_deps) = (self._bound_expr(p, scope, what="loop bound") for p in parts)
        loop = Loop(
            var,
            start,
            stop,
            step,
            frozenset(start_deps | stop_deps | step_deps),
            self._try_sympy(parts[0], scope),
            self._try_sympy(parts[1], scope),
        )
        self._block(node.body, loops + (loop,), conds)

    def _assign(self, node: ast.Assign, loops: tuple[Loop, ...], conds: tuple[Condition, ...], scope: set[str]) -> None:
        if len(node.targets) != 1:
            self._fail(node, "chained assignment is not LAMBDAPACK")
        target = node.targets[0]
        targets = target.elts if isinstance(target, ast.Tuple) else [target]
        value = node.value
        if not (isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and not value.keywords):
            self._fail(node, "the right-hand side must be a kernel call `kernel(M[i, j], ...)`")
        kernel = value.func.id
        writes = tuple(self._access(t, scope) for t in targets)
        reads = tuple(self._access(a, scope) for a in value.args)
        if not reads:
            self._fail(node, f"kernel {kernel!r} reads no blocks")
        text = ast.get_source_segment(self.source, node) or ast.unparse(node)
        self.raw.append((kernel, loops, conds, reads, writes, node.lineno, " ".join(text.split())))

    # -- expressions -------------------------------------------------------------------

    def _access(self, node: ast.expr, scope: set[str]) -> Access:
        if not (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name)):
            self._fail(node, "kernel arguments and results must be blocks `M[i, j, ...]`")
        matrix = node.value.id
        self._check_name(node, matrix, "matrix")
        if matrix in self.params or matrix in scope:
            self._fail(node, f"matrix {matrix!r} has the name of a size parameter or loop variable")
        parts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        sources, exprs = [], []
        for part in parts:
            exprs.append(self._index_sympy(part, scope))
            sources.append(ast.unparse(part))
        return Access(matrix, tuple(sources), tuple(exprs))

    def _index_sympy(self, node: ast.expr, scope: set[str]) -> sympy.Expr:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return sympy.Integer(node.value)
        if isinstance(node, ast.Name):
            if node.id in scope or node.id in self.params:
                return self.symbols.setdefault(node.id, _integer_symbol(node.id))
            self._fail(node, f"{node.id!r} is neither an enclosing loop variable nor a size parameter")
        if isinstance(node, ast.BinOp) and type(node.op) in _INDEX_BINOPS:
            return _INDEX_BINOPS[type(node.op)](self._index_sympy(node.left, scope), self._index_sympy(node.right, scope))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            inner = self._index_sympy(node.operand, scope)
            return -inner if isinstance(node.op, ast.USub) else inner
        self._fail(node, f"index expression `{ast.unparse(node)}` may use integers, loop variables, size parameters and + - * ** only")
        raise AssertionError  # unreachable: _fail raises

    def _try_sympy(self, node: ast.expr, scope: set[str]) -> sympy.Expr | None:
        try:
            return self._index_sympy(node, scope)
        except LambdaPackSyntaxError:
            return None

    def _bound_expr(self, node: ast.expr, scope: set[str], what: str) -> tuple[str, frozenset[str]]:
        """Validate a bound or condition; return its source and the loop variables it uses."""
        deps: set[str] = set()
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name):
                if sub.id in scope:
                    deps.add(sub.id)
                elif sub.id not in self.params and sub.id not in BOUND_FUNCTIONS:
                    self._fail(node, f"{what} uses {sub.id!r}, which is not an enclosing loop variable or size parameter")
            elif isinstance(sub, ast.Call):
                if not (isinstance(sub.func, ast.Name) and sub.func.id in BOUND_FUNCTIONS and not sub.keywords):
                    self._fail(node, f"{what} may call only {sorted(BOUND_FUNCTIONS)}")
            elif isinstance(sub, ast.Constant):
                if type(sub.value) not in (int, bool):
                    self._fail(node, f"{what} may use integer constants only")
            elif isinstance(sub, ast.BinOp):
                if not isinstance(sub.op, _BOUND_BINOPS):
                    self._fail(node, f"{what} may use + - * // % ** only")
            elif isinstance(sub, ast.Compare):
                if any(isinstance(op, (ast.Is, ast.IsNot, ast.In, ast.NotIn)) for op in sub.ops):
                    self._fail(node, f"{what} may compare with < <= == != >= > only")
            elif not isinstance(sub, (ast.UnaryOp, ast.BoolOp, ast.expr_context, ast.unaryop, ast.operator, ast.cmpop, ast.boolop)):
                self._fail(node, f"{what} may not use {type(sub).__name__}")
        return ast.unparse(node), frozenset(deps)


# ----------------------------------------------------------------------------------------
# Solving "access index == concrete block" for a statement's loop variables.


@dataclass(frozen=True)
class _SolvePlan:
    """How to find the loop values of one statement that touch a given block.

    ``enumerated`` variables are iterated over their loop ranges; every other loop variable
    has a closed form ``numerator / denominator`` in the given block indices (``_b0``...),
    size parameters and enumerated variables. Rows not used to derive the closed forms are
    verified numerically.
    """

    enumerated: frozenset[str]
    formulas: dict[str, tuple[str, str]]
    formula_deps: dict[str, frozenset[str]]
    verify_rows: tuple[int, ...]


def _nonlinear_unknowns(eq: sympy.Expr, unknowns: Sequence[sympy.Symbol]) -> tuple[set[sympy.Symbol], set[sympy.Symbol]]:
    """Unknowns that keep ``eq`` from being affine: (inside exponents or functions, in products)."""
    present = [u for u in unknowns if eq.has(u)]
    if not present:
        return set(), set()
    try:
        poly = sympy.Poly(eq, *present)
    except PolynomialError:
        opaque = set()
        for u in present:
            try:
                sympy.Poly(eq, u)
            except PolynomialError:
                opaque.add(u)
        return (opaque or set(present)), set()
    products: set[sympy.Symbol] = set()
    for monom in poly.monoms():
        if sum(monom) > 1:
            products |= {present[i] for i, power in enumerate(monom) if power}
    return set(), products


def _python(expr: sympy.Expr) -> str:
    """sympy expression over integers -> Python source with exact integer semantics."""
    return f"({sympy.sstr(expr)})"


def _plan_solve(stmt: Statement, access: Access) -> _SolvePlan:
    """Decide which loop variables of ``stmt`` to enumerate and solve the rest with sympy.

    Start by solving for every variable; a variable is moved to the enumerated set while it
    appears non-linearly (``2**l``, ``i*j``), is left free by the equations, could meet a
    zero denominator, or is needed by an enumerated loop's bounds before it can be computed.
    In the worst case everything is enumerated, which is slow but still exact. Exponents are
    assumed non-negative, as they are for tree levels.
    """
    order = stmt.loop_vars
    symbol = {v: _integer_symbol(v) for v in order}
    knowns = [_integer_symbol(f"_b{m}") for m in range(len(access.exprs))]
    equations = [sympy.expand(expr - known) for expr, known in zip(access.exprs, knowns)]
    enumerated: set[str] = set()

    def outermost(names: Iterable[str]) -> str:
        return min(names, key=order.index)

    while True:
        unknown = [v for v in order if v not in enumerated]
        usyms = [symbol[v] for v in unknown]
        opaque, products = set(), set()
        for eq in equations:
            o, p = _nonlinear_unknowns(eq, usyms)
            opaque |= o
            products |= p
        if opaque or products:
            enumerated.add(outermost(str(s) for s in (opaque or products)))
            continue

        # Affine in the remaining unknowns: pick independent rows, solve them, verify the rest.
        used: list[int] = []
        rows: list[list[sympy.Expr]] = []
        for m, eq in enumerate(equations):
            present = [u for u in usyms if eq.has(u)]
            if not present:
                continue
            poly = sympy.Poly(eq, *usyms)
            row = [poly.coeff_monomial(u) for u in usyms]
            if sympy.Matrix(rows + [row]).rank() > len(rows):
                rows.append(row)
                used.append(m)
        solution = dict(zip(unknown, usyms))
        if used:
            solved = sympy.linsolve([equations[m] for m in used], usyms)
            if not isinstance(solved, sympy.FiniteSet) or len(solved) != 1:
                raise LambdaPackError(f"cannot solve {access} in {stmt.describe()}: {solved}")
            solution = dict(zip(unknown, next(iter(solved))))
        free = [v for v in unknown if solution[v] == symbol[v]]
        if free:
            # Truly free variables are enumerated; the others are then solved in terms of them.
            enumerated.update(free)
            continue
        if any(solution[v].has(*usyms) for v in unknown):
            enumerated.add(outermost(v for v in unknown if solution[v].has(*usyms)))
            continue

        formulas: dict[str, tuple[str, str]] = {}
        deps: dict[str, frozenset[str]] = {}
        retry = False
        for v in unknown:
            numerator, denominator = sympy.fraction(sympy.together(solution[v]))
            if not denominator.is_nonzero:
                enumerated.add(v)  # could divide by zero for some values: enumerate instead
                retry = True
                break
            formulas[v] = (_python(numerator), _python(denominator) if denominator != 1 else "")
            deps[v] = frozenset(str(s) for s in (numerator.free_symbols | denominator.free_symbols) if str(s) in symbol)
        if retry:
            continue
        conflict = _emission_conflict(stmt, frozenset(enumerated), deps)
        if conflict is not None:
            enumerated.add(conflict)
            continue
        verify = tuple(m for m in range(len(equations)) if m not in used)
        return _SolvePlan(frozenset(enumerated), formulas, deps, verify)


def _emission_conflict(stmt: Statement, enumerated: frozenset[str], deps: Mapping[str, frozenset[str]]) -> str | None:
    """A solved variable that an enumerated loop's bounds need before it can be computed."""
    bound: set[str] = set()

    def settle() -> None:
        changed = True
        while changed:
            changed = False
            for v, needs in deps.items():
                if v not in bound and needs <= bound:
                    bound.add(v)
                    changed = True

    settle()
    for loop in stmt.loops:
        if loop.var in enumerated:
            missing = loop.deps - bound
            if missing:
                return min(missing, key=stmt.loop_vars.index)
            bound.add(loop.var)
            settle()
    return None


# ----------------------------------------------------------------------------------------
# Code generation: every per-statement query becomes a small integer-only Python function.


class _Code:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _range_check(loop: Loop) -> str:
    check = f"({loop.start}) <= {loop.var} < ({loop.stop})"
    if loop.step != "1":
        check += f" and ({loop.var} - ({loop.start})) % ({loop.step}) == 0"
    return check


def _condition_check(cond: Condition) -> str:
    """Source that is True when the statement is *excluded* by this condition."""
    return f"not ({cond.test})" if cond.holds else f"({cond.test})"


def _task_literal(stmt: Statement) -> str:
    values = ", ".join(stmt.loop_vars) + ("," if len(stmt.loops) == 1 else "")
    return f"_new(_Task, ({stmt.name!r}, ({values})))"


def _block_list(accesses: Sequence[Access]) -> str:
    items = []
    for access in accesses:
        idx = ", ".join(f"({i})" for i in access.index) + ("," if len(access.index) == 1 else "")
        items.append(f"_new(_BlockRef, ({access.matrix!r}, ({idx})))")
    return "[" + ", ".join(items) + "]"


def _emit_statement_helpers(code: _Code, sid: int, stmt: Statement) -> None:
    args = ", ".join(stmt.loop_vars)
    # All tasks of the statement, in loop order, with conditions checked at their depth.
    code.add(0, f"def _enum_{sid}():")
    depth = 1
    for level in range(len(stmt.loops) + 1):
        for cond in stmt.conditions:
            if cond.depth == level:
                code.add(depth, f"if {_condition_check(cond)}:")
                code.add(depth + 1, "return" if level == 0 else "continue")
        if level < len(stmt.loops):
            loop = stmt.loops[level]
            code.add(depth, f"for {loop.var} in range({loop.start}, {loop.stop}, {loop.step}):")
            depth += 1
    code.add(depth, f"yield ({args}{',' if len(stmt.loops) == 1 else ''})")
    # Is a tuple of loop values a task of this statement?
    code.add(0, f"def _valid_{sid}({args}):")
    for loop in stmt.loops:
        code.add(1, f"if not ({_range_check(loop)}):")
        code.add(2, "return False")
    for cond in stmt.conditions:
        code.add(1, f"if {_condition_check(cond)}:")
        code.add(2, "return False")
    code.add(1, "return True")
    code.add(0, f"def _reads_{sid}({args}):")
    code.add(1, f"return {_block_list(stmt.reads)}")
    code.add(0, f"def _writes_{sid}({args}):")
    code.add(1, f"return {_block_list(stmt.writes)}")


def _emit_solver(code: _Code, fn_name: str, stmt: Statement, access: Access, plan: _SolvePlan) -> None:
    """``def fn(_out, _b0, _b1, ...)``: put every task of ``stmt`` whose ``access`` is that block
    into the dict ``_out`` (a dict keeps insertion order and removes duplicates)."""
    knowns = [f"_b{m}" for m in range(len(access.exprs))]
    code.add(0, f"def {fn_name}(_out, {', '.join(knowns)}):")
    bound: set[str] = set()
    done_checks: set[str] = set()
    depth = 1
    pending_formulas = dict(plan.formulas)

    def skip() -> str:
        return "continue" if depth > 1 else "return"

    def settle() -> None:
        # Checks go out as soon as their variables are known, so mismatches exit early.
        checks()
        progress = True
        while progress:
            progress = False
            for v in list(pending_formulas):
                if plan.formula_deps[v] <= bound:
                    numerator, denominator = pending_formulas.pop(v)
                    if denominator:
                        code.add(depth, f"_n = {numerator}")
                        code.add(depth, f"_d = {denominator}")
                        code.add(depth, "if _n % _d:")
                        code.add(depth + 1, skip())
                        code.add(depth, f"{v} = _n // _d")
                    else:
                        code.add(depth, f"{v} = {numerator}")
                    bound.add(v)
                    progress = True
                    checks()

    def checks() -> None:
        for loop in stmt.loops:
            tag = f"range:{loop.var}"
            if tag not in done_checks and loop.var in bound and loop.deps <= bound:
                done_checks.add(tag)
                if loop.var not in plan.enumerated:
                    code.add(depth, f"if not ({_range_check(loop)}):")
                    code.add(depth + 1, skip())
        for number, cond in enumerate(stmt.conditions):
            tag = f"cond:{number}"
            if tag not in done_checks and cond.deps <= bound:
                done_checks.add(tag)
                code.add(depth, f"if {_condition_check(cond)}:")
                code.add(depth + 1, skip())
        for row in plan.verify_rows:
            tag = f"row:{row}"
            if tag not in done_checks and {str(s) for s in access.exprs[row].free_symbols} & set(stmt.loop_vars) <= bound:
                done_checks.add(tag)
                code.add(depth, f"if ({access.index[row]}) != {knowns[row]}:")
                code.add(depth + 1, skip())

    settle()
    for loop in stmt.loops:
        if loop.var in plan.enumerated:
            code.add(depth, f"for {loop.var} in range({loop.start}, {loop.stop}, {loop.step}):")
            depth += 1
            bound.add(loop.var)
            settle()
    code.add(depth, f"_out[{_task_literal(stmt)}] = None")


# ----------------------------------------------------------------------------------------
# Symbolic SSA proofs: pairs of writes that can never hit the same block, for any sizes.


def _affine(exprs: Sequence[sympy.Expr], unknowns: Sequence[sympy.Symbol]) -> bool:
    return not any(any(_nonlinear_unknowns(sympy.expand(e), unknowns)) for e in exprs)


def _outside_bounds(stmt: Statement, rename: Mapping[str, sympy.Symbol], solution: Mapping[sympy.Symbol, sympy.Expr]) -> bool:
    """True if the solution puts some loop variable provably outside its loop's range."""
    for loop in stmt.loops:
        value = solution.get(rename[loop.var], rename[loop.var])
        substitution = {_integer_symbol(v): rename[v] for v in stmt.loop_vars}
        if loop.start_expr is not None:
            start = loop.start_expr.xreplace(substitution).xreplace(solution)
            gap = sympy.expand(value - start)
            if gap.is_number and gap < 0:
                return True
        if loop.stop_expr is not None:
            stop = loop.stop_expr.xreplace(substitution).xreplace(solution)
            gap = sympy.expand(stop - value)
            if gap.is_number and gap <= 0:
                return True
    return False


def _writes_provably_disjoint(s1: Statement, a1: Access, s2: Statement, a2: Access) -> bool:
    """Can ``a1`` at one iteration of ``s1`` and ``a2`` at another of ``s2`` name the same block?

    Sound but incomplete: conditions are ignored, and bounds are used only when the linear
    solution pins a variable outside a range with affine ends.
    """
    if len(a1.exprs) != len(a2.exprs):
        return True
    first = {v: _integer_symbol(v) for v in s1.loop_vars}
    second = {v: _integer_symbol(v + "__2") for v in s2.loop_vars}
    unknowns = list(first.values()) + list(second.values())
    left = [e.xreplace({_integer_symbol(v): s for v, s in first.items()}) for e in a1.exprs]
    right = [e.xreplace({_integer_symbol(v): s for v, s in second.items()}) for e in a2.exprs]
    equations = [sympy.expand(x - y) for x, y in zip(left, right)]
    if not _affine(equations, unknowns):
        return False
    if s1 is s2 and a1 is a2:
        # Same access at two iterations: disjoint iff the affine index map is injective.
        jacobian = sympy.Matrix([[sympy.expand(e).coeff(u) for u in first.values()] for e in left])
        return bool(all(x.is_number for x in jacobian)) and jacobian.rank() == len(first)
    solved = sympy.linsolve(equations, unknowns)
    if solved == sympy.S.EmptySet:
        return True
    if not isinstance(solved, sympy.FiniteSet) or len(solved) != 1:
        return False
    solution = {u: value for u, value in zip(unknowns, next(iter(solved))) if value != u}
    return _outside_bounds(s1, first, solution) or _outside_bounds(s2, second, solution)


# ----------------------------------------------------------------------------------------
# Programs.


class Program:
    """An analysed LAMBDAPACK program (size independent); :meth:`dag` binds the sizes.

    ``inputs`` are matrices supplied before the run (never written); ``outputs`` are the
    matrices whose blocks form the result -- the runtime counts tasks writing them to know
    when the program is done. Any other matrix is an intermediate; reading an intermediate
    block that no task writes yields zeros, as in NumPyWren.

    SSA check: every pair of write accesses to one matrix is first tried symbolically (an
    injective affine index map, or a linear system with no solution inside affine loop
    bounds); the proven pairs are listed in :attr:`proven_disjoint`. If any pair is left
    unproven, every write is enumerated at each size in ``ssa_sizes`` (default: a small
    grid of block counts) and a repeat raises :class:`SSAViolation` naming both lines.
    """

    def __init__(
        self,
        source: str,
        inputs: Iterable[str],
        outputs: Iterable[str],
        ssa_sizes: Iterable[Mapping[str, int]] | None = None,
    ):
        parsed = _Parser(source)
        self.source = parsed.source
        self.name = parsed.name
        self.params: tuple[str, ...] = parsed.params
        self.inputs: frozenset[str] = frozenset(inputs)
        self.outputs: frozenset[str] = frozenset(outputs)
        self.statements: tuple[Statement, ...] = self._name_statements(parsed.raw)
        self._by_name = {s.name: s for s in self.statements}
        self._validate()
        # Per matrix, the generated solver functions of every access to it.
        self._reader_solvers: dict[str, list[str]] = {}
        self._writer_solvers: dict[str, list[str]] = {}
        self._code_text = self._generate()
        self._code = compile(self._code_text, f"<lambdapack {self.name}>", "exec")
        self.proven_disjoint: list[tuple[str, str]]
        self.proven_disjoint, unproven = self._symbolic_ssa()
        if unproven:
            for sizes in ssa_sizes if ssa_sizes is not None else self._default_ssa_sizes():
                self.check_ssa(sizes)

    # -- construction ------------------------------------------------------------------

    @staticmethod
    def _name_statements(raw: list) -> tuple[Statement, ...]:
        per_kernel: dict[str, int] = {}
        for kernel, *_ in raw:
            per_kernel[kernel] = per_kernel.get(kernel, 0) + 1
        seen: dict[str, int] = {}
        statements = []
        for kernel, loops, conds, reads, writes, line, text in raw:
            ordinal = seen.get(kernel, 0)
            seen[kernel] = ordinal + 1
            name = kernel if per_kernel[kernel] == 1 else f"{kernel}_{ordinal}"
            statements.append(Statement(name, kernel, loops, conds, reads, writes, line, text))
        names = [s.name for s in statements]
        clash = {n for n in names if names.count(n) > 1}
        if clash:
            raise LambdaPackSyntaxError(f"statement names {sorted(clash)} clash; rename a kernel")
        return tuple(statements)

    def _validate(self) -> None:
        ranks: dict[str, tuple[int, Statement]] = {}
        written = set()
        for stmt in self.statements:
            for access in stmt.reads + stmt.writes:
                rank, first = ranks.setdefault(access.matrix, (len(access.index), stmt))
                if rank != len(access.index):
                    raise LambdaPackSyntaxError(
                        f"matrix {access.matrix} has {rank} indices at {first.describe()} "
                        f"but {len(access.index)} at {stmt.describe()}"
                    )
            for access in stmt.writes:
                if access.matrix in self.inputs:
                    raise LambdaPackSyntaxError(f"{stmt.describe()} writes input matrix {access.matrix}; inputs are read-only")
                written.add(access.matrix)
        self.matrices: frozenset[str] = frozenset(ranks)
        unknown = (self.inputs | self.outputs) - self.matrices
        if unknown:
            raise LambdaPackError(f"declared matrices {sorted(unknown)} are not used; used: {sorted(self.matrices)}")
        if self.inputs & self.outputs:
            raise LambdaPackError(f"matrices {sorted(self.inputs & self.outputs)} are declared both input and output")
        unwritten = self.outputs - written
        if unwritten:
            raise LambdaPackError(f"output matrices {sorted(unwritten)} are never written")

    def _generate(self) -> str:
        """All query functions of the program as one module of Python source."""
        code = _Code()
        for sid, stmt in enumerate(self.statements):
            _emit_statement_helpers(code, sid, stmt)
            for kind, accesses, table in (("r", stmt.reads, self._reader_solvers), ("w", stmt.writes, self._writer_solvers)):
                for aid, access in enumerate(accesses):
                    fn_name = f"_solve_{kind}_{sid}_{aid}"
                    _emit_solver(code, fn_name, stmt, access, _plan_solve(stmt, access))
                    table.setdefault(access.matrix, []).append(fn_name)
        return code.text()

    def _symbolic_ssa(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        writes = [(s, a) for s in self.statements for a in s.writes]
        proven, unproven = [], []
        for (s1, a1), (s2, a2) in itertools.combinations_with_replacement(writes, 2):
            if a1.matrix != a2.matrix:
                continue
            pair = (f"{s1.name}:{a1}", f"{s2.name}:{a2}")
            (proven if _writes_provably_disjoint(s1, a1, s2, a2) else unproven).append(pair)
        return proven, unproven

    def _default_ssa_sizes(self) -> list[dict[str, int]]:
        if not self.params:
            return [{}]
        top = {1: 10, 2: 7, 3: 4}.get(len(self.params), 3)
        grid = [dict(zip(self.params, values)) for values in itertools.product(range(1, top + 1), repeat=len(self.params))]
        grid += [dict.fromkeys(self.params, n) for n in range(top + 1, top + 3)]
        return grid

    # -- public API --------------------------------------------------------------------

    def statement(self, name: str) -> Statement:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"{self.name} has no statement {name!r}; statements: {sorted(self._by_name)}") from None

    def dag(self, **sizes: int) -> ImplicitDAG:
        """The task graph at concrete sizes (e.g. ``N=64``); cheap, no sympy involved."""
        return ImplicitDAG(self, sizes)

    def check_ssa(self, sizes: Mapping[str, int]) -> None:
        """Enumerate every written block at ``sizes``; raise :class:`SSAViolation` on a repeat."""
        dag = self.dag(**sizes)
        first_writer: dict[BlockRef, tuple[Task, int]] = {}
        for task in dag.all_tasks():
            for position, block in enumerate(dag.writes(task)):
                previous, _ = first_writer.setdefault(block, (task, position))
                if (previous, _) != (task, position):
                    here, there = self.statement(previous.stmt), self.statement(task.stmt)
                    raise SSAViolation(
                        f"{self.name}: block {block} is written twice when "
                        f"{', '.join(f'{k}={v}' for k, v in sizes.items())}: by {here.describe(previous.idx)} "
                        f"and by {there.describe(task.idx)}"
                    )

    def __getstate__(self) -> dict[str, object]:
        # Code objects do not pickle; the generated source does, and recompiling it is cheap
        # (no sympy), so a program can travel to Ray workers without being re-analysed.
        state = dict(self.__dict__)
        del state["_code"]
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._code = compile(self._code_text, f"<lambdapack {self.name}>", "exec")

    def __repr__(self) -> str:
        return f"Program({self.name!r}, params={self.params}, statements={len(self.statements)})"


class ImplicitDAG:
    """The task graph of a program at fixed sizes, answered on demand (never materialised).

    This is what the runtime calls: :meth:`starting_tasks` to seed the queue, and in each
    task's post-op :meth:`children` plus :meth:`num_parents` to count finished parents.
    """

    def __init__(self, program: Program, sizes: Mapping[str, int]):
        missing = set(program.params) - set(sizes)
        extra = set(sizes) - set(program.params)
        if missing or extra:
            raise LambdaPackError(f"{program.name} takes sizes {list(program.params)}; missing {sorted(missing)}, unknown {sorted(extra)}")
        for key, value in sizes.items():
            if type(value) is not int or value < 0:
                raise LambdaPackError(f"size {key} must be a non-negative int, got {value!r}")
        self.program = program
        self.sizes: dict[str, int] = dict(sizes)
        namespace: dict[str, object] = dict(BOUND_FUNCTIONS)
        namespace.update(sizes)
        namespace.update(_Task=Task, _BlockRef=BlockRef, _new=tuple.__new__)
        exec(program._code, namespace)
        stmts = program.statements
        self._enum = {s.name: namespace[f"_enum_{i}"] for i, s in enumerate(stmts)}
        self._valid = {s.name: namespace[f"_valid_{i}"] for i, s in enumerate(stmts)}
        self._reads = {s.name: namespace[f"_reads_{i}"] for i, s in enumerate(stmts)}
        self._writes = {s.name: namespace[f"_writes_{i}"] for i, s in enumerate(stmts)}
        self._kernel = {s.name: s.kernel for s in stmts}
        self._readers_of = {m: tuple(namespace[f] for f in fns) for m, fns in program._reader_solvers.items()}
        self._writers_of = {m: tuple(namespace[f] for f in fns) for m, fns in program._writer_solvers.items()}
        self._starting: list[Task] | None = None
        self._num_output_tasks: int | None = None

    # -- one task ----------------------------------------------------------------------

    def reads(self, task: Task) -> list[BlockRef]:
        """Blocks the task's kernel takes, in argument order."""
        return self._reads[task.stmt](*task.idx)

    def writes(self, task: Task) -> list[BlockRef]:
        """Blocks the task's kernel returns, in result order."""
        return self._writes[task.stmt](*task.idx)

    def kernel_name(self, task: Task) -> str:
        return self._kernel[task.stmt]

    def is_task(self, task: Task) -> bool:
        """Whether the statement exists and the values lie inside its loops and conditions."""
        valid = self._valid.get(task.stmt)
        return valid is not None and len(task.idx) == len(self.program.statement(task.stmt).loops) and valid(*task.idx)

    # -- blocks ------------------------------------------------------------------------

    def is_input(self, block: BlockRef) -> bool:
        return block.matrix in self.program.inputs

    def is_output(self, block: BlockRef) -> bool:
        return block.matrix in self.program.outputs

    def writer(self, block: BlockRef) -> Task | None:
        """The one task writing ``block``; None for inputs and never-written (zero) blocks."""
        found: dict[Task, None] = {}
        for solve in self._writers_of.get(block.matrix, ()):
            solve(found, *block.idx)
        if len(found) > 1:
            raise SSAViolation(f"block {block} has writers {sorted(found)}")
        return next(iter(found), None)

    def readers(self, block: BlockRef) -> list[Task]:
        """Every task reading ``block`` (garbage collection may drop it once they finish)."""
        found: dict[Task, None] = {}
        for solve in self._readers_of.get(block.matrix, ()):
            solve(found, *block.idx)
        return list(found)

    # -- edges -------------------------------------------------------------------------

    def children(self, task: Task) -> list[Task]:
        """Distinct tasks that read a block this task writes, in a deterministic order."""
        found: dict[Task, None] = {}
        readers_of = self._readers_of
        for block in self._writes[task.stmt](*task.idx):
            for solve in readers_of.get(block[0], ()):
                solve(found, *block[1])
        return list(found)

    def parents(self, task: Task) -> list[Task]:
        """Distinct tasks that write a block this task reads."""
        found: dict[Task, None] = {}
        writers_of = self._writers_of
        for block in self._reads[task.stmt](*task.idx):
            for solve in writers_of.get(block[0], ()):
                solve(found, *block[1])
        return list(found)

    def num_parents(self, task: Task) -> int:
        """How many finished parents make this task ready (each parent counted once)."""
        return len(self.parents(task))

    # -- whole program -----------------------------------------------------------------

    def statement_tasks(self, stmt: str) -> Iterator[Task]:
        """All tasks of one statement, in loop order."""
        for idx in self._enum[stmt]():
            yield Task(stmt, idx)

    def all_tasks(self) -> Iterator[Task]:
        """Every task, statement by statement; enumeration, for tests and small programs."""
        for stmt in self.program.statements:
            yield from self.statement_tasks(stmt.name)

    def num_tasks(self) -> int:
        return sum(1 for _ in self.all_tasks())

    def starting_tasks(self) -> list[Task]:
        """Tasks with no parents (all reads are inputs or never-written zero blocks).

        Statements reading only matrices that no statement writes start in full; the rest
        are enumerated and checked, once per DAG.
        """
        if self._starting is None:
            starting: list[Task] = []
            for stmt in self.program.statements:
                if all(access.matrix not in self._writers_of for access in stmt.reads):
                    starting.extend(self.statement_tasks(stmt.name))
                    continue
                for task in self.statement_tasks(stmt.name):
                    if not any(self.writer(block) is not None for block in self.reads(task) if block.matrix in self._writers_of):
                        starting.append(task)
            self._starting = starting
        return list(self._starting)

    def output_statements(self) -> list[str]:
        return [s.name for s in self.program.statements if any(a.matrix in self.program.outputs for a in s.writes)]

    def output_tasks(self) -> Iterator[Task]:
        """Tasks writing output blocks; the program is done when all of them finished."""
        for name in self.output_statements():
            yield from self.statement_tasks(name)

    def num_output_tasks(self) -> int:
        if self._num_output_tasks is None:
            self._num_output_tasks = sum(1 for _ in self.output_tasks())
        return self._num_output_tasks

    def __reduce__(self) -> tuple[type, tuple[Program, dict[str, int]]]:
        # The generated functions do not pickle; rebuilding them from the program is cheap.
        return (ImplicitDAG, (self.program, self.sizes))

    def __repr__(self) -> str:
        return f"ImplicitDAG({self.program.name!r}, {self.sizes})"
