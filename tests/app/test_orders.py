"""Order publication in-process: a crash between publishing and recording is repaired by the recovery
scan of the next owner (the event_id is never published again), and a failed send records nothing and
is published by the next pass."""

from __future__ import annotations

import orjson
import pytest

from streamproc.app.deadletters import Record
from streamproc.app.decisions import Draft
from streamproc.testkit import worker
from tests.app.kit import CONTRACT, market, open_account, opened, ordered, orders, own, quote, settings


class Died(Exception):
    """The process "dies" where a SIGKILL between publishing and recording would."""


def die(_published: list[Draft]) -> None:
    raise Died


async def test_an_order_published_before_a_crash_is_recovered_and_never_published_again() -> None:
    s = settings()
    crashed = worker(s, CONTRACT, after_publish=die)
    await own(crashed, 0)
    market(crashed)
    await open_account(crashed, "A")
    crashed.clock.advance(1)
    assert await crashed.parts.evaluator.run_once() == 0  # in band
    quote(crashed, "EQ", 132.0, 2)
    with pytest.raises(Died):
        await crashed.parts.evaluator.run_once()
    (order,) = orders(crashed)
    stored = await crashed.store.load_account("A")
    assert stored is not None and stored.order is None, "the crash came before the order was recorded"
    assert not crashed.store.emitted
    # the next owner: same store, same orders topic, same market
    restarted = worker(s, CONTRACT, store=crashed.store, publisher=crashed.publisher, clock=crashed.clock)
    market(restarted, eq=132.0, seq=2)
    await own(restarted, 0)
    assert crashed.store.emitted == {"A": {order["event_id"]}}
    stored = await restarted.store.load_account("A")
    assert stored is not None and stored.order == order
    # it works from the holdings it was computed from: the account shows it working, held by it
    assert stored.working is not None and stored.working.event_id == order["event_id"]
    assert {leg.instrument: leg.held_before for leg in stored.working.legs} == {"EQ": 600.0, "BOND": 800.0}
    for _ in range(5):
        restarted.clock.advance(1)
        await restarted.parts.evaluator.run_once()
    assert restarted.parts.counters.passes.total == 5
    assert [o["event_id"] for o in orders(restarted)] == [order["event_id"]], "published once"
    # its fill (EQ sold, BOND bought) answers it before its cooldown
    fills = {
        leg["instrument"]: float(leg["qty"]) * (1 if leg["side"] == "buy" else -1) for leg in order["legs"]
    }
    t = s.topics.positions
    filled = [
        _record(t, 10 + k, {"account": "A", "instrument": i, "qty": held + fills[i], "seq": 4 + k, "ts": 4})
        for k, (i, held) in enumerate((("EQ", 600.0), ("BOND", 800.0)))
    ]
    await restarted.parts.intake.on_records(filled)
    assert "A" not in {
        restarted.parts.accounts.book.accounts.id_of(r) for r in restarted.parts.accounts.working.orders
    }


async def test_a_failed_send_records_nothing_and_the_next_pass_publishes_it() -> None:
    w = worker(settings(), CONTRACT)
    await opened(w)
    quote(w, "EQ", 132.0, 2)
    w.publisher.fail_next(1)
    assert await w.parts.evaluator.run_once() == 0
    assert not orders(w)
    stored = await w.store.load_account("A")
    assert stored is not None and stored.order is None and not w.store.emitted
    assert w.parts.accounts.book.accounts.get("A") in w.parts.accounts.dirty
    assert await w.parts.evaluator.run_once() == 1
    (order,) = orders(w)
    stored = await w.store.load_account("A")
    assert stored is not None and stored.order == order
    assert w.store.emitted == {"A": {order["event_id"]}}


async def test_a_working_order_survives_a_handover_and_a_partial_fill_makes_no_second_order() -> None:
    s = settings()
    w = worker(s, CONTRACT)
    order = await ordered(w)
    stored = await w.store.load_account("A")
    assert stored is not None and stored.working is not None
    assert stored.working.event_id == order["event_id"]
    sold = next(float(leg["qty"]) for leg in order["legs"] if leg["instrument"] == "EQ")
    # a third of the sale fills, then the account changes owner
    partial = {"account": "A", "instrument": "EQ", "qty": 600.0 - sold / 3, "seq": 4, "ts": 4}
    await w.parts.intake.on_records([_record(s.topics.positions, 20, partial)])
    for _ in range(3):
        w.clock.advance(1)
        await w.parts.evaluator.run_once()
    assert len(orders(w)) == 1, "the partial fill is not an answer: the order still works"
    nxt = worker(s, CONTRACT, store=w.store, publisher=w.publisher, clock=w.clock)
    market(nxt, eq=132.0, seq=2)
    await own(nxt, 0)
    for _ in range(3):
        nxt.clock.advance(1)
        await nxt.parts.evaluator.run_once()
    assert len(orders(nxt)) == 1, "the new owner knows the order still works"
    # the cooldown passes unanswered: it is cancelled; what it still has open (two thirds of the sale,
    # the whole buy) keeps the projection in band, so nothing replaces it yet
    nxt.clock.advance(300)
    quote(nxt, "EQ", 132.5, 3)
    quote(nxt, "BOND", 50.0, 3)
    assert await nxt.parts.evaluator.run_once() == 0
    cancel = orders(nxt)[-1]
    assert cancel["type"] == "cancel" and cancel["cancels"] == order["event_id"]
    assert {leg["instrument"]: float(leg["qty"]) for leg in cancel["legs"]} == pytest.approx(
        {
            "EQ": sold * 2 / 3,
            "BOND": next(float(x["qty"]) for x in order["legs"] if x["instrument"] == "BOND"),
        },
        abs=1e-6,
    )
    stored = await nxt.store.load_account("A")
    assert stored is not None and stored.working is None
    assert [o.event_id for o in stored.cancelling] == [order["event_id"]]
    assert stored.unanswered is not None and stored.unanswered.details["attempts"] == 1
    # the cancel goes unconfirmed for a cooldown too: re-issued on the holdings (the partial fill)
    nxt.clock.advance(300)
    quote(nxt, "EQ", 132.5, 4)
    quote(nxt, "BOND", 50.0, 4)
    assert await nxt.parts.evaluator.run_once() == 1
    again = orders(nxt)[-1]
    assert again["type"] == "rebalance" and "replaces" not in again and "working" not in again


def _record(topic: str, offset: int, doc: dict[str, object]) -> Record:
    return Record(topic, 0, offset, str(doc["account"]).encode(), orjson.dumps(doc))
