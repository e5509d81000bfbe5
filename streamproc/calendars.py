"""Exchange calendars from the `exchange-calendars` library (its holiday and early-close data ship with
the package: nothing is fetched at run time), turned into the core's session arrays. `24/7` is built in:
an instrument that never closes. Lunch breaks (XHKG, XTKS) split a day into two sessions."""

from __future__ import annotations

import datetime
import functools
import math
import re
import warnings
from typing import Any

from streamproc.core.sessions import ALWAYS, Calendar, compressed

_BEFORE_DAYS = 14  # a quote's age reaches this far back
_AFTER_DAYS = 366  # a worker runs this long before its calendars need a rebuild
_EPOCH = datetime.date(1970, 1, 1)
# a simulated clock's calendar: sim:<MIC>:<session s>:<break s>:<first open, epoch s>
_SIMULATED = re.compile(r"^sim:([A-Za-z0-9]{2,10}):(\d+(?:\.\d+)?):(\d+(?:\.\d+)?):(\d{9,11})$")
_SIM_SESSIONS = 300  # a simulated calendar covers at least this many sessions ahead of now


class UnknownCalendar(ValueError):
    """A calendar name the library does not know."""


@functools.cache
def names() -> frozenset[str]:
    """Every calendar name (and alias) the library knows, and `24/7`."""
    import exchange_calendars as xcals

    return frozenset(xcals.get_calendar_names(include_aliases=True)) | {ALWAYS}


def simulated(mic: str, session_s: float, closed_s: float, start_s: int) -> str:
    """The name of a simulated clock's calendar: ``mic``'s sessions, each ``session_s`` seconds of wall
    time, breaks (nights, weekends, holidays) ``closed_s``, the first opening at epoch ``start_s``."""
    return f"sim:{canonical(mic)}:{session_s:g}:{closed_s:g}:{start_s}"


def canonical(name: str) -> str:
    """The calendar's name as the library spells it (`xnys` is `XNYS`); UnknownCalendar otherwise."""
    if name in names():
        return name
    sim = _SIMULATED.match(name)
    if sim is not None:
        mic, session_s, closed_s, start_s = sim.groups()
        if float(session_s) <= 0 or float(closed_s) <= 0:
            raise UnknownCalendar(f"calendar {name!r}: a simulated session and break must last > 0 s")
        return f"sim:{canonical(mic)}:{session_s}:{closed_s}:{start_s}"
    upper = name.upper()
    if upper in names():
        return upper
    raise UnknownCalendar(
        f"calendar {name!r} is not known: use an ISO 10383 MIC the exchange-calendars library has (XNYS, "
        f"XLON, XETR, ...), {ALWAYS!r} for an instrument that never closes, or a simulated clock's "
        f"sim:<MIC>:<session s>:<break s>:<first open, epoch s>"
    )


def load(name: str, now_ms: int) -> Calendar:
    """The calendar's sessions from two weeks before ``now_ms`` to a year after it (a simulated one:
    from a month before its first open to at least 300 sessions after ``now_ms``)."""
    name = canonical(name)
    sim = _SIMULATED.match(name)
    if sim is None:
        day = datetime.datetime.fromtimestamp(now_ms / 1000, tz=datetime.UTC).date()
        return _library(
            name, day - datetime.timedelta(days=_BEFORE_DAYS), day + datetime.timedelta(_AFTER_DAYS)
        )
    mic, session_s, closed_s, start_s = sim.groups()
    session_ms, closed_ms, start_ms = (
        int(float(session_s) * 1000),
        int(float(closed_s) * 1000),
        int(start_s) * 1000,
    )
    ahead = max(0, now_ms - start_ms) // (session_ms + closed_ms) + _SIM_SESSIONS
    first = datetime.datetime.fromtimestamp(start_ms / 1000, tz=datetime.UTC).date()
    # about 252 sessions a year; the library's calendars reach a few decades ahead at most
    years = min(30, math.ceil(ahead / 240) + 1)
    base = _library(mic, first - datetime.timedelta(days=31), first + datetime.timedelta(days=366 * years))
    return compressed(base, name, start_ms, session_ms, closed_ms)


def _library(name: str, first: datetime.date, last: datetime.date) -> Calendar:
    """The library's sessions of ``name`` (canonical) between two dates."""
    import exchange_calendars as xcals
    import pandas as pd

    start, end = pd.Timestamp(first), pd.Timestamp(last)
    with warnings.catch_warnings():  # the library's pandas deprecation notices are not ours to log
        warnings.simplefilter("ignore")
        sched = xcals.get_calendar(name, start=start, end=end).schedule
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
    return Calendar.of(name, sessions, days)


def _ms(ts: Any) -> int:
    import pandas as pd

    return int(pd.Timestamp(ts).timestamp() * 1000)
