"""An analysed program and its implicit DAG at fixed sizes (never materialised).

:class:`Program` parses, checks static single assignment and generates the solvers;
:class:`ImplicitDAG` binds the size parameters and answers the runtime's queries:
starting tasks, children, parents, readers and writers of a block, output-task counts.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping

from sls_ray.numpywren.lambdapack.ir import (
    BOUND_FUNCTIONS,
    BlockRef,
    LambdaPackError,
    LambdaPackSyntaxError,
    SSAViolation,
    Statement,
    Task,
)
from sls_ray.numpywren.lambdapack.parser import Parser
from sls_ray.numpywren.lambdapack.solver import (
    Code,
    emit_solver,
    emit_statement_helpers,
    plan_solve,
    writes_provably_disjoint,
)

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
        parsed = Parser(source)
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
                    raise LambdaPackSyntaxError(
                        f"{stmt.describe()} writes input matrix {access.matrix}; inputs are read-only"
                    )
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
        code = Code()
        for sid, stmt in enumerate(self.statements):
            emit_statement_helpers(code, sid, stmt)
            for kind, accesses, table in (
                ("r", stmt.reads, self._reader_solvers),
                ("w", stmt.writes, self._writer_solvers),
            ):
                for aid, access in enumerate(accesses):
                    fn_name = f"_solve_{kind}_{sid}_{aid}"
                    emit_solver(code, fn_name, stmt, access, plan_solve(stmt, access))
                    table.setdefault(access.matrix, []).append(fn_name)
        return code.text()

    def _symbolic_ssa(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        writes = [(s, a) for s in self.statements for a in s.writes]
        proven, unproven = [], []
        for (s1, a1), (s2, a2) in itertools.combinations_with_replacement(writes, 2):
            if a1.matrix != a2.matrix:
                continue
            pair = (f"{s1.name}:{a1}", f"{s2.name}:{a2}")
            (proven if writes_provably_disjoint(s1, a1, s2, a2) else unproven).append(pair)
        return proven, unproven

    def _default_ssa_sizes(self) -> list[dict[str, int]]:
        if not self.params:
            return [{}]
        top = {1: 10, 2: 7, 3: 4}.get(len(self.params), 3)
        grid = [
            dict(zip(self.params, values)) for values in itertools.product(range(1, top + 1), repeat=len(self.params))
        ]
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
            raise LambdaPackError(
                f"{program.name} takes sizes {list(program.params)}; missing {sorted(missing)}, unknown {sorted(extra)}"
            )
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

    def topological_order(self) -> list[Task]:
        """Every task, each after all its parents (Kahn's algorithm from the starting tasks):
        the order the critical-path and single-machine models walk the DAG in."""
        indeg: dict[Task, int] = {}
        out: list[Task] = []
        frontier = list(self.starting_tasks())
        while frontier:
            t = frontier.pop()
            out.append(t)
            for c in self.children(t):
                indeg[c] = indeg.get(c, self.num_parents(c)) - 1
                if indeg[c] == 0:
                    frontier.append(c)
        return out

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
                    if not any(
                        self.writer(block) is not None for block in self.reads(task) if block.matrix in self._writers_of
                    ):
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
