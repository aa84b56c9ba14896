"""A key-value service in virtual time: the part S3, Memcached, DynamoDB, Redis and the VM share.

State changes only at a write's *commit* time (the end of its upload), and a read sees the
state at its *arrival* time, so "key not yet present" is decided by virtual time alone.
Polling loops ("wait until K exists", "until N keys under a prefix exist") are resolved
analytically: when the condition turns true at T, the first literal poll whose server-side
read is at or after T succeeds, and k + 1 poll requests are billed — the same time and bill
as a client that really polled every ``poll_interval_s`` (docs/design.md, "Polling").
"""
from __future__ import annotations

import math
from bisect import bisect_left
from functools import partial
from typing import Any, ClassVar

from pydantic import Field

from sls_ray.storage.base import Done, Fail, Outcome, Park, Request, Service, ServiceConfig, Throttle, Ticket, Upload
from sls_ray.vtime import INF_NS, RANK_ARRIVE, to_ns


class KVConfig(ServiceConfig):
    item_limit_bytes: int | None = Field(None, ge=1, description="largest value; None = no limit")
    list_page_keys: int | None = Field(1000, ge=1,
                                       description="keys per LIST page (each page billed); None = no listing")


class KVStore(Service):
    """Generic key-value semantics; subclasses add limits, rates and prices."""

    Config: ClassVar[type[KVConfig]] = KVConfig
    config: KVConfig
    #: request classes for billing, by method
    billing_class: ClassVar[dict[str, str]] = {
        "put": "PUT", "get": "GET", "delete": "DELETE", "exists": "GET", "list": "LIST", "mget": "GET",
    }
    #: whether LIST returns keys in lexicographical order (S3 Express directory buckets do not)
    lexicographic_list: ClassVar[bool] = True

    def __init__(self, name, config, env) -> None:
        super().__init__(name, config, env)
        self.items: dict[str, tuple[Any, int]] = {}
        self._sorted: list[str] = []  # sorted keys as of the last listing (may hold removed ones)
        self._fresh: list[str] = []  # keys added since, unsorted: a write costs O(1), not an O(n) insort
        self._purge = False  # some key in _sorted was removed
        # watchers by key / by prefix, each an insertion-ordered dict keyed by id(ticket);
        # watched prefixes keep a live key count so a LIST-poll check is O(1)
        self._key_watch: dict[str, dict[int, Ticket]] = {}
        self._prefix_watch: dict[str, dict[int, Ticket]] = {}
        self._prefix_count: dict[str, int] = {}
        # keys written but not yet visible to LIST (S3's eventual consistency before Dec 2020)
        self._hidden: set[str] = set()

    # ------------------------------------------------------------ hooks for subclasses
    def admit(self, t_ns: int, req: Request, op_class: str, nbytes: int) -> Throttle | None:
        """Rate limits (S3 SlowDown, DynamoDB capacity). None = admitted."""
        return None

    def bill(self, op_class: str, n: int = 1, nbytes: int = 0) -> None:
        self.usage.count(op_class, n)

    def check_size(self, key: str, size: int) -> Fail | None:
        limit = self.config.item_limit_bytes
        if limit is not None and size > limit:
            return Fail("ItemTooLarge", f"{self.kind} '{self.name}': value for key '{key}' is {size} bytes, "
                                        f"above the item limit of {limit} bytes")
        return None

    # ------------------------------------------------------------ state
    def _write(self, t_ns: int, key: str, handle: Any, size: int) -> None:
        old = self.items.get(key)
        self.usage.stored(t_ns, size - (old[1] if old else 0))
        if old is None:
            self._fresh.append(key)
            self._count_prefixes(key, +1)
        self.items[key] = (handle, size)
        self._notify(t_ns, key)

    def _remove(self, t_ns: int, key: str) -> bool:
        old = self.items.pop(key, None)
        if old is None:
            return False
        self.usage.stored(t_ns, -old[1])
        self._purge = True
        self._count_prefixes(key, -1)
        self._hidden.discard(key)
        return True

    def _reveal(self, t_ns: int, key: str) -> None:
        """A hidden key becomes visible to LIST (and to LIST-polling waits)."""
        if key not in self._hidden:
            return
        self._hidden.discard(key)
        self._count_prefixes(key, +1)
        self._notify(t_ns, key)

    def _count_prefixes(self, key: str, delta: int) -> None:
        if key in self._hidden:
            return
        for prefix in self._prefix_count:
            if key.startswith(prefix):
                self._prefix_count[prefix] += delta

    def preload(self, key: str, handle: Any, size: int) -> None:
        """An object present at t = 0 (prepared offline): stored, never billed as a request."""
        self._write(0, key, handle, size)

    def _sorted_keys(self) -> list[str]:
        """Every present key in order; merges the writes since the last call (timsort: O(n))."""
        if self._purge:
            self._sorted = [k for k in self._sorted if k in self.items]
            self._fresh = [k for k in self._fresh if k in self.items]
            self._purge = False
        if self._fresh:
            self._sorted.extend(self._fresh)
            self._sorted.sort()
            self._fresh = []
            if len(self._sorted) != len(self.items):  # removed and written again since the last merge
                self._sorted = sorted(set(self._sorted))
        return self._sorted

    def keys_under(self, prefix: str) -> list[str]:
        self._sorted_keys()
        i = bisect_left(self._sorted, prefix)
        out = []
        while i < len(self._sorted) and self._sorted[i].startswith(prefix):
            out.append(self._sorted[i])
            i += 1
        return [k for k in out if k not in self._hidden] if self._hidden else out

    # ------------------------------------------------------------ operations
    def _gate(self, t_ns: int, req: Request, op_class: str, nbytes: int = 0) -> Throttle | None:
        throttle = self.admit(t_ns, req, op_class, nbytes)
        if throttle is not None:
            self.usage.throttles += 1
        return throttle

    def op_put(self, t_ns: int, req: Request) -> Outcome:
        key = req.args[0]
        bad = self.check_size(key, req.size)
        if bad:
            return bad
        gate = self._gate(t_ns, req, "PUT", req.size)
        if gate:
            return gate
        self.bill("PUT", 1, req.size)
        self.usage.bytes_in += req.size

        def commit(t: int) -> None:
            self._write(t, key, req.handle, req.size)

        return Upload(req.size, commit)

    def op_get(self, t_ns: int, req: Request) -> Outcome:
        key = req.args[0]
        gate = self._gate(t_ns, req, "GET")
        if gate:
            return gate
        item = self.items.get(key)
        self.bill("GET", 1, item[1] if item else 0)
        if item is None:
            return Fail("KeyNotFound", f"{self.kind} '{self.name}': no key '{key}'")
        self.usage.bytes_out += item[1]
        return Done(handle=item[0], nbytes=item[1])

    def op_exists(self, t_ns: int, req: Request) -> Outcome:
        gate = self._gate(t_ns, req, "GET")
        if gate:
            return gate
        self.bill("GET")
        return Done(value=req.args[0] in self.items)

    def op_delete(self, t_ns: int, req: Request) -> Outcome:
        keys = req.args[0]
        gate = self._gate(t_ns, req, "DELETE")
        if gate:
            return gate
        self.bill("DELETE", self.delete_requests(len(keys)))

        def commit(t: int) -> int:
            return sum(self._remove(t, k) for k in keys)

        return Upload(0, commit)

    def op_list(self, t_ns: int, req: Request) -> Outcome:
        page = self.config.list_page_keys
        if page is None:
            return Fail("NotSupported", f"{self.kind} '{self.name}' cannot list keys; use mget over candidate keys")
        gate = self._gate(t_ns, req, "LIST")
        if gate:
            return gate
        keys = self.keys_under(req.args[0])
        self.bill("LIST", max(1, math.ceil(len(keys) / page)))
        return Done(value=keys, nbytes=sum(len(k) for k in keys))

    def op_mget(self, t_ns: int, req: Request) -> Outcome:
        keys = req.args[0]
        gate = self._gate(t_ns, req, "GET")
        if gate:
            return gate
        found = {k: self.items[k] for k in keys if k in self.items}
        self.bill("GET", self.mget_round_trips(len(keys)))
        size = sum(s for _, s in found.values())
        self.usage.bytes_out += size
        return Done(value={k: h for k, (h, _) in found.items()}, nbytes=size)

    # ------------------------------------------------------------ the service contract (base.py)
    def item_limit_bytes(self) -> int | None:
        return self.config.item_limit_bytes

    def lists(self) -> bool:
        return self.config.list_page_keys is not None

    def stored_keys(self, prefix: str = "") -> list[str]:
        return self.keys_under(prefix)

    def stored_handle(self, key: str) -> Any | None:
        item = self.items.get(key)
        return None if item is None else item[0]
    def delete_requests(self, n_keys: int) -> int:
        """How many requests a delete of n keys is (S3 DeleteObjects: 1,000 keys each; Memcached
        delete_multi: one); by default one per key."""
        return max(1, n_keys)

    # ------------------------------------------------------------ polling waits
    def _park(self, t_ns: int, req: Request, kind: str, target: Any, poll_class: str) -> Outcome:
        interval, timeout = req.args[1], req.args[2]
        # the timeout runs from the wait's arrival: a wait sent while the node is still starting
        # begins polling (and counting) once the service is up
        ticket = Ticket(req.fid, req.seq, t_ns,
                        INF_NS if timeout is None else t_ns + to_ns(timeout))
        period = to_ns(self.config.latency_s * self.latency_factor(t_ns) + interval)
        ticket.data = {"kind": kind, "target": target, "period": max(1, period), "poll_class": poll_class,
                       "check_at": None,
                       "per_poll": self.mget_round_trips(len(target)) if kind == "keys" else 1}
        if self._satisfied(ticket):
            if kind in ("prefix", "scan") and target[0] not in self._prefix_watch:
                self._prefix_count.pop(target[0], None)
            return self._succeed(ticket, t_ns, polls=1)
        if kind in ("key", "get"):
            self._key_watch.setdefault(target, {})[id(ticket)] = ticket
        elif kind in ("keys", "mget"):
            for k in (target if kind == "keys" else target[0]):
                self._key_watch.setdefault(k, {})[id(ticket)] = ticket
        else:
            self._prefix_watch.setdefault(target[0], {})[id(ticket)] = ticket
        if ticket.deadline_ns < INF_NS:
            self.env.schedule(ticket.deadline_ns, RANK_ARRIVE, req.fid, req.seq,
                              partial(self._timeout, ticket))
        return Park(ticket)

    def _satisfied(self, ticket: Ticket) -> bool:
        kind, target = ticket.data["kind"], ticket.data["target"]
        if kind in ("key", "get"):
            return target in self.items
        if kind == "keys":
            return all(k in self.items for k in target)
        if kind == "mget":
            keys, need = target
            return sum(k in self.items for k in keys) >= need
        prefix, n = target
        if prefix not in self._prefix_count:
            self._prefix_count[prefix] = len(self.keys_under(prefix))
        return self._prefix_count[prefix] >= n

    def _notify(self, t_ns: int, key: str) -> None:
        tickets = list(self._key_watch.get(key, {}).values())
        for prefix, watchers in self._prefix_watch.items():
            if key.startswith(prefix):
                tickets.extend(watchers.values())
        for ticket in tickets:
            if ticket.closed or not self._satisfied(ticket):
                continue
            period = ticket.data["period"]
            k = max(0, -(-(t_ns - ticket.t_arrive_ns) // period))
            check = ticket.t_arrive_ns + k * period
            if ticket.data["check_at"] is not None and ticket.data["check_at"] <= check:
                continue
            ticket.data["check_at"] = check
            self.env.schedule(check, RANK_ARRIVE, ticket.fid, ticket.seq,
                              partial(self._check, ticket, k=k))

    def _check(self, ticket: Ticket, t_ns: int, k: int) -> None:
        if ticket.closed or ticket.data["check_at"] != t_ns:
            return
        ticket.data["check_at"] = None
        if self._satisfied(ticket):
            self._close(ticket)
            self.env.resume(ticket, t_ns, self._succeed(ticket, t_ns, polls=k + 1))

    def _succeed(self, ticket: Ticket, t_ns: int, polls: int) -> Outcome:
        kind, target = ticket.data["kind"], ticket.data["target"]
        self.bill(ticket.data["poll_class"], polls * ticket.data["per_poll"])
        if kind == "get":
            handle, size = self.items[target]
            self.usage.bytes_out += size
            return Done(handle=handle, nbytes=size)
        if kind == "prefix":
            return Done(value=self.keys_under(target[0]))
        if kind == "mget":
            found = {k: self.items[k] for k in target[0] if k in self.items}
            size = sum(s for _, s in found.values())
            self.usage.bytes_out += size
            return Done(value={k: h for k, (h, _) in found.items()}, nbytes=size)
        if kind == "scan":
            return self._scan_result(target[0], polls)
        return Done(value=True)

    def _timeout(self, ticket: Ticket, t_ns: int) -> None:
        if ticket.closed:
            return
        self._close(ticket)
        polls = (t_ns - ticket.t_arrive_ns) // ticket.data["period"] + 1
        self.bill(ticket.data["poll_class"], int(polls) * ticket.data["per_poll"])
        self.env.resume(ticket, t_ns, Fail("WaitTimeout", f"{self.kind} '{self.name}': waited for "
                                                         f"{self.describe(ticket)} until its timeout"))

    def _close(self, ticket: Ticket) -> None:
        ticket.closed = True
        kind, target = ticket.data["kind"], ticket.data["target"]
        keys = [target] if kind in ("key", "get") else (target if kind == "keys" else
                                                       (list(target[0]) if kind == "mget" else []))
        for k in keys:
            watchers = self._key_watch.get(k)
            if watchers is not None:
                watchers.pop(id(ticket), None)
                if not watchers:
                    del self._key_watch[k]
        if kind in ("prefix", "scan"):
            watchers = self._prefix_watch.get(target[0])
            if watchers is not None:
                watchers.pop(id(ticket), None)
                if not watchers:
                    del self._prefix_watch[target[0]]
                    self._prefix_count.pop(target[0], None)

    def cancel(self, ticket: Ticket, t_ns: int | None = None) -> None:
        """The waiting function died at t_ns: stop watching, and bill the polls a literal loop sent by then."""
        if not ticket.closed:
            self._close(ticket)
            if t_ns is not None and t_ns >= ticket.t_arrive_ns:
                polls = (t_ns - ticket.t_arrive_ns) // ticket.data["period"] + 1
                self.bill(ticket.data["poll_class"], int(polls) * ticket.data["per_poll"])

    def describe(self, ticket: Ticket) -> str:
        kind, target = ticket.data["kind"], ticket.data["target"]
        if kind in ("key", "get"):
            return f"key '{target}'"
        if kind == "keys":
            missing = [k for k in target if k not in self.items]
            return f"{len(missing)} missing keys (first: '{missing[0] if missing else ''}')"
        if kind == "mget":
            return f"{target[1]} of {len(target[0])} keys (first: '{target[0][0] if target[0] else ''}')"
        return f"{target[1]} keys under '{target[0]}' (have {len(self.keys_under(target[0]))})"

    def op_wait(self, t_ns: int, req: Request) -> Outcome:
        return self._park(t_ns, req, "key", req.args[0], "GET")

    def op_get_wait(self, t_ns: int, req: Request) -> Outcome:
        return self._park(t_ns, req, "get", req.args[0], "GET")

    def op_wait_count(self, t_ns: int, req: Request) -> Outcome:
        if self.config.list_page_keys is None:
            return Fail("NotSupported", f"{self.kind} '{self.name}' cannot list keys; use wait_keys")
        return self._park(t_ns, req, "prefix", (req.args[0], req.args[3]), "LIST")

    def op_wait_keys(self, t_ns: int, req: Request) -> Outcome:
        return self._park(t_ns, req, "keys", tuple(req.args[0]), "GET")

    def op_wait_mget(self, t_ns: int, req: Request) -> Outcome:
        """A busy multi-get loop (LambdaML's Memcached ``list``): poll the keys until at least
        ``need`` of them exist; the successful poll returns the values it found (no extra read)."""
        return self._park(t_ns, req, "mget", (tuple(req.args[0]), req.args[3]), "GET")

    # ------------------------------------------------------------ scans (DynamoDB Scan: keys with their values)
    def _scan_result(self, prefix: str, polls: int) -> Outcome:
        keys = self.keys_under(prefix)
        size = sum(self.items[k][1] for k in keys)
        self.bill_scan(polls, size + sum(len(k) for k in keys))
        self.usage.bytes_out += size
        return Done(value={k: self.items[k][0] for k in keys}, nbytes=size)

    def bill_scan(self, polls: int, nbytes: int) -> None:
        """Extra billing of ``polls`` scans that each read ``nbytes`` (DynamoDB: read units)."""

    def op_scan(self, t_ns: int, req: Request) -> Outcome:
        if self.config.list_page_keys is None:
            return Fail("NotSupported", f"{self.kind} '{self.name}' cannot scan keys")
        gate = self._gate(t_ns, req, "LIST")
        if gate:
            return gate
        self.bill("LIST", 1)
        return self._scan_result(req.args[0], 1)

    def op_wait_scan(self, t_ns: int, req: Request) -> Outcome:
        """A busy Scan loop: scan until at least ``n`` items are under the prefix; the successful
        scan returns them with their values. Every poll is billed as a scan of what the
        successful one read (the items present then)."""
        if self.config.list_page_keys is None:
            return Fail("NotSupported", f"{self.kind} '{self.name}' cannot scan keys")
        return self._park(t_ns, req, "scan", (req.args[0], req.args[3]), "LIST")
