"""Payload sizes and in-process encoding.

The kernel sees only sizes; the bytes move through the transport (Ray's object store, or a
private copy in-process). A value's *wire size* is what a real client would send: raw
length for bytes, ``nbytes`` for numpy arrays and torch tensors (LambdaML's LR model is
28 float64 = 224 B), the pickle length otherwise. Sizes are the same on every transport,
so virtual times are too.
"""
from __future__ import annotations

import pickle
from typing import Any

import numpy as np


class Encoded:
    """A private serialised copy, so no Python object is ever shared between functions."""

    __slots__ = ("blob",)

    def __init__(self, blob: bytes) -> None:
        self.blob = blob

    def __reduce__(self):
        return (Encoded, (self.blob,))


class Sized:
    """A value sent with a declared wire size instead of its own.

    For modelled payloads: NumPyWren's folded blocks are small real arrays that stand for
    4096 x 4096 ones, so every transfer, bill, item-size check and stored GB-month counts
    ``nbytes``. The receiver gets ``value`` (the wrapper never arrives).
    """

    __slots__ = ("value", "nbytes")

    def __init__(self, value: Any, nbytes: int) -> None:
        if int(nbytes) < 0:
            raise ValueError(f"Sized: nbytes must be >= 0, got {nbytes}")
        self.value = value
        self.nbytes = int(nbytes)


def nbytes_of(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, (bytes, bytearray, memoryview)):
        return len(value)
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    nb = getattr(value, "nbytes", None)
    if isinstance(nb, int) and type(value).__module__.startswith("torch"):
        return nb
    if hasattr(value, "element_size") and hasattr(value, "numel"):
        return int(value.element_size() * value.numel())
    return 0


def wire_size(value: Any) -> int:
    """Bytes a real client would send for this value."""
    if value is None:
        return 0
    n = nbytes_of(value)
    if n or isinstance(value, (bytes, bytearray, memoryview, np.ndarray)):
        return n
    return len(pickle.dumps(value, protocol=5))


def encode(value: Any) -> tuple[Any, int]:
    """A private copy of the value and its wire size (in-process transports)."""
    if isinstance(value, Sized):
        return encode(value.value)[0], value.nbytes
    if value is None:
        return None, 0
    if isinstance(value, bytes):
        return value, len(value)  # immutable: safe to share
    return Encoded(pickle.dumps(value, protocol=5)), wire_size(value)


def decode(handle: Any) -> Any:
    if isinstance(handle, Encoded):
        return pickle.loads(handle.blob)
    return handle


def decode_stored(handle: Any) -> Any:
    """A stored handle of any transport (inline, Encoded, or a Ray object ref) as its value."""
    if type(handle).__module__.startswith("ray"):
        import ray

        return ray.get(handle)
    return decode(handle)
