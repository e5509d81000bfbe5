"""The fill stand-in's book, pure for in-process tests: holdings, quotes and lots, and legs filled on them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any

import orjson

from streamproc.sim.market import CASH, Record
from streamproc.wire.codec import Rejected, decode
from streamproc.wire.contract import Contract
from streamproc.wire.documents import OrderDoc

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


def precision(qty: Decimal) -> Decimal:
    """One unit of the last decimal place of ``qty`` (10.00 -> 0.01): the lot of an order's leg when
    its instrument's lot is not known."""
    exponent = qty.as_tuple().exponent
    return Decimal(1).scaleb(exponent if isinstance(exponent, int) and exponent < 0 else 0)


class Ledger:
    """The book of record (positions topic), the latest bid/ask per instrument (quotes topic) and the
    instruments' lots (instruments topic)."""

    def __init__(self, contract: Contract) -> None:
        self.contract = contract
        self.accounts: dict[str, Holdings] = {}
        self.quotes: dict[str, tuple[Any, Any]] = {}
        self.lots: dict[str, Decimal] = {}

    def on_instrument(self, key: bytes | None, value: bytes | None) -> bool:
        """Take an instruments record's lot (the latest wins); a bad record or one without a lot is
        ignored."""
        doc = decode(self.contract, "instruments", key, value)
        if isinstance(doc, Rejected) or "lot" not in doc:
            return False
        self.lots[doc["instrument"]] = Decimal(str(doc["lot"]))
        return True

    def lot(self, instrument: str, qty: Decimal) -> Decimal:
        """The grid a part of a leg of ``qty`` in ``instrument`` fills on: the instrument's lot, else the
        precision ``qty`` is given to."""
        return self.lots.get(instrument) or precision(qty)

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

    def current(self, order: OrderDoc) -> bool:
        """Whether the account's positions are known up to the seq the order was computed on."""
        account = self.accounts.get(order["account"])
        return account is not None and account.seq >= order["inputs"]["positions_seq"]

    def prices(self, instruments: Iterable[str]) -> dict[str, tuple[Decimal, Decimal]] | None:
        """Bid and ask of each of ``instruments``, or None when one has no quote yet."""
        out: dict[str, tuple[Decimal, Decimal]] = {}
        for name in instruments:
            quote = self.quotes.get(name)
            if quote is None:
                return None
            out[name] = (Decimal(str(quote[0])), Decimal(str(quote[1])))
        return out

    def fill(
        self,
        account_id: str,
        legs: Iterable[Mapping[str, Any]],
        prices: Mapping[str, tuple[Decimal, Decimal]],
        ts: int,
        fee_bps: Decimal,
    ) -> tuple[Fill, list[Record]]:
        """Fill ``legs`` of an order of ``account_id``, apply them to the account at once (their echo is
        then ignored) and return the positions records to publish."""
        account = self.accounts.setdefault(account_id, Holdings())
        done = fill_legs(legs, account.qty, prices, fee_bps)
        records = position_records(account_id, done.holdings, account.seq, ts)
        account.qty.update(done.holdings)
        account.seq += len(records)
        return done, records
