"""A storage request in virtual time: arrival, outcome, transfer, commit, reply.

The request reaches the service one one-way latency after the function sent it (later if
the service is still starting); the service answers at that *arrival* instant with an
``Outcome`` (storage/base.py): answer now, possibly after a download flow (``Done``); an
upload flow, then a commit that makes the write visible (``Upload``); an error (``Fail``); a
throttle the client retries after a backoff (``Throttle``); or a wait inside the service
(``Park``: polling, long-poll receives) that the service ends later through ``resume``. The
reply reaches the function one more one-way latency later. Flows cross the function's NIC
and the service's link (network.py).

Asynchronous requests (``get_async``/``put_async``) run the same way while the function goes
on; their answers wait under a future id until an AWAIT collects them.

``StorageCalls`` is one part of ``SimKernel`` (kernel.py): it queues events on the loop and
answers functions through the chain runner (``finish_op``), which it is given.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, NamedTuple

from sls_ray import simcall as sc
from sls_ray.events import EventLoop
from sls_ray.functions import DONE, FunctionRecord
from sls_ray.invoker import Invoker
from sls_ray.network import Flow, FlowNetwork
from sls_ray.storage.base import Done, Fail, Outcome, Park, Request, Service, Throttle, Ticket, Upload
from sls_ray.vtime import RANK_ARRIVE, RANK_COMMIT

if TYPE_CHECKING:
    from sls_ray.chains import ChainRunner


class Waiter(NamedTuple):
    """The kernel's note on a parked request (``Ticket.waiter``): whom to answer, and how."""

    rec: FunctionRecord
    service: Service
    request: Request
    future: int | None  # the async request's id, or None for a blocking one


class StorageCalls:
    """Storage requests, blocking and asynchronous, from arrival to reply (a part of SimKernel).

    Its dependencies: the event loop, the services, the flow network, the invoker (a
    client's retry backoff), the run's counters, and the chain runner that answers a
    function (``finish_op``, ``gone``). ``resume`` is the kernel's side of the
    ``ServiceEnv`` protocol (storage/base.py).
    """

    def __init__(self, loop: EventLoop, services: dict[str, Service], network: FlowNetwork, invoker: Invoker,
                 counts: dict[str, int], chains: ChainRunner) -> None:
        self.loop = loop
        self.services = services
        self.network = network
        self.invoker = invoker
        self.counts = counts
        self.chains = chains

    def request(self, rec: FunctionRecord, seq: int, op: sc.Op, t: int) -> None:
        svc = self.services.get(op.service)
        if svc is None:
            self.chains.finish_op(rec, t, error=("NotSupported", f"no storage service named '{op.service}'; "
                                                 f"known: {sorted(self.services)}"))
            return
        rec.blocked_on = f"{op.service}.{op.method}({op.args[0]!r})" if op.args else f"{op.service}.{op.method}"
        rec.wait_from = t
        req = Request(rec.fid, seq, op.method, op.args, op.size, op.handle, t)
        t_arr = max(t + svc.one_way_ns(t), svc.ready_ns())
        self.loop.schedule(t_arr, RANK_ARRIVE, rec.fid, seq, lambda ta: self._arrive(rec, svc, req, ta, 0))

    def _arrive(self, rec: FunctionRecord, svc: Service, req: Request, ta: int, tries: int,
                fut: int | None = None) -> None:
        if self.chains.gone(rec, ta) or (fut is not None and rec.state == DONE):
            return  # an async request outlives neither a death nor the function's return
        self._outcome(rec, svc, req, ta, svc.handle(ta, req), tries, fut)

    def _outcome(self, rec: FunctionRecord, svc: Service, req: Request, ta: int, out: Outcome, tries: int,
                 fut: int | None = None) -> None:
        back = svc.one_way_ns(ta)
        finish = self.chains.finish_op if fut is None else self._future_finisher(fut)
        if isinstance(out, Done):
            if out.nbytes > 0:
                self._transfer(rec, svc, ta, out.nbytes,
                               lambda te: finish(rec, te + back, out.value, out.handle, nbytes=out.nbytes))
            else:
                finish(rec, ta + back, out.value, out.handle)
        elif isinstance(out, Upload):
            def committed(tc: int) -> None:
                if self.chains.gone(rec, tc):
                    return
                finish(rec, tc + back, out.commit(tc))

            self._transfer(rec, svc, ta, out.nbytes, committed)
        elif isinstance(out, Fail):
            finish(rec, ta + back, error=(out.error, out.message))
        elif isinstance(out, Throttle):
            self.counts["throttles"] += 1
            retries = svc.client_retries()
            if tries >= retries:
                finish(rec, ta + back, error=("Throttled", f"{svc.kind} '{svc.name}': {out.reason} "
                                              f"after {tries} client retries"))
                return
            t_next = ta + back + self.invoker.backoff_ns(rec.fid * 7919 + req.seq, tries) + back
            self.loop.schedule(t_next, RANK_ARRIVE, rec.fid, req.seq,
                               lambda t2: self._arrive(rec, svc, req, t2, tries + 1, fut))
        elif isinstance(out, Park):
            rec.tickets.append((svc, out.ticket))
            out.ticket.waiter = Waiter(rec, svc, req, fut)

    def resume(self, ticket: Ticket, t_ns: int, outcome: Outcome) -> None:
        """A service answers a parked request (ServiceEnv protocol)."""
        rec, svc, req, fut = ticket.waiter
        if (svc, ticket) in rec.tickets:
            rec.tickets.remove((svc, ticket))
        if self.chains.gone(rec, t_ns):
            return
        self._outcome(rec, svc, req, t_ns, outcome, 0, fut)

    # ------------------------------------------------------------------ async storage requests
    def request_async(self, rec: FunctionRecord, seq: int, op: sc.Op, t: int) -> None:
        """Start a request the function does not wait for; its answer is kept under its id.

        The function goes on computing; an AWAIT later collects the answers, at the later of
        its own clock and their completion times (docs/api.md, "Asynchronous requests").
        """
        fut, args = op.args[0], op.args[1:]
        svc = self.services.get(op.service)
        if svc is None:
            self._future_done(rec, fut, t, error=("NotSupported", f"no storage service named '{op.service}'; "
                                                  f"known: {sorted(self.services)}"))
            return
        req = Request(rec.fid, seq, op.method, args, op.size, op.handle, t)
        t_arr = max(t + svc.one_way_ns(t), svc.ready_ns())
        self.loop.schedule(t_arr, RANK_ARRIVE, rec.fid, seq, lambda ta: self._arrive(rec, svc, req, ta, 0, fut))

    def _future_finisher(self, fut: int) -> Callable:
        def finish(rec: FunctionRecord, t: int, value: Any = None, handle: Any = None,
                   error: tuple[str, str] | None = None, nbytes: int = 0) -> None:
            self._future_done(rec, fut, t, value, handle, error)

        return finish

    def _future_done(self, rec: FunctionRecord, fut: int, t: int, value: Any = None, handle: Any = None,
                     error: tuple[str, str] | None = None) -> None:
        if rec.state == DONE or self.chains.gone(rec, t):
            return
        rec.futures[fut] = (t, value, handle, error)
        waiting = rec.awaiting
        if waiting is not None and all(i in rec.futures for i in waiting[0]):
            rec.awaiting = None
            t_reply, answers = self.collect_futures(rec, waiting[0], waiting[1])
            self.chains.finish_op(rec, t_reply, answers)

    @staticmethod
    def collect_futures(rec: FunctionRecord, ids: tuple[int, ...], t: int) -> tuple[int, list]:
        """(reply time, [(value, handle, error), ...]): the answer of an AWAIT whose requests all completed."""
        done = [rec.futures.pop(i) for i in ids]
        return max([t] + [d[0] for d in done]), [d[1:] for d in done]

    def _transfer(self, rec: FunctionRecord, svc: Service, t: int, nbytes: int, done: Callable[[int], None]) -> None:
        links = [rec.nic] if rec.nic is not None else []
        node = svc.link()
        if node is not None and node is not rec.nic:
            links.append(node)
        holder: list[Flow] = []

        def finished(te: int) -> None:
            if holder:
                rec.flows.discard(holder[0])
            done(te)

        if nbytes <= 0:
            # an empty upload (delete, zero-byte put) still commits strictly after it arrives, in the
            # commit phase of t + 1 ns: every read arriving at t misses it, whatever its function id,
            # as a literal poll would, and analytical polling agrees (storage/kvstore.py)
            self.loop.schedule(t + 1, RANK_COMMIT, rec.fid, rec.seq, done)
            return
        flow = self.network.start(t, links, nbytes, finished)
        if flow is not None:
            holder.append(flow)
            rec.flows.add(flow)
