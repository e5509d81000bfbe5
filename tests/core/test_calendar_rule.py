"""The calendar rule shared by the worker and the backtest: periods of trading days, their labels, and
which accounts a check trades."""

import datetime as dt

import numpy as np
import pytest

from streamproc.core import Band, BandPolicy, Book
from streamproc.core.calendar_rule import (
    CalendarRule,
    Period,
    calendar_run,
    label_index,
    period_index,
    period_label,
)


def _days(*isos: str) -> np.ndarray:
    return np.array([(dt.date.fromisoformat(d) - dt.date(1970, 1, 1)).days for d in isos], dtype=np.int64)


def test_periods_turn_on_the_first_day_of_a_month_quarter_half_and_year() -> None:
    days = _days("2026-12-31", "2027-01-04", "2027-03-31", "2027-04-01", "2027-07-01")
    assert np.diff(period_index(days, 1)).tolist() == [1, 2, 1, 3]
    assert np.diff(period_index(days, 3)).tolist() == [1, 0, 1, 1]
    assert np.diff(period_index(days, 6)).tolist() == [1, 0, 0, 1]
    assert np.diff(period_index(days, 12)).tolist() == [1, 0, 0, 0]


@pytest.mark.parametrize(
    ("every", "label"),
    [(Period.MONTH, "2027-04"), (Period.QUARTER, "2027-Q2"), (Period.HALF, "2027-H1"), (Period.YEAR, "2027")],
)
def test_a_period_label_names_its_period_and_reads_back(every: Period, label: str) -> None:
    index = int(period_index(_days("2027-04-01"), every.months)[0])
    assert period_label(index, every) == label
    assert label_index(label, every) == index


def test_a_rule_from_a_targets_document_says_what_is_wrong() -> None:
    assert CalendarRule.of({"every": "quarter", "tolerance": 0.05}) == CalendarRule(Period.QUARTER, 0.05)
    with pytest.raises(ValueError, match="unknown calendar period 'weekly'"):
        CalendarRule.of({"every": "weekly"})


def test_a_due_check_trades_only_accounts_off_by_more_than_their_tolerance() -> None:
    book = Book(BandPolicy(default=Band(abs=0.10)))
    for name, eq in (("near", 620.0), ("far", 700.0), ("not due", 700.0)):  # EQ at 100, BOND at 50
        book.set_holding(name, "EQ", eq)
        book.set_holding(name, "BOND", 800.0)
        book.set_targets(name, {"EQ": 0.6, "BOND": 0.4})
    book.set_price("EQ", 99.99, 100.01)
    book.set_price("BOND", 49.99, 50.01)
    ev = book.evaluate()
    assert not ev.breaching.any()  # inside the +-10 point band
    ev, runs = calendar_run(ev, np.array([True, True, False]), np.full(3, 0.02))
    assert runs.tolist() == [False, True, False] and ev.breaching.tolist() == [False, True, False]
    plan = book.plan(ev, to_target=runs)
    legs = {(leg.instrument, leg.side) for leg in plan.legs(0)}
    assert legs == {(book.instrument("EQ"), "sell"), (book.instrument("BOND"), "buy")}
