"""The orders a worker's accounts have working (no I/O): opened when published, answered by positions
that complete their legs or by execution reports, rejected (no retry until an input changes), or
given up at their cooldown; and the ``order_rejected`` episodes that tell on-call."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any

from streamproc.core.alerts import Episode, Key, episode_id
from streamproc.state.records import TERMINAL, WorkingOrder
from streamproc.wire.documents import OrderDoc

_QTY_TOLERANCE = 1e-9  # relative: cum + leaves == ordered qty


class Report(Enum):
    """What an execution report did."""

    APPLIED = "applied"  # the order still works
    ANSWERED = "answered"  # every leg is done: the order no longer holds its account
    REJECTED = "rejected"  # ... and a leg was rejected
    DUPLICATE = "duplicate"  # its exec_id was applied before
    LATE = "late"  # about the account's last order, already answered
    UNKNOWN = "unknown"  # about no order this account has working (dead-lettered)
    INVALID = "invalid"  # contradicts the order (dead-lettered)


class WorkingOrders:
    """Per book row: the working order, the last answered one, and a rejection holding the account."""

    def __init__(self) -> None:
        self.orders: dict[int, WorkingOrder] = {}
        self.last: dict[int, str] = {}  # row -> event_id of its last answered order
        self.rejected: dict[int, Episode] = {}  # row -> its order_rejected episode
        self.changed: set[int] = set()  # rows whose working state is to be stored
        self.closed: list[Episode] = []  # order_rejected episodes ended since the last drain
        self.error = ""  # why the last report was UNKNOWN or INVALID

    def __contains__(self, r: int) -> bool:
        return r in self.orders

    def get(self, r: int) -> WorkingOrder | None:
        return self.orders.get(r)

    def open(self, r: int, doc: OrderDoc, held: Mapping[str, float]) -> WorkingOrder:
        """An order was published: it works from the holdings ``held``."""
        order = self.orders[r] = WorkingOrder.of(doc, held)
        return order

    def restore(self, r: int, order: WorkingOrder | None, rejected: Episode | None = None) -> None:
        self.orders.pop(r, None)
        self.rejected.pop(r, None)
        if order is not None:
            self.orders[r] = order
        if rejected is not None:
            self.rejected[r] = rejected

    def completed_by(self, r: int, holdings: Mapping[str, float], lot_of: Callable[[str], float]) -> bool:
        """Positions changed: True when they complete row r's working order (it is answered)."""
        order = self.orders.get(r)
        if order is None or not order.done(holdings, lot_of):
            return False
        self._answer(r)
        return True

    def give_up(self, r: int) -> None:
        """Row r's cooldown ended with its order unanswered."""
        if self.orders.pop(r, None) is not None:
            self.changed.add(r)

    def input_changed(self, r: int, **resolution: Any) -> bool:
        """An input changed: a rejection no longer holds row r; True if one did."""
        ep = self.rejected.pop(r, None)
        if ep is None:
            return False
        self.changed.add(r)
        self.closed.append(Episode(ep.type, ep.subject, ep.id, ep.since_ms, {**ep.details, **resolution}))
        return True

    def report(self, r: int, account: str, doc: Mapping[str, Any], now_ms: int) -> Report:
        """Apply a validated execution report to row r's working order."""
        order = self.orders.get(r)
        if order is None or order.event_id != doc["event_id"]:
            if self.last.get(r) == doc["event_id"]:
                return Report.LATE
            self.error = f"event_id {doc['event_id']} is not an order working for account {account}"
            return Report.UNKNOWN
        if doc["exec_id"] in order.exec_ids:
            return Report.DUPLICATE
        legs = {leg.instrument: leg for leg in order.legs}
        for leg in doc["legs"]:
            name, cum, leaves = leg["instrument"], float(leg["cum_qty"]), float(leg["leaves_qty"])
            mine = legs.get(name)
            if mine is None:
                self.error = f"{name} is not a leg of order {order.event_id}"
                return Report.INVALID
            tolerance = _QTY_TOLERANCE * max(1.0, mine.qty)
            if leg["state"] in TERMINAL:  # nothing works any more: leaves 0, cum what was filled
                if leaves > 0 or cum > mine.qty + tolerance:
                    self.error = (
                        f"{name}: {leg['state']} with cum_qty {cum}, leaves_qty {leaves} (ordered {mine.qty})"
                    )
                    return Report.INVALID
            elif abs(cum + leaves - mine.qty) > tolerance:
                self.error = f"{name}: cum_qty {cum} + leaves_qty {leaves} is not the ordered {mine.qty}"
                return Report.INVALID
            legs[name] = dataclasses.replace(mine, state=leg["state"], cum_qty=cum, leaves_qty=leaves)
        order = dataclasses.replace(
            order, legs=tuple(legs.values()), exec_ids=(*order.exec_ids, doc["exec_id"])
        )
        self.orders[r] = order
        self.changed.add(r)
        if not all(leg.terminal for leg in order.legs):
            return Report.APPLIED
        self._answer(r)
        rejected = [leg for leg in doc["legs"] if leg["state"] == "rejected"]
        if not rejected:
            return Report.ANSWERED
        subject = ("account", account)
        details = {
            "event_id": order.event_id,
            "instruments": [leg["instrument"] for leg in rejected],
            "reason": rejected[0].get("reason", "rejected by order management"),
        }
        ep_id = episode_id("order_rejected", subject, order.event_id)
        self.rejected[r] = Episode("order_rejected", subject, ep_id, now_ms, details)
        return Report.REJECTED

    def _answer(self, r: int) -> None:
        order = self.orders.pop(r)
        self.last[r] = order.event_id
        self.changed.add(r)

    def why_rejected(self, r: int) -> str:
        """Row r's drift status while its rejection holds it."""
        details = self.rejected[r].details
        names = ", ".join(details["instruments"])
        return f"rejected: {names} ({details['reason']}); retried when an input changes"

    def open_episodes(self, owned: Callable[[int], bool]) -> dict[Key, Episode]:
        return {ep.key: ep for r, ep in self.rejected.items() if owned(r)}

    def drain_closed(self) -> list[Episode]:
        out, self.closed = self.closed, []
        return out

    def drain_changed(self) -> list[int]:
        out = sorted(self.changed)
        self.changed.clear()
        return out
