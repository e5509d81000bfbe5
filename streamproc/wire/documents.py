"""Typed shapes of the documents the worker publishes (mirrors of ``schemas/``, which stays the judge:
tests validate what is built against it) and of the drift status it stores."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NotRequired, TypedDict


class OrderReason(TypedDict):
    """The worst breach of an order: the slot furthest outside its band relative to the band."""

    instrument: str
    weight: float
    target: float
    band: float


class OrderLeg(TypedDict):
    instrument: str
    side: Literal["buy", "sell"]
    qty: str  # decimal strings (schemas/common.json#/$defs/decimal)
    price: str
    notional: str


class OrderInputs(TypedDict):
    """The inputs an order was computed from; with the account they make its event_id."""

    positions_seq: int
    targets_version: int
    attempt: int


class OrderDoc(TypedDict):
    """An ``orders`` record (schemas/orders.json)."""

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


class DriftDoc(TypedDict):
    """An account's drift status as stored (the ``drift`` field): ``why`` when suppressed or held,
    ``weights`` when evaluated."""

    status: str
    evaluated_at: int
    why: NotRequired[str]
    weights: NotRequired[dict[str, float]]


def position_changes(doc: Mapping[str, Any]) -> list[tuple[str, float]]:
    """(instrument, absolute qty) of a validated positions record: v2's ``changes``, else v1's one."""
    changes = doc.get("changes")
    if changes is not None:
        return [(c["instrument"], float(c["qty"])) for c in changes]
    return [(doc["instrument"], float(doc["qty"]))]
