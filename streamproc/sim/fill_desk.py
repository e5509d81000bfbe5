"""The fill stand-in's desk (no I/O but the claims): takes orders once and answers each with positions
and an execution report, counting what it did; apart from the process so tests drive it in-process."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol, cast

import orjson

from streamproc.sim.fill_logic import ZERO, Ledger, execution_report
from streamproc.sim.market import Record
from streamproc.wire.contract import SchemaViolation
from streamproc.wire.documents import CancelDoc, OrderDoc


class Claims(Protocol):
    """Once-only claims on order ids."""

    async def claim(self, event_id: str) -> bool: ...

    async def release(self, event_id: str) -> None: ...


class MemoryClaims:
    """Claims in a set (tests, a single process)."""

    def __init__(self) -> None:
        self.done: set[str] = set()

    async def claim(self, event_id: str) -> bool:
        """True the first time ``event_id`` is claimed."""
        if event_id in self.done:
            return False
        self.done.add(event_id)
        return True

    async def release(self, event_id: str) -> None:
        """Forget a claim (the order could not be filled after all)."""
        self.done.discard(event_id)


@dataclass
class FillStats:
    """Counts so far; a live view may read them while ``run`` goes on."""

    orders: int = 0  # records read from the orders topic (rebalances, cancels, invalid ones)
    filled: int = 0
    duplicates: int = 0
    unfillable: int = 0  # a leg's instrument had no quote yet
    invalid: int = 0
    behind: int = 0  # the account's positions did not arrive in time
    partial: int = 0  # a leg was cut: not enough held or not enough cash
    rejected: int = 0  # a leg's instrument is restricted (--reject)
    cancels_ignored: int = 0
    positions_published: int = 0
    quotes: int = 0
    positions: int = 0  # positions records applied (echoes and replays not counted)

    def summary(self) -> str:
        """One line for the console."""
        return (
            f"orders {self.orders}: filled {self.filled} (partial {self.partial}), rejected {self.rejected}, "
            f"duplicates {self.duplicates}, unfillable {self.unfillable}, invalid {self.invalid}, "
            f"behind {self.behind}, cancels ignored {self.cancels_ignored}; "
            f"positions published {self.positions_published}"
        )


@dataclass
class Outbox:
    """What taking an order publishes: positions records and execution reports."""

    positions: list[Record] = field(default_factory=list)
    executions: list[Record] = field(default_factory=list)


class Desk:
    """Takes orders: validates, deduplicates and fills them against the ledger, rejecting those with a
    leg in a restricted instrument; answers each with an execution report."""

    def __init__(
        self,
        ledger: Ledger,
        claims: Claims,
        stats: FillStats,
        fee_bps: Decimal = ZERO,
        reject: frozenset[str] = frozenset(),
    ) -> None:
        self.ledger = ledger
        self.claims = claims
        self.stats = stats
        self.fee_bps = fee_bps
        self.reject = reject

    def parse(self, value: bytes | None) -> OrderDoc | CancelDoc | None:
        """The rebalance or cancel document, or None (counted invalid) when it breaks the contract."""
        self.stats.orders += 1
        try:
            doc = orjson.loads(value or b"")
            if not isinstance(doc, dict):
                raise SchemaViolation("not a JSON object")
            self.ledger.contract.validate("orders", doc)
        except (orjson.JSONDecodeError, SchemaViolation):
            self.stats.invalid += 1
            return None
        return cast(OrderDoc | CancelDoc, doc)

    async def answer(self, doc: OrderDoc | CancelDoc, ts: int) -> Outbox:
        """Take a rebalance; a cancel is never taken as one (it has no legs to fill): ignored, counted."""
        if doc["type"] == "cancel":
            self.stats.cancels_ignored += 1
            return Outbox()
        return await self.take(doc, ts)

    async def take(self, order: Mapping[str, Any], ts: int) -> Outbox:
        """Fill a parsed order once; returns its positions record and execution report (nothing for a
        duplicate, an order on an account not yet current, or one with an unquoted instrument; only a
        report for a rejected one)."""
        if not self.ledger.current(order):
            self.stats.behind += 1
            return Outbox()
        if not await self.claims.claim(order["event_id"]):
            self.stats.duplicates += 1
            return Outbox()
        restricted = sorted({leg["instrument"] for leg in order["legs"]} & self.reject)
        if restricted:
            self.stats.rejected += 1
            return Outbox(
                executions=[execution_report(order, None, ts, f"restricted: {', '.join(restricted)}")]
            )
        prices = self.ledger.prices(order)
        if prices is None:
            await self.claims.release(order["event_id"])
            self.stats.unfillable += 1
            return Outbox()
        done, records = self.ledger.fill(order, prices, ts, self.fee_bps)
        self.stats.filled += 1
        self.stats.partial += done.partial
        self.stats.positions_published += len(records)
        return Outbox(records, [execution_report(order, done, ts)])
