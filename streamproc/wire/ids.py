"""Deterministic ids: the same breach (same inputs) gets the same id on replay or after a crash."""

from __future__ import annotations

import uuid

_ORDERS = uuid.UUID("6c1b8e52-3f0c-4f43-9d7e-2b8a4c5e7a10")


def rebalance_event_id(
    account: str,
    positions_seq: int,
    targets_version: int,
    attempt: int,
    sleeves_closed: int = 0,
    calendar: str | None = None,
) -> str:
    """UUIDv5 of the inputs an order answers: the account's positions seq, targets version, attempt,
    (when any) how many of its sleeves were stopped: stopping one changes the model it trades to, and
    (for a calendar run) the period it answers: ``2027-Q1``."""
    name = f"rebalance|{account}|{positions_seq}|{targets_version}|{attempt}"
    if sleeves_closed:
        name += f"|stopped:{sleeves_closed}"
    if calendar is not None:
        name += f"|calendar:{calendar}"
    return str(uuid.uuid5(_ORDERS, name))


def cancel_event_id(order_event_id: str) -> str:
    """UUIDv5 of the cancel of one order: one cancel per order, however often it is decided."""
    return str(uuid.uuid5(_ORDERS, f"cancel|{order_event_id}"))
