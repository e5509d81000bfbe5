"""The exchange calendars from the library's shipped data: a holiday and an early close as the venue
has them, lunch breaks as two sessions, names in any case, and a clear error for an unknown one."""

from __future__ import annotations

import datetime

import pytest

from streamproc.calendars import UnknownCalendar, canonical, load
from streamproc.core.sessions import CLOSED


def ms(text: str) -> int:
    return int(datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.UTC).timestamp() * 1000)


def test_nyse_is_closed_on_christmas_and_closes_early_after_thanksgiving() -> None:
    xnys = load("XNYS", ms("2026-11-20T12:00"))
    assert xnys.open_since(ms("2026-12-24T15:00")) == ms("2026-12-24T14:30")  # 09:30 New York
    assert xnys.open_since(ms("2026-12-25T15:00")) == CLOSED  # Christmas Day
    assert xnys.next_open(ms("2026-12-25T15:00")) == ms("2026-12-28T14:30")  # Monday
    assert xnys.open_since(ms("2026-11-27T17:59")) != CLOSED  # the day after Thanksgiving ...
    assert xnys.open_since(ms("2026-11-27T18:01")) == CLOSED  # ... closes at 13:00 New York


def test_a_lunch_break_splits_the_day() -> None:
    xhkg = load("xhkg", ms("2026-12-01T00:00"))
    assert xhkg.name == "XHKG"
    assert xhkg.open_since(ms("2026-12-02T02:00")) == ms("2026-12-02T01:30")  # 09:30 Hong Kong
    assert xhkg.open_since(ms("2026-12-02T04:30")) == CLOSED  # 12:30, lunch
    assert xhkg.open_since(ms("2026-12-02T05:30")) == ms("2026-12-02T05:00")  # the afternoon session


def test_names_are_matched_in_any_case_and_an_unknown_one_says_what_to_use() -> None:
    assert canonical("xlon") == "XLON" and canonical("24/7") == "24/7"
    with pytest.raises(UnknownCalendar, match="'NYSE-ISH' is not known: use an ISO 10383 MIC"):
        canonical("NYSE-ISH")


def test_a_simulated_clocks_calendar_keeps_the_venues_days_in_sessions_of_its_own_length() -> None:
    from streamproc.calendars import simulated

    start = ms("2026-12-24T00:00") // 1000  # Christmas Eve: the NYSE's next sessions skip Christmas Day
    name = simulated("xnys", 45, 20, start)
    assert name == f"sim:XNYS:45:20:{start}" and canonical(name) == name
    cal = load(name, start * 1000)
    first = start * 1000
    assert cal.open_since(first + 44_000) == first and cal.open_since(first + 46_000) == CLOSED
    assert cal.next_open(first + 46_000) == first + 65_000  # the break: 20 s
    day = datetime.date(1970, 1, 1) + datetime.timedelta(days=cal.day(first + 70_000))
    assert day == datetime.date(2026, 12, 28)  # the session after the 24th is Monday's
    with pytest.raises(UnknownCalendar, match="must last > 0 s"):
        canonical(f"sim:XNYS:0:20:{start}")
    with pytest.raises(UnknownCalendar, match="'NOPE' is not known"):
        canonical(f"sim:NOPE:45:20:{start}")
