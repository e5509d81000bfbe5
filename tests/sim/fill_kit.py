"""Orders, cancels and a ledger for the fill stand-in's in-process tests, and decoding what it publishes."""

from __future__ import annotations

import copy
import uuid
from decimal import Decimal as D
from typing import Any

from streamproc.sim.fill_logic import Ledger
from streamproc.sim.messages import position, quote
from streamproc.wire.codec import Rejected, decode
from streamproc.wire.contract import Contract
from tests.conftest import ROOT

CONTRACT = Contract(ROOT / "schemas")
QUOTES = {"EQ": (D("132.30"), D("132.38")), "BOND": (D("49.99"), D("50.01"))}


def a_leg(instrument: str, side: str, qty: str, price: str = "1") -> dict[str, str]:
    return {"instrument": instrument, "side": side, "qty": qty, "price": price, "notional": "1"}


def rebalance(
    account: str, legs: list[dict[str, str]], positions_seq: int, attempt: int = 0
) -> dict[str, Any]:
    """The orders schema's example, for ``account`` with ``legs``."""
    doc = copy.deepcopy(CONTRACT.examples("orders")[0])
    doc["account"] = account
    doc["legs"] = legs
    doc["inputs"] = {"positions_seq": positions_seq, "targets_version": 1, "attempt": attempt}
    doc["event_id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{account}|{positions_seq}|{attempt}"))
    CONTRACT.validate("orders", doc)
    return doc


def cancel_of(order: dict[str, Any], account: str | None = None) -> dict[str, Any]:
    """A cancel of ``order`` (the schema's example shape) naming all its legs, from ``account`` (the
    order's unless given)."""
    doc = copy.deepcopy(CONTRACT.examples("orders")[1])
    doc.pop("replaced_by")
    doc["account"] = account or order["account"]
    doc["cancels"] = order["event_id"]
    doc["event_id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"cancel|{order['event_id']}|{doc['account']}"))
    doc["legs"] = [{k: leg[k] for k in ("instrument", "side", "qty")} for leg in order["legs"]]
    CONTRACT.validate("orders", doc)
    return doc


def decoded(records: list[tuple[bytes, bytes]], topic: str = "positions") -> list[dict[str, Any]]:
    """The records' documents, each checked against the topic's contract."""
    out = []
    for key, value in records:
        doc = decode(CONTRACT, topic, key, value)
        assert not isinstance(doc, Rejected), doc
        out.append(doc)
    return out


def book() -> Ledger:
    """Account A holds 600 EQ, 800.00 BOND and no cash (seq 3); EQ is quoted at 132.34 flat, BOND at
    49.99 / 50.01."""
    ledger = Ledger(CONTRACT)
    for rec in (position("A", "EQ", 600, 1), position("A", "BOND", "800.00", 2), position("A", "CASH", 0, 3)):
        assert ledger.on_position(*rec)
    assert ledger.on_quote(*quote("EQ", 132.34, 1, spread_bps=0)) and ledger.on_quote(
        *quote("BOND", 50, 1, spread_bps=4)
    )
    return ledger
