"""ElastiCache Redis stand-in: NumPyWren's state store (numpywren.md, "Runtime").

Beyond key-value: atomic INCR, compare-and-set, SETNX, a Lua-script-like
``setnx_incr`` (set an edge flag and bump a counter only if the flag was unset — NumPyWren's
post-op, so a replayed parent counts once) and MULTI/EXEC transactions. Values used by these
commands are small plain Python values carried inline.
"""
from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from sls_ray.storage.base import Done, Fail, Outcome, Request, Upload
from sls_ray.storage.node import NodeConfig, NodeStore


class RedisConfig(NodeConfig):
    kind: str = "redis"
    latency_s: float = Field(0.0005, ge=0, description="request round trip inside a VPC [est]")
    item_limit_bytes: int | None = Field(512 << 20, ge=1, description="largest string value (512 MB) [doc]")
    list_page_keys: int | None = Field(1000, ge=1, description="SCAN page size")


class Redis(NodeStore):
    kind = "redis"
    Config: ClassVar[type[RedisConfig]] = RedisConfig
    config: RedisConfig

    def _value(self, key: str) -> Any:
        item = self.items.get(key)
        return None if item is None else item[0]

    def _atomic(self, req: Request, run) -> Outcome:
        """A command that changes state at its commit time and answers the result."""
        self.bill("CMD")

        def commit(t: int) -> Any:
            return run(t)

        return Upload(req.size, commit)

    def _set(self, t: int, key: str, value: Any) -> None:
        self._write(t, key, value, 8 if isinstance(value, int) else len(repr(value)))

    def op_incr(self, t_ns: int, req: Request) -> Outcome:
        key, by = req.args

        def run(t: int) -> int:
            v = int(self._value(key) or 0) + by
            self._set(t, key, v)
            return v

        return self._atomic(req, run)

    def op_setnx(self, t_ns: int, req: Request) -> Outcome:
        key, value = req.args

        def run(t: int) -> bool:
            if key in self.items:
                return False
            self._set(t, key, value)
            return True

        return self._atomic(req, run)

    def op_cas(self, t_ns: int, req: Request) -> Outcome:
        key, expected, new = req.args

        def run(t: int) -> bool:
            if self._value(key) != expected:
                return False
            self._set(t, key, new)
            return True

        return self._atomic(req, run)

    def op_setnx_incr(self, t_ns: int, req: Request) -> Outcome:
        flag, counter, by = req.args

        def run(t: int) -> int | None:
            if flag in self.items:
                return None
            self._set(t, flag, 1)
            v = int(self._value(counter) or 0) + by
            self._set(t, counter, v)
            return v

        return self._atomic(req, run)

    def op_getv(self, t_ns: int, req: Request) -> Outcome:
        self.bill("CMD")
        return Done(value=self._value(req.args[0]))

    def op_setv(self, t_ns: int, req: Request) -> Outcome:
        key, value = req.args
        return self._atomic(req, lambda t: self._set(t, key, value))

    def op_transaction(self, t_ns: int, req: Request) -> Outcome:
        ops = req.args[0]
        for op in ops:
            if op[0] not in ("getv", "setv", "incr", "setnx", "cas", "setnx_incr", "delete"):
                return Fail("NotSupported", f"redis transaction: unknown command '{op[0]}'")

        def run(t: int) -> list:
            out = []
            for cmd, *args in ops:
                if cmd == "getv":
                    out.append(self._value(args[0]))
                elif cmd == "setv":
                    self._set(t, args[0], args[1])
                    out.append(True)
                elif cmd == "incr":
                    v = int(self._value(args[0]) or 0) + (args[1] if len(args) > 1 else 1)
                    self._set(t, args[0], v)
                    out.append(v)
                elif cmd == "setnx":
                    ok = args[0] not in self.items
                    if ok:
                        self._set(t, args[0], args[1])
                    out.append(ok)
                elif cmd == "cas":
                    ok = self._value(args[0]) == args[1]
                    if ok:
                        self._set(t, args[0], args[2])
                    out.append(ok)
                elif cmd == "setnx_incr":
                    if args[0] in self.items:
                        out.append(None)
                    else:
                        self._set(t, args[0], 1)
                        v = int(self._value(args[1]) or 0) + (args[2] if len(args) > 2 else 1)
                        self._set(t, args[1], v)
                        out.append(v)
                else:
                    out.append(self._remove(t, args[0]))
            return out

        return self._atomic(req, run)
