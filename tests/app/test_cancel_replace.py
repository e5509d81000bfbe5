"""Cancel and replace in-process: new targets while an order works publish its cancel and a replacement
chained by ``replaces``, sized on top of what the old one still trades; a crash between them publishes
neither twice; unanswered orders are capped and then wait for an operator's retry or release."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from streamproc.app.deadletters import Record
from streamproc.app.decisions import Draft
from streamproc.state.records import OrderAction, OrderRequest
from streamproc.testkit import InMemoryWorker, worker
from tests.app.kit import CONTRACT, QUIET, market, ordered, orders, own, quote, settings
from tests.app.test_executions import report, send


class Died(Exception):
    """The process "dies" where a SIGKILL between publishing and recording would."""


async def new_targets(w: InMemoryWorker, eq: float, version: int = 2) -> None:
    doc = {"account": "A", "version": version, "weights": {"EQ": eq, "BOND": 1 - eq}, "band": {"abs": 0.03}}
    doc["ts"] = int(w.clock.time() * 1000)
    await w.parts.intake.on_records(
        [Record(w.parts.settings.topics.targets, 0, 40 + version, b"A", orjson.dumps(doc))]
    )


def signed(order: dict[str, Any]) -> dict[str, float]:
    """Instrument -> qty bought (> 0) or sold (< 0) by an order's legs."""
    return {
        leg["instrument"]: float(leg["qty"]) * (1 if leg["side"] == "buy" else -1) for leg in order["legs"]
    }


def alerts(w: InMemoryWorker, kind: str) -> list[dict[str, Any]]:
    sent = [orjson.loads(r.value) for r in w.publisher.sent(w.parts.settings.topics.alerts)]
    return [a for a in sent if a["type"] == kind]


async def test_new_targets_cancel_the_working_order_and_a_replacement_is_sized_on_top_of_it() -> None:
    w = worker(settings(), CONTRACT)
    order = await ordered(w)  # sell EQ, buy BOND towards 60/40
    await new_targets(w, 0.5)
    w.clock.advance(1)
    assert await w.parts.evaluator.run_once() == 1
    cancel, replacement = orders(w)[1:]
    for doc in (cancel, replacement):
        CONTRACT.validate("orders", doc)
    assert cancel["type"] == "cancel" and cancel["why"] == "targets_changed"
    assert cancel["cancels"] == order["event_id"] and cancel["replaced_by"] == replacement["event_id"]
    assert replacement["replaces"] == order["event_id"] and replacement["inputs"]["targets_version"] == 2
    assert {(r["event_id"], r["instrument"]) for r in replacement["working"]} == {
        (order["event_id"], "EQ"),
        (order["event_id"], "BOND"),
    }
    # together the two never sell more EQ than is held, and land on the new targets
    old, new = signed(order), signed(replacement)
    assert old["EQ"] < 0 and new["EQ"] < 0 and -(old["EQ"] + new["EQ"]) <= 600.0
    assert replacement["weights_after"]["EQ"] == pytest.approx(0.5, abs=0.005)
    stored = await w.store.load_account("A")
    assert stored is not None and stored.working is not None
    assert stored.working.event_id == replacement["event_id"]
    assert [c.event_id for c in stored.cancelling] == [order["event_id"]]
    assert w.store.emitted["A"] == {order["event_id"], cancel["event_id"], replacement["event_id"]}
    # order management confirms the cancel with nothing filled: the replacement then works from the
    # holdings as they are (not from the ones the old order would have left)
    await send(w, report(order, "c1", EQ=("cancelled", 0.0), BOND=("cancelled", 0.0)))
    stored = await w.store.load_account("A")
    assert stored is not None and stored.cancelling == () and stored.working is not None
    assert {leg.instrument: leg.held_before for leg in stored.working.legs} == {"EQ": 600.0, "BOND": 800.0}
    # the replacement alone holds the account: nothing more is published while it works
    for _ in range(3):
        w.clock.advance(1)
        await w.parts.evaluator.run_once()
    assert len(orders(w)) == 3


async def test_a_crash_between_the_cancel_and_its_replacement_publishes_neither_twice() -> None:
    s = settings()
    w = worker(s, CONTRACT)
    order = await ordered(w)
    await new_targets(w, 0.5)

    def die(_published: list[Draft]) -> None:
        raise Died

    w.parts.orders.after_publish = die
    w.clock.advance(1)
    with pytest.raises(Died):
        await w.parts.evaluator.run_once()
    cancel, replacement = orders(w)[1:]
    stored = await w.store.load_account("A")
    assert stored is not None and stored.working is not None and stored.working.event_id == order["event_id"]
    nxt = worker(s, CONTRACT, store=w.store, publisher=w.publisher, clock=w.clock)
    market(nxt, eq=132.0, seq=2)
    await own(nxt, 0)
    stored = await nxt.store.load_account("A")
    assert stored is not None and stored.working is not None
    assert stored.working.event_id == replacement["event_id"], "the chain is intact"
    assert [c.event_id for c in stored.cancelling] == [order["event_id"]]
    assert nxt.store.emitted["A"] == {order["event_id"], cancel["event_id"], replacement["event_id"]}
    for _ in range(5):
        nxt.clock.advance(1)
        await nxt.parts.evaluator.run_once()
    ids = [o["event_id"] for o in orders(nxt)]
    assert len(ids) == len(set(ids)) == 3, "neither published twice"


async def silence(w: InMemoryWorker, seq: int, bond: int | None = None) -> int:
    """A cooldown passes without an answer, then one pass on fresh quotes (EQ at ``seq``, BOND one
    behind: ``ordered`` quoted EQ once more); returns its orders."""
    w.clock.advance(300)
    quote(w, "EQ", 132.0, seq)
    quote(w, "BOND", 50.0, seq - 1 if bond is None else bond)
    return await w.parts.evaluator.run_once()


async def test_unanswered_orders_are_capped_then_wait_for_an_operator() -> None:
    w = worker(settings(STREAMPROC_ORDER_MAX_ATTEMPTS="2"), CONTRACT)
    first = await ordered(w)
    w.parts.watch.tick = 1
    assert await silence(w, 3) == 0  # cancelled (it may still fill: nothing on top of it)
    assert orders(w)[-1]["type"] == "cancel" and orders(w)[-1]["cancels"] == first["event_id"]
    (fired,) = alerts(w, "order_unanswered")
    assert fired["state"] == "firing" and fired["details"] == {"event_id": first["event_id"], "attempts": 1}
    assert fired["runbook"] == "runbooks/order_unanswered.md"
    assert await silence(w, 4) == 1  # its cancel unconfirmed for a cooldown: re-issued
    second = orders(w)[-1]
    assert second["inputs"]["attempt"] == 1
    assert await silence(w, 5) == 0  # unanswered again: cancelled, and the cap (2) is reached
    assert orders(w)[-1]["cancels"] == second["event_id"]
    stored = await w.store.load_account("A")
    assert stored is not None and stored.drift is not None and stored.drift["status"] == "unanswered"
    assert "streamproc orders retry A" in stored.drift.get("why", "")
    published = len(orders(w))
    for seq in (6, 7, 8):
        assert await silence(w, seq) == 0
    assert len(orders(w)) == published, "waiting for an operator"
    # a restart keeps it waiting
    nxt = worker(
        settings(STREAMPROC_ORDER_MAX_ATTEMPTS="2"),
        CONTRACT,
        store=w.store,
        publisher=w.publisher,
        clock=w.clock,
    )
    market(nxt, eq=132.0, seq=9)
    await own(nxt, 0)
    nxt.parts.watch.tick = 1
    assert await silence(nxt, 10, bond=10) == 0 and len(orders(nxt)) == published
    # the operator retries: one more attempt, the episode resolved
    await nxt.store.request_order_action("A", OrderRequest(OrderAction.RETRY, 1))
    await nxt.parts.watcher.tick(nxt.clock.time(), QUIET)
    assert await nxt.store.order_requests() == {}
    nxt.clock.advance(1)
    assert await nxt.parts.evaluator.run_once() == 1
    assert orders(nxt)[-1]["inputs"]["attempt"] == 2
    assert [a["state"] for a in alerts(nxt, "order_unanswered")] == ["firing", "resolved"]


async def test_release_forgets_what_is_open_and_trades_on_the_holdings() -> None:
    w = worker(settings(STREAMPROC_ORDER_MAX_ATTEMPTS="1"), CONTRACT)
    first = await ordered(w)
    assert await silence(w, 3) == 0  # cancelled; the cap (1) reached at once
    stored = await w.store.load_account("A")
    assert stored is not None and [c.event_id for c in stored.cancelling] == [first["event_id"]]
    await w.store.request_order_action("A", OrderRequest(OrderAction.RELEASE, 1))
    await w.parts.watcher.tick(w.clock.time(), QUIET)
    w.clock.advance(1)
    assert await w.parts.evaluator.run_once() == 1
    again = orders(w)[-1]
    assert again["type"] == "rebalance" and "working" not in again, "nothing open any more"
    assert signed(again) == pytest.approx(signed(first), rel=1e-3)
    stored = await w.store.load_account("A")
    assert stored is not None and stored.cancelling == () and stored.unanswered is None


async def test_an_order_whose_account_is_back_in_band_is_cancelled_and_not_replaced() -> None:
    w = worker(settings(), CONTRACT)
    order = await ordered(w)  # EQ rallied to 132: sell EQ, buy BOND
    w.clock.advance(1)
    quote(w, "EQ", 131.0, 3)  # still out of band: the order keeps working
    assert await w.parts.evaluator.run_once() == 0 and len(orders(w)) == 1
    w.clock.advance(1)
    quote(w, "EQ", 111.0, 4)  # 62.5 %: inside the band, but not by more than its half (hysteresis)
    assert await w.parts.evaluator.run_once() == 0 and len(orders(w)) == 1
    w.clock.advance(1)
    quote(w, "EQ", 101.0, 5)  # back: 60/40 on the holdings alone, the order would overshoot
    assert await w.parts.evaluator.run_once() == 0
    (cancel,) = orders(w)[1:]
    CONTRACT.validate("orders", cancel)
    assert cancel["why"] == "back_in_band" and cancel["cancels"] == order["event_id"]
    assert "replaced_by" not in cancel
    stored = await w.store.load_account("A")
    assert stored is not None and stored.working is None
    assert [c.event_id for c in stored.cancelling] == [order["event_id"]]
    for seq in (6, 7):  # waiting for the confirmation: nothing more
        w.clock.advance(1)
        quote(w, "EQ", 101.0 + seq / 100, seq)
        await w.parts.evaluator.run_once()
    assert len(orders(w)) == 2
    await send(w, report(order, "c1", EQ=("cancelled", 0.0), BOND=("cancelled", 0.0)))
    w.clock.advance(1)
    await w.parts.evaluator.run_once()
    stored = await w.store.load_account("A")
    assert stored is not None and stored.cancelling == () and len(orders(w)) == 2
    assert stored.drift is not None and stored.drift["status"] == "ok"


async def test_targets_changed_before_a_handover_cancel_the_loaded_working_order() -> None:
    s = settings()
    w = worker(s, CONTRACT)
    order = await ordered(w)
    await new_targets(w, 0.5)  # stored; the owner goes before its next pass
    nxt = worker(s, CONTRACT, store=w.store, publisher=w.publisher, clock=w.clock)
    market(nxt, eq=132.0, seq=2)
    await own(nxt, 0)
    nxt.clock.advance(2)
    assert await nxt.parts.evaluator.run_once() == 1
    cancel, replacement = orders(nxt)[1:]
    assert cancel["cancels"] == order["event_id"] and cancel["why"] == "targets_changed"
    assert replacement["replaces"] == order["event_id"]


async def positions(w: InMemoryWorker, seq: int, **qty: float) -> None:
    """Position records of account A (a fill as order management reports it), from ``seq`` on."""
    topic, ts = w.parts.settings.topics.positions, int(w.clock.time() * 1000)
    docs = [
        {"account": "A", "instrument": i, "qty": q, "seq": seq + k, "ts": ts}
        for k, (i, q) in enumerate(qty.items())
    ]
    await w.parts.intake.on_records(
        [Record(topic, 0, 60 + seq + k, b"A", orjson.dumps(d)) for k, d in enumerate(docs)]
    )


@pytest.mark.parametrize("answered_by", ["positions", "reports"])
async def test_a_partial_fill_that_brings_the_account_inside_its_band_does_not_cancel_the_rest(
    answered_by: str,
) -> None:
    w = worker(settings(), CONTRACT)
    order = await ordered(w)  # 600 EQ at 132 (66.4 %): sell ~58 EQ, buy ~154 BOND
    qty = {leg["instrument"]: float(leg["qty"]) for leg in order["legs"]}
    part = {name: q * 0.6 for name, q in qty.items()}
    await positions(w, 4, EQ=600.0 - part["EQ"], BOND=800.0 + part["BOND"])  # EQ now ~62.6 %: inside
    if answered_by == "reports":
        states = {name: ("partially_filled", q) for name, q in part.items()}
        await send(w, report(order, "p1", **states))
    for seq in (3, 4):  # prices wiggle: the order is working, not obsolete
        w.clock.advance(1)
        quote(w, "EQ", 132.0 - seq / 100, seq)
        await w.parts.evaluator.run_once()
    assert len(orders(w)) == 1
    stored = await w.store.load_account("A")
    assert stored is not None and stored.working is not None
    assert stored.working.event_id == order["event_id"]
    w.clock.advance(1)
    quote(w, "EQ", 101.0, 5)  # at 101 the holdings the order started from are back in band
    await w.parts.evaluator.run_once()
    (cancel,) = orders(w)[1:]
    assert cancel["why"] == "back_in_band" and cancel["cancels"] == order["event_id"]


async def test_a_loaded_order_that_traded_before_the_handover_is_judged_without_its_fills() -> None:
    s = settings()
    w = worker(s, CONTRACT)
    order = await ordered(w)
    qty = {leg["instrument"]: float(leg["qty"]) for leg in order["legs"]}
    await positions(w, 4, EQ=600.0 - qty["EQ"] * 0.6, BOND=800.0 + qty["BOND"] * 0.6)
    nxt = worker(s, CONTRACT, store=w.store, publisher=w.publisher, clock=w.clock)
    market(nxt, eq=132.0, seq=2)
    await own(nxt, 0)
    for seq in (3, 4):
        nxt.clock.advance(1)
        quote(nxt, "EQ", 132.0 - seq / 100, seq)
        await nxt.parts.evaluator.run_once()
    assert len(orders(nxt)) == 1  # the new owner does not cancel an order its own fills brought in band
