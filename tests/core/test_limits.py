"""Platform limits in the planner: per instrument, tier and default (first stated wins), each leg cut to
its max notional, a spread over its budget not traded, a restricted instrument not bought, and every
leg's limit price the slippage budget past the quote."""

from __future__ import annotations

import math

import numpy as np
import pytest

from streamproc.core import Band, Book
from streamproc.core.limits import LevelLimits, Limits


def limits(**over: object) -> Limits:
    return Limits(
        version="t1",
        tiers=("large", "bond", "micro"),
        default=LevelLimits(max_leg_notional=50_000.0, slippage_bps=10.0),
        tier={"micro": LevelLimits(band=Band(abs=0.02), spread_budget_bps=100.0, max_leg_notional=5_000.0)},
        instrument={"MC2": LevelLimits(eligible=False, slippage_bps=50.0)},
        **over,  # type: ignore[arg-type]
    )


def test_the_first_level_that_states_a_limit_wins() -> None:
    lim = limits()
    assert lim.resolve("EQ", "large")[:5] == (50_000.0, math.inf, 10.0, True, math.inf)  # the default
    assert lim.resolve("MC1", "micro")[:5] == (
        5_000.0,
        100.0,
        10.0,
        True,
        math.inf,
    )  # the tier over the default
    assert lim.resolve("MC2", "micro")[:5] == (
        5_000.0,
        100.0,
        50.0,
        False,
        math.inf,
    )  # the instrument over both
    assert lim.resolve("X", None).max_leg_notional == 50_000.0
    assert Limits().resolve("X", "micro")[:5] == (
        math.inf,
        math.inf,
        0.0,
        True,
        math.inf,
    )  # built in: no limits


def test_tiers_are_declared_and_matched_case_insensitively() -> None:
    lim = limits()
    assert [lim.tier_of(t) for t in ("MICRO", "Large", "micro", "microcap")] == [
        "micro",
        "large",
        "micro",
        None,
    ]
    with pytest.raises(ValueError, match="not declared"):
        Limits(tiers=("large",), tier={"micro": LevelLimits(spread_budget_bps=5.0)})
    with pytest.raises(ValueError, match="twice"):
        Limits(tiers=("micro", "MICRO"))
    with pytest.raises(ValueError, match="max_leg_notional"):
        LevelLimits(max_leg_notional=0.0)


def book_with(lim: Limits) -> Book:
    book = Book(limits=lim)
    for name, tier, lot in (("EQ", "large", 0.0001), ("MC1", "micro", 1.0), ("MC2", "micro", 1.0)):
        book.set_instrument(name, lot=lot, tier=tier)
    return book


def test_legs_respect_max_notional_spread_budget_eligibility_and_carry_limit_prices() -> None:
    book = book_with(limits())
    book.set_price("EQ", 99.99, 100.01)  # 2 bps
    book.set_price("MC1", 9.95, 10.05)  # 100 bps: at its budget, traded
    book.set_price("MC2", 9.95, 10.05)
    # 200,000: EQ held at 180,000 against 60 %; the microcaps at 0 against 10 % each
    book.set_holding("A", "EQ", 1800.0)
    book.set_cash("A", 20_000.0)
    book.set_targets("A", {"EQ": 0.6, "MC1": 0.1, "MC2": 0.1}, band=Band(abs=0.03))
    plan = book.plan(book.evaluate())
    legs = {book.instruments.id_of(leg.instrument): leg for leg in plan.legs(0)}
    assert set(legs) == {"EQ", "MC1"}  # MC2 is restricted: not bought
    assert legs["EQ"].side == "sell" and legs["EQ"].notional <= 50_000.0
    assert legs["EQ"].qty == pytest.approx(
        500.05, abs=1e-9
    )  # cut to 50,000 at the bid (99.99), on the lot grid
    assert legs["MC1"].side == "buy" and legs["MC1"].qty == 497.0  # 5,000 / 10.05, whole shares
    assert legs["EQ"].limit_price == pytest.approx(99.99 * (1 - 0.001))
    assert legs["MC1"].limit_price == pytest.approx(10.05 * (1 + 0.001))
    assert plan.skipped_restricted is not None and plan.skipped_restricted[0].any()

    book.set_price("MC1", 9.9, 10.1)  # 200 bps > 100: not traded, and said so
    plan = book.plan(book.evaluate())
    assert plan.skipped_spread[0].any()
    traded = {book.instruments.id_of(leg.instrument) for leg in plan.legs(0)}
    assert traded == {"EQ"}


def test_a_restricted_instrument_is_still_sold() -> None:
    book = book_with(limits())
    book.set_price("EQ", 100.0, 100.0)
    book.set_price("MC2", 10.0, 10.0)
    book.set_holding("A", "MC2", 400.0)  # 4,000 of 100,000 against a 0 target
    book.set_holding("A", "EQ", 960.0)
    book.set_targets("A", {"EQ": 1.0}, band=Band(abs=0.03))
    (sell, buy) = book.plan(book.evaluate()).legs(0)
    assert (book.instruments.id_of(sell.instrument), sell.side, sell.qty) == ("MC2", "sell", 400.0)
    assert book.instruments.id_of(buy.instrument) == "EQ"


def test_without_limits_nothing_changes_but_the_limit_price_is_the_quote() -> None:
    book = Book()
    book.set_instrument("EQ", lot=1.0)
    book.set_price("EQ", 99.0, 101.0)
    book.set_cash("A", 10_000.0)
    book.set_targets("A", {"EQ": 1.0})
    (leg,) = book.plan(book.evaluate()).legs(0)
    assert leg.limit_price == 101.0 and np.isfinite(leg.notional)


def eq_and_micro(micro: LevelLimits) -> Book:
    """EQ (large) at 100 and MC (micro, ``micro`` limits) at 10, whole shares; A with 100,000 in cash."""
    book = Book(limits=Limits(tiers=("large", "micro"), tier={"micro": micro}))
    book.set_instrument("EQ", lot=1.0, tier="large")
    book.set_instrument("MC", lot=1.0, tier="micro")
    book.set_price("EQ", 100.0, 100.0)
    book.set_price("MC", 10.0, 10.0)
    book.set_cash("A", 100_000.0)
    return book


def test_a_leg_is_at_most_its_share_of_the_displayed_size_and_the_rest_waits() -> None:
    book = eq_and_micro(LevelLimits(max_participation=0.1))
    book.set_targets("A", {"EQ": 0.5, "MC": 0.5})  # wants 5,000 MC and 500 EQ
    idx = book.instrument_indices(["EQ", "MC"])
    book.apply_sizes(idx, np.array([50.0, 20_000.0]), np.array([50.0, 12_345.0]))
    plan = book.plan(book.evaluate())
    legs = {book.instruments.id_of(leg.instrument): leg.qty for leg in plan.legs(0)}
    assert legs == {"EQ": 500.0, "MC": 1234.0}  # 10 % of 12,345 shown at the ask, whole shares; EQ uncapped
    assert plan.waiting is not None
    waiting = {
        book.instruments.id_of(int(plan.instruments[0, s])): float(plan.waiting[0, s]) for s in range(2)
    }
    assert waiting == {"EQ": 0.0, "MC": 5000.0 - 1234.0}
    # no sizes on the quote: nothing is capped
    book.apply_sizes(idx, np.full(2, np.nan), np.full(2, np.nan))
    plan = book.plan(book.evaluate())
    assert {book.instruments.id_of(leg.instrument): leg.qty for leg in plan.legs(0)}["MC"] == 5000.0
    assert plan.waiting is None


def test_a_sell_is_capped_by_the_bid_size() -> None:
    lim = Limits(tiers=("micro",), default=LevelLimits(max_participation=0.5))
    book = Book(limits=lim)
    book.set_instrument("MC", lot=1.0, tier="micro")
    book.set_price("MC", 10.0, 10.0)
    book.apply_sizes(book.instrument_indices(["MC"]), np.array([300.0]), np.array([1e9]))
    book.set_holding("A", "MC", 1000.0)
    book.set_targets("A", {})  # exit: 1,000 wanted, 150 shown at the bid x 0.5
    (leg,) = book.plan(book.evaluate()).legs(0)
    assert (leg.side, leg.qty) == ("sell", 150.0)


def test_halted_instruments_get_no_legs_reducing_ones_only_sells_and_a_halted_account_none() -> None:
    from streamproc.core.trading import TradingStates

    def state(scope: str, ident: str, value: str) -> dict[str, object]:
        return {"scope": scope, "id": ident, "state": value, "reason": "", "by": "t", "at_ms": 1}

    def plan_of(docs: dict[str, dict[str, object]]) -> dict[str, tuple[str, float]]:
        book = Book(limits=Limits(tiers=("large", "bond"), tier={}))
        book.set_trading(TradingStates(docs))  # type: ignore[arg-type]
        for name, tier in (("EQ", "large"), ("BOND", "bond"), ("EQ2", "large")):
            book.set_instrument(name, lot=1.0, tier=tier)
            book.set_price(name, 100.0, 100.0)
        book.set_holding("A", "EQ", 700.0)  # 70 / 20 / 10 against 50 / 30 / 20
        book.set_holding("A", "BOND", 200.0)
        book.set_holding("A", "EQ2", 100.0)
        book.set_targets("A", {"EQ": 0.5, "BOND": 0.3, "EQ2": 0.2})
        plan = book.plan(book.evaluate())
        return {book.instruments.id_of(leg.instrument): (leg.side, leg.qty) for leg in plan.legs(0)}

    everything = {"EQ": ("sell", 200.0), "BOND": ("buy", 100.0), "EQ2": ("buy", 100.0)}
    assert plan_of({}) == everything
    assert plan_of({"instrument:BOND": state("instrument", "BOND", "halted")}) == {
        "EQ": ("sell", 200.0),
        "EQ2": ("buy", 100.0),
    }
    assert plan_of({"tier:large": state("tier", "large", "reducing")}) == {
        "EQ": ("sell", 200.0),  # a sell reduces: allowed
        "BOND": ("buy", 100.0),
    }
    assert plan_of({"global:*": state("global", "*", "reducing")}) == {"EQ": ("sell", 200.0)}
    assert plan_of({"account:A": state("account", "A", "halted")}) == {}
    assert plan_of({"account:B": state("account", "B", "halted")}) == everything


def test_a_buy_stops_at_the_positions_max_weight() -> None:
    book = eq_and_micro(LevelLimits(max_weight=0.05))
    book.set_holding("A", "MC", 200.0)  # 2,000 of 102,000 (2 %) against a 10 % target
    book.set_targets("A", {"EQ": 0.9, "MC": 0.1})
    legs = {book.instruments.id_of(leg.instrument): leg.qty for leg in book.plan(book.evaluate()).legs(0)}
    assert legs["MC"] == 310.0  # up to 5 % of 102,000 = 5,100: 510 held, 310 more
    assert legs["EQ"] == 918.0
