"""The service contract: what every storage and messaging stand-in provides, and what it gets.

A service is a plain, synchronous, deterministic class (STYLE.md, "Logic as plain classes").
The kernel hands it a request at its virtual *arrival* time; the service answers with an
``Outcome`` that says what the network must carry and when state changes. Services never see
payload bytes, only sizes and opaque handles.

Everything the core asks of a service is declared on :class:`Service` (docs/adding.md, "A
storage service"): request handling (``handle`` -> ``op_<method>``), ``cancel`` of a parked
request whose caller died or returned, ``report`` for the run summary, ``item_limit_bytes``,
``client_retries`` of a throttle, ``lists`` (can it list keys), ``mget_round_trips``,
``stored_keys``/``stored_handle`` (what it holds at the end, for ``Experiment.check``),
billing (``cost``), start-up (``ready_ns``), its network link and data loss. A service that
runs processes (a VM) also implements :class:`ProcessHost`. The core never probes a service
with getattr/hasattr: a new service overrides what differs from the defaults here.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Protocol

from pydantic import ConfigDict, Field, field_validator

from sls_ray.platform import Strict
from sls_ray.vtime import NS_PER_S, to_ns

if TYPE_CHECKING:
    from sls_ray.network import Link

MONTH_S = 30 * 24 * 3600.0
GB = 1e9


class ServiceConfig(Strict):
    """Settings every service has; each stand-in extends this (no infinities or NaN)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    kind: str = Field(description="which stand-in: a key of sls_ray.storage.REGISTRY")
    latency_s: float = Field(0.02, gt=0, description="request latency (first byte), paid half each way")
    poll_interval_s: float = Field(0.1, ge=0, description="default interval of client polling loops")
    price_per_gb_month: float = Field(0.0, ge=0, description="storage price, USD per GB-month, pro-rated")
    max_retries: int = Field(3, ge=0, description="client SDK retries of a throttled request before Throttled")

    @field_validator("latency_s", check_fields=False)
    @classmethod
    def _positive_latency(cls, v: float) -> float:
        """Every service's latency, whichever stand-in redeclares the field: a zero one-way
        latency would let a request land in the kernel's past (docs/design.md, "Lookahead")."""
        if v <= 0:
            raise ValueError(f"latency_s must be > 0 seconds (got {v}); use a tiny value such as 1e-6 for "
                             f"a near-instant service")
        return v


# ---------------------------------------------------------------- outcomes
@dataclass(slots=True)
class Request:
    fid: int
    seq: int
    method: str
    args: tuple
    size: int
    handle: Any
    t_issue_ns: int


@dataclass(slots=True)
class Done:
    """Answer now; ``nbytes`` flow from the service to the caller first."""

    value: Any = None
    handle: Any = None
    nbytes: int = 0


@dataclass(slots=True)
class Upload:
    """``nbytes`` flow from the caller to the service; then ``commit(t_ns)`` gives the answer."""

    nbytes: int
    commit: Callable[[int], Any]


@dataclass(slots=True)
class Fail:
    error: str
    message: str


@dataclass(slots=True)
class Throttle:
    reason: str


@dataclass(slots=True)
class Park:
    """The request waits inside the service (a poll loop, a long-poll receive).

    The service later calls ``ServiceEnv.resume(ticket, t_ns, outcome)``.
    """

    ticket: "Ticket"


Outcome = Done | Upload | Fail | Throttle | Park


@dataclass(slots=True)
class Ticket:
    """A parked request: who waits, since when, and until when.

    ``data`` is the service's own record of the wait (what it waits for); ``waiter`` is the
    kernel's (whom to answer, storage_calls.py), set when the service parks the request and
    opaque to the service. ``closed`` marks a wait that ended: answered, timed out or cancelled.
    """

    fid: int
    seq: int
    t_arrive_ns: int
    deadline_ns: int
    data: Any = None
    closed: bool = False
    waiter: Any = None


class ServiceEnv(Protocol):
    """What the kernel lends a service: scheduling events and resuming parked requests."""

    def schedule(self, t_ns: int, rank: int, fid: int, seq: int, fn: Callable[[int], None],
                 passive: bool = False) -> None: ...

    def resume(self, ticket: Ticket, t_ns: int, outcome: Outcome) -> None: ...


# ---------------------------------------------------------------- usage and billing
@dataclass
class Usage:
    """Per-service counters that end up in storage.csv."""

    requests: dict[str, int] = field(default_factory=dict)
    bytes_in: int = 0
    bytes_out: int = 0
    throttles: int = 0
    byte_seconds: float = 0.0
    stored_bytes: int = 0
    _last_ns: int = 0

    def count(self, op: str, n: int = 1) -> None:
        self.requests[op] = self.requests.get(op, 0) + n

    def stored(self, t_ns: int, delta: int) -> None:
        self.byte_seconds += self.stored_bytes * (t_ns - self._last_ns) / NS_PER_S
        self._last_ns = t_ns
        self.stored_bytes += delta

    def close(self, t_ns: int) -> None:
        self.stored(t_ns, 0)

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())


def per_second_billing(up_ns: int, min_s: float, price_per_hour: float) -> float:
    """Node cost for the whole time it is up, idle included, with a billing minimum."""
    seconds = max(up_ns / NS_PER_S, min_s)
    return math.ceil(seconds) * price_per_hour / 3600.0


@dataclass(frozen=True, slots=True)
class ServiceTraits:
    """What a function's side must know of a service before it sends anything (clients.py,
    collectives.py): a real SDK knows these from the service's documentation, not by asking."""

    kind: str
    item_limit_bytes: int | None  # an item (or message) above this fails at once: ItemTooLarge
    lists: bool                   # LIST of keys under a prefix works (Memcached: no)
    mget_one_round_trip: bool     # a multi-get of many keys is one request (Memcached), not one per key


class Service:
    """Base of every stand-in. Subclasses set ``kind``, ``Config`` and implement ``op_*``;
    they override the defaults below where they differ (the contract, docs/adding.md)."""

    kind: ClassVar[str] = "base"
    Config: ClassVar[type[ServiceConfig]] = ServiceConfig
    #: whether a node failure can lose its data (durable S3, DynamoDB and SQS cannot)
    volatile: ClassVar[bool] = False

    def __init__(self, name: str, config: ServiceConfig, env: ServiceEnv) -> None:
        self.name = name
        self.config = config
        self.env = env
        self.usage = Usage()
        self.slow_windows: list[tuple[int, int, float]] = []  # fault injection: (t0_ns, t1_ns, latency factor)
        self._nominal: tuple[float, int] = (-1.0, 0)  # (latency_s, its one-way ns)

    # -- kernel-facing
    def latency_factor(self, t_ns: int) -> float:
        """Slow-down of requests sent at t_ns. The fault plan is known in advance, so this is a pure
        function of virtual time, never of which events the kernel has handled yet."""
        factor = 1.0
        for t0, t1, f in self.slow_windows:
            if t0 <= t_ns < t1:
                factor *= f
        return factor

    def one_way_ns(self, t_ns: int) -> int:
        """One-way latency of a request or reply leaving at t_ns."""
        if not self.slow_windows:  # factor 1.0: the same ns, without recomputing them per request
            return self.nominal_one_way_ns()
        return to_ns(self.config.latency_s * self.latency_factor(t_ns) / 2)

    def nominal_one_way_ns(self) -> int:
        latency = self.config.latency_s
        if latency != self._nominal[0]:
            self._nominal = (latency, to_ns(latency / 2))
        return self._nominal[1]

    def handle(self, t_ns: int, req: Request) -> Outcome:
        """Answer a request at its arrival: ``op_<method>(t_ns, req)``, or NotSupported."""
        method = getattr(self, "op_" + req.method, None)  # the op_ naming is the dispatch table
        if method is None:
            return Fail("NotSupported", f"{self.kind} service '{self.name}' has no operation '{req.method}'")
        return method(t_ns, req)

    def cancel(self, ticket: Ticket, t_ns: int) -> None:
        """A parked request's caller died or returned at ``t_ns``: stop serving it (and bill what
        a literal client loop would have sent by then). A service that parks requests and keeps
        watchers overrides this; closing the ticket is enough for one that only times out."""
        ticket.closed = True

    def report(self) -> dict[str, Any]:
        """Service-level figures for the run summary (``services.<name>``); {} for none."""
        return {}

    def item_limit_bytes(self) -> int | None:
        """The largest item (value, message) a client may send; None for no limit."""
        return None

    def client_retries(self) -> int:
        """How many times the client SDK retries a throttled request before it fails (Throttled)."""
        return self.config.max_retries

    def lists(self) -> bool:
        """Whether ``list(prefix)`` works (a LIST or SCAN); collectives poll by LIST only where it does."""
        return False

    def mget_round_trips(self, n_keys: int) -> int:
        """Billed requests (and round trips) a multi-get of ``n_keys`` costs: one per key unless
        the protocol batches them (Memcached's multi-get is one)."""
        return max(1, n_keys)

    def stored_keys(self, prefix: str = "") -> list[str]:
        """Keys held at the end of a run, read outside virtual time (``Experiment.check``)."""
        return []

    def stored_handle(self, key: str) -> Any | None:
        """The stored handle of ``key`` at the end of a run, or None (``Experiment.check``)."""
        return None

    def traits(self) -> ServiceTraits:
        return ServiceTraits(self.kind, self.item_limit_bytes(), self.lists(), self.mget_round_trips(2) == 1)

    def link(self):
        """The node link flows to this service cross, or None when unbounded."""
        return None

    def cost(self, end_ns: int) -> dict[str, float]:
        """USD by component over a run that ended at end_ns."""
        self.usage.close(end_ns)
        return {"storage": self.usage.byte_seconds / GB / MONTH_S * self.config.price_per_gb_month}

    def lose_data(self, t_ns: int) -> None:
        """A node failure wipes the data; durable services (S3, DynamoDB) refuse the fault."""
        from sls_ray.errors import ConfigError

        raise ConfigError(f"faults: service '{self.name}' ({self.kind}) is durable and cannot lose data; "
                          f"target a memcached or redis service")

    def ready_ns(self) -> int:
        """Virtual time at which the service accepts requests (node start-up)."""
        return 0

    def startup_note(self) -> str:
        return ""


class ProcessHost(ABC):
    """A service that also runs processes (the VM parameter server): ``ctx.start_vm_process``.

    The kernel starts a process on the instance ``vm_nic`` names, computing at ``flops_per_s``
    with ``vcpus`` cores of memory bandwidth.
    """

    @abstractmethod
    def vm_nic(self) -> "Link":
        """The NIC of the instance the next process runs on."""

    @abstractmethod
    def flops_per_s(self) -> float:
        """Compute speed of one process."""

    @abstractmethod
    def vcpus(self) -> float:
        """vCPUs of the instance a process runs on."""


def service_traits(services: dict[str, Service]) -> dict[str, ServiceTraits]:
    """name -> traits: what every function context gets (transport/local.py, actors/)."""
    return {n: s.traits() for n, s in services.items()}
