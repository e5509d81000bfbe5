import numpy as np
import pytest

from streamproc.core import Book, PriceFlag


def _priced(book: Book, **prices: float) -> Book:
    for inst, p in prices.items():
        book.set_price(inst, p, p)
    return book


def test_weights_are_valued_at_mid_including_cash() -> None:
    book = Book()
    book.set_targets("A", {"EQ": 0.5, "BD": 0.3})
    book.set_holding("A", "EQ", 10)
    book.set_holding("A", "BD", 30)
    book.set_cash("A", 20)
    book.set_price("EQ", 4.9, 5.1)  # mid 5 -> 50
    book.set_price("BD", 1.0, 1.0)  # 30
    ev = book.evaluate()
    assert ev.value.tolist() == [100.0]
    assert ev.weights[0, :2].tolist() == pytest.approx([0.5, 0.3])
    assert book.cash_target("A") == pytest.approx(0.2)


def test_missing_price_makes_account_not_evaluable_never_guessed() -> None:
    book = _priced(Book(), EQ=1.0)
    book.set_targets("A", {"EQ": 0.6, "BD": 0.4})  # BD targeted but never quoted
    book.set_holding("A", "EQ", 100)
    ev = book.evaluate()
    assert ev.evaluable.tolist() == [False]
    assert ev.status[0] & PriceFlag.MISSING
    assert ev.breaching.tolist() == [False]
    assert np.isnan(ev.weights[0, 0])


def test_flagged_price_blocks_then_recovers() -> None:
    book = _priced(Book(), EQ=1.0, BD=1.0)
    book.set_targets("A", {"EQ": 0.6, "BD": 0.4})
    book.set_holding("A", "EQ", 80)
    book.set_holding("A", "BD", 20)
    eq = book.instrument_indices(["EQ"])
    book.set_flag(eq, PriceFlag.STALE, True)
    ev = book.evaluate()
    assert ev.status[0] == PriceFlag.STALE and not ev.breaching[0]
    book.set_flag(eq, PriceFlag.STALE, False)
    assert book.evaluate().breaching.tolist() == [True]


def test_empty_account_is_not_evaluable() -> None:
    book = Book()
    book.set_targets("A", {})
    ev = book.evaluate()
    assert ev.status[0] & PriceFlag.EMPTY_ACCOUNT


def test_slots_grow_and_free_slots_are_reused() -> None:
    book = _priced(Book(slots=2), **{f"I{i}": 1.0 for i in range(5)})
    for i in range(5):
        book.set_holding("A", f"I{i}", i + 1)
    assert book.slots >= 5
    assert book.holdings("A") == {f"I{i}": float(i + 1) for i in range(5)}
    book.set_holding("A", "I0", 0)
    assert "I0" not in book.holdings("A")
    book.set_holding("A", "I9", 2)
    assert book.holdings("A")["I9"] == 2.0


def test_untargeted_zero_holding_releases_its_slot_but_targeted_one_keeps_it() -> None:
    book = Book()
    book.set_targets("A", {"EQ": 0.5})
    book.set_holding("A", "EQ", 0)
    assert book.targets("A") == {"EQ": 0.5}
    book.set_holding("A", "X", 3)
    book.set_holding("A", "X", 0)
    assert book.holdings("A") == {}


def test_new_targets_replace_old_ones() -> None:
    book = Book()
    book.set_targets("A", {"EQ": 0.6, "BD": 0.4})
    book.set_targets("A", {"EQ": 0.5, "GOLD": 0.1})
    assert book.targets("A") == {"EQ": 0.5, "GOLD": 0.1}
    assert book.cash_target("A") == pytest.approx(0.4)


@pytest.mark.parametrize(
    ("weights", "match"),
    [({"EQ": -0.1}, ">= 0"), ({"EQ": 0.7, "BD": 0.4}, "sum to"), ({"CASH": 0.1}, "cash target")],
)
def test_bad_targets_are_rejected(weights: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Book().set_targets("A", weights)


def test_negative_holding_is_rejected() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        Book().set_holding("A", "EQ", -1)


def test_cash_position_sets_cash() -> None:
    book = Book()
    book.set_holding("A", "CASH", 250.0)
    assert book.cash("A") == 250.0


def test_accounts_affected_by_finds_holders_and_targeters_including_recent_ones() -> None:
    book = Book()
    book.set_holding("A", "EQ", 1)
    book.set_targets("B", {"EQ": 0.5})
    book.set_holding("C", "BD", 1)
    eq = book.instrument_indices(["EQ"])
    assert book.accounts_affected_by(eq).tolist() == [0, 1]
    book.set_holding("D", "EQ", 5)  # after the index was built
    assert book.accounts_affected_by(eq).tolist() == [0, 1, 3]


def test_load_rows_equals_incremental_updates() -> None:
    inc = _priced(Book(), EQ=2.0, BD=1.0)
    inc.set_targets("A", {"EQ": 0.6, "BD": 0.4})
    inc.set_holding("A", "EQ", 40)
    inc.set_holding("A", "BD", 20)
    inc.set_cash("A", 5)
    bulk = _priced(Book(), EQ=2.0, BD=1.0)
    idx = bulk.instrument_indices(["EQ", "BD"]).astype(np.int32)
    bulk.load_rows(["A"], idx[None, :], np.array([[40.0, 20.0]]), np.array([[0.6, 0.4]]), np.array([5.0]))
    a, b = inc.evaluate(), bulk.evaluate()
    assert a.weights[0, :2].tolist() == b.weights[0, :2].tolist()
    assert a.limits[0, :2].tolist() == b.limits[0, :2].tolist()
    assert bulk.holdings("A") == inc.holdings("A")


def _three_accounts() -> Book:
    book = _priced(Book(), EQ=1.0)
    for i, q in enumerate((10.0, 20.0, 30.0)):
        book.set_targets(f"A{i}", {"EQ": 0.5})
        book.set_holding(f"A{i}", "EQ", q)
        book.set_cash(f"A{i}", 10.0)
    return book


def test_evaluating_rows_out_of_order_pairs_each_row_with_its_own_data() -> None:
    book = _three_accounts()
    ev = book.evaluate(np.array([0, 2, 1]))
    assert ev.qty[:, 0].tolist() == [10.0, 30.0, 20.0]


def test_failed_set_targets_changes_nothing() -> None:
    book = Book()
    book.set_targets("A", {"EQ": 0.5})
    with pytest.raises(ValueError):
        book.set_targets("A", {"BD": 0.9}, min_trade=-1)
    assert book.targets("A") == {"EQ": 0.5}


def test_zero_weight_target_is_no_target() -> None:
    book = _priced(Book(), EQ=1.0)
    book.set_targets("A", {"EQ": 0.5, "NEVER_QUOTED": 0.0})
    book.set_holding("A", "EQ", 50)
    book.set_cash("A", 50)
    assert book.evaluate().evaluable.tolist() == [True]


def test_missing_price_is_not_reported_as_empty_account() -> None:
    book = Book()
    book.set_targets("A", {"EQ": 0.5})
    book.set_holding("A", "EQ", 5)
    book.set_cash("A", 100)
    assert book.evaluate().status[0] == PriceFlag.MISSING


def test_load_rows_validates_and_replaces_account_settings() -> None:
    book = _priced(Book(), EQ=1.0)
    eq = book.instrument_indices(["EQ"])[None, :]
    with pytest.raises(ValueError, match=">= 0"):
        book.load_rows(["A"], eq, np.array([[-1.0]]), np.array([[0.5]]), np.array([0.0]))
    with pytest.raises(ValueError, match="sum"):
        book.load_rows(["A"], eq, np.array([[1.0]]), np.array([[1.5]]), np.array([0.0]))
    with pytest.raises(ValueError, match="instrument indices"):
        book.load_rows(["A"], eq + 5, np.array([[1.0]]), np.array([[0.5]]), np.array([0.0]))
    from streamproc.core import Band, Mode

    book.set_targets("A", {"EQ": 0.5}, band=Band(abs=0.2), mode=Mode.EDGE, min_trade=1e9)
    book.load_rows(["A"], eq, np.array([[1.0]]), np.array([[0.5]]), np.array([1.0]))
    assert book.limit("A", "EQ") == pytest.approx(0.03)
    assert book._mode[0] == Mode.TARGET and book._min_trade[0] == 0.0
