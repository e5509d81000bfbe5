import math

import numpy as np
import pytest

from streamproc.core import Band, Book, LegLimits, Mode

LOT = 0.0001


def book_6040(
    eq_price: float, *, mode: Mode = Mode.TARGET, min_trade: float = 0.0, band: Band | None = None
) -> Book:
    """60 EQ + 40 BD at price 1 were exactly 60/40; EQ then moved to ``eq_price``."""
    book = Book()
    book.set_targets("A", {"EQ": 0.6, "BD": 0.4}, mode=mode, min_trade=min_trade, band=band)
    book.set_holding("A", "EQ", 60)
    book.set_holding("A", "BD", 40)
    book.set_price("EQ", eq_price, eq_price)
    book.set_price("BD", 1.0, 1.0)
    return book


def eq_price_for_weight(w: float) -> float:
    """Price at which 60 EQ is weight ``w`` next to 40 BD at 1."""
    return w * 40 / (60 * (1 - w))


def plan(book: Book, limits: LegLimits | None = None):  # type: ignore[no-untyped-def]
    ev = book.evaluate()
    return ev, book.plan(ev, limits)


def test_equity_rises_to_66_5_sells_equity_buys_bonds_back_to_60_40() -> None:
    book = book_6040(eq_price_for_weight(0.665))
    ev, p = plan(book)
    assert ev.weights[0, 0] == pytest.approx(0.665)
    legs = p.legs(0)
    assert [(leg.side, book.instruments.id_of(leg.instrument)) for leg in legs] == [
        ("sell", "EQ"),
        ("buy", "BD"),
    ]
    assert p.weights_after[0, :2] == pytest.approx([0.6, 0.4], abs=1e-4)
    assert p.cash_after[0] >= 0


def test_equity_falls_to_53_buys_equity_sells_bonds() -> None:
    book = book_6040(eq_price_for_weight(0.53))
    _, p = plan(book)
    sides = {book.instruments.id_of(leg.instrument): leg.side for leg in p.legs(0)}
    assert sides == {"EQ": "buy", "BD": "sell"}
    assert p.weights_after[0, :2] == pytest.approx([0.6, 0.4], abs=1e-4)


def test_inside_band_no_breach_no_legs() -> None:
    book = book_6040(eq_price_for_weight(0.625))
    ev, p = plan(book)
    assert not ev.breaching[0]
    assert p.rows.size == 0


def test_sells_at_bid_buys_at_ask_and_quantities_on_the_lot() -> None:
    book = book_6040(1.0)
    book.set_price("EQ", 1.32, 1.34)
    book.set_price("BD", 0.99, 1.01)
    _, p = plan(book)
    legs = {book.instruments.id_of(leg.instrument): leg for leg in p.legs(0)}
    assert legs["EQ"].price == 1.32 and legs["BD"].price == 1.01
    for leg in legs.values():
        assert abs(leg.qty / LOT - round(leg.qty / LOT)) < 1e-6
        assert leg.notional == pytest.approx(leg.qty * leg.price)
    assert legs["BD"].notional <= legs["EQ"].notional  # funded by the sale


def test_edge_mode_trades_only_the_breached_instrument_to_a_margin_inside_the_band_edge() -> None:
    book = Book()
    book.set_targets("A", {"EQ": 0.6, "BD": 0.3}, mode=Mode.EDGE)
    book.set_holding("A", "EQ", 70)
    book.set_holding("A", "BD", 30)
    book.set_cash("A", 0)
    for inst in ("EQ", "BD"):
        book.set_price(inst, 1.0, 1.0)
    _, p = plan(book)  # EQ 70% (limit 3) breaches, BD 30% inside; cash 0 vs target 10%
    legs = p.legs(0)
    assert [book.instruments.id_of(leg.instrument) for leg in legs] == ["EQ"]
    assert p.weights_after[0, 0] == pytest.approx(0.627, abs=1e-4)  # 10 % of the band inside the edge


@pytest.mark.parametrize("mode", list(Mode))
def test_an_exit_sells_the_exact_holding_in_every_mode(mode: Mode) -> None:
    book = Book()
    book.set_targets("A", {"EQ": 0.6, "BD": 0.4}, mode=mode)
    book.set_holding("A", "EQ", 60)
    book.set_holding("A", "BD", 34)
    book.set_holding("A", "OLD", 6.123456789)  # 6 % of the account, target 0, off the lot grid
    for inst in ("EQ", "BD", "OLD"):
        book.set_price(inst, 1.0, 1.0)
    _, p = plan(book)
    sold = {book.instruments.id_of(leg.instrument): leg.qty for leg in p.legs(0) if leg.side == "sell"}
    assert sold["OLD"] == 6.123456789


@pytest.mark.parametrize("ask", [1.0, 1.02])
def test_edge_mode_plan_fill_evaluate_again_is_inside_the_band_and_orders_no_dust(ask: float) -> None:
    book = Book()
    book.set_targets("A", {"EQ": 0.6, "BD": 0.37}, mode=Mode.EDGE)  # 3 % cash target
    book.set_holding("A", "EQ", 66)
    book.set_holding("A", "BD", 31)
    book.set_cash("A", 3)
    book.set_price("EQ", 1.0, 1.0)
    book.set_price("BD", 1.0, ask)  # BD 31 % vs 37 +- 3: buy BD at the ask, funded by EQ
    ev, p = plan(book)
    assert ev.breaching[0]
    for leg in p.legs(0):  # the fill: holdings and cash as the plan says
        name = book.instruments.id_of(leg.instrument)
        signed = leg.qty if leg.side == "buy" else -leg.qty
        book.set_holding("A", name, book.holdings("A").get(name, 0.0) + signed)
    book.set_cash("A", float(p.cash_after[0]))
    again = book.evaluate()
    assert not again.breaching[0], again.weights[0]  # not breaching: no order, dust or otherwise


def test_half_mode_trades_back_to_half_the_band() -> None:
    book = book_6040(eq_price_for_weight(0.665), mode=Mode.HALF)
    _, p = plan(book)
    # both breach (EQ +6.5, BD -6.5 points): each goes back to half its band, 61.5 / 38.5
    assert p.weights_after[0, :2] == pytest.approx([0.615, 0.385], abs=1e-4)


def test_min_trade_drops_small_legs() -> None:
    book = book_6040(eq_price_for_weight(0.665), min_trade=9.0)
    _, p = plan(book)  # both legs ~7.9 notional
    assert p.legs(0) == []
    assert not p.has_legs[0]


def test_max_notional_caps_each_leg_and_buys_stay_funded() -> None:
    book = book_6040(eq_price_for_weight(0.665))
    _, p = plan(book, LegLimits(max_notional=5.0))
    for leg in p.legs(0):
        assert leg.notional <= 5.0 + 1e-9
    assert p.cash_after[0] >= 0


def test_spread_above_budget_is_not_traded_and_reported() -> None:
    book = book_6040(1.0)
    book.set_price("EQ", 1.30, 1.36)  # ~450 bps
    _, p = plan(book, LegLimits(max_spread_bps=50))
    eq = book.instruments.get("EQ")
    assert all(leg.instrument != eq for leg in p.legs(0))
    assert p.skipped_spread[0, 0]


def test_buys_are_scaled_down_when_not_funded() -> None:
    book = Book()
    book.set_targets("A", {"EQ": 0.5, "BD": 0.5})
    book.set_holding("A", "EQ", 100)
    book.set_price("EQ", 1.0, 1.0)
    book.set_price("BD", 0.98, 1.02)
    book.set_price("EQ", 0.99, 1.01)
    _, p = plan(book, LegLimits(max_spread_bps=1000))
    legs = {book.instruments.id_of(leg.instrument): leg for leg in p.legs(0)}
    assert legs["BD"].notional <= legs["EQ"].notional + 1e-9
    assert p.cash_after[0] >= 0


def test_exit_sells_whole_holding_and_never_more() -> None:
    book = Book()
    book.set_targets("A", {"BD": 1.0})
    book.set_holding("A", "OLD", 3.33333)  # not a whole number of lots
    book.set_holding("A", "BD", 10)
    book.set_price("OLD", 1.0, 1.0)
    book.set_price("BD", 1.0, 1.0)
    _, p = plan(book)
    legs = {book.instruments.id_of(leg.instrument): leg for leg in p.legs(0)}
    assert legs["OLD"].side == "sell" and legs["OLD"].qty == 3.33333


def test_hysteresis_after_an_answered_breach_until_back_inside_or_position_update() -> None:
    book = book_6040(eq_price_for_weight(0.665))
    _, p = plan(book)
    book.mark_answered(p)
    assert not book.evaluate().breaching[0]  # still out of band, but answered
    book.set_price("EQ", eq_price_for_weight(0.67), eq_price_for_weight(0.67))
    assert not book.evaluate().breaching[0]
    # back inside half the band (60 +- 1.5) re-arms
    p_in = eq_price_for_weight(0.61)
    book.set_price("EQ", p_in, p_in)
    assert not book.evaluate().breaching[0]
    book.set_price("EQ", eq_price_for_weight(0.665), eq_price_for_weight(0.665))
    assert book.evaluate().breaching[0]


def test_position_update_rearms() -> None:
    book = book_6040(eq_price_for_weight(0.665))
    _, p = plan(book)
    book.mark_answered(p)
    assert not book.evaluate().breaching[0]
    book.set_holding("A", "BD", 40)  # a fill (or any position update) arrives
    assert book.evaluate().breaching[0]


def test_legs_worst_slot_is_the_largest_relative_breach() -> None:
    book = Book()
    book.set_targets("A", {"EQ": 0.5, "MC": 0.1}, band=Band(abs=0.03))
    book.set_instrument("MC", tier="micro")
    book.set_holding("A", "EQ", 46)
    book.set_holding("A", "MC", 13)
    book.set_cash("A", 41)
    for i in ("EQ", "MC"):
        book.set_price(i, 1.0, 1.0)
    ev = book.evaluate()
    # EQ -4 points of 3 (1.33x), MC +3 points of 2 (1.5x)
    assert book.instruments.id_of(int(ev.instruments[0, ev.worst_slot()[0]])) == "MC"
    assert math.isclose(float(ev.excess[0].max()), 0.01, abs_tol=1e-8)  # less the edge tolerance
    assert np.count_nonzero(ev.breach_slots[0]) == 2


def test_rounding_never_buys_past_the_cash_or_the_notional_cap() -> None:
    book = Book()
    book.set_instrument("A", lot=1.0)
    book.set_price("A", 1.0, 1.0)
    book.set_targets("X", {"A": 1.0})
    book.set_cash("X", 2.9999999995)
    _, p = plan(book)
    assert p.legs(0)[0].qty == 2.0 and p.cash_after[0] >= 0
    book.set_cash("X", 10.0)
    _, p = plan(book, LegLimits(max_notional=2.9999999995))
    assert p.legs(0)[0].notional <= 2.9999999995


def test_spread_skipped_slot_stays_armed_after_the_order() -> None:
    book = book_6040(eq_price_for_weight(0.665))
    book.set_price("BD", 0.95, 1.05)  # BD too wide to trade
    _, p = plan(book, LegLimits(max_spread_bps=50))
    book.mark_answered(p)
    bd = book.instruments.get("BD")
    ev2 = book.evaluate()
    assert ev2.breach_slots[0, list(ev2.instruments[0]).index(bd)]  # still breaching, not silenced


def test_mark_answered_after_rows_grew_wider_disarms_only_the_traded_slots() -> None:
    book = book_6040(eq_price_for_weight(0.665))
    _, p = plan(book)
    for i in range(6):  # widen every row's slot count after the plan
        book.set_holding("A", f"NEW{i}", 0.0001)
        book.set_price(f"NEW{i}", 1.0, 1.0)
    book.mark_answered(p)
    assert book._disarmed[0, :2].all() and not book._disarmed[0, 2:].any()


def test_rel_only_band_still_catches_an_unwanted_holding() -> None:
    book = Book()
    book.set_targets("A", {"EQ": 0.5}, band=Band(abs=None, rel=0.2))
    book.set_holding("A", "JUNK", 1)
    assert book.limit("A", "JUNK") == pytest.approx(0.03)
