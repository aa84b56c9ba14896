"""Client objects a function gets from ``ctx.storage(name)`` (docs/api.md, "Storage clients").

Thin: each method turns into one simcall. Writes whose answer the code does not need (put,
delete, SQS delete/renew) are queued lazily; size limits are checked before anything is
sent, as a real SDK would fail the call at once.
"""
from __future__ import annotations

from typing import Any, Iterable

from sls_ray import simcall as sc
from sls_ray.errors import ItemTooLarge


class KVClient:
    def __init__(self, ctx, name: str) -> None:
        self._ctx = ctx
        self.name = name
        self.item_limit = ctx._item_limits.get(name)
        self.can_list = ctx._service_kinds.get(name) not in NO_LISTING

    def put(self, key: str, value: Any, charge_bytes: int | None = None) -> None:
        """Store ``value`` (lazy). ``charge_bytes``: the size to transfer, bill and store instead
        of the value's own wire size (a modelled payload, e.g. a folded block)."""
        handle, size = self._ctx._encode_checked(self.name, key, value, charge_bytes)
        self._ctx._storage_call(self.name, "put", (key,), size, handle, lazy=True)

    def get(self, key: str) -> Any:
        return self._ctx._received(self._ctx._storage_call(self.name, "get", (key,)), f"{self.name}:{key}")

    def get_each(self, keys: Iterable[str]) -> list[Any]:
        """``[client.get(k) for k in keys]`` in one simcall: each GET leaves when the previous
        answer arrived, so times, bills and memory checks are the loop's (docs/api.md,
        "Declared sequences"); only the real round trips between them go."""
        keys = list(keys)
        ops = [sc.Op(sc.STORAGE, service=self.name, method="get", args=(k,)) for k in keys]
        return self._ctx._sequence(ops, lambda i, value: self._ctx._received(value, f"{self.name}:{keys[i]}"))

    def get_async(self, key: str):
        """Start a GET and return a ``Pending`` at once; ``.result()`` / ``ctx.gather`` wait for it."""
        return self._ctx._start_async(self.name, "get", (key,), what=f"{self.name}:{key}")

    def put_async(self, key: str, value: Any, charge_bytes: int | None = None):
        """Start a PUT and return a ``Pending`` at once (its result is None once committed)."""
        handle, size = self._ctx._encode_checked(self.name, key, value, charge_bytes)
        return self._ctx._start_async(self.name, "put", (key,), size, handle, what=f"{self.name}:{key}")

    def exists(self, key: str) -> bool:
        return self._ctx._storage_call(self.name, "exists", (key,))

    def delete(self, keys: str | Iterable[str]) -> None:
        keys = (keys,) if isinstance(keys, str) else tuple(keys)
        self._ctx._storage_call(self.name, "delete", (keys,), lazy=True)

    def flush(self) -> None:
        """Drop every item (Memcached flush_all, Redis FLUSHALL, a VM store); NotSupported elsewhere."""
        self._ctx._storage_call(self.name, "flush", ())

    def list(self, prefix: str = "") -> list[str]:
        return self._ctx._storage_call(self.name, "list", (prefix,))

    def mget(self, keys: Iterable[str]) -> dict[str, Any]:
        handles = self._ctx._storage_call(self.name, "mget", (tuple(keys),))
        out = {k: self._ctx._gw.decode(h) for k, h in handles.items()}
        for k, v in out.items():
            self._ctx._received(v, f"{self.name}:{k}")
        return out

    def wait(self, key: str, poll_interval: float = 0.1, timeout: float | None = None) -> None:
        self._ctx._storage_call(self.name, "wait", (key, poll_interval, timeout))

    def get_wait(self, key: str, poll_interval: float = 0.1, timeout: float | None = None) -> Any:
        value = self._ctx._storage_call(self.name, "get_wait", (key, poll_interval, timeout))
        return self._ctx._received(value, f"{self.name}:{key}")

    def wait_count(self, prefix: str, n: int, poll_interval: float = 0.1, timeout: float | None = None) -> list[str]:
        return self._ctx._storage_call(self.name, "wait_count", (prefix, poll_interval, timeout, n))

    def wait_keys(self, keys: Iterable[str], poll_interval: float = 0.1, timeout: float | None = None) -> None:
        self._ctx._storage_call(self.name, "wait_keys", (tuple(keys), poll_interval, timeout))


#: kinds without key listing (LambdaML lists Memcached by multi-getting candidate keys)
NO_LISTING = {"memcached"}


class RedisClient(KVClient):
    """Redis commands on small inline values (NumPyWren's state store)."""

    def incr(self, key: str, by: int = 1) -> int:
        return self._ctx._storage_call(self.name, "incr", (key, by), 16)

    def setnx(self, key: str, value: Any) -> bool:
        return self._ctx._storage_call(self.name, "setnx", (key, value), 16)

    def cas(self, key: str, expected: Any, new: Any) -> bool:
        return self._ctx._storage_call(self.name, "cas", (key, expected, new), 16)

    def setnx_incr(self, flag_key: str, counter_key: str, by: int = 1) -> int | None:
        return self._ctx._storage_call(self.name, "setnx_incr", (flag_key, counter_key, by), 32)

    def getv(self, key: str) -> Any:
        return self._ctx._storage_call(self.name, "getv", (key,))

    def setv(self, key: str, value: Any, lazy: bool = True) -> None:
        self._ctx._storage_call(self.name, "setv", (key, value), 16, lazy=lazy)

    def transaction(self, ops: list[tuple]) -> list:
        return self._ctx._storage_call(self.name, "transaction", (tuple(tuple(o) for o in ops),), 16 * len(ops))


class Message:
    __slots__ = ("id", "body", "receipt", "receive_count")

    def __init__(self, id: int, body: Any, receipt: int, receive_count: int) -> None:
        self.id, self.body, self.receipt, self.receive_count = id, body, receipt, receive_count

    def __repr__(self) -> str:
        return f"Message(id={self.id}, receipt={self.receipt}, receive_count={self.receive_count})"


class SQSClient:
    def __init__(self, ctx, name: str) -> None:
        self._ctx = ctx
        self.name = name
        self.item_limit = ctx._item_limits.get(name)

    def send(self, queue: str, body: Any) -> None:
        handle, size = self._ctx._gw.encode(body)
        if self.item_limit is not None and size > self.item_limit:
            raise ItemTooLarge(f"{self.name}: message of {size} bytes is above the {self.item_limit}-byte limit")
        self._ctx._storage_call(self.name, "send", (queue,), size, handle, lazy=True)

    def send_async(self, queue: str, body: Any):
        """Start a send and return a ``Pending`` (its result is the message id): many sends overlap."""
        handle, size = self._ctx._gw.encode(body)
        if self.item_limit is not None and size > self.item_limit:
            raise ItemTooLarge(f"{self.name}: message of {size} bytes is above the {self.item_limit}-byte limit")
        return self._ctx._start_async(self.name, "send", (queue,), size, handle, what=f"{self.name}:{queue}")

    def receive(self, queue: str, visibility_timeout: float = 30.0, wait: float = 0.0) -> Message | None:
        out = self._ctx._storage_call(self.name, "receive", (queue, visibility_timeout, wait))
        if out is None:
            return None
        return Message(out["id"], self._ctx._gw.decode(out["body"]), out["receipt"], out["receive_count"])

    def delete_message(self, queue: str, receipt: int) -> None:
        self._ctx._storage_call(self.name, "delete_message", (queue, receipt), lazy=True)

    def change_visibility(self, queue: str, receipt: int, timeout: float) -> bool:
        return self._ctx._storage_call(self.name, "change_visibility", (queue, receipt, timeout))

    def length(self, queue: str) -> int:
        return self._ctx._storage_call(self.name, "length", (queue,))

    def in_flight(self, queue: str) -> int:
        return self._ctx._storage_call(self.name, "in_flight", (queue,))


class RequestClient:
    """A serving instance's view of an open-loop request stream (sls_ray/storage/requests.py)."""

    def __init__(self, ctx, name: str) -> None:
        self._ctx = ctx
        self.name = name

    def take(self, max_batch: int, wait: float = 0.0) -> dict | None:
        """Up to max_batch waiting requests ({first, count, arrivals_s}); None if none came in time."""
        return self._ctx._storage_call(self.name, "take", (max_batch, wait))

    def complete(self, batch: dict) -> None:
        self._ctx._storage_call(self.name, "complete", (batch["first"], batch["count"]), lazy=True)

    def backlog(self) -> int:
        return self._ctx._storage_call(self.name, "backlog", ())


#: service kind -> client class; kinds not listed get the key-value client
CLIENTS = {"redis": RedisClient, "sqs": SQSClient, "requests": RequestClient}


def client_for(ctx, name: str, kind: str | None):
    if kind is None:
        from sls_ray.errors import NotSupported

        raise NotSupported(f"no storage service named '{name}'; known: {sorted(ctx._service_kinds)}")
    return CLIENTS.get(kind, KVClient)(ctx, name)
