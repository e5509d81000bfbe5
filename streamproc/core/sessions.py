"""Trading sessions as arrays: per calendar, its sessions' opens and closes (epoch ms) over a window, so
whether an instrument's market is open, and since when, is a vectorized look-up. A quote's age and a
feed's silence count from the later of the quote and the session's open: nights, weekends and holidays
do not age a price. Calendar 0 is `24/7`, always open."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from streamproc.core.types import I64

ALWAYS = "24/7"
CLOSED = -1  # open_since() of an instrument whose market is closed
_DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Calendar:
    """One calendar's sessions in a window, sorted and not overlapping (a lunch break: two sessions)."""

    name: str
    opens: I64
    closes: I64
    days: I64  # each session's trading day (its label: days since 1970-01-01)

    @classmethod
    def of(
        cls, name: str, sessions: Sequence[tuple[int, int]], days: Sequence[int] | None = None
    ) -> Calendar:
        """From (open, close) pairs in ms and their trading days (default: the open's UTC date)."""
        opens = np.array([o for o, _ in sessions], dtype=np.int64)
        closes = np.array([c for _, c in sessions], dtype=np.int64)
        if opens.size and (np.any(closes <= opens) or np.any(opens[1:] < closes[:-1])):
            raise ValueError(f"calendar {name}: sessions must be ordered and not overlap")
        labels = opens // _DAY_MS if days is None else np.array(days, dtype=np.int64)
        if labels.shape != opens.shape:
            raise ValueError(f"calendar {name}: one trading day per session")
        return cls(name, opens, closes, labels)

    def day(self, t_ms: int) -> int:
        """The trading day of the session ``t_ms`` is in, or of the last one before it (its UTC date
        before the first)."""
        i = int(np.searchsorted(self.opens, t_ms, side="right")) - 1
        return int(self.days[i]) if i >= 0 else t_ms // _DAY_MS

    def open_since(self, t_ms: int) -> int:
        """The open of the session ``t_ms`` is in, or CLOSED."""
        i = int(np.searchsorted(self.opens, t_ms, side="right")) - 1
        return int(self.opens[i]) if i >= 0 and t_ms < int(self.closes[i]) else CLOSED

    def next_open(self, t_ms: int) -> int | None:
        i = int(np.searchsorted(self.opens, t_ms, side="right"))
        return int(self.opens[i]) if i < self.opens.size else None

    def next_close(self, t_ms: int) -> int | None:
        i = int(np.searchsorted(self.closes, t_ms, side="right"))
        return int(self.closes[i]) if i < self.closes.size else None


def compressed(base: Calendar, name: str, start_ms: int, session_ms: int, closed_ms: int) -> Calendar:
    """A simulated clock's calendar: ``base``'s sessions in order (their trading days kept, so
    holidays and weekends are skipped and periods turn as on the venue), each lasting ``session_ms``
    of wall time and each break between two ``closed_ms``, the first session at or after ``start_ms``'s
    UTC date opening at ``start_ms`` (earlier ones before it)."""
    if session_ms <= 0 or closed_ms <= 0:
        raise ValueError(f"calendar {name}: sessions and breaks must last > 0 ms")
    # lunch breaks are two sessions of one day: here one day is one session
    days = np.unique(base.days)
    k = int(np.searchsorted(days, start_ms // _DAY_MS))
    step = session_ms + closed_ms
    opens = start_ms + (np.arange(days.size, dtype=np.int64) - k) * step
    return Calendar(name, opens, opens + session_ms, days.astype(np.int64))


class Sessions:
    """The calendars in use, by index (0 is `24/7`); per-instrument look-ups through an index array."""

    def __init__(self) -> None:
        self.names: list[str] = [ALWAYS]
        self.calendars: list[Calendar | None] = [None]  # None: always open

    def add(self, cal: Calendar) -> int:
        """Register (or replace) a calendar; returns its index."""
        if cal.name in self.names:
            k = self.names.index(cal.name)
            self.calendars[k] = cal
            return k
        self.names.append(cal.name)
        self.calendars.append(cal)
        return len(self.names) - 1

    def get(self, name: str) -> int | None:
        return self.names.index(name) if name in self.names else None

    def days(self, cal: I64, now_ms: int) -> I64:
        """Per instrument (its calendar index): its trading day now (the UTC date on `24/7`)."""
        out: I64 = np.full(cal.size, now_ms // _DAY_MS, dtype=np.int64)
        for k, c in enumerate(self.calendars):
            if c is not None:
                out[cal == k] = c.day(now_ms)
        return out

    def open_since(self, cal: I64, now_ms: int) -> I64:
        """Per instrument (its calendar index): when its current session opened (0 on `24/7`), or CLOSED."""
        out: I64 = np.zeros(cal.size, dtype=np.int64)
        for k, c in enumerate(self.calendars):
            if c is not None:
                out[cal == k] = c.open_since(now_ms)
        return out
