"""The wire format between a function and the kernel: operations, chains and replies.

A function sends a *chain*: operations whose results it does not need (put, delete,
compute, log) queue locally and ride with the next one that returns data (docs/design.md,
"Lazy chains"). The kernel runs a chain in virtual time, one operation after another, and
answers only the last one. Everything here is small and picklable: payload bytes travel as
*handles* (inline bytes or Ray object refs), never through the kernel's event loop.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# kinds of operation
COMPUTE = "compute"   # args: (duration_ns,)
STORAGE = "storage"   # service + method + args; size = request bytes; handle = value to store
INVOKE = "invoke"     # args: (handler, sync, memory_mb); size = payload bytes; handle = payload
LOG = "log"           # args: (kind, fields)
MEMORY = "memory"     # args: (peak_bytes, label): the working set crossed the limit here
EXIT = "exit"         # handle = result; args: (error_name, message) or ()
NOW = "now"           # a no-op that returns the clock (used to flush a chain)
START_VM = "start_vm" # args: (service, handler); handle = payload
ASYNC = "async"       # a storage request the function does not wait for: args = (future id, *method args)
AWAIT = "await"       # args: future ids; answers [(value, handle, error), ...] once all of them completed
EACH = "each"         # handle: blocking ops run one after another; args: (budget bytes,); answers [(value, handle)]


@dataclass(slots=True)
class Op:
    kind: str
    service: str = ""
    method: str = ""
    args: tuple = ()
    size: int = 0
    handle: Any = None


@dataclass(slots=True)
class Reply:
    """The answer to a chain: the function's new clock and the last operation's result.

    ``value`` is a plain small value; ``handle`` a payload to resolve through the transport;
    ``error`` a (class name, message) pair raised in the function.
    """

    t_ns: int
    value: Any = None
    handle: Any = None
    error: tuple[str, str] | None = None


@dataclass(slots=True)
class StartCommand:
    """Tells a transport to run a handler for a new function instance."""

    fid: int
    handler: str
    payload: Any
    start_ns: int
    deadline_ns: int
    memory_mb: int
    attempt: int
    invocation: int
    seed: int
    memory_limit_bytes: int
    base_bytes: int
    payload_bytes: int
    is_vm: bool = False
    extra: dict = field(default_factory=dict)
