"""Calendar rebalancing live, on XNYS through a year end driven by a settable clock: a quarterly rule
trades on the first trading day of the quarter only, once (across a restart too), the backtest's
quarterly rule gives the same trades for the same prices, and ``max_runs_per_day`` holds a second
breach of the day until the next trading day."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import orjson

from streamproc.app.deadletters import Record
from streamproc.backtest.engine import Costs, run
from streamproc.backtest.history import History
from streamproc.backtest.policies import Policy
from streamproc.backtest.portfolios import Portfolio
from streamproc.core.calendar_rule import CalendarRule, Period
from streamproc.testkit import worker
from tests.app.kit import CONTRACT, orders, own
from tests.app.markets import Market, at

QUARTERLY = {"every": "quarter", "tolerance": 0.01, "bands": False}
# one quote a day at 15:00 UTC (the NYSE is open): Christmas week, the holiday, the first days of 2027
DAYS = ["2026-12-28", "2026-12-29", "2026-12-30", "2026-12-31", "2027-01-04", "2027-01-05", "2027-01-06"]
EQ = [100.0, 110.0, 111.0, 112.0, 112.0, 125.0, 126.0]
BOND = [50.0, 50.0, 50.5, 50.0, 49.0, 49.0, 49.5]


async def _records(m: Market, docs: list[tuple[str, dict[str, Any]]]) -> None:
    await m.w.parts.intake.on_records(
        [
            Record(topic, 0, k, str(doc["account"]).encode(), orjson.dumps(doc))
            for k, (topic, doc) in enumerate(docs)
        ]
    )


async def _targets(m: Market, **extra: Any) -> None:
    doc = {"account": "A", "version": 2, "weights": {"EQ": 0.6, "BOND": 0.4}, "min_trade": 50, **extra}
    await _records(m, [(m.w.parts.settings.topics.targets, {**doc, "ts": m.ms()})])


async def _fill(m: Market, order: dict[str, Any], seq: int) -> int:
    """Order management fills ``order`` in full: the account's new positions (one record per leg and
    its cash); returns the next seq."""
    stored = await m.w.store.load_account("A")
    assert stored is not None
    held, cash = dict(stored.holdings), stored.cash
    t = m.w.parts.settings.topics.positions
    docs = []
    for leg in order["legs"]:
        qty = float(leg["qty"]) * (1 if leg["side"] == "buy" else -1)
        held[leg["instrument"]] = held.get(leg["instrument"], 0.0) + qty
        cash -= qty * float(leg["price"])
        docs.append((t, {"account": "A", "instrument": leg["instrument"], "qty": held[leg["instrument"]]}))
    docs.append((t, {"account": "A", "instrument": "CASH", "qty": max(cash, 0.0)}))
    out = []
    for k, (topic, doc) in enumerate(docs):
        out.append((topic, {**doc, "seq": seq + k, "ts": m.ms()}))
    await _records(m, out)
    return seq + len(docs)


async def _day(m: Market, k: int) -> None:
    """Day ``k`` of DAYS at 15:00 UTC: its quotes, then a pass."""
    m.clock.advance(at(f"{DAYS[k]}T15:00:00") - m.clock.time())
    m.quote("EQ", EQ[k])
    m.quote("BOND", BOND[k])
    await m.step(1)


async def test_a_quarterly_rule_trades_on_the_first_trading_day_of_the_quarter_once() -> None:
    m = Market("2026-12-28T14:55:00")
    await m.start()
    await _targets(m, calendar=QUARTERLY)
    await _day(m, 0)  # its first look (2026-Q4): at target, nothing to do
    for k in (1, 2, 3):  # EQ rallies to 62.7 %: off by more than 1 point, but only the calendar trades
        await _day(m, k)
        assert orders(m.w) == [], DAYS[k]
    assert (await m.drift())["status"] == "ok"
    await m.step(86_400)  # New Year's Day: the exchange is closed, no run
    assert orders(m.w) == []

    await _day(m, 4)  # Monday 2027-01-04, the first trading day of Q1
    (order,) = orders(m.w)
    assert order["reason"]["calendar"] == {"every": "quarter", "period": "2027-Q1"}
    reason = order["reason"]  # the weight furthest off (60/40: EQ and BOND by as much), against 1 point
    assert abs(reason["weight"] - reason["target"]) > 0.01 and reason["band"] == 0.01, reason
    assert [(leg["instrument"], leg["side"]) for leg in order["legs"]] == [("EQ", "sell"), ("BOND", "buy")]
    CONTRACT.validate("orders", order)
    after = order["weights_after"]
    assert abs(after["EQ"] - 0.6) < 0.001 and abs(after["BOND"] - 0.4) < 0.001
    await _fill(m, order, 4)
    await m.step(5)
    for k in (5, 6):  # EQ rallies again: Q1's run is done
        await _day(m, k)
    assert len(orders(m.w)) == 1

    # a worker restarted on the same store remembers the quarter's run
    stored = await m.w.store.load_account("A")
    assert stored is not None and stored.calendar_run is not None
    again = worker(m.w.parts.settings, CONTRACT, clock=m.clock, store=m.w.store, publisher=m.w.publisher)
    await own(again, 0)
    again.parts.prices.accept(
        [
            {"instrument": i, "bid": p - 0.01, "ask": p + 0.01, "seq": 99, "ts": m.ms()}
            for i, p in (("EQ", 127.0), ("BOND", 49.0))
        ]
    )
    m.clock.advance(1)
    await again.parts.evaluator.run_once()
    assert len(orders(again)) == 1  # the one from before the restart


async def test_the_backtests_quarterly_rule_gives_the_live_trades_for_the_same_prices() -> None:
    days = [dt.date.fromisoformat(d) for d in DAYS]
    mid = np.array([EQ, BOND]).T
    history = History(days, ["EQ", "BOND"], mid - 0.01, mid + 0.01)
    rule = CalendarRule(Period.QUARTER, tolerance=0.01)
    result = run(
        history,
        [Policy("quarterly 1 pt", calendar=rule)],
        Portfolio("60/40", {"EQ": 0.6, "BOND": 0.4}),
        Costs(fee=0.0, min_notional=50.0),
        capital=100_000.0,
    )
    bought = {t.instrument: t.qty for t in result.trades if t.day == 0}
    backtest = [(t.day, t.instrument, t.side, round(t.qty, 4)) for t in result.trades if t.day > 0]
    assert [d for d, *_ in backtest] == [4, 4], backtest  # 2027-01-04 only

    # live: the same account (the backtest's day-0 purchase) and the same daily prices
    m = Market("2026-12-28T14:55:00")
    await m.start()
    spent = sum(q * (EQ[0] + 0.01 if i == "EQ" else BOND[0] + 0.01) for i, q in bought.items())
    t = m.w.parts.settings.topics.positions
    await _records(
        m,
        [
            (t, {"account": "A", "instrument": i, "qty": q, "seq": 4 + k, "ts": m.ms()})
            for k, (i, q) in enumerate([*bought.items(), ("CASH", 100_000.0 - spent)])
        ],
    )
    await _targets(m, calendar={"every": "quarter", "tolerance": 0.01})
    m.clock.advance(1)
    await _day(m, 0)
    live = []
    seq = 7
    for k in range(1, len(DAYS)):
        await _day(m, k)
        new = orders(m.w)[len(live) :]
        for order in new:
            live += [
                (k, leg["instrument"], leg["side"], round(float(leg["qty"]), 4)) for leg in order["legs"]
            ]
            seq = await _fill(m, order, seq)
            await m.step(1)
    assert sorted(live) == sorted(backtest)


async def test_max_runs_per_day_holds_a_second_breach_until_the_next_trading_day() -> None:
    m = Market("2026-12-28T14:55:00")
    await m.start()
    await _targets(m, band={"abs": 0.03}, max_runs_per_day=1)
    await _day(m, 0)
    m.quote("EQ", 135.0)  # out of band: the day's run
    await m.step(1)
    (first,) = orders(m.w)
    await _fill(m, first, 4)
    await m.step(1)
    m.quote("EQ", 180.0)  # out of band again the same day: waits
    await m.step(1)
    assert len(orders(m.w)) == 1
    drift = await m.drift()
    assert drift["status"] == "scheduled" and "max_runs_per_day 1" in drift["why"], drift
    assert "weights" in drift
    m.clock.advance(at("2026-12-29T14:31:00") - m.clock.time())
    m.quote("EQ", 180.0)
    m.quote("BOND", 50.0)
    await m.step(1)
    assert len(orders(m.w)) == 2  # the next trading day's run
