"""Execution reports in-process: they update the working order (a repeat is ignored, an unknown or
contradicting one dead-lettered), a fully answered order releases its account, and a rejection holds it,
raising order_rejected, until one of its inputs changes."""

from __future__ import annotations

from typing import Any

import orjson

from streamproc.app.counters import Outcome
from streamproc.app.deadletters import Record
from streamproc.testkit import InMemoryWorker, worker
from tests.app.kit import CONTRACT, market, ordered, orders, own, quote, settings


def report(order: dict[str, Any], exec_id: str, **states: tuple[str, float]) -> dict[str, Any]:
    """A report for ``order``: instrument -> (state, cum_qty), leaves the rest (0 when terminal)."""
    legs = []
    for leg in order["legs"]:
        state, cum = states.get(leg["instrument"], ("accepted", 0.0))
        leaves = 0.0 if state in ("filled", "rejected", "cancelled", "expired") else float(leg["qty"]) - cum
        legs.append({"instrument": leg["instrument"], "state": state, "cum_qty": cum, "leaves_qty": leaves})
        if state == "rejected":
            legs[-1]["reason"] = "restricted instrument"
    doc = {"account": "A", "event_id": order["event_id"], "exec_id": exec_id, "legs": legs, "ts": 1}
    CONTRACT.validate("executions", doc)
    return doc


async def send(w: InMemoryWorker, *docs: dict[str, Any], offset: int = 100) -> None:
    topic = w.parts.settings.topics.executions
    await w.parts.intake.on_records(
        [Record(topic, 0, offset + k, b"A", orjson.dumps(d)) for k, d in enumerate(docs)]
    )


def dead(w: InMemoryWorker) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for r in w.publisher.sent(w.parts.settings.topics.deadletter)]


async def test_reports_update_the_working_order_and_bad_ones_are_dead_lettered() -> None:
    w = worker(settings(), CONTRACT)
    order = await ordered(w)
    qty = {leg["instrument"]: float(leg["qty"]) for leg in order["legs"]}
    part = report(order, "x1", EQ=("partially_filled", qty["EQ"] / 2))
    unknown = {**part, "exec_id": "x2", "event_id": "00000000-0000-5000-8000-000000000000"}
    contradicting = report(order, "x3", EQ=("partially_filled", qty["EQ"] / 2))
    contradicting["legs"][0]["leaves_qty"] = qty["EQ"]  # cum + leaves > ordered
    await send(w, part, part, unknown, contradicting)
    stored = await w.store.load_account("A")
    assert stored is not None and stored.working is not None and stored.working.exec_ids == ("x1",)
    eq = next(leg for leg in stored.working.legs if leg.instrument == "EQ")
    assert eq.state == "partially_filled" and eq.cum_qty == qty["EQ"] / 2
    assert w.parts.counters.messages.get("executions", Outcome.DUPLICATE) == 1
    reasons = [d["error"] for d in dead(w)]
    assert len(reasons) == 2 and "not an order working for account A" in reasons[0]
    assert "is not the ordered" in reasons[1]
    for _ in range(3):  # partially filled: still held, no second order
        w.clock.advance(1)
        await w.parts.evaluator.run_once()
    assert len(orders(w)) == 1


async def test_a_filled_order_releases_its_account() -> None:
    w = worker(settings(), CONTRACT)
    order = await ordered(w)
    filled = {leg["instrument"]: ("filled", float(leg["qty"])) for leg in order["legs"]}
    await send(w, report(order, "f1", **filled))
    stored = await w.store.load_account("A")
    assert stored is not None and stored.working is None
    assert 0 not in w.parts.accounts.working and w.parts.accounts.working.last[0] == order["event_id"]
    await send(w, report(order, "f1", **filled), offset=200)  # a repeat after the answer: ignored
    assert w.parts.counters.messages.get("executions", Outcome.REPLAYED) == 1 and not dead(w)


async def test_a_rejection_holds_the_account_and_alerts_until_an_input_changes() -> None:
    w = worker(settings(), CONTRACT)
    order = await ordered(w)
    await send(w, report(order, "r1", BOND=("rejected", 0.0), EQ=("cancelled", 0.0)))
    stored = await w.store.load_account("A")
    assert stored is not None and stored.drift is not None and stored.drift["status"] == "rejected"
    assert "BOND (restricted instrument)" in stored.drift["why"]
    w.parts.watch.tick = 1  # the watch has run once
    for _ in range(3):
        w.clock.advance(400)  # well past the cooldown: still not retried
        quote(w, "EQ", 132.0 + _, 3 + _)
        quote(w, "BOND", 50.0, 3 + _)
        await w.parts.evaluator.run_once()
    assert len(orders(w)) == 1
    alerts = [orjson.loads(r.value) for r in w.publisher.sent(w.parts.settings.topics.alerts)]
    (fired,) = [a for a in alerts if a["type"] == "order_rejected"]
    assert fired["state"] == "firing" and fired["subject"] == {"account": "A"}
    assert (
        fired["details"]["event_id"] == order["event_id"] and fired["runbook"] == "runbooks/order_rejected.md"
    )
    # a restart keeps the rejection
    nxt = worker(settings(), CONTRACT, store=w.store, publisher=w.publisher, clock=w.clock)
    await own(nxt, 0)
    market(nxt, eq=135.0, seq=10)
    nxt.parts.watch.tick = 1
    nxt.clock.advance(1)
    await nxt.parts.evaluator.run_once()
    assert len(orders(nxt)) == 1
    # a position record (cash deposit) is a changed input: released, evaluated, a new order
    deposit = {"account": "A", "instrument": "CASH", "qty": 100.0, "seq": 4, "ts": 4}
    await nxt.parts.intake.on_records(
        [Record(nxt.parts.settings.topics.positions, 0, 50, b"A", orjson.dumps(deposit))]
    )
    nxt.clock.advance(1)
    assert await nxt.parts.evaluator.run_once() == 1
    alerts = [orjson.loads(r.value) for r in w.publisher.sent(w.parts.settings.topics.alerts)]
    assert [a["state"] for a in alerts if a["type"] == "order_rejected"] == ["firing", "resolved"]
