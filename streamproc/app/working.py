"""The orders a worker's accounts have open (no I/O): working ones, answered by positions that complete
their legs or by execution reports, rejected (no retry until an input changes), made obsolete (new
targets, unanswered past their cooldown) and then cancelled; cancelled ones still counted until order
management confirms; and the ``order_rejected`` / ``order_unanswered`` episodes that tell on-call."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from enum import Enum
from typing import Any

import numpy as np

from streamproc.core import Book, Shift
from streamproc.core.alerts import Episode, Key, episode_id
from streamproc.core.types import I64, Bool
from streamproc.state.records import TERMINAL, AccountPatch, WorkingOrder, open_caps, open_legs
from streamproc.wire.documents import CancelWhy, OrderDoc

_QTY_TOLERANCE = 1e-9  # relative: cum + leaves == ordered qty


class Report(Enum):
    """What an execution report did."""

    APPLIED = "applied"  # the order still works
    ANSWERED = "answered"  # every leg is done: the order no longer holds its account
    REJECTED = "rejected"  # ... and a leg was rejected
    DUPLICATE = "duplicate"  # its exec_id was applied before
    LATE = "late"  # about the account's last order, already answered
    UNKNOWN = "unknown"  # about no order this account has open (dead-lettered)
    INVALID = "invalid"  # contradicts the order (dead-lettered)


def projected(holdings: Mapping[str, float], orders: Iterable[WorkingOrder]) -> dict[str, float]:
    """``holdings`` once ``orders`` (oldest first) have traded what they still have open."""
    out = dict(holdings)
    for _, name, left in open_legs(orders, holdings):
        out[name] = max(0.0, out.get(name, 0.0) + left)
    return out


def _moved(order: WorkingOrder, shift: Mapping[str, float]) -> WorkingOrder:
    """``order`` started from holdings lower by ``shift`` (instrument -> qty)."""
    if not shift:
        return order
    legs = tuple(
        dataclasses.replace(leg, held_before=max(0.0, leg.held_before - shift.get(leg.instrument, 0.0)))
        for leg in order.legs
    )
    return dataclasses.replace(order, legs=legs)


class WorkingOrders:
    """Per book row: the working order, the cancelled ones not yet confirmed, the last answered one,
    and the episodes (rejected, unanswered) holding the account."""

    def __init__(self) -> None:
        self.orders: dict[int, WorkingOrder] = {}
        self.cancelling: dict[int, list[WorkingOrder]] = {}  # cancel published, not yet confirmed
        self.obsolete: dict[int, CancelWhy] = {}  # row -> why its working order is to be cancelled
        self.last: dict[int, str] = {}  # row -> event_id of its last answered order
        self.rejected: dict[int, Episode] = {}  # row -> its order_rejected episode
        self.unanswered: dict[int, Episode] = {}  # row -> its order_unanswered episode
        self.changed: set[int] = set()  # rows whose open orders are to be stored
        self.traded: set[int] = set()  # rows whose working order may have traded (moves or reports)
        self.closed: list[Episode] = []  # episodes ended since the last drain
        self.error = ""  # why the last report was UNKNOWN or INVALID

    def __contains__(self, r: int) -> bool:
        return r in self.orders

    def get(self, r: int) -> WorkingOrder | None:
        return self.orders.get(r)

    def open_orders(self, r: int) -> list[WorkingOrder]:
        """Everything of row r that may still trade: cancelled orders, then the working one."""
        out = list(self.cancelling.get(r, ()))
        if r in self.orders:
            out.append(self.orders[r])
        return out

    def open(self, r: int, doc: OrderDoc, held: Mapping[str, float]) -> WorkingOrder:
        """An order was published: it works from the holdings ``held`` (projected, when it was sized
        on top of cancelled orders still open)."""
        order = self.orders[r] = WorkingOrder.of(doc, held)
        self.traded.discard(r)
        return order

    def restore(self, r: int, order: WorkingOrder | None) -> None:
        """Row r starts over (loaded): nothing open but ``order``."""
        for state in (self.orders, self.rejected, self.cancelling, self.unanswered, self.obsolete):
            state.pop(r, None)
        if order is not None:
            self.orders[r] = order
            self.traded.add(r)  # it may have traded before it was stored: assume it did

    def completed_by(self, r: int, holdings: Mapping[str, float], lot_of: Callable[[str], float]) -> bool:
        """Positions changed: True when they complete row r's working order (it is answered). Cancelled
        orders they complete (order management filled them anyway) are no longer open either."""
        cancelled = self.cancelling.get(r)
        if cancelled:
            filled: dict[str, dict[str, float]] = {
                o.event_id: {} for o in cancelled if o.done(holdings, lot_of)
            }
            if filled:
                self._drop(r, filled)
                self._heard(r, answered_by="positions")
        order = self.orders.get(r)
        if order is None:
            return False
        self.traded.add(r)
        if not order.done(holdings, lot_of):
            return False
        self._answer(r)
        self._heard(r, answered_by="positions")
        return True

    def make_obsolete(self, r: int, why: CancelWhy) -> bool:
        """Row r's working order is to be cancelled (its next evaluation publishes the cancel)."""
        if r not in self.orders:
            return False
        self.obsolete.setdefault(r, why)
        return True

    def give_up(
        self, r: int, account: str, holdings: Mapping[str, float], now_ms: int, cooldown_ms: float
    ) -> None:
        """Row r's hold ended: its working order went unanswered (to cancel, counted in the account's
        ``order_unanswered`` episode), and cancels unconfirmed for a cooldown are given up (what they
        had open is taken to never fill)."""
        expired = {o.event_id for o in self.cancelling.get(r, ()) if now_ms - o.cancelled_ms >= cooldown_ms}
        if expired:
            gone: dict[str, dict[str, float]] = {e: {} for e in expired}
            for event_id, name, left in open_legs(self.open_orders(r), holdings):
                if event_id in expired:
                    gone[event_id][name] = gone[event_id].get(name, 0.0) + left
            self._drop(r, gone)
        order = self.orders.get(r)
        if order is None or r in self.obsolete:
            return
        self.obsolete[r] = "unanswered"
        ep = self.unanswered.get(r)
        subject = ("account", account)
        attempts = (int(ep.details["attempts"]) if ep is not None else 0) + 1
        details = {"event_id": order.event_id, "attempts": attempts}
        if ep is None:
            ep = Episode(
                "order_unanswered",
                subject,
                episode_id("order_unanswered", subject, order.event_id),
                now_ms,
                {},
            )
        self.unanswered[r] = Episode(ep.type, subject, ep.id, ep.since_ms, details)
        self.changed.add(r)

    def attempts_unanswered(self, r: int) -> int:
        """Orders of row r in a row that went unanswered (0: none, or one was answered since)."""
        ep = self.unanswered.get(r)
        return int(ep.details["attempts"]) if ep is not None else 0

    def cancelled(self, r: int, event_id: str, now_ms: int) -> bool:
        """The cancel of row r's working order ``event_id`` was delivered: it stays open (it may still
        trade) until order management confirms, or for one cooldown."""
        order = self.orders.get(r)
        if order is None or order.event_id != event_id:
            return False
        del self.orders[r]
        self.obsolete.pop(r, None)
        self.cancelling.setdefault(r, []).append(dataclasses.replace(order, cancelled_ms=now_ms))
        self.changed.add(r)
        return True

    def forget(self, r: int, **resolution: Any) -> None:
        """An operator released row r: nothing of it is open any more (they settled it with order
        management); its unanswered episode ends."""
        had = r in self.orders or r in self.cancelling or r in self.unanswered
        for state in (self.orders, self.cancelling, self.obsolete):
            state.pop(r, None)
        self._heard(r, **resolution)
        if had:
            self.changed.add(r)

    def retry(self, r: int, **resolution: Any) -> None:
        """An operator asked for another attempt: the unanswered count starts again."""
        self._heard(r, **resolution)

    def input_changed(self, r: int, **resolution: Any) -> bool:
        """An input changed: a rejection no longer holds row r; True if one did."""
        ep = self.rejected.pop(r, None)
        if ep is None:
            return False
        self.changed.add(r)
        self.closed.append(Episode(ep.type, ep.subject, ep.id, ep.since_ms, {**ep.details, **resolution}))
        return True

    def report(self, r: int, account: str, doc: Mapping[str, Any], now_ms: int) -> Report:
        """Apply a validated execution report to one of row r's open orders."""
        event_id = doc["event_id"]
        cancelled = next((o for o in self.cancelling.get(r, ()) if o.event_id == event_id), None)
        order = cancelled or self.orders.get(r)
        if order is None or order.event_id != event_id:
            if self.last.get(r) == event_id:
                return Report.LATE
            self.error = f"event_id {event_id} is not an order working for account {account}"
            return Report.UNKNOWN
        if doc["exec_id"] in order.exec_ids:
            return Report.DUPLICATE
        updated = self._apply_legs(order, doc)
        if updated is None:
            return Report.INVALID
        self._heard(r, answered_by=doc["exec_id"])
        self.changed.add(r)
        if cancelled is None:
            self.traded.add(r)
        done = all(leg.terminal for leg in updated.legs)
        if cancelled is not None:
            if not done:
                self.cancelling[r] = [updated if o is cancelled else o for o in self.cancelling[r]]
                return Report.APPLIED
            self.last[r] = event_id
            unfilled = {leg.instrument: leg.signed(leg.qty - leg.cum_qty) for leg in updated.legs}
            self._drop(r, {event_id: unfilled})
            return Report.ANSWERED
        self.orders[r] = updated
        if not done:
            return Report.APPLIED
        self._answer(r)
        rejected = [leg for leg in doc["legs"] if leg["state"] == "rejected"]
        if not rejected:
            return Report.ANSWERED
        subject = ("account", account)
        details = {
            "event_id": event_id,
            "instruments": [leg["instrument"] for leg in rejected],
            "reason": rejected[0].get("reason", "rejected by order management"),
        }
        ep_id = episode_id("order_rejected", subject, event_id)
        self.rejected[r] = Episode("order_rejected", subject, ep_id, now_ms, details)
        return Report.REJECTED

    def _apply_legs(self, order: WorkingOrder, doc: Mapping[str, Any]) -> WorkingOrder | None:
        """``order`` with the report's legs applied; None (and ``error``) when it contradicts them."""
        legs = {leg.instrument: leg for leg in order.legs}
        for leg in doc["legs"]:
            name, cum, leaves = leg["instrument"], float(leg["cum_qty"]), float(leg["leaves_qty"])
            mine = legs.get(name)
            if mine is None:
                self.error = f"{name} is not a leg of order {order.event_id}"
                return None
            tolerance = _QTY_TOLERANCE * max(1.0, mine.qty)
            if leg["state"] in TERMINAL:  # nothing works any more: leaves 0, cum what was filled
                if leaves > 0 or cum > mine.qty + tolerance:
                    self.error = (
                        f"{name}: {leg['state']} with cum_qty {cum}, leaves_qty {leaves} (ordered {mine.qty})"
                    )
                    return None
            elif abs(cum + leaves - mine.qty) > tolerance:
                self.error = f"{name}: cum_qty {cum} + leaves_qty {leaves} is not the ordered {mine.qty}"
                return None
            legs[name] = dataclasses.replace(mine, state=leg["state"], cum_qty=cum, leaves_qty=leaves)
        return dataclasses.replace(
            order, legs=tuple(legs.values()), exec_ids=(*order.exec_ids, doc["exec_id"])
        )

    def _drop(self, r: int, gone: Mapping[str, Mapping[str, float]]) -> None:
        """Cancelled orders ``gone`` (event_id -> what of it will never fill: instrument -> qty, > 0 a
        buy) are no longer open. The open orders sized after them counted on all of it filling, so the
        holdings they started from move by what never will."""
        shift: dict[str, float] = {}
        kept = []
        for o in self.cancelling.get(r, []):
            if o.event_id in gone:
                for name, q in gone[o.event_id].items():
                    shift[name] = shift.get(name, 0.0) + q
            else:
                kept.append(_moved(o, shift))
        self._set_cancelling(r, kept)
        if r in self.orders:
            self.orders[r] = _moved(self.orders[r], shift)

    def _set_cancelling(self, r: int, orders: list[WorkingOrder]) -> None:
        if orders:
            self.cancelling[r] = orders
        else:
            self.cancelling.pop(r, None)
        self.changed.add(r)

    def _heard(self, r: int, **resolution: Any) -> None:
        """Order management answered (or an operator acted): the unanswered episode ends."""
        ep = self.unanswered.pop(r, None)
        if ep is not None:
            self.changed.add(r)
            self.closed.append(Episode(ep.type, ep.subject, ep.id, ep.since_ms, {**ep.details, **resolution}))

    def _answer(self, r: int) -> None:
        order = self.orders.pop(r)
        self.obsolete.pop(r, None)
        self.last[r] = order.event_id
        self.changed.add(r)

    def why_rejected(self, r: int) -> str:
        """Row r's drift status while its rejection holds it."""
        details = self.rejected[r].details
        names = ", ".join(details["instruments"])
        return f"rejected: {names} ({details['reason']}); retried when an input changes"

    def open_episodes(self, owned: Callable[[int], bool]) -> dict[Key, Episode]:
        out = {ep.key: ep for r, ep in self.rejected.items() if owned(r)}
        out.update({ep.key: ep for r, ep in self.unanswered.items() if owned(r)})
        return out

    def drain_closed(self) -> list[Episode]:
        out, self.closed = self.closed, []
        return out

    def stored(self, r: int, patch: AccountPatch) -> AccountPatch:
        """``patch`` with row r's open orders and episodes, as stored with the account."""
        patch.working(self.orders.get(r)).cancelling(self.cancelling.get(r, ()))
        return patch.rejected(self.rejected.get(r)).unanswered(self.unanswered.get(r))

    def drain_changed(self) -> list[int]:
        out = sorted(self.changed)
        self.changed.clear()
        return out


def among(rows: I64, few: Iterable[int]) -> Bool:
    """Per row of ``rows`` (many): is it one of ``few`` (the rows with open orders, say)? Vectorized:
    no Python per evaluated row."""
    wanted = np.fromiter(few, dtype=np.int64)
    if wanted.size == 0:
        return np.zeros(rows.size, dtype=bool)
    out: Bool = np.isin(rows, wanted)
    return out


def projection(working: WorkingOrders, book: Book, rows: I64) -> Shift | None:
    """What the open orders of ``rows`` still trade (None when none has any): evaluations count it,
    so a new order never oversells or overspends together with them."""
    if not (working.orders or working.cancelling):
        return None
    at: list[int] = []
    inst: list[int] = []
    qty: list[float] = []  # best estimates, for the projection
    cap: list[float] = []  # the most each may trade, for what new orders may sell and spend
    price: list[float] = []
    with_orders = np.flatnonzero(among(rows, working.orders.keys() | working.cancelling.keys()))
    for j in with_orders.tolist():
        r = int(rows[j])
        orders = working.open_orders(r)
        held = book.holdings(book.accounts.id_of(r))
        entries = [(name, left, 0.0) for _, name, left in open_legs(orders, held)]
        entries += [(name, 0.0, most) for name, most in open_caps(orders)]
        for name, left, most in entries:
            at.append(j)
            inst.append(book.instrument(name))
            qty.append(left)
            cap.append(most)
            bid, ask, _ = book.price(name)
            px = ask if left + most > 0 else bid  # what a buy spends, a sell brings
            price.append(0.0 if math.isnan(px) else px)  # unpriced: the row is suppressed
    if not at:
        return None
    ints = np.array(at, dtype=np.int64), np.array(inst, dtype=np.int64)
    return Shift(*ints, np.array(qty), np.array(price), np.array(cap))


def unfilled(working: WorkingOrders, book: Book, rows: I64) -> Shift | None:
    """The holdings of ``rows`` as if their working orders had not traded (fills undone at today's
    prices): an order is obsolete when prices alone brought its account back in band, not when its own
    partial fills did. Only rows in ``working.traded`` are undone (the rest have not traded)."""
    may = np.flatnonzero(among(rows, working.traded & working.orders.keys()))
    at: list[int] = []
    inst: list[int] = []
    qty: list[float] = []
    price: list[float] = []
    for j in may.tolist():
        r = int(rows[j])
        for name, done in working.orders[r].traded(book.holdings(book.accounts.id_of(r))):
            bid, ask, _ = book.price(name)
            px = bid if done > 0 else ask  # undoing a buy sells it back, undoing a sale buys it back
            at.append(j)
            inst.append(book.instrument(name))
            qty.append(-done)
            price.append(0.0 if math.isnan(px) else px)
    if not at:
        return None
    return Shift(np.array(at, dtype=np.int64), np.array(inst, dtype=np.int64), np.array(qty), np.array(price))
