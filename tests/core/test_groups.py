"""Groups (asset classes) banded as one weight: the seed's 60/40 of 4 equity and 4 bond ETFs."""

from __future__ import annotations

import numpy as np
import pytest

from streamproc.core import Band, Book, Mode
from streamproc.core.groups import Group

EQ = [f"EQ{i}" for i in range(4)]
BD = [f"BD{i}" for i in range(4)]


def model(mode: Mode = Mode.TARGET, bond_mode: Mode | None = None) -> list[Group]:
    return [
        Group("equity", tuple(EQ), Band(abs=0.03)),
        Group("bonds", tuple(BD), Band(abs=0.03), bond_mode),
    ]


def book_at(equity: float, mode: Mode = Mode.TARGET, groups: list[Group] | None = None) -> Book:
    """Targets 4 x 15 % equity + 4 x 10 % bonds; holdings 150 per equity ETF and 100 per bond ETF
    (60/40 at price 1), then equity priced so that the class weighs ``equity``."""
    book = Book()
    weights = {**{e: 0.15 for e in EQ}, **{b: 0.10 for b in BD}}
    book.set_targets("A", weights, mode=mode, groups=model(mode) if groups is None else groups)
    price = equity * 40 / (60 * (1 - equity))
    for e in EQ:
        book.set_holding("A", e, 150)
        book.set_price(e, price, price)
    for b in BD:
        book.set_holding("A", b, 100)
        book.set_price(b, 1.0, 1.0)
    return book


def by_class(book: Book, weights: np.ndarray) -> tuple[float, float]:
    eq = [book.instruments.get(e) for e in EQ]
    inst = book.evaluate().instruments[0]
    e = sum(float(w) for i, w in zip(inst, weights, strict=True) if i in eq)
    b = sum(float(w) for i, w in zip(inst, weights, strict=True) if i >= 0 and i not in eq)
    return e, b


@pytest.mark.parametrize("equity", [0.665, 0.53])
def test_a_class_breach_without_any_single_breach_orders_back_to_60_40(equity: float) -> None:
    book = book_at(equity)
    ev = book.evaluate()
    assert not ev.breach_slots.any(), "no single ETF is out of its band (members have none)"
    assert ev.breaching[0]
    assert ev.groups is not None
    assert ev.groups.deviations[0] == pytest.approx([equity - 0.6, 0.6 - equity])
    _slot, group = ev.worst()
    assert group[0] in (0, 1)
    plan = book.plan(ev)
    sides = {book.instruments.id_of(leg.instrument)[:2]: leg.side for leg in plan.legs(0)}
    assert sides == ({"EQ": "sell", "BD": "buy"} if equity > 0.6 else {"EQ": "buy", "BD": "sell"})
    assert by_class(book, plan.weights_after[0]) == pytest.approx((0.6, 0.4), abs=1e-3)


def test_within_the_class_band_no_breach_and_without_groups_none_either() -> None:
    assert not book_at(0.625).evaluate().breaching[0]
    # the same account without groups: every ETF is inside its own 3-point band at 66.5 % equity
    assert not book_at(0.665, groups=[]).evaluate().breaching[0]


def test_edge_mode_brings_the_class_just_inside_its_edge_members_in_proportion() -> None:
    book = book_at(0.665, Mode.EDGE)
    plan = book.plan(book.evaluate())
    e, b = by_class(book, plan.weights_after[0])
    assert e == pytest.approx(0.627, abs=1e-3) and b == pytest.approx(0.373, abs=1e-3)
    after = plan.weights_after[0][plan.instruments[0] >= 0]
    inst = [book.instruments.id_of(int(i)) for i in plan.instruments[0] if i >= 0]
    eq_w = [w for n, w in zip(inst, after, strict=True) if n.startswith("EQ")]
    assert max(eq_w) - min(eq_w) < 1e-4, "members keep their target proportions"


def test_a_group_mode_overrides_the_accounts() -> None:
    book = book_at(0.665, Mode.TARGET, groups=model(bond_mode=Mode.HALF))
    plan = book.plan(book.evaluate())
    e, b = by_class(book, plan.weights_after[0])
    assert b == pytest.approx(0.385, abs=1e-3)  # bonds halfway back (40 - 1.5)
    assert e == pytest.approx(0.6, abs=1e-3)  # equity to its target, the account's mode


def test_an_answered_group_stays_disarmed_until_well_inside_or_a_position_change() -> None:
    book = book_at(0.665)
    ev = book.evaluate()
    book.mark_answered(book.plan(ev))
    assert not book.evaluate().breaching[0], "answered: not ordered again on the same weights"
    book.set_holding("A", EQ[0], 150)  # a position record re-arms
    assert book.evaluate().breaching[0]


def test_an_instrument_in_two_groups_is_refused() -> None:
    book = Book()
    with pytest.raises(ValueError, match="EQ0 is in groups 'a' and 'b'"):
        book.set_targets("A", {"EQ0": 0.5}, groups=[Group("a", ("EQ0",)), Group("b", ("EQ0", "EQ1"))])


def test_an_explicit_member_band_still_applies_inside_a_group() -> None:
    book = Book()
    weights = {**{e: 0.15 for e in EQ}, **{b: 0.10 for b in BD}}
    book.set_targets("A", weights, groups=model(), bands={"EQ0": Band(abs=0.01)})
    assert book.limit("A", "EQ0") == pytest.approx(0.01)
    assert book.limit("A", "EQ1") == float("inf")


def test_bulk_loaded_groups_evaluate_as_set_ones() -> None:
    from streamproc.core.book import RowSpec

    direct = book_at(0.665)
    loaded = Book()
    names = [*EQ, *BD]
    inst = loaded.instrument_indices(names)[None, :]
    price = 0.665 * 40 / (60 * (1 - 0.665))
    for n in names:
        loaded.set_price(n, *((price, price) if n.startswith("EQ") else (1.0, 1.0)))
    spec = RowSpec(groups=loaded.group_row(model()))
    loaded.load_rows(
        ["A"],
        inst,
        np.array([[150.0] * 4 + [100.0] * 4]),
        np.array([[0.15] * 4 + [0.1] * 4]),
        np.zeros(1),
        {0: spec},
    )
    a, b = direct.evaluate(), loaded.evaluate()
    assert b.breaching[0] and b.groups is not None and a.groups is not None
    assert b.groups.deviations[0] == pytest.approx(a.groups.deviations[0])
    assert loaded.limit("A", "EQ1") == float("inf")
    # and reloading it without groups clears them
    loaded.load_rows(
        ["A"], inst, np.array([[150.0] * 4 + [100.0] * 4]), np.array([[0.15] * 4 + [0.1] * 4]), np.zeros(1)
    )
    assert not loaded.evaluate().breaching[0]


def test_a_member_without_weight_joins_its_group_when_it_is_bought_and_after_it_is_sold() -> None:
    book = Book()
    weights = {**{e: 0.15 for e in EQ}, **{b: 0.10 for b in BD}}
    members = (*EQ, "EQ-NEW")  # a member the model does not weight (yet): no slot
    book.set_targets("A", weights, groups=[Group("equity", members, Band(abs=0.03)), model()[1]])
    for e in EQ:
        book.set_holding("A", e, 150)
        book.set_price(e, 1.0, 1.0)
    for b in BD:
        book.set_holding("A", b, 100)
        book.set_price(b, 1.0, 1.0)
    book.set_price("EQ-NEW", 1.0, 1.0)
    assert not book.evaluate().breaching[0]
    for _ in range(2):  # bought: it weighs in its group (750 of 1150: 5.2 points over); sold: gone
        book.set_holding("A", "EQ-NEW", 150)
        ev = book.evaluate()
        assert ev.groups is not None and ev.groups.deviations[0, 0] > 0.03
        assert ev.breaching[0] and not ev.breach_slots.any()
        book.set_holding("A", "EQ-NEW", 0)
        assert not book.evaluate().breaching[0]


def test_bulk_groups_equal_set_ones() -> None:
    direct = book_at(0.665)
    bulk = book_at(0.665, groups=[])
    ev = bulk.evaluate()
    eq = {bulk.instruments.get(e) for e in EQ}
    slot_group = np.where(np.isin(ev.instruments, list(eq)), 0, 1).astype(np.int8)
    slot_group[ev.instruments < 0] = -1
    bulk.load_groups(ev.rows, slot_group, ("equity", "bonds"), np.full((1, 2), 0.03), np.full((1, 2), np.nan))
    a, b = direct.evaluate(), bulk.evaluate()
    assert a.groups is not None and b.groups is not None
    assert b.groups.deviations[0] == pytest.approx(a.groups.deviations[0])
    assert b.breaching[0] and bulk.group_limit("A", "bonds") == pytest.approx(0.03)
