"""Solving index equations once per (statement, access), and compiling the answers to Python.

For "which tasks of statement S access block b?" sympy solves S's index expressions for
S's loop variables; variables left free or appearing non-linearly (``2**l``) are
enumerated within their loop bounds. The plans are emitted as plain-integer functions, so
a query at run time costs microseconds. The symbolic write-disjointness proofs of the SSA
check live here too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import sympy
from sympy.polys.polyerrors import PolynomialError

from sls_ray.numpywren.lambdapack.ir import Access, Condition, LambdaPackError, Loop, Statement, integer_symbol

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


def _nonlinear_unknowns(
    eq: sympy.Expr, unknowns: Sequence[sympy.Symbol]
) -> tuple[set[sympy.Symbol], set[sympy.Symbol]]:
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


def plan_solve(stmt: Statement, access: Access) -> _SolvePlan:
    """Decide which loop variables of ``stmt`` to enumerate and solve the rest with sympy.

    Start by solving for every variable; a variable is moved to the enumerated set while it
    appears non-linearly (``2**l``, ``i*j``), is left free by the equations, could meet a
    zero denominator, or is needed by an enumerated loop's bounds before it can be computed.
    In the worst case everything is enumerated, which is slow but still exact. Exponents are
    assumed non-negative, as they are for tree levels.
    """
    order = stmt.loop_vars
    symbol = {v: integer_symbol(v) for v in order}
    knowns = [integer_symbol(f"_b{m}") for m in range(len(access.exprs))]
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


class Code:
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


def emit_statement_helpers(code: Code, sid: int, stmt: Statement) -> None:
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


def emit_solver(code: Code, fn_name: str, stmt: Statement, access: Access, plan: _SolvePlan) -> None:
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
            if (
                tag not in done_checks
                and {str(s) for s in access.exprs[row].free_symbols} & set(stmt.loop_vars) <= bound
            ):
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


def _outside_bounds(
    stmt: Statement, rename: Mapping[str, sympy.Symbol], solution: Mapping[sympy.Symbol, sympy.Expr]
) -> bool:
    """True if the solution puts some loop variable provably outside its loop's range."""
    for loop in stmt.loops:
        value = solution.get(rename[loop.var], rename[loop.var])
        substitution = {integer_symbol(v): rename[v] for v in stmt.loop_vars}
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


def writes_provably_disjoint(s1: Statement, a1: Access, s2: Statement, a2: Access) -> bool:
    """Can ``a1`` at one iteration of ``s1`` and ``a2`` at another of ``s2`` name the same block?

    Sound but incomplete: conditions are ignored, and bounds are used only when the linear
    solution pins a variable outside a range with affine ends.
    """
    if len(a1.exprs) != len(a2.exprs):
        return True
    first = {v: integer_symbol(v) for v in s1.loop_vars}
    second = {v: integer_symbol(v + "__2") for v in s2.loop_vars}
    unknowns = list(first.values()) + list(second.values())
    left = [e.xreplace({integer_symbol(v): s for v, s in first.items()}) for e in a1.exprs]
    right = [e.xreplace({integer_symbol(v): s for v, s in second.items()}) for e in a2.exprs]
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
