"""From Python source to LAMBDAPACK statements, rejecting anything outside the language.

The parser walks the AST of one function; every construct it does not know fails with a
:class:`LambdaPackSyntaxError` naming the line. Index expressions become sympy integers so
the solver can invert them; bounds and conditions stay Python source.
"""

from __future__ import annotations

import ast
import builtins
import keyword
import textwrap

import sympy

from sls_ray.numpywren.lambdapack.ir import (
    BOUND_FUNCTIONS,
    Access,
    Condition,
    LambdaPackSyntaxError,
    Loop,
    integer_symbol,
)

_RESERVED = set(BOUND_FUNCTIONS) | {"range"} | set(dir(builtins))
_BOUND_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Mod, ast.Pow)
_INDEX_BINOPS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Pow: lambda a, b: a**b,
}


class Parser:
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
        self.symbols = {name: integer_symbol(name) for name in self.params}
        # (kernel, loops, conditions, reads, writes, line, source text) per statement, in order.
        self.raw: list[
            tuple[str, tuple[Loop, ...], tuple[Condition, ...], tuple[Access, ...], tuple[Access, ...], int, str]
        ] = []
        self._block(func.body, (), (), is_top=True)

    # -- errors and names --------------------------------------------------------------

    def _fail(self, node: ast.AST, message: str) -> None:
        raise LambdaPackSyntaxError(f"line {getattr(node, 'lineno', '?')}: {message}")

    def _check_name(self, node: ast.AST, name: str, what: str) -> None:
        if name.startswith("_") or keyword.iskeyword(name) or name in _RESERVED:
            self._fail(node, f"{what} {name!r} is reserved (no leading underscore, keyword or builtin)")

    # -- statements --------------------------------------------------------------------

    def _block(
        self, body: list[ast.stmt], loops: tuple[Loop, ...], conds: tuple[Condition, ...], is_top: bool = False
    ) -> None:
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
            elif (
                is_top
                and position == 0
                and isinstance(node, ast.Expr)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                continue  # docstring
            else:
                self._fail(
                    node, f"{type(node).__name__} is not LAMBDAPACK (only for/if/else and `BLOCKS = kernel(BLOCKS)`)"
                )

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
        if not (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Name)
            and call.func.id == "range"
            and not call.keywords
            and 1 <= len(call.args) <= 3
        ):
            self._fail(node, "loops must iterate over range(stop), range(start, stop) or range(start, stop, step)")
        parts = list(call.args)
        if len(parts) == 1:
            parts.insert(0, ast.Constant(0))
        if len(parts) == 2:
            parts.append(ast.Constant(1))
        (start, start_deps), (stop, stop_deps), (step, step_deps) = (
            self._bound_expr(p, scope, what="loop bound") for p in parts
        )
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
                return self.symbols.setdefault(node.id, integer_symbol(node.id))
            self._fail(node, f"{node.id!r} is neither an enclosing loop variable nor a size parameter")
        if isinstance(node, ast.BinOp) and type(node.op) in _INDEX_BINOPS:
            return _INDEX_BINOPS[type(node.op)](
                self._index_sympy(node.left, scope), self._index_sympy(node.right, scope)
            )
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            inner = self._index_sympy(node.operand, scope)
            return -inner if isinstance(node.op, ast.USub) else inner
        self._fail(
            node,
            f"index expression `{ast.unparse(node)}` may use integers, loop variables, size parameters "
            "and + - * ** only",
        )
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
                    self._fail(
                        node, f"{what} uses {sub.id!r}, which is not an enclosing loop variable or size parameter"
                    )
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
            elif not isinstance(
                sub, (ast.UnaryOp, ast.BoolOp, ast.expr_context, ast.unaryop, ast.operator, ast.cmpop, ast.boolop)
            ):
                self._fail(node, f"{what} may not use {type(sub).__name__}")
        return ast.unparse(node), frozenset(deps)
