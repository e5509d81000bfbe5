import math

import numpy as np
import pytest

from streamproc.core import Band, BandPolicy, Book


def _book_6040(policy: BandPolicy | None = None, **targets_kw: object) -> Book:
    book = Book(policy)
    book.set_targets("A", {"EQ": 0.6, "BD": 0.4}, **targets_kw)  # type: ignore[arg-type]
    return book


def test_default_band_is_three_points() -> None:
    assert _book_6040().limit("A", "EQ") == pytest.approx(0.03)


def test_five_twenty_five_rule_takes_the_narrower_limit() -> None:
    book = Book()
    book.set_targets("A", {"EQ": 0.6, "SMALL": 0.1}, band=Band(abs=0.05, rel=0.25))
    assert book.limit("A", "EQ") == pytest.approx(0.05)  # 25% of 60 = 15 points: abs is narrower
    assert book.limit("A", "SMALL") == pytest.approx(0.025)  # 25% of 10 = 2.5 points


def test_relative_band_does_not_apply_to_a_zero_target() -> None:
    book = Book()
    book.set_targets("A", {"EQ": 0.6}, band=Band(abs=0.05, rel=0.25))
    book.set_holding("A", "LEGACY", 3)
    assert book.limit("A", "LEGACY") == pytest.approx(0.05)


def test_precedence_account_instrument_then_override_then_tier_then_account_then_default() -> None:
    policy = BandPolicy(
        default=Band(abs=0.04), tiers={"micro": Band(abs=0.02)}, instruments={"OVR": Band(abs=0.01)}
    )
    book = Book(policy)
    book.set_instrument("MC", tier="micro")
    book.set_instrument("OVR", tier="micro")
    book.set_targets(
        "A",
        {"EQ": 0.3, "MC": 0.2, "OVR": 0.2, "BD": 0.2},
        band=Band(abs=0.05),
        bands={"BD": Band(abs=0.035)},
    )
    assert book.limit("A", "BD") == pytest.approx(0.035)  # account's per-instrument band
    assert book.limit("A", "OVR") == pytest.approx(0.01)  # policy override beats tier
    assert book.limit("A", "MC") == pytest.approx(0.02)  # tier beats the account-wide band
    assert book.limit("A", "EQ") == pytest.approx(0.05)  # account-wide beats the default
    book.set_targets("B", {"EQ": 0.5})
    assert book.limit("B", "EQ") == pytest.approx(0.04)  # policy default


def test_tier_change_after_targets_updates_limits() -> None:
    book = _book_6040()
    book.set_instrument("EQ", tier="micro")
    assert book.limit("A", "EQ") == pytest.approx(0.02)
    book.set_instrument("EQ", tier="large")
    assert book.limit("A", "EQ") == pytest.approx(0.03)


@pytest.mark.parametrize("kwargs", [{"abs": None, "rel": None}, {"abs": 0.0}, {"abs": 1.5}, {"abs": -0.1}])
def test_invalid_bands_are_rejected(kwargs: dict[str, float | None]) -> None:
    with pytest.raises(ValueError):
        Band(**kwargs)  # type: ignore[arg-type]


def test_rel_only_band() -> None:
    book = Book()
    book.set_targets("A", {"EQ": 0.4}, band=Band(abs=None, rel=0.2))
    assert book.limit("A", "EQ") == pytest.approx(0.08)
    assert math.isinf(book.limit("A", "NOPE"))


def test_breach_when_either_limit_is_exceeded() -> None:
    book = Book()
    book.set_targets("A", {"SMALL": 0.1, "EQ": 0.9}, band=Band(abs=0.05, rel=0.25))
    book.set_price("SMALL", 1, 1)
    book.set_price("EQ", 1, 1)
    book.set_holding("A", "SMALL", 13)  # 13/100: 3 points off, inside abs 5, outside rel 2.5
    book.set_holding("A", "EQ", 87)
    ev = book.evaluate()
    assert ev.breaching.tolist() == [True]
    assert np.flatnonzero(ev.breach_slots[0]).tolist() == [0]


def test_setting_only_the_lot_keeps_the_tier() -> None:
    book = _book_6040()
    book.set_instrument("EQ", tier="micro")
    book.set_instrument("EQ", lot=0.01)
    assert book.tier_of("EQ") == "micro"
    assert book.limit("A", "EQ") == pytest.approx(0.02)


@pytest.mark.parametrize(("eq", "bd"), [(63, 37), (57, 43), (43, 57), (37, 63)])
def test_a_weight_exactly_on_the_edge_is_inside(eq: float, bd: float) -> None:
    # 63 % vs 60 +- 3 computes as 0.030000000000000027 over; 43 % vs 40 +- 3 as 0.02999999999999997
    targets = {"EQ": 0.6, "BD": 0.4} if eq > 50 else {"EQ": 0.4, "BD": 0.6}
    book = Book()
    book.set_targets("A", targets)
    book.set_holding("A", "EQ", eq)
    book.set_holding("A", "BD", bd)
    book.set_price("EQ", 1.0, 1.0)
    book.set_price("BD", 1.0, 1.0)
    ev = book.evaluate()
    assert not ev.breaching[0] and not ev.breach_slots.any()
    book.set_holding("A", "EQ", eq + 0.001 if eq in (63, 43) else eq - 0.001)  # just beyond
    assert book.evaluate().breaching[0]


def test_a_relative_band_is_never_narrower_than_the_floor() -> None:
    book = Book()  # default floor: half a point
    book.set_targets("A", {"EQ": 0.6, "TINY": 0.001}, band=Band(abs=0.05, rel=0.25))
    assert book.limit("A", "TINY") == pytest.approx(0.005)  # 25 % of 0.1 % would be 0.025 points
    assert book.limit("A", "EQ") == pytest.approx(0.05)
    floorless = Book(BandPolicy(rel_floor=0.0))
    floorless.set_targets("A", {"EQ": 0.6, "TINY": 0.001}, band=Band(abs=0.05, rel=0.25))
    assert floorless.limit("A", "TINY") == pytest.approx(0.00025)


def test_liquidate_sells_untargeted_holdings_inside_their_band() -> None:
    book = Book()
    book.set_targets("A", {"EQ": 0.6, "BD": 0.38}, liquidate=True)
    book.set_holding("A", "EQ", 60)
    book.set_holding("A", "BD", 38)
    book.set_holding("A", "OLD", 2)  # 2 %, inside the 3-point band of a 0 target
    for inst in ("EQ", "BD", "OLD"):
        book.set_price(inst, 1.0, 1.0)
    ev = book.evaluate()
    assert ev.breaching[0]
    legs = book.plan(ev).legs(0)
    assert [
        (book.instruments.id_of(leg.instrument), leg.side, leg.qty) for leg in legs if leg.side == "sell"
    ] == [("OLD", "sell", 2.0)]
    plain = Book()
    plain.set_targets("A", {"EQ": 0.6, "BD": 0.38})
    for inst, q in (("EQ", 60), ("BD", 38), ("OLD", 2)):
        plain.set_holding("A", inst, q)
        plain.set_price(inst, 1.0, 1.0)
    assert not plain.evaluate().breaching[0]


def test_bad_policy_values_are_refused() -> None:
    with pytest.raises(ValueError, match="rel_floor"):
        BandPolicy(rel_floor=1.5)
    with pytest.raises(ValueError, match="edge_margin"):
        BandPolicy(edge_margin=-0.1)
