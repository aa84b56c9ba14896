"""Amazon SQS stand-in: NumPyWren's task queue (numpywren.md, "Leases").

A received message turns invisible for its visibility timeout — the *lease*; the holder may
renew it (ChangeMessageVisibility) and must delete it when done, else it reappears for
another receiver: failure detection is lease expiry. 256 KB messages, long polling up to
20 s, at-least-once delivery (optionally a duplicate delivery with a seeded probability),
$0.40 per million requests (each 64 KB chunk of a message is one request).
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from sls_ray.storage.base import Done, Fail, Outcome, Park, Request, Service, ServiceConfig, Ticket, Upload
from sls_ray.vtime import FID_QUEUE, RANK_TIMER, to_ns


class SQSConfig(ServiceConfig):
    kind: str = "sqs"
    latency_s: float = Field(0.01, ge=0, description="request latency [est]")
    message_limit_bytes: int = Field(256 * 1024, ge=1, description="message size limit [doc]")
    max_visibility_s: float = Field(12 * 3600, ge=0, description="largest visibility timeout [doc]")
    max_wait_s: float = Field(20.0, ge=0, description="longest long-poll wait [doc]")
    price_per_million: float = Field(0.40, ge=0, description="USD per million requests [est]")
    duplicate_prob: float = Field(0.0, ge=0, le=1, description="chance a receive leaves the message visible [est]")
    seed: int = Field(0, description="stream for duplicate deliveries")


@dataclass(slots=True)
class QueuedMessage:
    """A message as the queue holds it (its body is an opaque handle; clients.ReceivedMessage
    is what a receiving function gets)."""

    id: int
    body: Any
    size: int
    visible_at: int
    receipt: int = 0
    receive_count: int = 0
    deleted: bool = False


class _Queue:
    def __init__(self) -> None:
        self.messages: dict[int, QueuedMessage] = {}
        self.ready: list[tuple[int, int, int]] = []  # (visible_at, id, receipt) candidates
        self.waiters: list[Ticket] = []
        self.leased: dict[int, QueuedMessage] = {}  # received and not deleted (lease running or expired)
        self.by_receipt: dict[int, QueuedMessage] = {}  # latest receipt of each undeleted message


class SQS(Service):
    kind = "sqs"
    Config: ClassVar[type[SQSConfig]] = SQSConfig
    config: SQSConfig

    def __init__(self, name, config, env) -> None:
        super().__init__(name, config, env)
        self.queues: dict[str, _Queue] = {}
        self._next_id = 0
        self._next_receipt = 0

    def _q(self, name: str) -> _Queue:
        return self.queues.setdefault(name, _Queue())

    def _bill(self, op: str, nbytes: int = 0) -> None:
        self.usage.count(op, max(1, math.ceil(nbytes / 65536)))

    def _visible(self, q: _Queue, t_ns: int) -> QueuedMessage | None:
        while q.ready:
            vis, mid, receipt = q.ready[0]
            msg = q.messages.get(mid)
            if msg is None or msg.deleted or msg.receipt != receipt or msg.visible_at != vis:
                heapq.heappop(q.ready)
                continue
            if vis > t_ns:
                return None
            return msg
        return None

    def _deliver(self, q: _Queue, msg: QueuedMessage, t_ns: int, visibility_ns: int) -> dict:
        heapq.heappop(q.ready)
        self._next_receipt += 1
        msg.receive_count += 1
        dup = False
        if self.config.duplicate_prob > 0:
            rng = np.random.default_rng([self.config.seed, msg.id, msg.receive_count])
            dup = float(rng.random()) < self.config.duplicate_prob
        q.by_receipt.pop(msg.receipt, None)
        q.by_receipt[self._next_receipt] = msg
        if dup:  # at-least-once: the message stays visible and may be received again
            msg.receipt = self._next_receipt
            heapq.heappush(q.ready, (msg.visible_at, msg.id, msg.receipt))
            return {"id": msg.id, "body": msg.body, "receipt": -msg.receipt, "receive_count": msg.receive_count}
        msg.receipt = self._next_receipt
        msg.visible_at = t_ns + visibility_ns
        q.leased[msg.id] = msg
        heapq.heappush(q.ready, (msg.visible_at, msg.id, msg.receipt))
        self.env.schedule(msg.visible_at, RANK_TIMER, FID_QUEUE, msg.id,
                          partial(self._expire, q, msg, msg.receipt))
        return {"id": msg.id, "body": msg.body, "receipt": msg.receipt, "receive_count": msg.receive_count}

    def _expire(self, q: _Queue, msg: QueuedMessage, receipt: int, t_ns: int) -> None:
        if not msg.deleted and msg.receipt == receipt:
            self._serve_waiters(q, t_ns)

    def _serve_waiters(self, q: _Queue, t_ns: int) -> None:
        while q.waiters:
            msg = self._visible(q, t_ns)
            if msg is None:
                return
            ticket = q.waiters.pop(0)
            if ticket.closed:
                continue
            ticket.closed = True
            out = self._deliver(q, msg, t_ns, ticket.data["visibility"])
            self.env.resume(ticket, t_ns, Done(value=out, nbytes=msg.size))

    # ---------------------------------------------------------------- operations
    def op_send(self, t_ns: int, req: Request) -> Outcome:
        queue = req.args[0]
        if req.size > self.config.message_limit_bytes:
            return Fail("ItemTooLarge", f"sqs '{self.name}': message of {req.size} bytes is above the "
                                        f"{self.config.message_limit_bytes}-byte limit")
        self._bill("SEND", req.size)
        self.usage.bytes_in += req.size

        def commit(t: int) -> int:
            q = self._q(queue)
            self._next_id += 1
            msg = QueuedMessage(self._next_id, req.handle, req.size, t)
            q.messages[msg.id] = msg
            heapq.heappush(q.ready, (t, msg.id, 0))
            self._serve_waiters(q, t)
            return msg.id

        return Upload(req.size, commit)

    def op_receive(self, t_ns: int, req: Request) -> Outcome:
        queue, visibility, wait = req.args
        if not 0 <= visibility <= self.config.max_visibility_s:
            return Fail("QueueError", f"visibility timeout {visibility}s outside [0, {self.config.max_visibility_s}]")
        wait = min(max(wait, 0.0), self.config.max_wait_s)
        self._bill("RECEIVE")
        q = self._q(queue)
        msg = self._visible(q, t_ns)
        if msg is not None:
            out = self._deliver(q, msg, t_ns, to_ns(visibility))
            self.usage.bytes_out += msg.size
            return Done(value=out, nbytes=msg.size)
        if wait <= 0:
            return Done(value=None)
        ticket = Ticket(req.fid, req.seq, t_ns, t_ns + to_ns(wait), {"visibility": to_ns(visibility)})
        q.waiters.append(ticket)
        self.env.schedule(ticket.deadline_ns, RANK_TIMER, req.fid, req.seq,
                          partial(self._wait_over, ticket))
        return Park(ticket)

    def _wait_over(self, ticket: Ticket, t_ns: int) -> None:
        if not ticket.closed:
            ticket.closed = True
            self.env.resume(ticket, t_ns, Done(value=None))

    def cancel(self, ticket: Ticket, t_ns: int | None = None) -> None:
        ticket.closed = True

    def item_limit_bytes(self) -> int | None:
        return self.config.message_limit_bytes

    def _by_receipt(self, queue: str, receipt: int) -> QueuedMessage | None:
        msg = self._q(queue).by_receipt.get(abs(receipt))
        return msg if msg is not None and not msg.deleted and msg.receipt == abs(receipt) else None

    def op_delete_message(self, t_ns: int, req: Request) -> Outcome:
        queue, receipt = req.args
        self._bill("DELETE")

        def commit(t: int) -> bool:
            msg = self._by_receipt(queue, receipt)
            if msg is None:
                return False
            msg.deleted = True
            q = self._q(queue)
            del q.messages[msg.id]
            q.leased.pop(msg.id, None)
            q.by_receipt.pop(msg.receipt, None)
            return True

        return Upload(0, commit)

    def op_change_visibility(self, t_ns: int, req: Request) -> Outcome:
        queue, receipt, timeout = req.args
        self._bill("CHANGE_VISIBILITY")

        def commit(t: int) -> bool:
            msg = self._by_receipt(queue, receipt)
            if msg is None or msg.visible_at <= t:
                return False  # the lease already expired: the message may be someone else's now
            q = self._q(queue)
            msg.visible_at = t + to_ns(timeout)
            heapq.heappush(q.ready, (msg.visible_at, msg.id, msg.receipt))
            self.env.schedule(msg.visible_at, RANK_TIMER, FID_QUEUE, msg.id,
                              partial(self._expire_at, q, msg, msg.receipt, msg.visible_at))
            return True

        return Upload(0, commit)

    def _expire_at(self, q: _Queue, msg: QueuedMessage, receipt: int, visible_at: int, t_ns: int) -> None:
        if not msg.deleted and msg.receipt == receipt and msg.visible_at == visible_at:
            self._serve_waiters(q, t_ns)

    def op_length(self, t_ns: int, req: Request) -> Outcome:
        self._bill("GET_ATTRIBUTES")
        q = self._q(req.args[0])
        return Done(value=len(q.messages) - self._leased_now(q, t_ns))

    def op_in_flight(self, t_ns: int, req: Request) -> Outcome:
        self._bill("GET_ATTRIBUTES")
        return Done(value=self._leased_now(self._q(req.args[0]), t_ns))

    @staticmethod
    def _leased_now(q: _Queue, t_ns: int) -> int:
        """Messages invisible at t: only received ones can be (a sent message is visible at once)."""
        return sum(1 for m in q.leased.values() if m.visible_at > t_ns)

    def cost(self, end_ns: int) -> dict[str, float]:
        return {"requests": self.usage.total_requests * self.config.price_per_million / 1e6}
