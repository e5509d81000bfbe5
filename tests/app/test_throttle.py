"""The order throttle in-process: a burst of 500 breaches at 100 orders/s publishes all 500, in the order
they were first held, over about 4 s (100 at once, then 5 a 50 ms pass), none dropped or duplicated;
the waiting accounts are `throttled`; a notional limit holds what exceeds a minute's budget."""

from __future__ import annotations

from streamproc.app.decisions import Draft
from streamproc.app.throttle import Throttle
from streamproc.testkit import worker
from tests.app.kit import CONTRACT, market, open_account, orders, own, quote, settings


async def test_a_burst_of_500_breaches_goes_out_in_order_at_the_limit() -> None:
    w = worker(settings(STREAMPROC_MAX_ORDERS_PER_S="100"), CONTRACT)
    await own(w, 0)
    market(w)
    names = [f"A{i:03d}" for i in range(500)]
    for name in names:
        await open_account(w, name)
    w.clock.advance(1)
    await w.parts.evaluator.run_once()
    start = w.clock.time()
    quote(w, "EQ", 132.0, 2)  # every account out of band at once
    await w.parts.evaluator.run_once()
    assert len(orders(w)) == 100
    stored = await w.store.load_account(names[-1])
    assert stored is not None and stored.drift is not None and stored.drift["status"] == "throttled"
    assert "100 orders/s" in stored.drift["why"]
    while len(orders(w)) < 500 and w.clock.time() - start < 20:
        w.clock.advance(0.05)
        await w.parts.evaluator.run_once()
    sent = orders(w)
    took = w.clock.time() - start
    assert [o["account"] for o in sent] == names  # all, once each, in the order they were first held
    assert len({o["event_id"] for o in sent}) == 500
    assert 3.5 <= took <= 4.5  # 400 after the first second's 100, at 100/s (clock time, not wall time)
    assert w.parts.counters.throttled.get() > 0
    stored = await w.store.load_account(names[-1])
    assert stored is not None and stored.drift is not None and stored.drift["status"] == "ordered"


def draft(row: int, notional: float) -> Draft:
    leg = {"instrument": "EQ", "side": "buy", "qty": "1", "price": "1", "notional": str(notional)}
    return Draft(row, f"A{row}", 0, f"id{row}", 0, {"legs": [leg]})  # type: ignore[typeddict-item]


def test_a_notional_budget_holds_what_exceeds_a_minute_and_keeps_the_queue_order() -> None:
    t = Throttle(0.0, 100_000.0)
    allowed, held = t.admit([draft(1, 60_000.0), draft(2, 60_000.0), draft(3, 10_000.0)], 0.0)
    # 2 does not fit; 3 would, but waits behind it: first held, first out
    assert [d.row for d in allowed] == [1] and [d.row for d in held] == [2, 3]
    allowed, held = t.admit([draft(3, 10_000.0), draft(2, 60_000.0)], 30.0)
    assert [d.row for d in allowed] == [] and [d.row for d in held] == [2, 3]
    allowed, held = t.admit([draft(3, 10_000.0), draft(2, 60_000.0)], 60.0)  # the minute has passed
    assert [d.row for d in allowed] == [2, 3] and held == []
    big = Throttle(0.0, 1_000.0)
    assert [d.row for d in big.admit([draft(9, 5_000.0)], 0.0)[0]] == [9]  # alone, never starved
