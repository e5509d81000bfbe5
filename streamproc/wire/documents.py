"""Typed shapes of the documents the worker publishes (mirrors of ``schemas/``, which stays the judge:
tests validate what is built against it) and of the drift status it stores."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NotRequired, TypedDict

ORDERS_VERSION = 2  # the orders contract this worker publishes (schemas/orders.json)


class CalendarReason(TypedDict):
    """The calendar run an order is: ``{"every": "quarter", "period": "2027-Q1"}``."""

    every: str
    period: str


class OrderReason(TypedDict):
    """The worst breach of an order: the instrument or group furthest outside its band relative to the
    band (``instrument`` or ``group``, one of them)."""

    instrument: NotRequired[str]
    group: NotRequired[str]
    trigger: NotRequired[str]  # a stopped sleeve's liquidation: which kill criterion
    calendar: NotRequired[CalendarReason]  # a calendar run: its rule's period and the period answered
    weight: float
    target: float
    band: float


class OrderLeg(TypedDict):
    instrument: str
    side: Literal["buy", "sell"]
    qty: str  # decimal strings (schemas/common.json#/$defs/decimal)
    price: str
    notional: str
    limit_price: NotRequired[str]  # the worst price it may trade at (absent in orders before #17)


class OrderInputs(TypedDict):
    """The inputs an order was computed from; with the account they make its event_id."""

    positions_seq: int
    targets_version: int
    attempt: int
    sleeves_closed: NotRequired[int]  # sleeves of these targets stopped so far (absent: none)


class CancelLeg(TypedDict):
    """A leg still believed to be working (a cancel's ``legs``)."""

    instrument: str
    side: Literal["buy", "sell"]
    qty: str


class WorkingRef(CancelLeg):
    """... of an earlier order, by its event_id (a rebalance's ``working``)."""

    event_id: str


class OrderDoc(TypedDict):
    """An ``orders`` record of type rebalance (schemas/orders.json, v2)."""

    schema_version: int
    event_id: str
    type: Literal["rebalance"]
    account: str
    ts: int
    as_of: int
    reason: OrderReason
    legs: list[OrderLeg]
    weights_before: dict[str, float]
    weights_after: dict[str, float]
    inputs: OrderInputs
    replaces: NotRequired[str]  # the working order this one replaces (its cancel precedes it)
    working: NotRequired[list[WorkingRef]]  # earlier orders' legs it was sized on top of


CancelWhy = Literal["targets_changed", "unanswered", "back_in_band", "operator"]


class CancelDoc(TypedDict):
    """An ``orders`` record of type cancel: retract a working order (schemas/orders.json, v2)."""

    schema_version: int
    event_id: str
    type: Literal["cancel"]
    account: str
    ts: int
    cancels: str
    why: CancelWhy
    legs: list[CancelLeg]
    replaced_by: NotRequired[str]


class DriftDoc(TypedDict):
    """An account's drift status as stored (the ``drift`` field): ``why`` when suppressed or held,
    ``weights`` when evaluated."""

    status: str
    evaluated_at: int  # the evaluation this document was written from (ms)
    status_since: NotRequired[int]  # when the status began (ms); absent in documents before #16
    why: NotRequired[str]
    weights: NotRequired[dict[str, float]]
    groups: NotRequired[dict[str, float]]  # group weights by name, for accounts with groups


def position_changes(doc: Mapping[str, Any]) -> list[tuple[str, float]]:
    """(instrument, absolute qty) of a validated positions record: v2's ``changes``, else v1's one."""
    changes = doc.get("changes")
    if changes is not None:
        return [(c["instrument"], float(c["qty"])) for c in changes]
    return [(doc["instrument"], float(doc["qty"]))]
