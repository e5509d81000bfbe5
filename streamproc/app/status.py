"""An account's drift status: the codes kept per row and the ``drift`` document's ``status``."""

from __future__ import annotations

from enum import IntEnum


class Status(IntEnum):
    """An account's drift status as stored in Redis (``drift`` field)."""

    UNKNOWN = -1  # not evaluated since it was loaded, or its order failed to publish
    OK = 0  # inside its bands
    ORDERED = 1  # breached; an order was published
    UNTRADABLE = 2  # breached, but no leg survived lots, minimum notional or spread limits
    SUPPRESSED = 3  # not evaluated: a held or targeted instrument's price is missing, stale, ...
    HELD = 4  # breached, but orders are held by a breach storm until an operator releases them
    REJECTED = 5  # its order was rejected: not retried until one of its inputs changes
    UNANSWERED = 6  # its orders went unanswered too often in a row: it waits for an operator
    THROTTLED = 7  # breached, its order waits for the order throttle (drafted again each pass)


BREACHED = (Status.ORDERED, Status.UNTRADABLE, Status.HELD)
WEIGHTED = (Status.OK, Status.ORDERED, Status.UNTRADABLE)  # drift documents with the account's weights
