"""An account's drift status: the codes kept per row and the ``drift`` document's ``status``."""

from __future__ import annotations

from enum import IntEnum, IntFlag


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
    CLOSED = 8  # not evaluated: the market of a held or targeted instrument is closed (sessions)
    SCHEDULED = 9  # breached, but its runs for the trading day are used up (max_runs_per_day)


BREACHED = (Status.ORDERED, Status.UNTRADABLE, Status.HELD)
# drift documents with the account's weights
WEIGHTED = (Status.OK, Status.ORDERED, Status.UNTRADABLE, Status.SCHEDULED)


class LeftOut(IntFlag):
    """Why a breaching account's last plan left legs out (``streamproc_accounts{state=...}``)."""

    SPREAD = 1  # quoted wider than its spread budget
    RESTRICTED = 2  # not eligible for buys
    HALTED = 4  # an operator's halt
    REDUCING = 8  # an operator's reduce: no buys
    DEPTH = 16  # cut to its share of the displayed size, the rest waits
    MIN_TRADE = 32  # no leg reached the minimum trade or a whole lot

    @property
    def label(self) -> str:
        return str(self.name).lower()
