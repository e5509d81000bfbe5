"""Exchange calendars from the `exchange-calendars` library (its holiday and early-close data ship with
the package: nothing is fetched at run time), turned into the core's session arrays. `24/7` is built in:
an instrument that never closes. Lunch breaks (XHKG, XTKS) split a day into two sessions."""

from __future__ import annotations

import datetime
import functools
import warnings
from typing import Any

from streamproc.core.sessions import ALWAYS, Calendar

_BEFORE_DAYS = 14  # a quote's age reaches this far back
_AFTER_DAYS = 366  # a worker runs this long before its calendars need a rebuild
_EPOCH = datetime.date(1970, 1, 1)


class UnknownCalendar(ValueError):
    """A calendar name the library does not know."""


@functools.cache
def names() -> frozenset[str]:
    """Every calendar name (and alias) the library knows, and `24/7`."""
    import exchange_calendars as xcals

    return frozenset(xcals.get_calendar_names(include_aliases=True)) | {ALWAYS}


def canonical(name: str) -> str:
    """The calendar's name as the library spells it (`xnys` is `XNYS`); UnknownCalendar otherwise."""
    if name in names():
        return name
    upper = name.upper()
    if upper in names():
        return upper
    raise UnknownCalendar(
        f"calendar {name!r} is not known: use an ISO 10383 MIC the exchange-calendars library has (XNYS, "
        f"XLON, XETR, ...) or {ALWAYS!r} for an instrument that never closes"
    )


def load(name: str, now_ms: int) -> Calendar:
    """The calendar's sessions from two weeks before ``now_ms`` to a year after it."""
    import exchange_calendars as xcals
    import pandas as pd

    day = datetime.datetime.fromtimestamp(now_ms / 1000, tz=datetime.UTC).date()
    start = pd.Timestamp(day - datetime.timedelta(days=_BEFORE_DAYS))
    end = pd.Timestamp(day + datetime.timedelta(days=_AFTER_DAYS))
    with warnings.catch_warnings():  # the library's pandas deprecation notices are not ours to log
        warnings.simplefilter("ignore")
        sched = xcals.get_calendar(canonical(name), start=start, end=end).schedule
    sessions: list[tuple[int, int]] = []
    days: list[int] = []  # the session's label: its trading day in the exchange's own time zone
    for row in sched.itertuples():
        opened, closed = _ms(row.open), _ms(row.close)
        label = (pd.Timestamp(row.Index).date() - _EPOCH).days
        brk_start, brk_end = getattr(row, "break_start", None), getattr(row, "break_end", None)
        if brk_start is not None and brk_end is not None and not (pd.isna(brk_start) or pd.isna(brk_end)):
            sessions += [(opened, _ms(brk_start)), (_ms(brk_end), closed)]
            days += [label, label]
        else:
            sessions.append((opened, closed))
            days.append(label)
    return Calendar.of(canonical(name), sessions, days)


def _ms(ts: Any) -> int:
    import pandas as pd

    return int(pd.Timestamp(ts).timestamp() * 1000)
