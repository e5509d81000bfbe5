"""The evaluator's pure pass (``Evaluator.step``) and the account and price state it reads: input
replays, settling, the one-open-order gate, cooldown re-issues, suppression on stale prices, storms,
and the order documents it drafts."""

from __future__ import annotations

import numpy as np
import pytest

from streamproc.app.accounts import Accounts, Applied
from streamproc.app.evaluator import Evaluator
from streamproc.app.prices import Prices
from streamproc.app.status import Status
from streamproc.core import PriceFlag
from streamproc.settings import Settings
from streamproc.state.records import AccountRecord
from streamproc.testkit import worker
from streamproc.wire.contract import Contract
from tests.conftest import ROOT

CONTRACT = Contract(ROOT / "schemas")
T0 = 1_800_000_000.0
SETTINGS = Settings.from_env(
    {
        "STREAMPROC_ORDER_COOLDOWN_S": "300",
        "STREAMPROC_ORDER_SETTLE_S": "1",
        "STREAMPROC_QUOTE_MAX_AGE_S": "30",
        "STREAMPROC_OUTLIER_MOVE": "0.5",  # big moves make clear breaches
    }
)
APPLIED, FILLED, FILLED_SUPERSEDED, REPLAY = (
    Applied.APPLIED,
    Applied.FILLED,
    Applied.FILLED_SUPERSEDED,
    Applied.REPLAY,
)


def market(now: float = T0) -> tuple[Accounts, Prices, Evaluator]:
    """Account A, 60/40 EQ/BOND at +-3 points, in the real component graph (no I/O needed for a step)."""
    parts = worker(SETTINGS, CONTRACT).parts
    accounts, prices = parts.accounts, parts.prices
    prices.accept(
        [
            {"instrument": "EQ", "bid": 99.99, "ask": 100.01, "seq": 1, "ts": int(now * 1000)},
            {"instrument": "BOND", "bid": 49.99, "ask": 50.01, "seq": 1, "ts": int(now * 1000)},
        ]
    )
    for seq, (inst, qty) in enumerate((("EQ", 600.0), ("BOND", 800.0), ("CASH", 0.0)), start=1):
        doc = {"account": "A", "instrument": inst, "qty": qty, "seq": seq, "ts": int(now * 1000)}
        assert accounts.apply_position(doc, 0, now) == APPLIED
    targets = {
        "account": "A",
        "version": 1,
        "weights": {"EQ": 0.6, "BOND": 0.4},
        "band": {"abs": 0.03},
        "ts": 1,
    }
    assert accounts.apply_targets(targets, 0, now)
    return accounts, prices, parts.evaluator


def move_eq(prices: Prices, mid: float, seq: int, now: float) -> None:
    prices.accept(
        [{"instrument": "EQ", "bid": mid - 0.01, "ask": mid + 0.01, "seq": seq, "ts": int(now * 1000)}]
    )


def test_replayed_inputs_are_ignored() -> None:
    accounts, _, _ = market()
    old = {"account": "A", "instrument": "EQ", "qty": 1.0, "seq": 2, "ts": 1}
    assert accounts.apply_position(old, 0, T0) == REPLAY
    assert accounts.book.holdings("A")["EQ"] == 600.0
    assert not accounts.apply_targets({"account": "A", "version": 1, "weights": {"EQ": 1.0}, "ts": 1}, 0, T0)


def test_no_evaluation_until_inputs_settle_then_in_band() -> None:
    _accounts, _prices, ev = market()
    assert ev.step(T0 + 0.5).evaluated == 0
    d = ev.step(T0 + 1.1)
    assert d.evaluated == 1 and not d.orders
    assert d.statuses[0]["status"] == "ok" and d.statuses[0]["weights"]["EQ"] == pytest.approx(0.6, abs=1e-3)


def test_one_order_per_breach_until_a_fill_or_the_cooldown() -> None:
    accounts, prices, ev = market()
    ev.step(T0 + 1.1)
    move_eq(prices, 132.34, 2, T0 + 2)
    d = ev.step(T0 + 2)
    (order,) = d.orders
    CONTRACT.validate("orders", order.doc)
    assert order.doc["reason"]["instrument"] == "EQ" and order.doc["inputs"] == {
        "positions_seq": 3,
        "targets_version": 1,
        "attempt": 0,
    }
    accounts.opened(order.row, order.doc, T0 + 2)
    for i in range(5):  # ticks keep it out of band: held
        move_eq(prices, 133.0 + i, 3 + i, T0 + 3 + i)
        assert not ev.step(T0 + 3 + i).orders
    # cooldown over (300 s), no fill: cancelled; the replacement is sized on top of it (it may still
    # fill), so none; once the cancel went unconfirmed for a cooldown too, re-issued (next attempt)
    fresh(prices, 133.0, 8, T0 + 303)
    d = ev.step(T0 + 303)
    (cancel,) = d.cancels
    CONTRACT.validate("orders", cancel.doc)
    assert not d.orders and cancel.doc["cancels"] == order.event_id and cancel.doc["why"] == "unanswered"
    assert {(leg["instrument"], leg["side"]) for leg in cancel.doc["legs"]} == {
        ("EQ", "sell"),
        ("BOND", "buy"),
    }
    accounts.cancelled(cancel.row, order.event_id, T0 + 303)
    assert ev.step(T0 + 400).evaluated == 0, "waiting for the cancel's confirmation"
    t1 = T0 + 603
    fresh(prices, 133.0, 9, t1)
    (again,) = ev.step(t1).orders
    assert again.doc["inputs"]["attempt"] == 1 and again.event_id != order.event_id
    assert "working" not in again.doc and accounts.working.attempts_unanswered(0) == 1
    accounts.opened(again.row, again.doc, t1)
    legs = {leg["instrument"]: float(leg["qty"]) for leg in again.doc["legs"]}
    # a partial fill of the EQ sale and a dividend: the order still works, no second order
    accounts.apply_position(pos("EQ", 600.0 - legs["EQ"] / 3, 4), 0, t1 + 1)
    accounts.apply_position(pos("CASH", 12.5, 5), 0, t1 + 2)
    for t in (t1 + 2.5, t1 + 3.1, t1 + 97):
        assert ev.step(t).evaluated == 0, "held while its order works"
    # the rest of the fill completes both legs (within a lot): evaluated once settled, on the new cash
    accounts.apply_position(pos("EQ", 600.0 - legs["EQ"], 6), 0, t1 + 98)
    assert ev.step(t1 + 98.1).evaluated == 0
    accounts.apply_position(pos("BOND", 800.0 + legs["BOND"], 7), 0, t1 + 99)
    assert ev.step(t1 + 99.5).evaluated == 0, "settling"
    assert ev.step(t1 + 100.1).evaluated == 1 and 0 not in accounts.working
    assert accounts.working.drain_changed() == [0] and accounts.working.last[0] == again.event_id
    assert accounts.working.attempts_unanswered(0) == 0, "its fill answered it"


def test_an_unanswered_order_is_cancelled_and_reissued_on_the_holdings_after_its_cancel() -> None:
    accounts, prices, ev = market()
    ev.step(T0 + 1.1)
    move_eq(prices, 132.34, 2, T0 + 2)
    (order,) = ev.step(T0 + 2).orders
    accounts.opened(order.row, order.doc, T0 + 2)
    accounts.apply_position(pos("CASH", 1.0, 4), 0, T0 + 3)  # not its answer
    assert ev.step(T0 + 200).evaluated == 0 and 0 in accounts.working
    fresh(prices, 132.5, 3, T0 + 302.5)
    d = ev.step(T0 + 302.5)
    (cancel,) = d.cancels
    assert not d.orders, "sized on top of the unanswered order, which may still fill"
    accounts.cancelled(cancel.row, order.event_id, T0 + 302.5)
    assert 0 not in accounts.working and [o.event_id for o in accounts.working.cancelling[0]] == [
        order.event_id
    ]
    fresh(prices, 132.5, 4, T0 + 602.5)
    (again,) = ev.step(T0 + 602.5).orders
    assert again.doc["inputs"]["positions_seq"] == 4 and again.doc["inputs"]["attempt"] == 0
    assert 0 not in accounts.working.cancelling, "its cancel went unconfirmed for a cooldown"


def fresh(prices: Prices, eq: float, seq: int, now: float) -> None:
    """EQ at ``eq`` and BOND at 50, both quoted at ``now``."""
    move_eq(prices, eq, seq, now)
    prices.accept([{"instrument": "BOND", "bid": 49.99, "ask": 50.01, "seq": seq, "ts": int(now * 1000)}])


def test_stale_price_suppresses_and_recovery_evaluates_immediately() -> None:
    accounts, prices, ev = market()
    ev.step(T0 + 1.1)
    bond_ts = int((T0 + 1.1) * 1000)
    # EQ keeps quoting (out of band), BOND goes silent for longer than 30 s
    move_eq(prices, 132.34, 2, T0 + 40)
    d = ev.step(T0 + 40)
    assert not d.orders and d.suppressed == 1
    assert d.statuses[0] == {
        "status": "suppressed",
        "evaluated_at": int((T0 + 40) * 1000),
        "status_since": int((T0 + 40) * 1000),
        "why": "suppressed: quote_stale BOND",
    }
    assert accounts.status[0] == Status.SUPPRESSED
    prices.accept([{"instrument": "BOND", "bid": 49.99, "ask": 50.01, "seq": 2, "ts": bond_ts + 40_000}])
    (order,) = ev.step(T0 + 41).orders
    assert order.doc["as_of"] == bond_ts + 40_000


def test_unmanaged_accounts_and_unowned_accounts_are_not_evaluated() -> None:
    accounts, _prices, ev = market()
    accounts.apply_position({"account": "U", "instrument": "EQ", "qty": 5.0, "seq": 1, "ts": 1}, 1, T0)
    accounts.release([0])
    d = ev.step(T0 + 2)
    assert d.evaluated == 0, "A is not owned, U has no targets"
    accounts.resume([0])
    assert ev.step(T0 + 2).evaluated == 1


def test_prices_drop_replays_within_and_across_batches() -> None:
    _, prices, _ = market()
    move_eq(prices, 101.0, 5, T0)
    move_eq(prices, 90.0, 5, T0)
    batch = prices.accept(
        [
            {"instrument": "EQ", "bid": 1.0, "ask": 1.0, "seq": 4, "ts": 1},
            {"instrument": "EQ", "bid": 102.0, "ask": 102.0, "seq": 6, "ts": 1},
            {"instrument": "EQ", "bid": 103.0, "ask": 103.0, "seq": 6, "ts": 1},
        ]
    )
    assert prices.duplicates == 3 and prices.snapshot(batch)["EQ"].bid == 102.0
    assert np.isclose(prices.book.price("EQ")[0], 102.0)


def pos(inst: str, qty: float, seq: int) -> dict:
    return {"account": "A", "instrument": inst, "qty": qty, "seq": seq, "ts": seq}


def test_a_position_gap_quarantines_until_the_late_record_fills_it() -> None:
    accounts, _prices, ev = market()
    ev.step(T0 + 1.1)
    assert accounts.apply_position(pos("BOND", 100.0, 6), 0, T0 + 2) == APPLIED  # 4 and 5 missing
    (ep,) = accounts.quarantine.open_episodes(lambda r: True).values()
    assert ep.id == "position_gap:A:4" and ep.details["missing_to"] == 5
    d = ev.step(T0 + 3.5)
    assert not d.orders and d.statuses[0]["why"] == "suppressed: position_gap seq 4-5"
    assert accounts.quarantine.record(0).gaps["ranges"] == [[4, 5]]
    # seq 4 is an older BOND quantity: it fills the gap but must not overwrite seq 6's 100
    assert accounts.apply_position(pos("BOND", 700.0, 4), 0, T0 + 4) == FILLED_SUPERSEDED
    assert accounts.book.holdings("A")["BOND"] == 100.0
    assert accounts.apply_position(pos("BOND", 700.0, 4), 0, T0 + 4) == REPLAY  # not missing any more
    assert accounts.apply_position(pos("CASH", 1.0, 5), 0, T0 + 4) == FILLED
    (closed,) = accounts.quarantine.drain_closed()
    assert (
        closed.id == ep.id and closed.details["filled_at_seq"] == 5 and accounts.quarantine.record(0) is None
    )
    (order,) = ev.step(T0 + 5.1).orders
    assert order.doc["inputs"]["positions_seq"] == 6


def test_a_quarantine_is_restored_on_load_and_can_be_lifted() -> None:
    accounts, _, _ = market()
    accounts.apply_position(pos("BOND", 100.0, 9), 0, T0 + 2)
    stored = accounts.quarantine.record(0)
    fresh, _, _ = market()
    rec = AccountRecord("A", 0, {"EQ": 600.0, "BOND": 100.0}, 0.0, 9, 9, None, None, gap=stored)
    fresh.load([rec], T0)
    assert fresh.quarantine.mask(np.array([0])).tolist() == [True]
    assert fresh.clear_gap(0, reconciled_at=1) and not fresh.clear_gap(0)
    assert fresh.quarantine.drain_closed()[0].details["reconciled_at"] == 1


def test_a_quarantine_times_out_only_when_configured() -> None:
    accounts, _, _ = market()
    accounts.apply_position({**pos("BOND", 100.0, 9), "ts": 1_000}, 0, 1.0)  # detected at 1 s
    assert accounts.expire_gaps(1_000_000, 0) == []  # 0: only an operator lifts it
    assert accounts.expire_gaps(60_000, 60) == []  # not 60 s since it was detected
    assert accounts.expire_gaps(61_001, 60) == ["A"] and not accounts.quarantine
    assert accounts.quarantine.drain_closed()[0].details["timed_out_after_s"] == 60


def test_a_storm_holds_this_passes_orders_as_held_statuses() -> None:
    accounts, prices, ev = market()
    ev.step(T0 + 1.1)
    move_eq(prices, 132.34, 2, T0 + 2)
    ev.storm.storm = {"alert_id": "breach_storm:n.orders:1", "since_ms": 1, "details": {}}  # held by a storm
    held = ev.step(T0 + 2)
    ev.storm.storm = None
    assert not held.orders and held.new_breaches == 1 and accounts.status[0] == Status.HELD
    assert held.statuses[0]["status"] == "held"
    d = ev.step(T0 + 2)  # no change, no storm: nothing new to evaluate
    accounts.dirty.add(0)  # what a release does
    (order,) = ev.step(T0 + 2.1).orders
    assert d.new_breaches == 0 and order.account == "A"


def test_only_referenced_instruments_raise_quote_stale() -> None:
    accounts, prices, _ev = market()
    prices.accept([{"instrument": "OTHER", "bid": 9.0, "ask": 11.0, "seq": 1, "ts": int(T0 * 1000)}])
    now_ms = int((T0 + 31) * 1000)
    prices.refresh_stale(now_ms)
    referenced = accounts.book.referenced()
    episodes = prices.stale_episodes(referenced, now_ms, None)
    assert sorted(k[1][1] for k in episodes) == ["BOND", "EQ"]
    assert episodes[("quote_stale", ("instrument", "EQ"))].id == f"quote_stale:EQ:{int(T0 * 1000)}"


def test_a_crossed_quote_followed_by_silence_hands_over_to_quote_stale() -> None:
    _, prices, _ = market()
    prices.accept([{"instrument": "EQ", "bid": 101.0, "ask": 100.0, "seq": 2, "ts": int(T0 * 1000)}])
    assert prices.book.price("EQ")[2] & PriceFlag.CROSSED
    prices.refresh_stale(int((T0 + 31) * 1000))
    (closed,) = prices.checks.drain_closed()
    assert closed.type == "quote_crossed" and closed.details["superseded_by"] == "quote_stale"
    flags = prices.book.price("EQ")[2]
    assert flags & PriceFlag.STALE and not flags & PriceFlag.CROSSED


def test_an_atomic_change_is_applied_whole_and_a_late_one_only_where_not_superseded() -> None:
    accounts, _prices, ev = market()
    ev.step(T0 + 1.1)
    fill = {
        "account": "A",
        "changes": [{"instrument": "EQ", "qty": "500"}, {"instrument": "CASH", "qty": "10000"}],
        "seq": 4,
        "ts": 4,
    }
    CONTRACT.validate("positions", fill)
    assert accounts.apply_position(fill, 0, T0 + 2) == APPLIED
    assert accounts.book.holdings("A")["EQ"] == 500.0 and accounts.book.cash("A") == 10_000.0
    # seq 7 arrives before 5 and 6 (a gap); then 5, an atomic change, of which CASH was superseded by 7
    assert accounts.apply_position(pos("CASH", 20.0, 7), 0, T0 + 3) == APPLIED
    late = {
        **fill,
        "changes": [{"instrument": "BOND", "qty": 1.0}, {"instrument": "CASH", "qty": 9.0}],
        "seq": 5,
    }
    assert accounts.apply_position(late, 0, T0 + 4) == FILLED
    assert accounts.book.holdings("A")["BOND"] == 1.0 and accounts.book.cash("A") == 20.0


def test_a_loaded_account_waits_for_its_settle_window_before_it_is_evaluated() -> None:
    fresh, _prices, ev = market()
    targets = {
        "account": "A",
        "version": 1,
        "weights": {"EQ": 0.6, "BOND": 0.4},
        "band": {"abs": 0.03},
        "ts": 1,
    }
    rec = AccountRecord("A", 0, {"EQ": 600.0, "BOND": 800.0}, 0.0, 3, 3, targets, None)
    fresh.load([rec], T0 + 10)
    assert ev.step(T0 + 10.5).evaluated == 0, "a cash record may still follow the instrument record"
    assert ev.step(T0 + 11.1).evaluated == 1
