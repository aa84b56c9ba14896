"""Virtual time units and the total event order.

The kernel keeps time as integer nanoseconds so that sums never depend on float rounding
order; the user-facing API speaks float seconds. Events are ordered by
(time, rank, function id, sequence, sub-sequence) — never by the real order in which
messages reach the kernel (docs/design.md, "The ordering rule").
"""
from __future__ import annotations

import math

NS_PER_S = 1_000_000_000

# Ranks break ties at equal virtual time. Lower runs first.
RANK_FAULT = 0      # kills, deadlines, node failures: a death at t precedes anything at t
RANK_COMMIT = 1     # a write becoming visible: a read arriving at t sees writes committed at t
RANK_ARRIVE = 2     # a request reaching a server, a poll check
RANK_REPLY = 3      # a reply reaching a function, a function start
RANK_TIMER = 4      # housekeeping (visibility timeouts, provisioner ticks)

# Pseudo function ids: the owner of an event no function owns. Function ids are >= 0, so at equal
# time and rank these run first, in this order; the values are part of the trace (keep them).
FID_NETWORK = -1    # a flow finishing its transfer (kernel.py)
FID_QUEUE = -2      # an SQS message's visibility timeout (storage/sqs.py)
FID_FAULT = -3      # the fault plan (faults.py)
FID_STREAM = -4     # a request stream's next arrival (storage/requests.py)
FID_REVEAL = -5     # an eventually consistent S3 key becoming visible to LIST (storage/s3.py)


def to_ns(seconds: float) -> int:
    """Seconds to integer nanoseconds, rounding up so that a positive duration never vanishes."""
    if seconds <= 0:
        return 0
    return ceil_ns(seconds * NS_PER_S)


def ceil_ns(ns: float) -> int:
    """Round a computed duration in ns up to a whole ns, ignoring float noise.

    A value within a few ulp of a whole number is that number: 32.02 s is 32_020_000_000 ns
    and 1 MB at 5 MB/s is 200_000_000 ns, not one more (a fixed slack would fall below float
    resolution for durations beyond a few seconds).
    """
    nearest = round(ns)
    if abs(ns - nearest) <= 4 * math.ulp(ns) + 1e-6:
        return int(nearest)
    return int(math.ceil(ns))


def to_s(ns: int) -> float:
    return ns / NS_PER_S


INF_NS = 1 << 62
