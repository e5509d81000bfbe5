"""The fill stand-in's desk, no I/O but its claims: takes orders once, fills, rejects and honours cancels."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol, cast

import orjson

from streamproc.sim.fill_logic import ZERO, Ledger
from streamproc.sim.fill_parts import REJECT_SHARE, LegState, Progress, share
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


@dataclass(frozen=True, slots=True)
class Policy:
    """How the stand-in answers orders (the options of `streamproc fill`); the defaults fill each order
    at once and whole."""

    fee_bps: Decimal = ZERO
    ratio: Decimal = Decimal(1)  # a part fills at most this fraction of what each leg has left
    latency_ms: int = 0  # between parts
    reject: frozenset[str] = frozenset()  # an order with a leg in one is rejected whole
    reject_instruments: frozenset[str] = frozenset()  # a leg in one is rejected, the others fill
    reject_share: float = 0.0  # this share of orders (drawn by event_id) is rejected whole
    ignore_cancels: bool = False  # keep filling what a cancel names

    def __post_init__(self) -> None:
        if not 0 < self.ratio <= 1:
            raise ValueError(f"fill ratio must be in (0, 1], got {self.ratio}")
        if self.latency_ms < 0:
            raise ValueError(f"fill latency must be >= 0 ms, got {self.latency_ms}")
        if not 0 <= self.reject_share <= 1:
            raise ValueError(f"reject share must be in [0, 1], got {self.reject_share}")


@dataclass
class FillStats:
    """Counts so far; a live view may read them while ``run`` goes on."""

    orders: int = 0  # records read from the orders topic (rebalances, cancels, invalid ones)
    filled: int = 0  # orders filled to the end (each leg filled or cut short)
    duplicates: int = 0
    unfillable: int = 0  # a leg's instrument had no quote yet
    invalid: int = 0
    behind: int = 0  # the account's positions did not arrive in time
    partial: int = 0  # orders with a leg cut short: not enough held or not enough cash
    rejected: int = 0  # orders rejected whole (--reject, --reject-share, every leg restricted)
    legs_rejected: int = 0  # legs on a --reject-instruments instrument
    parts: int = 0  # parts filled, each a positions record (if anything filled) and an execution report
    partly_filled: int = 0  # ... of which left a leg working (partially_filled)
    cancels: int = 0
    cancelled: int = 0  # orders stopped by a cancel
    cancels_ignored: int = 0  # for an order complete or unknown, or all with --ignore-cancels
    positions_published: int = 0
    working: int = 0  # orders with parts still to come, now
    quotes: int = 0
    positions: int = 0  # positions records applied (echoes and replays not counted)

    def summary(self) -> str:
        """One line for the console."""
        return (
            f"orders {self.orders}: filled {self.filled} (cut short {self.partial}), parts {self.parts} "
            f"({self.partly_filled} partially filled), rejected {self.rejected} (and {self.legs_rejected} "
            f"legs), cancelled {self.cancelled} (cancels ignored {self.cancels_ignored}), "
            f"duplicates {self.duplicates}, unfillable {self.unfillable}, invalid {self.invalid}, "
            f"behind {self.behind}; positions published {self.positions_published}"
        )


@dataclass
class Outbox:
    """What answering orders publishes: positions records and execution reports."""

    positions: list[Record] = field(default_factory=list)
    executions: list[Record] = field(default_factory=list)

    def extend(self, other: Outbox) -> None:
        self.positions += other.positions
        self.executions += other.executions


class Desk:
    """Takes orders: validates, deduplicates and fills them against the ledger in parts, answering each
    part with an execution report; rejects as the policy says; a cancel stops an order's parts."""

    def __init__(
        self, ledger: Ledger, claims: Claims, stats: FillStats, policy: Policy | None = None
    ) -> None:
        self.ledger = ledger
        self.claims = claims
        self.stats = stats
        self.policy = policy if policy is not None else Policy()
        self.working: dict[str, Progress] = {}  # event_id -> an order with parts to come

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
        """Take a rebalance, or apply a cancel (never taken as a rebalance: it has no legs to fill)."""
        if doc["type"] == "cancel":
            return self.cancel(doc, ts)
        return await self.take(doc, ts)

    async def take(self, order: OrderDoc, ts: int) -> Outbox:
        """Take a parsed order once; returns its first part's positions record and execution report, and
        with no latency every later part's (nothing for a duplicate, an order on an account not yet
        current, or one with an unquoted instrument; only a report for a rejected one)."""
        if not self.ledger.current(order):
            self.stats.behind += 1
            return Outbox()
        if not await self.claims.claim(order["event_id"]):
            self.stats.duplicates += 1
            return Outbox()
        why = self._rejection(order)
        progress = Progress(order, self.ledger.lot, frozenset() if why else self.policy.reject_instruments)
        if why:
            progress.end(LegState.REJECTED, why)
        elif self.ledger.prices(leg.instrument for leg in progress.working) is None:
            await self.claims.release(order["event_id"])
            self.stats.unfillable += 1
            return Outbox()
        else:
            self.stats.legs_rejected += len(progress.legs) - len(progress.working)
        if not progress.working:
            self.stats.rejected += 1
            return Outbox(executions=[progress.report(ts)])
        return self._parts(progress, ts)

    def due(self, ts: int) -> Outbox:
        """The parts due by ``ts``, oldest first."""
        out = Outbox()
        for progress in sorted(self.working.values(), key=lambda p: p.due_ms):
            if progress.due_ms <= ts:
                out.extend(self._parts(progress, ts))
        return out

    def idle_ms(self, now: int, most: int) -> int:
        """How long to wait for orders before a part is due (at most ``most``)."""
        due = min((p.due_ms for p in self.working.values()), default=now + most)
        return max(0, min(most, due - now))

    def cancel(self, doc: CancelDoc, ts: int) -> Outbox:
        """A cancel ends what of its order still works, with a report (cancelled, cum_qty what was
        filled); one for an order complete, unknown or not yet seen, or any with ``ignore_cancels``, is
        counted and ignored."""
        self.stats.cancels += 1
        progress = self.working.get(doc["cancels"])
        if progress is None or progress.account != doc["account"] or self.policy.ignore_cancels:
            self.stats.cancels_ignored += 1
            return Outbox()
        del self.working[progress.event_id]
        self.stats.working = len(self.working)
        progress.end(LegState.CANCELLED, f"cancelled by {doc['event_id']}")
        self.stats.cancelled += 1
        return Outbox(executions=[progress.report(ts)])

    def _rejection(self, order: OrderDoc) -> str:
        """Why the whole order is rejected, or ""."""
        if share(order["event_id"]) < self.policy.reject_share:
            return REJECT_SHARE
        restricted = sorted({leg["instrument"] for leg in order["legs"]} & self.policy.reject)
        return f"restricted: {', '.join(restricted)}" if restricted else ""

    def _parts(self, progress: Progress, ts: int) -> Outbox:
        """Fill ``progress``'s next part, and with no latency the parts after it too; the next is due
        ``latency_ms`` after it."""
        out = Outbox()
        while progress.working:
            prices = self.ledger.prices(leg.instrument for leg in progress.working)
            if prices is None:  # never, as quotes are not forgotten; then the next pass tries again
                break
            part = progress.part(self.policy.ratio)
            done, records = self.ledger.fill(progress.account, part, prices, ts, self.policy.fee_bps)
            progress.filled(part, done)
            self.stats.parts += 1
            self.stats.partly_filled += bool(progress.working)
            self.stats.positions_published += len(records)
            out.extend(Outbox(records, [progress.report(ts)]))
            if self.policy.latency_ms:
                break
        progress.due_ms = ts + self.policy.latency_ms
        if progress.working:
            self.working[progress.event_id] = progress
        else:
            self.working.pop(progress.event_id, None)
            self.stats.filled += 1
            self.stats.partial += progress.cut
        self.stats.working = len(self.working)
        return out
