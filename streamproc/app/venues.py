"""Each instrument's venue beside its price: its trading calendar (loaded when reference data first names
it, renewed before its loaded year runs out) and its opening delay; says whose markets are open and since
when, for the price checks and the feed's silence (no I/O beyond the calendar loader)."""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable, Mapping

import numpy as np

from streamproc.core.sessions import ALWAYS, CLOSED, Calendar, Sessions
from streamproc.core.types import F64, I64, Bool

_DAY_MS = 86_400_000


class Venues:
    """Per instrument: its calendar's index in ``sessions`` (0: 24/7) and its opening delay."""

    def __init__(
        self,
        load: Callable[[str, int], Calendar] | None = None,
        opening_delay_s: float = 0.0,
        opening_delay_by_tier: Mapping[str, float] | None = None,
    ) -> None:
        self.load = load  # name, now_ms -> its sessions (None: only 24/7 is known)
        self.sessions = Sessions()
        self.cal: I64 = np.zeros(0, dtype=np.int64)
        self.default_delay_s = opening_delay_s
        self.delay_by_tier = dict(opening_delay_by_tier or {})
        self.delay_s: F64 = np.zeros(0)  # NaN: the default
        self._aliases: dict[str, int] = {}  # calendar names as reference data spells them
        self._renew_after_ms = 0

    def grow(self, extra: int) -> None:
        self.cal = np.concatenate([self.cal, np.zeros(extra, dtype=np.int64)])
        self.delay_s = np.concatenate([self.delay_s, np.full(extra, math.nan)])

    def name(self, idx: int) -> str:
        """The name of instrument ``idx``'s calendar."""
        return self.sessions.names[int(self.cal[idx])]

    def calendar(self, name: str, now_ms: int) -> int | str:
        """The calendar's index (loaded on first use), or why it cannot be used."""
        known = self.sessions.get(name)
        if known is None:
            known = self._aliases.get(name)
        if known is not None:
            return known
        if self.load is None:
            return f"calendar {name!r}: this worker knows only {ALWAYS!r}"
        try:
            cal = self.load(name, now_ms)
        except ValueError as exc:
            return str(exc)
        known = self.sessions.get(cal.name)  # `xnys` and `XNYS` are one calendar
        self._aliases[name] = known if known is not None else self.sessions.add(cal)
        return self._aliases[name]

    def set(self, idx: int, calendar: int, tier: str | None) -> None:
        """Instrument ``idx`` trades on ``calendar`` (an index from ``calendar()``), in ``tier``."""
        self.cal[idx] = calendar
        self.delay_s[idx] = self.delay_by_tier.get(tier, math.nan) if tier else math.nan

    def renew(self, now_ms: int) -> None:
        """Reload, at most daily, the calendars whose loaded sessions end within a month (a simulated
        clock's, whose year passes in hours: within a quarter of what is loaded, looked at as often)."""
        if self.load is None or now_ms < self._renew_after_ms:
            return
        every = _DAY_MS
        for cal in self.sessions.calendars:
            if cal is None:
                continue
            ahead = int(cal.closes[-1]) - now_ms if cal.closes.size else 0
            span = int(cal.closes[-1] - cal.opens[0]) if cal.closes.size else 0
            if not cal.closes.size or ahead < min(30 * _DAY_MS, span // 4):
                cal = self.load(cal.name, now_ms)
                self.sessions.add(cal)
                span = int(cal.closes[-1] - cal.opens[0]) if cal.closes.size else 0
            every = min(every, max(span // 16, 60_000))
        self._renew_after_ms = now_ms + every

    def open_since(self, n: int, now_ms: int) -> I64:
        """Per instrument of the first ``n``: when its session opened (0 on 24/7), or CLOSED."""
        return self.sessions.open_since(self.cal[:n], now_ms)

    def days(self, n: int, now_ms: int) -> I64:
        """Per instrument of the first ``n``: its trading day now (days since 1970-01-01); one with no
        reference data yet is on `24/7` (its UTC date)."""
        cal = self.cal[:n]
        if cal.size < n:
            cal = np.concatenate([cal, np.zeros(n - cal.size, dtype=np.int64)])
        return self.sessions.days(cal, now_ms)

    def delays_ms(self, n: int) -> F64:
        """Opening delay (ms) of the first ``n`` instruments."""
        out: F64 = np.where(np.isnan(self.delay_s[:n]), self.default_delay_s, self.delay_s[:n]) * 1000.0
        return out

    def due_since(self, referenced: Bool, now_ms: int) -> int | None:
        """Since when the referenced instruments' feed should be quoting: the first open among their
        markets open now (0: one of them never closes); None while every one of them is closed."""
        if not referenced.any():
            return 0
        opened = self.sessions.open_since(self.cal[: len(referenced)][referenced], now_ms)
        live = opened[opened != CLOSED]
        return int(live.min()) if live.size else None

    def line(self, idx: int, quote_ts: int, now_ms: int) -> str:
        """``XNYS, opens 2026-12-04T14:30Z`` / ``XNYS, open, closes ...`` / ``24/7``."""
        cal = self.sessions.calendars[int(self.cal[idx]) if idx < len(self.cal) else 0]
        if cal is None:
            return ALWAYS
        opened = cal.open_since(now_ms)
        if opened == CLOSED:
            return f"{cal.name}, opens {_iso(cal.next_open(now_ms))}"
        delay = float(self.delay_s[idx]) if idx < len(self.delay_s) else math.nan
        until = opened + int((self.default_delay_s if math.isnan(delay) else delay) * 1000)
        if now_ms < until:
            return f"{cal.name}, open since {_iso(opened)}, opening delay until {_iso(until)}"
        if quote_ts < opened:
            return f"{cal.name}, open since {_iso(opened)}, no quote yet this session"
        return f"{cal.name}, open, closes {_iso(cal.next_close(now_ms))}"


def _iso(ms: int | None) -> str:
    if ms is None:
        return "beyond the loaded window"
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC).strftime("%Y-%m-%dT%H:%MZ")
