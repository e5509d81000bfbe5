"""Evaluation on projected holdings: what working orders still trade counts for the weights, never for
what a new order may sell or spend."""

from __future__ import annotations

import numpy as np

from streamproc.core import Book, Shift


def _book() -> Book:
    book = Book()
    book.set_price("EQ", 99.0, 101.0)  # mid 100
    book.set_price("BD", 49.0, 51.0)  # mid 50
    book.set_targets("A", {"EQ": 0.6, "BD": 0.4})
    book.set_holding("A", "EQ", 70.0)  # 7000 of 10000: 70 %
    book.set_holding("A", "BD", 60.0)
    return book


def _shift(book: Book, *entries: tuple[str, float, float]) -> Shift:
    return Shift(
        at=np.zeros(len(entries), dtype=np.int64),
        instrument=np.array([book.instrument(i) for i, _, _ in entries], dtype=np.int64),
        qty=np.array([q for _, q, _ in entries]),
        price=np.array([p for _, _, p in entries]),
    )


def test_projected_weights_count_what_working_orders_still_trade() -> None:
    book = _book()
    rows = np.array([book.account("A")])
    assert book.evaluate(rows).breaching[0]
    # a working order still sells 10 EQ at 99 and buys 20 BD at 51: projected 60/40 -> in band
    ev = book.evaluate(rows, _shift(book, ("EQ", -10.0, 99.0), ("BD", 20.0, 51.0)))
    assert not ev.breaching[0]
    assert ev.qty[0].tolist()[:2] == [60.0, 80.0]
    assert ev.cash[0] == 0.0  # 990 in, 1020 out of no cash: never below 0


def test_new_orders_never_sell_what_working_ones_sell_nor_spend_their_cash() -> None:
    book = _book()
    book.set_cash("A", 500.0)
    rows = np.array([book.account("A")])
    # a working order still buys 30 EQ (it may not fill) and sells 50 EQ; new targets exit EQ
    book.set_targets("A", {"BD": 1.0})
    ev = book.evaluate(rows, _shift(book, ("EQ", 30.0, 101.0), ("EQ", -50.0, 99.0)))
    eq = list(ev.instruments[0]).index(book.instrument("EQ"))
    assert ev.qty[0, eq] == 50.0  # 70 + 30 - 50
    assert ev.sellable[0, eq] == 20.0  # 70 - 50: the working buy is not counted as held
    assert ev.spendable[0] == 0.0  # the working buy may spend 3030 of the 500
    assert ev.cash[0] == 500.0 - 3030.0 + 4950.0
    plan = book.plan(ev)
    legs = {book.instruments.id_of(leg.instrument): leg for leg in plan.legs(0)}
    assert legs["EQ"].side == "sell" and legs["EQ"].qty == 20.0  # the exit sells what is free to sell
    assert legs["EQ"].held == 20.0


def test_an_entry_without_a_slot_moves_cash_only() -> None:
    book = _book()
    book.set_cash("A", 1000.0)
    rows = np.array([book.account("A")])
    book.instrument("XX")
    ev = book.evaluate(rows, _shift(book, ("XX", 5.0, 10.0)))
    assert ev.cash[0] == 950.0 and ev.spendable[0] == 950.0
    assert float(ev.qty[0].sum()) == 130.0
