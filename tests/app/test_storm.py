"""The breach-storm guard in-process: its window, and the hold shared through one store by two workers'
evaluators, released by an operator and re-evaluated at current prices."""

from __future__ import annotations

from streamproc.app.accounts import Accounts
from streamproc.app.status import Status
from streamproc.app.storm import StormGuard
from streamproc.core import Book
from streamproc.state.memory import MemoryStore
from streamproc.testkit import ManualClock, RecordingPublisher, worker
from tests.app.kit import CONTRACT, QUIET, market, open_account, orders, own, quote, settings


def test_a_storm_needs_the_share_and_the_minimum_within_the_window() -> None:
    s = settings(STREAMPROC_STORM_MIN_ACCOUNTS="10", STREAMPROC_STORM_SHARE="0.2")
    accounts = Accounts(Book(), cooldown_s=1, settle_s=1)
    g = StormGuard(s, MemoryStore(), accounts)
    assert not g.breaches(0.0, 9, tracked=30)  # under the minimum of 10
    assert g.breaches(1.0, 1, tracked=30)  # 10 >= max(10, 0.2 * 30)
    g2 = StormGuard(s, MemoryStore(), accounts)
    assert not g2.breaches(0.0, 15, tracked=100)  # 15 < 0.2 * 100
    assert not g2.breaches(11.0, 15, tracked=100)  # the first 15 left the window
    g2.muted = True
    assert not g2.breaches(12.0, 100, tracked=100)


async def test_a_storm_one_evaluator_starts_holds_the_other_until_released() -> None:
    s = settings(STREAMPROC_STORM_MIN_ACCOUNTS="2", STREAMPROC_STORM_SHARE="0.01")
    store, publisher, clock = MemoryStore(), RecordingPublisher(2), ManualClock()
    one = worker(s, CONTRACT, partitions=2, store=store, publisher=publisher, clock=clock, token="one")
    two = worker(s, CONTRACT, partitions=2, store=store, publisher=publisher, clock=clock, token="two")
    await own(one, 0)
    await own(two, 1)
    for w, accounts, p in ((one, ("S1", "S2"), 0), (two, ("B",), 1)):
        market(w)
        for a in accounts:
            await open_account(w, a, partition=p)
    clock.advance(1)
    assert await one.parts.evaluator.run_once() == 0 and await two.parts.evaluator.run_once() == 0
    # the market jumps: two breaches at one make a storm (min 2); B alone at two would not
    quote(one, "EQ", 132.0, 2)
    assert await one.parts.evaluator.run_once() == 0
    assert store.storm_ is not None and one.parts.accounts.status[0] == Status.HELD
    quote(two, "EQ", 132.0, 2)
    assert await two.parts.evaluator.run_once() == 0, "two read the storm before publishing"
    assert two.parts.storm.holding and not orders(two)
    assert two.parts.counters.breaches.total == 1
    # released by an operator; the market moved on meanwhile: B trades at the price of now
    await store.release_storm(mute_s=60)
    quote(two, "EQ", 140.0, 3)
    await two.parts.watcher.tick(clock.time(), QUIET)
    assert not two.parts.storm.holding
    assert await two.parts.evaluator.run_once() == 1
    (order,) = orders(two)
    assert order["account"] == "B"
    (eq,) = [leg for leg in order["legs"] if leg["instrument"] == "EQ"]  # type: ignore[union-attr]
    assert eq["side"] == "sell" and float(eq["price"]) == 139.99
    await one.parts.watcher.tick(clock.time(), QUIET)
    assert await one.parts.evaluator.run_once() == 2, "one re-evaluates its held accounts too"
    assert sorted(o["account"] for o in orders(one)) == ["B", "S1", "S2"]  # type: ignore[type-var]
