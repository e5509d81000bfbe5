"""An order filled in parts, pure for in-process tests: leg states, part sizes on the lot grid, reports."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from enum import StrEnum
from typing import NotRequired, TypedDict

import orjson

from streamproc.sim.fill_logic import ZERO, Fill, plain
from streamproc.sim.market import Record
from streamproc.wire.documents import OrderDoc

NOT_ENOUGH = "not enough held or cash"
RESTRICTED = "restricted instrument"
REJECT_SHARE = "rejected by the fill stand-in (--reject-share)"
_AVG_STEP = Decimal("1E-10")  # an average over parts at several prices need not end


class LegState(StrEnum):
    """A leg's state in execution reports (schemas/executions.json)."""

    ACCEPTED = "accepted"  # nothing filled yet; never reported, the first part comes with the order
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


TERMINAL = frozenset({LegState.FILLED, LegState.REJECTED, LegState.CANCELLED})


class ReportLeg(TypedDict):
    instrument: str
    state: str
    cum_qty: str
    leaves_qty: str
    avg_price: NotRequired[str]
    reason: NotRequired[str]


class ExecutionReport(TypedDict):
    """An ``executions`` record (schemas/executions.json)."""

    account: str
    event_id: str
    exec_id: str
    legs: list[ReportLeg]
    ts: int


class PartLeg(TypedDict):
    """What one part asks of a leg (a leg as ``fill_legs`` takes it)."""

    instrument: str
    side: str
    qty: Decimal


def part_qty(remaining: Decimal, lot: Decimal, ratio: Decimal) -> Decimal:
    """What one part fills of a leg's ``remaining`` qty: ``ratio`` of it rounded toward zero to the
    ``lot`` grid, at least one lot, and all of it when less than a lot would be left (an exit off the
    grid fills its tail with the last part)."""
    if ratio >= 1:
        return remaining
    part = max((remaining * ratio / lot).to_integral_value(ROUND_DOWN) * lot, lot)
    return remaining if remaining - part < lot else part


def share(event_id: str) -> float:
    """A draw in [0, 1), uniform over ids and fixed by ``event_id``: every process and restart draws the
    same for an order."""
    digest = hashlib.blake2b(event_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass
class LegProgress:
    """One leg of an order being filled."""

    instrument: str
    side: str
    qty: Decimal  # ordered
    lot: Decimal
    state: LegState = LegState.ACCEPTED
    cum: Decimal = ZERO
    paid: Decimal = ZERO  # qty x price summed over the parts, for the average price
    reason: str = ""

    @property
    def working(self) -> bool:
        return self.state not in TERMINAL

    def end(self, state: LegState, reason: str) -> None:
        self.state, self.reason = state, reason

    def report(self) -> ReportLeg:
        out: ReportLeg = {
            "instrument": self.instrument,
            "state": self.state.value,
            "cum_qty": plain(self.cum),
            "leaves_qty": plain(self.qty - self.cum) if self.working else "0",
        }
        if self.cum:
            avg = self.paid / self.cum
            rounded = avg.quantize(_AVG_STEP)
            out["avg_price"] = plain(avg if avg == rounded else rounded)
        if self.reason:
            out["reason"] = self.reason
        return out


class Progress:
    """An order being filled: its legs, the reports told so far and when its next part is due."""

    def __init__(
        self,
        order: OrderDoc,
        lot: Callable[[str, Decimal], Decimal],
        restricted: frozenset[str] = frozenset(),
    ) -> None:
        self.account = order["account"]
        self.event_id = order["event_id"]
        self.legs: list[LegProgress] = []
        for leg in order["legs"]:
            qty = Decimal(leg["qty"])
            self.legs.append(LegProgress(leg["instrument"], leg["side"], qty, lot(leg["instrument"], qty)))
            if leg["instrument"] in restricted:
                self.legs[-1].end(LegState.REJECTED, RESTRICTED)
        self.reports = 0
        self.due_ms = 0
        self.cut = False  # a leg ended short: not enough held or cash

    @property
    def working(self) -> list[LegProgress]:
        """The legs not yet terminal."""
        return [leg for leg in self.legs if leg.working]

    def part(self, ratio: Decimal) -> list[PartLeg]:
        """The next part: at most ``ratio`` of what each working leg has left."""
        return [
            {
                "instrument": leg.instrument,
                "side": leg.side,
                "qty": part_qty(leg.qty - leg.cum, leg.lot, ratio),
            }
            for leg in self.working
        ]

    def filled(self, part: list[PartLeg], done: Fill) -> None:
        """Apply what ``part`` filled; a leg that filled less than it asked was cut (not enough held or
        cash) and ends cancelled with what it has."""
        executed = {e.instrument: e for e in done.executions}
        legs = {leg.instrument: leg for leg in self.legs}
        for asked in part:
            leg, e = legs[asked["instrument"]], executed.get(asked["instrument"])
            got = e.qty if e is not None else ZERO
            if e is not None:
                leg.cum += got
                leg.paid += got * e.price
            if got < asked["qty"]:
                leg.end(LegState.CANCELLED, NOT_ENOUGH)
                self.cut = True
            else:
                leg.state = LegState.FILLED if leg.cum >= leg.qty else LegState.PARTIALLY_FILLED

    def end(self, state: LegState, reason: str) -> None:
        """End every leg still working (a cancel, or a rejection of the whole order)."""
        for leg in self.working:
            leg.end(state, reason)

    def report(self, ts: int) -> Record:
        """The next execution report: every leg as it stands; ``exec_id`` is ``<event_id>:<n>`` for the
        n-th, so a restarted stand-in repeats ids rather than inventing new ones."""
        self.reports += 1
        doc: ExecutionReport = {
            "account": self.account,
            "event_id": self.event_id,
            "exec_id": f"{self.event_id}:{self.reports}",
            "legs": [leg.report() for leg in self.legs],
            "ts": ts,
        }
        return (self.account.encode(), orjson.dumps(doc))
