"""The backtest on small hand-computed histories: each policy trades exactly when and what the rules
say, and the legs are the ones the live pipeline's engine drafts for the same inputs."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from streamproc.app.accounts import Accounts
from streamproc.app.decisions import decide
from streamproc.app.prices import Prices
from streamproc.backtest.engine import Costs, run
from streamproc.backtest.history import History
from streamproc.backtest.policies import Policy
from streamproc.core import Band, Book, LegLimits, Mode

FREE = Costs(fee=0.0, min_notional=0.0, lots={"EQ": 0.0001, "BOND": 0.01})
SIXTY_FORTY = {"EQ": 0.6, "BOND": 0.4}
POLICIES = [
    Policy("buy-and-hold", hold=True),
    Policy("calendar month", calendar="month"),
    Policy("abs ±3", band=Band(abs=0.03)),
    Policy("Leland ±3", band=Band(abs=0.03), mode=Mode.EDGE),
    Policy("abs ±1", band=Band(abs=0.01)),
    Policy("every 10 days ±1", band=Band(abs=0.01), every=10),
]


def path(eq: list[float], bond: list[float] | None = None) -> History:
    """A spread-free history (bid = ask) starting 2024-01-02; the last day is in February."""
    days = [dt.date(2024, 1, 2) + dt.timedelta(days=i) for i in range(len(eq) - 1)] + [dt.date(2024, 2, 1)]
    prices = np.column_stack([eq, bond or [50.0] * len(eq)])
    return History(days, ["EQ", "BOND"], prices.copy(), prices.copy())


def trades_of(result, policy: str) -> list[tuple[int, str, str, float, float]]:
    k = [p.name for p in result.policies].index(policy)
    return [
        (t.day, t.instrument, t.side, round(t.qty, 6), t.price)
        for t in result.trades
        if t.policy == k and t.day > 0
    ]


def test_each_policy_trades_exactly_as_hand_computed() -> None:
    # EQ 100 -> 110 -> 120 -> 120 (Feb 1); BOND 50. Start: 600 EQ + 800 BOND = 100,000 at 60/40.
    result = run(path([100.0, 110.0, 120.0, 120.0]), POLICIES, SIXTY_FORTY, FREE)
    assert [(t.instrument, t.qty) for t in result.trades if t.day == 0 and t.policy == 0] == [
        ("EQ", 600.0),
        ("BOND", 800.0),
    ]
    assert trades_of(result, "buy-and-hold") == []
    # Feb 1 is the first day of a new month: 600 x 120 = 72,000 of 112,000 -> back to 67,200 / 44,800
    assert trades_of(result, "calendar month") == [
        (3, "EQ", "sell", 40.0, 120.0),
        (3, "BOND", "buy", 96.0, 50.0),
    ]
    # day 1: 66,000 / 106,000 = 62.3 % (inside ±3); day 2: 64.3 % -> to target, as the calendar does
    assert trades_of(result, "abs ±3") == [(2, "EQ", "sell", 40.0, 120.0), (2, "BOND", "buy", 96.0, 50.0)]
    # Leland trades to just inside the edge (10 % of the band), 62.7 %: 70,224 of EQ, so 14.8 sold; BOND
    # to 37.3 % would take 35.52, all the sale's 1,776: the funded quantity is rounded down, 35.51
    assert trades_of(result, "Leland ±3") == [(2, "EQ", "sell", 14.8, 120.0), (2, "BOND", "buy", 35.51, 50.0)]
    # ±1 already trades on day 1 (62.3 %): 600 x 110 -> 63,600, selling 21.8181 EQ (lots of 0.0001)
    assert trades_of(result, "abs ±1")[0] == (1, "EQ", "sell", 21.8181, 110.0)
    assert trades_of(result, "every 10 days ±1") == []  # it only looks on days 0, 10, 20, ...
    assert result.values[-1, 0] == pytest.approx(112_000.0)
    assert result.values[-1, 2] == pytest.approx(112_000.0)  # no costs: same value, different mix
    np.testing.assert_allclose(result.weights[-1, 2], [0.6, 0.4])


def test_a_band_trades_back_and_forth_to_target() -> None:
    # EQ 100 -> 125 -> 100: 75,000 / 115,000 = 65.2 % -> sell 48 EQ, buy 120 BOND;
    # then 552 x 100 / 101,200 = 54.5 % -> sell 110.4 BOND, buy 55.2 EQ
    result = run(path([100.0, 125.0, 100.0]), [Policy("abs ±1", band=Band(abs=0.01))], SIXTY_FORTY, FREE)
    assert trades_of(result, "abs ±1") == [
        (1, "EQ", "sell", 48.0, 125.0),
        (1, "BOND", "buy", 120.0, 50.0),
        (2, "BOND", "sell", 110.4, 50.0),
        (2, "EQ", "buy", 55.2, 100.0),
    ]
    np.testing.assert_allclose(result.weights[-1, 0], [0.6, 0.4])


def test_costs_are_charged_per_leg_and_spread_and_small_legs_are_skipped() -> None:
    days = path([100.0, 100.4, 120.0, 120.0])
    days = History(days.dates, days.instruments, days.bid * 0.999, days.ask * 1.001)
    costs = Costs(fee=2.0, min_notional=500.0, lots={"EQ": 1.0, "BOND": 1.0})
    result = run(days, [Policy("abs ±0.1", band=Band(abs=0.001))], SIXTY_FORTY, costs)
    trades = [t for t in result.trades if t.day > 0]
    assert trades and all(t.notional >= 500.0 for t in trades)  # day 1's ~0.1 % drift is too small
    assert {t.day for t in trades} == {2}
    for t in trades:
        assert t.qty == int(t.qty)
        mid = days.mid[t.day, days.instruments.index(t.instrument)]
        assert t.price == pytest.approx(mid * (0.999 if t.side == "sell" else 1.001) / 1.0, rel=1e-9)
        assert t.spread_cost == pytest.approx(abs(t.price - mid) * t.qty)
    # the ledger: value = capital - buys + sells - fees + holdings at the last mid
    held = {"EQ": 0.0, "BOND": 0.0}
    cash = 100_000.0
    for t in result.trades:
        signed = t.qty if t.side == "buy" else -t.qty
        held[t.instrument] += signed
        cash -= signed * t.price + t.fee
    last = dict(zip(days.instruments, days.mid[-1], strict=True))
    assert result.values[-1, 0] == pytest.approx(cash + sum(q * last[i] for i, q in held.items()))
    assert sum(t.fee for t in result.trades) == 2.0 * len(result.trades)


def test_the_backtest_drafts_the_same_legs_as_the_live_pipeline() -> None:
    result = run(path([100.0, 110.0, 120.0, 120.0]), POLICIES, SIXTY_FORTY, FREE)
    backtest = trades_of(result, "abs ±3")
    # the live engine, fed the same account state and quotes as the backtest on day 2
    book = Book()
    accounts = Accounts(book, cooldown_s=300.0, settle_s=0.0)
    prices = Prices(book, max_age_s=1e9, outlier_move=1.0)
    for name, lot in FREE.lots.items():
        prices.set_reference({"instrument": name, "lot": lot})
    prices.accept([{"instrument": "EQ", "bid": 120.0, "ask": 120.0, "seq": 1, "ts": 1}])
    prices.accept([{"instrument": "BOND", "bid": 50.0, "ask": 50.0, "seq": 1, "ts": 1}])
    for seq, (inst, qty) in enumerate((("EQ", 600.0), ("BOND", 800.0), ("CASH", 0.0)), start=1):
        accounts.apply_position({"account": "A", "instrument": inst, "qty": qty, "seq": seq, "ts": 1}, 0, 0.0)
    targets = {
        "account": "A",
        "version": 1,
        "weights": SIXTY_FORTY,
        "band": {"abs": 0.03},
        "min_trade": 0,
        "ts": 1,
    }
    accounts.apply_targets(targets, 0, 0.0)
    (draft,) = decide(accounts, prices, np.array([0]), 1.0, LegLimits()).orders
    live = [
        (leg["instrument"], leg["side"], float(leg["qty"]), float(leg["price"])) for leg in draft.doc["legs"]
    ]
    assert live == [(i, side, qty, price) for _, i, side, qty, price in backtest]


def test_relative_bands_the_5_25_rule_and_halfway_trades() -> None:
    # the deviations: day 1 EQ +2.26 / BOND -2.26 pts, day 2 +4.29 / -4.29 pts
    policies = [
        Policy("rel 10%", band=Band(abs=None, rel=0.10)),  # EQ ±6, BOND ±4 pts: BOND breaches on day 2
        Policy("5/25 rule", band=Band(abs=0.05, rel=0.25)),  # min(5, 15) and min(5, 10): never breached
        Policy("min(5 pts, 10 %)", band=Band(abs=0.05, rel=0.10)),  # BOND's limit is min(5, 4) = 4 pts
        Policy("half, ±3", band=Band(abs=0.03), mode=Mode.HALF),
    ]
    result = run(path([100.0, 110.0, 120.0, 120.0]), policies, SIXTY_FORTY, FREE)
    to_target = [(2, "EQ", "sell", 40.0, 120.0), (2, "BOND", "buy", 96.0, 50.0)]
    assert trades_of(result, "rel 10%") == to_target
    assert trades_of(result, "5/25 rule") == []
    assert trades_of(result, "min(5 pts, 10 %)") == to_target
    # halfway back: EQ to 61.5 % (68,880: sell 26), BOND to 38.5 % (43,120: buy 62.4 with the 3,120)
    half = [(2, "EQ", "sell", 26.0, 120.0), (2, "BOND", "buy", 62.4, 50.0)]
    assert trades_of(result, "half, ±3") == half


def test_calendar_policies_trade_on_the_first_day_of_each_new_period() -> None:
    days = [
        dt.date(2023, 12, 29),
        dt.date(2024, 1, 2),
        dt.date(2024, 2, 1),
        dt.date(2024, 2, 2),
        dt.date(2024, 4, 1),
    ]
    prices = np.column_stack([[100.0, 120.0, 100.0, 120.0, 80.0], [50.0] * 5])
    history = History(days, ["EQ", "BOND"], prices.copy(), prices.copy())
    policies = [Policy(c, calendar=c) for c in ("month", "quarter", "year")]
    result = run(history, policies, SIXTY_FORTY, FREE)
    traded = {
        p.name: sorted({t.day for t in result.trades if t.policy == k and t.day > 0})
        for k, p in enumerate(policies)
    }
    assert traded == {"month": [1, 2, 4], "quarter": [1, 4], "year": [1]}
