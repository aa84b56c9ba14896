"""Cirrus's parameter server (Cirrus §4, "data store"): sparse, fully asynchronous, on a VM.

``ParameterServer`` is the state machine, a plain class with no I/O (STYLE.md): a flat model
vector, a server-side optimiser (SGD, momentum, Nesterov, AdaGrad) applied to the *touched*
entries of each sparse gradient the moment it arrives, a small key-value area
(``set_value``/``get_value``), and the task registry that rejects duplicate worker
invocations (Lambda invocations are at-least-once). ``serve`` runs it as a long-lived process
on a VM service (``ctx.start_vm_process``): requests reach it as keys in the VM's store, so
the VM's NIC carries every byte and the process's CPU (charged per message and per sparse
entry) bounds the updates per second. ``PSClient`` is a worker's side.

Consistency is a parameter: ``staleness=None`` is Cirrus (apply on arrival, answer pulls at
once); ``0`` is bulk-synchronous (a round's gradients applied together in worker order, pulls
of the next round held until the round is complete: the synchronous test mode and the
TensorFlow-style baseline); ``k > 0`` is stale-synchronous (Bosen's SSP: a pull for clock c
waits until every live worker has reached c - k).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

OptMethod = Literal["sgd", "momentum", "nesterov", "adagrad"]
#: the client id the task's backend (not a worker) uses on the parameter server
BACKEND = 99_999


def in_key(task: str, client: int, sender: int, seq: int) -> str:
    """A request to task's parameter server from one running function (``sender``: its fid, so a
    duplicate invocation of the same worker slot never shares a key with the original);
    several tasks (a grid search) share one VM store, each under its own prefix."""
    return f"{task}in/{client:05d}/{sender:07d}/{seq:010d}"


def out_key(task: str, client: int, sender: int, seq: int) -> str:
    return f"{task}out/{client:05d}/{sender:07d}/{seq:010d}"


def parse_in_key(key: str) -> tuple[int, int, int]:
    client, sender, seq = key.rsplit("/", 3)[1:]
    return int(client), int(sender), int(seq)


@dataclass
class Registration:
    generation: int
    holder: int             # the function (fid) whose requests count for this slot
    last_seen: float
    live: bool = True
    steps: int = 0          # gradients applied from this worker slot, over all generations
    applied_this_gen: int = 0


@dataclass
class Optimizer:
    """Server-side optimisers on sparse entries (Cirrus: SGD, momentum, Nesterov, AdaGrad)."""

    method: OptMethod
    lr: float
    momentum: float = 0.9
    adagrad_eps: float = 1e-8
    size: int = 0
    state: np.ndarray = field(init=False)  # velocity (momentum, Nesterov) or squared-gradient sum (AdaGrad)

    def __post_init__(self) -> None:
        if self.method not in ("sgd", "momentum", "nesterov", "adagrad"):
            raise ValueError(f"opt_method={self.method!r}; allowed: sgd, momentum, nesterov, adagrad")
        self.state = np.zeros(self.size if self.method != "sgd" else 0, dtype=np.float64)

    def apply(self, w: np.ndarray, idx: np.ndarray, g: np.ndarray) -> None:
        """w[idx] -= step(g) for a gradient g on unique indices idx."""
        if self.method == "sgd":
            w[idx] -= self.lr * g
        elif self.method == "momentum":
            v = self.momentum * self.state[idx] + g
            self.state[idx] = v
            w[idx] -= self.lr * v
        elif self.method == "nesterov":
            v = self.momentum * self.state[idx] + g
            self.state[idx] = v
            w[idx] -= self.lr * (g + self.momentum * v)
        else:
            h = self.state[idx] + g * g
            self.state[idx] = h
            w[idx] -= self.lr * g / (np.sqrt(h) + self.adagrad_eps)

    @property
    def flops_per_entry(self) -> int:
        return {"sgd": 2, "momentum": 4, "nesterov": 6, "adagrad": 7}[self.method]


@dataclass
class ParameterServer:
    """The data store's state: model, optimiser, registry, values. Messages in, replies out."""

    size: int
    optimizer: Optimizer
    workers: int
    staleness: int | None = None
    lease_s: float = 5.0
    w: np.ndarray = field(init=False)
    registry: dict[int, Registration] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    stopping: bool = False
    updates: int = 0
    rejected: int = 0
    _round: dict[int, tuple[np.ndarray, np.ndarray, bool]] = field(default_factory=dict)
    rounds: int = 0

    def __post_init__(self) -> None:
        self.w = np.zeros(self.size, dtype=np.float64)

    # -- registry
    def register(self, worker: int, generation: int, holder: int, now: float) -> dict:
        """A worker invocation asks to join. A generation not newer than the slot's last is a
        duplicate (an at-least-once redelivery, or a platform retry of a generation the backend
        already replaced) and is rejected."""
        reg = self.registry.get(worker)
        if reg is not None and generation <= reg.generation:
            self.rejected += 1
            return {"ok": False, "reason": f"worker {worker} generation {generation} already registered "
                                           f"(latest {reg.generation}, function {reg.holder})"}
        steps = reg.steps if reg is not None else 0
        self.registry[worker] = Registration(generation, holder, now, True, steps, 0)
        return {"ok": True, "step": steps}

    def deregister(self, worker: int, holder: int, now: float) -> None:
        reg = self.registry.get(worker)
        if reg is not None and reg.holder == holder:
            reg.live, reg.last_seen = False, now

    def status(self, now: float) -> dict[int, dict]:
        """Per worker slot: generation, whether it is alive (registered and heard from within the
        lease), and gradients applied. The backend relaunches slots that are not alive."""
        return {w: {"generation": r.generation, "alive": r.live and now - r.last_seen <= self.lease_s,
                    "steps": r.steps} for w, r in sorted(self.registry.items())}

    def seen(self, worker: int, holder: int, now: float) -> Registration | None:
        """The slot's live registration if `holder` holds it (and it was just heard from), else None."""
        reg = self.registry.get(worker)
        if reg is None or not reg.live or reg.holder != holder:
            return None
        reg.last_seen = now
        return reg

    # -- model
    def send_gradient(self, worker: int, holder: int, idx: np.ndarray, g: np.ndarray, now: float,
                      delta: bool = False) -> bool:
        """Apply a sparse gradient (or, ``delta``, add a model delta) on arrival; False if the
        sender does not hold the slot's current registration."""
        reg = self.seen(worker, holder, now)
        if reg is None:
            self.rejected += 1
            return False
        reg.steps += 1
        reg.applied_this_gen += 1
        if self.staleness == 0:
            self._round[worker] = (idx, g, delta)
            self._close_round()
            return True
        self._apply(idx, g, delta)
        return True

    def _apply(self, idx: np.ndarray, g: np.ndarray, delta: bool) -> None:
        if delta:
            self.w[idx] += g
        else:
            self.optimizer.apply(self.w, idx, g)
        self.updates += 1

    def _close_round(self) -> None:
        live = [w for w, r in self.registry.items() if r.live]
        if len(live) < self.workers or any(w not in self._round for w in live):
            return
        for w in sorted(self._round):
            self._apply(*self._round[w])
        self._round.clear()
        self.rounds += 1

    def min_clock(self) -> int:
        live = [r.steps for r in self.registry.values() if r.live]
        return min(live) if len(live) >= self.workers else 0

    def can_answer(self, step: int) -> bool:
        """Whether a pull for the model a worker's `step`-th gradient is computed on is allowed now."""
        if self.staleness is None or self.stopping:
            return True
        if self.staleness == 0:
            return self.rounds >= step
        return self.min_clock() >= step - self.staleness

    def get_sparse_model(self, idx: np.ndarray) -> np.ndarray:
        return self.w[idx]

    def get_full_model(self) -> np.ndarray:
        return self.w.copy()

    def pull(self, idx: np.ndarray | None) -> np.ndarray:
        """A worker's pull: the touched weights, or the whole model (idx None: no sparse pulls)."""
        return self.get_full_model() if idx is None else self.get_sparse_model(idx)


# ---------------------------------------------------------------- the VM process
@dataclass
class ServeCost:
    """The PS process's CPU per message and per sparse entry (Cirrus's C++ server) [est]."""

    msg_s: float = 10e-6
    entry_s: float = 20e-9


def serve(ctx, p: dict) -> dict:
    """The parameter-server process: take every waiting request, handle it, reply; until stopped.

    Requests are keys ``in/<client>/<seq>`` in the VM store, taken in key order (one client's in
    the order it sent them); replies are ``out/<client>/<seq>``. Idle, the process parks on the
    store (no CPU). It ends when its backend says ``shutdown``.
    """
    vm = ctx.storage(p["ps_service"])
    task = p["task_prefix"]
    ps = ParameterServer(p["model_size"], Optimizer(p["opt_method"], p["learning_rate"], p.get("momentum", 0.9),
                                                    size=p["model_size"]),
                         p["n_workers"], p.get("staleness"), p.get("lease_s", 5.0))
    cost = ServeCost(p.get("ps_msg_s", 10e-6), p.get("ps_entry_s", 20e-9))
    held: list[tuple] = []  # (step, client, sender, seq, idx): pulls waiting for consistency
    busy_s = 0.0
    shutdown = False
    last_reply: dict[tuple[int, int], str] = {}  # (client, sender) -> its latest reply key
    puts: list = []

    def reply_to(client: int, sender: int, seq: int, value: Any) -> None:
        """Replies leave as asynchronous puts: all start now and share the NIC, none waits for
        another's acknowledgement (a server writing to many sockets)."""
        key = out_key(task, client, sender, seq)
        last_reply[(client, sender)] = key
        puts.append(vm.put_async(key, value))

    while not shutdown:
        keys = vm.wait_count(f"{task}in/", 1, poll_interval=0.0)
        msgs = vm.mget(keys)
        # the requests, and the replies their senders have read (a sender's new request
        # means it has its previous reply), go in one delete
        vm.delete(keys + [k for k in (last_reply.pop(parse_in_key(key)[:2], None) for key in keys) if k])
        now = ctx.clock
        entries = 0
        earlier = len(puts)
        for key in keys:
            client, sender, seq = parse_in_key(key)
            kind, args = msgs[key]
            reply: Any = None
            has_reply = True
            grad = args.get("grad")
            if grad is not None:  # a gradient riding on this request is applied first
                ps.send_gradient(client, sender, grad["idx"], grad["g"], now, delta=grad["delta"])
                entries += len(grad["idx"]) * ps.optimizer.flops_per_entry // 2
            if kind == "register":
                reply = ps.register(client, args["generation"], sender, now)
            elif kind == "pull":
                if ps.seen(client, sender, now) is None:
                    reply = {"stop": True, "w": None}
                elif ps.can_answer(args["step"]):
                    reply = {"stop": ps.stopping, "w": ps.pull(args["idx"])}
                    entries += ps.size if args["idx"] is None else len(args["idx"])
                else:
                    held.append((args["step"], client, sender, seq, args["idx"]))
                    has_reply = False
            elif kind == "full":
                reply = ps.get_full_model()
                entries += ps.size // 8
            elif kind == "init":
                ps.w[:] = args["w"]
                entries += ps.size
                has_reply = False
            elif kind == "set":
                ps.values[args["key"]] = args["value"]
            elif kind == "get":
                reply = ps.values.get(args["key"])
            elif kind == "status":
                reply = {"workers": ps.status(now), "updates": ps.updates, "rejected": ps.rejected}
            elif kind == "deregister":
                ps.deregister(client, sender, now)
                has_reply = False
            elif kind == "stop":
                ps.stopping = True
            elif kind == "shutdown":
                shutdown = True
            else:
                raise ValueError(f"parameter server: unknown request kind {kind!r} from client {client}")
            if has_reply:
                reply_to(client, sender, seq, reply)
        if held:
            still = []
            for step, client, sender, seq, idx in held:
                reg = ps.registry.get(client)
                if reg is None or not reg.live or reg.holder != sender:
                    reply_to(client, sender, seq, {"stop": True, "w": None})
                elif ps.can_answer(step):
                    reply_to(client, sender, seq, {"stop": ps.stopping, "w": ps.pull(idx)})
                    entries += ps.size if idx is None else len(idx)
                else:
                    still.append((step, client, sender, seq, idx))
            held = still
        busy_s += ctx.compute(seconds=len(keys) * cost.msg_s + entries * cost.entry_s)
        if earlier >= PSClient.COLLECT_EVERY:  # earlier cycles' replies: long finished, no wait
            ctx.gather(puts[:earlier])
            puts = puts[earlier:]
    ctx.log("ps_done", updates=ps.updates, rounds=ps.rounds, rejected=ps.rejected, busy_s=busy_s,
            **{f"steps_w{w}": r.steps for w, r in sorted(ps.registry.items())})
    return {"updates": ps.updates, "rejected": ps.rejected}


# ---------------------------------------------------------------- the client side
class PSClient:
    """A worker's (or the backend's) connection to the parameter server on a VM service.

    Requests leave as asynchronous puts (each starts at once, as a write to a socket would,
    instead of waiting for the previous one's acknowledgement) and a reply is awaited by
    polling its key. A gradient rides on the sender's next request (Cirrus sends it without
    waiting; the same connection keeps it ahead of the next pull), so a step is one message
    each way.
    """

    #: finished asynchronous puts are collected in batches of this many (no wait: long done)
    COLLECT_EVERY = 256

    def __init__(self, ctx, service: str, client: int, task: str = "", timeout: float | None = None) -> None:
        """``timeout``: how long a request may wait for its reply (WaitTimeout after that): a
        worker whose server is gone (a retried duplicate after the task ended) gives up."""
        self.ctx, self.vm, self.client, self.task = ctx, ctx.storage(service), client, task
        self.timeout = timeout
        self.seq = 0
        self.sent_gradients = 0
        self._grad: dict | None = None
        self._puts: list = []

    def _send(self, kind: str, args: dict) -> int:
        self.seq += 1
        if self._grad is not None:
            args = {**args, "grad": self._grad}
            self._grad = None
        self._puts.append(self.vm.put_async(in_key(self.task, self.client, self.ctx.fid, self.seq), (kind, args)))
        if len(self._puts) >= self.COLLECT_EVERY:
            self.ctx.gather(self._puts[:-1])
            self._puts = self._puts[-1:]
        return self.seq

    def _call(self, kind: str, args: dict) -> Any:
        seq = self._send(kind, args)
        return self.vm.get_wait(out_key(self.task, self.client, self.ctx.fid, seq), poll_interval=0.0,
                                timeout=self.timeout)

    def register(self, generation: int) -> dict:
        return self._call("register", {"generation": generation})

    def send_gradient(self, idx: np.ndarray, g: np.ndarray, delta: bool = False) -> None:
        """Queued: it travels with this client's next request (a pull, or the deregistration)."""
        self.sent_gradients += 1
        self._grad = {"idx": idx, "g": g, "delta": delta}

    def get_sparse_model(self, idx: np.ndarray | None, step: int = 0) -> tuple[np.ndarray | None, bool]:
        """The weights at `idx` (None: the whole model) and whether training was stopped; `step`
        is the sender's gradient count, which a synchronous or SSP server gates on."""
        reply = self._call("pull", {"idx": idx, "step": step})
        return reply["w"], reply["stop"]

    def get_full_model(self) -> np.ndarray:
        return self._call("full", {})

    def init_model(self, w: np.ndarray) -> None:
        """Overwrite the whole model (the backend's initial MF factors)."""
        self._send("init", {"w": w})

    def set_value(self, key: str, value: Any) -> None:
        self._send("set", {"key": key, "value": value})

    def get_value(self, key: str) -> Any:
        return self._call("get", {"key": key})

    def status(self) -> dict:
        return self._call("status", {})

    def deregister(self) -> None:
        """Leave the slot (after the last gradient, which rides on this message)."""
        self._send("deregister", {})
        self.ctx.gather(self._puts)
        self._puts = []

    def stop(self) -> None:
        """End the training: every later pull answers stop, so the workers leave."""
        self._send("stop", {})

    def shutdown(self) -> None:
        """End the server process (after the backend has what it needs from it)."""
        self._send("shutdown", {})
        self.ctx.gather(self._puts)
        self._puts = []
