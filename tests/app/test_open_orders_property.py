"""Property: whatever sequence of partial fills (of working and of cancelled orders), dividends, new
targets, unanswered cooldowns and cancel confirmations an account goes through, the orders it has open
together never sell more than it holds nor buy more than its cash and their own sales pay for; and every
published document holds to the contract (sells within the holding, notional = qty x price)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamproc.app.deadletters import Record
from streamproc.testkit import InMemoryWorker, worker
from tests.app.kit import CONTRACT, ordered, orders, quote
from tests.app.kit import settings as worker_settings

S = worker_settings(STREAMPROC_ORDER_MAX_ATTEMPTS="0")
SPREAD = {"EQ": (131.99, 132.01), "BOND": (49.99, 50.01)}  # the quotes of ``ordered``, kept

step = st.one_of(
    st.tuples(st.just("fill"), st.floats(0.1, 1.0), st.integers(0, 3)),
    st.tuples(st.just("dividend"), st.floats(1.0, 2000.0), st.just(0)),
    st.tuples(st.just("targets"), st.floats(0.2, 0.8), st.just(0)),
    st.tuples(st.just("cooldown"), st.just(0.0), st.just(0)),
    st.tuples(st.just("confirm"), st.just(0.0), st.integers(0, 3)),
)


class Account:
    """Account A of an in-memory worker, driven through its intake like the wire would, and what its
    orders truly have open (``left``: event_id -> instrument -> qty still to buy > 0 or sell < 0)."""

    def __init__(self, w: InMemoryWorker) -> None:
        self.w, self.seq, self.offset, self.version = w, 3, 1000, 1
        self.row = w.parts.accounts.book.accounts.get("A")
        self.left: dict[str, dict[str, float]] = {}
        self.ordered: dict[str, dict[str, float]] = {}
        self.seen = 0

    def published(self) -> None:
        """Take the orders published since the last call."""
        docs = orders(self.w)
        for doc in docs[self.seen :]:
            if doc["type"] == "rebalance":
                legs = {
                    x["instrument"]: float(x["qty"]) * (1 if x["side"] == "buy" else -1) for x in doc["legs"]
                }
                self.left[str(doc["event_id"])] = dict(legs)
                self.ordered[str(doc["event_id"])] = legs
        self.seen = len(docs)

    async def records(self, topic: str, *docs: dict[str, Any]) -> None:
        recs = []
        for doc in docs:
            self.offset += 1
            recs.append(Record(topic, 0, self.offset, b"A", orjson.dumps(doc)))
        await self.w.parts.intake.on_records(recs)

    def open_ids(self) -> list[str]:
        return [o.event_id for o in self.w.parts.accounts.working.open_orders(self.row)]

    async def fill(self, frac: float, which: int) -> None:
        """Part of one open order's legs fills (order management may ignore a cancel): one atomic
        positions record, cash moved at the quotes."""
        open_ = self.open_ids()
        if not open_:
            return
        left = self.left[open_[which % len(open_)]]
        book = self.w.parts.accounts.book
        held, cash = dict(book.holdings("A")), float(book.cash("A"))
        for name, rest in left.items():
            qty = round(abs(rest) * frac, 4)
            if rest < 0:
                qty = min(qty, held.get(name, 0.0))
                held[name] = held.get(name, 0.0) - qty
                cash += qty * SPREAD[name][0]
                left[name] = rest + qty
            else:
                qty = min(qty, cash / SPREAD[name][1])
                held[name] = held.get(name, 0.0) + qty
                cash -= qty * SPREAD[name][1]
                left[name] = rest - qty
        self.seq += 1
        changes = [{"instrument": n, "qty": max(q, 0.0)} for n, q in held.items()]
        changes.append({"instrument": "CASH", "qty": max(cash, 0.0)})
        doc = {"account": "A", "changes": changes, "seq": self.seq, "ts": self.seq}
        await self.records(self.w.parts.settings.topics.positions, doc)

    async def dividend(self, amount: float) -> None:
        self.seq += 1
        cash = float(self.w.parts.accounts.book.cash("A")) + amount
        doc = {"account": "A", "instrument": "CASH", "qty": cash, "seq": self.seq, "ts": self.seq}
        await self.records(self.w.parts.settings.topics.positions, doc)

    async def targets(self, eq: float) -> None:
        self.version += 1
        doc = {"account": "A", "version": self.version, "weights": {"EQ": eq, "BOND": 1 - eq}}
        doc |= {"band": {"abs": 0.03}, "ts": self.version}
        await self.records(self.w.parts.settings.topics.targets, doc)

    async def confirm(self, which: int) -> None:
        """Order management confirms a cancel: the unfilled rest of a cancelled order is cancelled."""
        cancelled = self.w.parts.accounts.working.cancelling.get(self.row, [])
        if not cancelled:
            return
        event_id = cancelled[which % len(cancelled)].event_id
        left, ordered = self.left[event_id], self.ordered[event_id]
        legs = [
            {"instrument": n, "state": "cancelled", "cum_qty": abs(ordered[n] - left[n]), "leaves_qty": 0.0}
            for n in ordered
        ]
        self.left[event_id] = dict.fromkeys(left, 0.0)
        self.offset += 1
        doc = {"account": "A", "event_id": event_id, "exec_id": f"x{self.offset}", "legs": legs, "ts": 1}
        await self.records(self.w.parts.settings.topics.executions, doc)

    def check(self) -> None:
        """What the open orders truly still trade, together, fits the holdings and the cash."""
        book = self.w.parts.accounts.book
        held, cash = book.holdings("A"), float(book.cash("A"))
        sells: dict[str, float] = {}
        spend = 0.0
        for event_id in self.open_ids():
            for name, rest in self.left[event_id].items():
                if rest < 0:
                    sells[name] = sells.get(name, 0.0) - rest
                    spend += rest * SPREAD[name][0]
                else:
                    spend += rest * SPREAD[name][1]
        for name, qty in sells.items():
            assert qty <= held.get(name, 0.0) * (1 + 1e-9) + 1e-6, (name, qty, held)
        assert spend <= cash * (1 + 1e-6) + 0.05, (spend, cash)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, min_size=1, max_size=12))
async def test_open_orders_never_oversell_nor_overspend(steps: list[tuple[str, float, int]]) -> None:
    w = worker(S, CONTRACT)
    await ordered(w)
    acct = Account(w)
    acct.published()
    for i, (kind, x, k) in enumerate(steps):
        if kind == "fill":
            await acct.fill(x, k)
        elif kind == "dividend":
            await acct.dividend(x)
        elif kind == "targets":
            await acct.targets(x)
        elif kind == "confirm":
            await acct.confirm(k)
        else:
            w.clock.advance(300)
        w.clock.advance(1)
        quote(w, "EQ", 132.0, 3 + i)  # prices kept, quotes fresh (never suppressed as stale)
        quote(w, "BOND", 50.0, 2 + i)
        await w.parts.evaluator.run_once()
        acct.published()
        acct.check()
    for doc in orders(w):
        CONTRACT.validate("orders", doc)
        for leg in doc["legs"] if doc["type"] == "rebalance" else ():
            qty, price, notional = (Decimal(leg[f]) for f in ("qty", "price", "notional"))
            assert abs(qty * price - notional) <= Decimal("0.01"), leg
