"""The fill stand-in's book (no I/O): holdings and quotes as the topics say, how an order's legs fill
against them, and the positions records and execution reports that tell it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any

import orjson

from streamproc.sim.market import CASH, Record
from streamproc.wire.codec import Rejected, decode
from streamproc.wire.contract import Contract

ZERO = Decimal(0)


@dataclass
class Holdings:
    """One account as the positions topic says: the last seq and the qty per instrument (CASH too)."""

    seq: int = 0
    qty: dict[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Execution:
    """One leg as filled: ``qty`` may be less than ordered (never oversell, never overdraw cash)."""

    instrument: str
    side: str
    qty: Decimal
    price: Decimal


@dataclass(frozen=True, slots=True)
class Fill:
    """An order's executions and the absolute holdings they leave (changed instruments, then CASH)."""

    executions: list[Execution]
    holdings: dict[str, Decimal]
    partial: bool


def fill_legs(
    legs: Iterable[Mapping[str, Any]],
    held: Mapping[str, Decimal],
    quotes: Mapping[str, tuple[Decimal, Decimal]],
    fee_bps: Decimal = ZERO,
) -> Fill:
    """Fill ``legs`` against ``held`` at ``quotes`` (instrument -> bid, ask): sells first, at the bid and
    capped at the holding; then buys at the ask, each cut (to its ordered precision, the lot) to the cash
    there is; ``fee_bps`` of each leg's notional is paid from cash."""
    rate = fee_bps / 10_000
    qty = dict(held)
    cash = qty.get(CASH, ZERO)
    executions: list[Execution] = []
    partial = False
    for leg in sorted(legs, key=lambda leg: leg["side"] != "sell"):
        name, ordered = leg["instrument"], Decimal(leg["qty"])
        bid, ask = quotes[name]
        have = qty.get(name, ZERO)
        if leg["side"] == "sell":
            done, price = min(ordered, have), bid
            cash += done * price - done * price * rate
            qty[name] = have - done
        else:
            price = ask
            unit = price + price * rate
            done = ordered if ordered * unit <= cash else (cash / unit).quantize(ordered, rounding=ROUND_DOWN)
            cash -= done * unit
            qty[name] = have + done
        partial |= done < ordered
        if done > 0:
            executions.append(Execution(name, leg["side"], done, price))
    holdings = {e.instrument: qty[e.instrument] for e in executions}
    if executions:
        holdings[CASH] = cash.normalize()  # products carry many trailing zeros
    return Fill(executions, holdings, partial)


def plain(x: Decimal) -> str:
    """A decimal string without exponent or sign of zero, as the positions schema wants."""
    return format(x if x else abs(x), "f")


def position_records(account: str, holdings: Mapping[str, Decimal], last_seq: int, ts: int) -> list[Record]:
    """The positions record of a fill: ``holdings`` as one atomic change (instruments and cash under
    the account's next seq after ``last_seq``), as a broker's fill should arrive."""
    if not holdings:
        return []
    changes = [{"instrument": name, "qty": plain(q)} for name, q in holdings.items()]
    doc = {"account": account, "changes": changes, "seq": last_seq + 1, "ts": ts}
    return [(account.encode(), orjson.dumps(doc))]


def execution_report(order: Mapping[str, Any], done: Fill | None, ts: int, reason: str = "") -> Record:
    """The execution report (``executions`` topic) answering ``order``: each leg filled, or cut short
    (cancelled with what was filled: not enough held or cash), or, without ``done``, rejected."""
    executed = {e.instrument: e for e in done.executions} if done is not None else {}
    legs = []
    for leg in order["legs"]:
        name, ordered = leg["instrument"], Decimal(leg["qty"])
        e = executed.get(name)
        filled = e.qty if e is not None else ZERO
        state = "rejected" if done is None else ("filled" if filled >= ordered else "cancelled")
        out: dict[str, Any] = {
            "instrument": name,
            "state": state,
            "cum_qty": plain(filled),
            "leaves_qty": "0",
        }
        if e is not None:
            out["avg_price"] = plain(e.price)
        if state != "filled":
            out["reason"] = reason or "not enough held or cash"
        legs.append(out)
    doc = {"account": order["account"], "event_id": order["event_id"], "exec_id": f"{order['event_id']}:1"}
    return (order["account"].encode(), orjson.dumps({**doc, "legs": legs, "ts": ts}))


class Ledger:
    """The book of record (positions topic) and the latest bid/ask per instrument (quotes topic)."""

    def __init__(self, contract: Contract) -> None:
        self.contract = contract
        self.accounts: dict[str, Holdings] = {}
        self.quotes: dict[str, tuple[Any, Any]] = {}

    def on_quote(self, key: bytes | None, value: bytes | None) -> bool:
        """Take a quote record (the latest wins); an undecodable, invalid or crossed one is ignored."""
        doc = decode(self.contract, "quotes", key, value)
        if isinstance(doc, Rejected):
            return False
        self.quotes[doc["instrument"]] = (doc["bid"], doc["ask"])
        return True

    def on_position(self, key: bytes | None, value: bytes | None) -> bool:
        """Take a positions record; a replay or an echo of our own fill (seq <= known) or a bad one is
        ignored."""
        doc = decode(self.contract, "positions", key, value)
        if isinstance(doc, Rejected):
            return False
        account = self.accounts.setdefault(doc["account"], Holdings())
        if doc["seq"] <= account.seq:
            return False
        account.seq = doc["seq"]
        for change in doc.get("changes") or [doc]:
            account.qty[change["instrument"]] = Decimal(str(change["qty"]))
        return True

    def current(self, order: Mapping[str, Any]) -> bool:
        """Whether the account's positions are known up to the seq the order was computed on."""
        account = self.accounts.get(order["account"])
        return account is not None and account.seq >= order["inputs"]["positions_seq"]

    def prices(self, order: Mapping[str, Any]) -> dict[str, tuple[Decimal, Decimal]] | None:
        """Bid and ask of every leg's instrument, or None when one has no quote yet."""
        out: dict[str, tuple[Decimal, Decimal]] = {}
        for leg in order["legs"]:
            quote = self.quotes.get(leg["instrument"])
            if quote is None:
                return None
            out[leg["instrument"]] = (Decimal(str(quote[0])), Decimal(str(quote[1])))
        return out

    def fill(
        self,
        order: Mapping[str, Any],
        prices: Mapping[str, tuple[Decimal, Decimal]],
        ts: int,
        fee_bps: Decimal,
    ) -> tuple[Fill, list[Record]]:
        """Fill ``order``, apply it to the account at once (its echo is then ignored) and return the
        positions records to publish."""
        account = self.accounts.setdefault(order["account"], Holdings())
        done = fill_legs(order["legs"], account.qty, prices, fee_bps)
        records = position_records(order["account"], done.holdings, account.seq, ts)
        account.qty.update(done.holdings)
        account.seq += len(records)
        return done, records
