"""Errors the simulated cloud raises inside functions, and errors in user input.

Platform errors mirror what AWS returns (platform.md, "Failure modes to reproduce").
The three that end a function (memory, timeout, kill) derive from ``BaseException`` so that
user code's ``except Exception`` cannot swallow them, as a real sandbox kill cannot be caught.
"""
from __future__ import annotations


class PlatformError(Exception):
    """An error a cloud API returns to the calling function (it may catch it)."""


class KeyNotFound(PlatformError):
    """GET of a key that does not exist at the request's virtual arrival time."""


class ItemTooLarge(PlatformError):
    """A value above the service's item limit (Memcached 1 MB, DynamoDB 400 KB, SQS 256 KB)."""


class PayloadTooLarge(PlatformError):
    """An invocation payload or result above Lambda's 6 MB (sync) / 256 KB (async) limit."""


class InvalidParameterValue(PlatformError):
    """An API call with a value the platform does not offer (e.g. a memory size off its grid)."""


class NotSupported(PlatformError):
    """An operation the service does not offer (e.g. listing keys in Memcached)."""


class WaitTimeout(PlatformError):
    """A polling wait that gave up after its timeout."""


class Throttled(PlatformError):
    """Requests throttled (S3 503 SlowDown, DynamoDB throughput, Lambda 429) past the client's retries."""


class FunctionError(PlatformError):
    """A synchronously invoked function was ended by the platform (timeout, memory, kill); the
    message names its error. Only the callee's sandbox died: the caller may handle this."""


class QueueError(PlatformError):
    """An SQS call with a stale receipt handle or an unknown queue."""


class FunctionEnded(BaseException):
    """Base of the errors that end a function; not catchable by ``except Exception``."""


class MemoryLimitExceeded(FunctionEnded):
    """The function's working set crossed its memory size ("Runtime exited: signal: killed")."""


class FunctionTimeout(FunctionEnded):
    """The function ran past its configured timeout (Lambda: "Task timed out")."""


class FunctionKilled(FunctionEnded):
    """A fault plan killed the function."""


class VirtualDeadlock(RuntimeError):
    """Every live function waits on something no one will ever do; the run cannot progress."""


class ConfigError(ValueError):
    """Bad user input (config, override, CLI flag): the message names the field and the fix."""


PLATFORM_ERRORS: dict[str, type[BaseException]] = {
    cls.__name__: cls
    for cls in (
        KeyNotFound, ItemTooLarge, PayloadTooLarge, InvalidParameterValue, NotSupported, WaitTimeout, Throttled,
        QueueError, FunctionError, MemoryLimitExceeded, FunctionTimeout, FunctionKilled, PlatformError,
    )
}


def error_from_name(name: str, message: str) -> BaseException:
    """Rebuild a platform error sent across a transport as (class name, message)."""
    cls = PLATFORM_ERRORS.get(name)
    if cls is None:
        return RuntimeError(f"{name}: {message}")
    return cls(message)
