"""LambdaML's communication channels (LambdaML, SIGMOD 2021, §4.2; lambdaml.md "Channels").

The paper's code gives every channel one interface: ``save``, ``load``, ``load_or_wait``
(poll every 0.1 s, give up after a timeout), ``delete``, ``clear`` and ``list``. Here a
:class:`Channel` is that interface over any key-value service of the platform profile, under
one key prefix, with the service's real limits:

- **S3** lists 1,000 keys per page (the core client pages and bills them); DeleteObjects
  takes up to 1,000 keys per request.
- **Memcached** cannot list: ``list`` multi-gets the candidate keys, as the paper's code does,
  and a multi-get returns the values it found; values above the 1 MB item limit are chunked
  (or the config raises ``item_limit_bytes``, as the paper did). The original's client
  (python-memcached under Python 3) stores a ``bytes`` value as it is — only non-bytes
  values are pickled — so the stored size is the vector's own.
- **DynamoDB** rejects items above 400 KB: arrays are never chunked there, and a model that
  does not fit raises :class:`ChannelUnsupported`, which the channel table reports as N/A.
  The original's ``list`` is a Scan, which returns (and bills) every item with its value.
- **VM** (the hybrid parameter server): a key-value store on a VM the job launched; the
  server process itself is in :mod:`sls_ray.lambdaml.job`.

Vectors travel through :class:`sls_ray.collectives.ArrayChannel` (chunking and the waits);
this module only adds the paper's semantics on top.
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from sls_ray.api import ArrayChannel, ItemTooLarge, KeyNotFound

#: S3 DeleteObjects takes at most this many keys per request
DELETE_BATCH = 1000


class ChannelUnsupported(Exception):
    """The channel's service cannot hold a value this job must send (the paper's N/A)."""


class Channel:
    """The paper's channel over one storage service, with every key under ``prefix``."""

    def __init__(self, ctx, service: str, prefix: str = "", chunked: bool = True, poll_interval: float = 0.1,
                 timeout: float | None = None, list_waits: bool = True, reads: str | None = None) -> None:
        self.ctx = ctx
        self.service = service
        self.client = ctx.storage(service)
        #: how the original's busy loops find new objects: "list" (S3 LIST, then GETs), "scan"
        #: (DynamoDB Scan, values included) or "mget" (Memcached multi-get, values included)
        self.reads = reads or ("mget" if not self.client.can_list else ("list" if list_waits else "scan"))
        self.prefix = prefix
        self.chunked = chunked
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.arrays = ArrayChannel(self.client, poll_interval=poll_interval, timeout=timeout, chunked=chunked,
                                   list_waits=list_waits)

    def key(self, name: str) -> str:
        return self.prefix + name

    # ------------------------------------------------------------ capacity
    def check_fits(self, nbytes: int, what: str) -> None:
        """Raise ChannelUnsupported when a ``nbytes`` vector cannot travel through this channel."""
        limit = self.client.item_limit
        if self.chunked or limit is None or nbytes <= limit:
            return
        raise ChannelUnsupported(
            f"channel '{self.service}': {what} is {nbytes} bytes, above the service's item limit of {limit} bytes, "
            f"and this channel does not chunk values (LambdaML reports N/A: DynamoDB cannot hold a large model)")

    # ------------------------------------------------------------ objects (the paper's bytes values)
    def save(self, key: str, value: Any) -> None:
        try:
            self.client.put(self.key(key), value)
        except ItemTooLarge as e:
            raise ChannelUnsupported(f"channel '{self.service}': {e}") from None

    def load(self, key: str) -> Any:
        return self.client.get(self.key(key))

    def load_or_wait(self, key: str, timeout: float | None = None) -> Any:
        """Poll every ``poll_interval`` until the key exists; WaitTimeout after ``timeout`` seconds."""
        return self.client.get_wait(self.key(key), self.poll_interval, self.timeout if timeout is None else timeout)

    def try_load(self, key: str) -> Any | None:
        try:
            return self.load(key)
        except KeyNotFound:
            return None

    # ------------------------------------------------------------ vectors
    def save_array(self, key: str, arr: np.ndarray) -> None:
        """Save a flat vector, chunked to the item limit where the channel chunks."""
        arr = np.ascontiguousarray(arr).ravel()
        self.check_fits(arr.nbytes, f"vector '{key}'")
        self.arrays.put(self.key(key), arr)

    def load_array(self, key: str, n: int, dtype, wait: bool = True) -> np.ndarray:
        return self.arrays.get(self.key(key), n, dtype, wait=wait)

    def try_load_array(self, key: str, n: int, dtype) -> np.ndarray | None:
        """The vector if every chunk is there now, else None (no waiting)."""
        keys = self.arrays.keys(self.key(key), n, np.dtype(dtype).itemsize)
        if len(keys) == 1:
            try:
                return np.asarray(self.client.get(keys[0]), dtype=dtype)
            except KeyNotFound:
                return None
        if not self.client.can_list:
            found = self.client.mget(keys)
            if len(found) < len(keys):
                return None
            return self.arrays.assemble([found[k] for k in keys], n, dtype)
        try:
            return self.arrays.assemble([self.client.get(k) for k in keys], n, dtype)
        except KeyNotFound:
            return None

    def array_exists(self, key: str, n: int, itemsize: int) -> bool:
        """True when the vector's last chunk (written last) exists."""
        return self.client.exists(self.arrays.keys(self.key(key), n, itemsize)[-1])

    def delete_array(self, key: str, n: int, itemsize: int) -> None:
        self.client.delete(self.arrays.keys(self.key(key), n, itemsize))

    # ------------------------------------------------------------ housekeeping
    def delete(self, keys: str | Iterable[str]) -> None:
        keys = [keys] if isinstance(keys, str) else list(keys)
        full = [self.key(k) for k in keys]
        for i in range(0, len(full), DELETE_BATCH):
            self.client.delete(full[i:i + DELETE_BATCH])

    def list(self, candidates: Iterable[str] | None = None) -> list[str]:
        """Keys under the prefix (without it). Memcached cannot list: pass ``candidates``."""
        if not self.client.can_list:
            if candidates is None:
                raise ValueError(f"channel '{self.service}' cannot list keys (Memcached); pass the candidate "
                                 f"keys to multi-get, as LambdaML's Memcached channel does")
            cands = list(candidates)
            found = self.client.mget([self.key(k) for k in cands])
            return [k for k in cands if self.key(k) in found]
        keys = self.client.list(self.prefix)
        return [k[len(self.prefix):] for k in keys]

    def clear(self) -> None:
        """Remove everything under the prefix; a node that cannot list is flushed whole."""
        if not self.client.can_list:
            self.client.flush()
            return
        self.delete(self.list())
