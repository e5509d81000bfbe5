"""Per account: its calendar rule and daily run limit (targets ``calendar`` and ``max_runs_per_day``),
and what it has used of them (the period it last ran its calendar check, its runs on the current
trading day). No I/O: stored with the account (``calendar_run``, ``runs``), restored at a load."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from streamproc.core.calendar_rule import (
    NEVER,
    CalendarRule,
    Period,
    calendar_run,
    label_index,
    period_index,
    period_label,
)
from streamproc.core.evaluate import Evaluation
from streamproc.core.types import F64, I64, Bool


@dataclass(frozen=True, slots=True)
class Judged:
    """What the schedules made of one pass's evaluation, per evaluated row."""

    day: I64  # its trading day (-1: no instrument)
    period: I64  # the period index of that day under its rule (-1: no rule)
    runs: Bool  # its calendar check runs now: trade every weight back to target
    spent: Bool  # breaching, but its runs for the day are used up (``max_runs_per_day``)
    checked: Bool  # its calendar check found nothing off by more than the tolerance

    @classmethod
    def none(cls, n: int) -> Judged:
        no = np.zeros(n, dtype=bool)
        return cls(np.full(n, -1, dtype=np.int64), np.full(n, -1, dtype=np.int64), no, no, no)


class Schedules:
    """Numpy columns indexed like the book's rows; ``rows`` is who has a rule or a limit."""

    def __init__(self) -> None:
        self.months: I64 = np.zeros(0, dtype=np.int64)  # the calendar rule's period, 0: none
        self.tolerance: F64 = np.zeros(0)
        self.bands: Bool = np.ones(0, dtype=bool)  # the account's bands also trigger between runs
        self.last: I64 = np.zeros(0, dtype=np.int64)  # period index of its last calendar check
        self.max_runs: I64 = np.zeros(0, dtype=np.int64)  # 0: no daily limit
        self.day: I64 = np.zeros(0, dtype=np.int64)  # the trading day ``runs`` counts
        self.runs: I64 = np.zeros(0, dtype=np.int64)
        self.rules: dict[int, CalendarRule] = {}
        self.rows: set[int] = set()
        self.changed: set[int] = set()  # used a run or a period since the last store

    def grow(self, n: int) -> None:
        have = len(self.months)
        if n <= have:
            return
        extra = n - have

        def ext(a: Any, fill: Any) -> Any:
            return np.concatenate([a, np.full(extra, fill, dtype=a.dtype)])

        self.months, self.tolerance, self.bands = (
            ext(self.months, 0),
            ext(self.tolerance, 0.0),
            ext(self.bands, True),
        )
        self.last, self.max_runs = ext(self.last, NEVER), ext(self.max_runs, 0)
        self.day, self.runs = ext(self.day, -1), ext(self.runs, 0)

    def apply(self, r: int, doc: Mapping[str, Any]) -> None:
        """Row r's targets (validated): its rule and limit. A new period length starts its count over."""
        raw = doc.get("calendar")
        rule = CalendarRule.of(raw) if raw is not None else None
        months = rule.every.months if rule is not None else 0
        if months != int(self.months[r]):
            self.last[r] = NEVER
        self.months[r] = months
        self.tolerance[r] = rule.tolerance if rule is not None else 0.0
        self.bands[r] = rule.bands if rule is not None else True
        self.max_runs[r] = int(doc.get("max_runs_per_day", 0))
        if rule is not None:
            self.rules[r] = rule
        else:
            self.rules.pop(r, None)
        if rule is not None or self.max_runs[r]:
            self.rows.add(r)
        else:
            self.rows.discard(r)

    def restore(
        self,
        r: int,
        targets: Mapping[str, Any] | None,
        calendar_run: str | None,
        runs: str | None,
        order: Mapping[str, Any] | None = None,
    ) -> None:
        """Row r as stored: its targets' rule and what it had used (``quarter:228``, ``20821:1``); a
        calendar order recorded (or recovered from the orders topic) after the last store counts too."""
        self.months[r], self.last[r] = 0, NEVER
        self.apply(r, targets or {})
        rule = self.rules.get(r)
        if calendar_run and rule is not None:
            every, _, index = calendar_run.partition(":")
            if Period.parse(every) == rule.every:
                self.last[r] = int(index)
        ran = ((order or {}).get("reason") or {}).get("calendar")
        if ran and rule is not None and ran.get("every") == rule.every.value:
            self.last[r] = max(int(self.last[r]), label_index(str(ran["period"]), rule.every))
        self.day[r], self.runs[r] = -1, 0
        if runs:
            day, _, n = runs.partition(":")
            self.day[r], self.runs[r] = int(day), int(n)

    def trading_days(self, rows: I64, instruments: I64, days: I64) -> I64:
        """Per row: its trading day, the latest among its instruments' markets (``days``: per
        instrument, ``Venues.days``); -1 for a row with no instrument."""
        per_slot = np.where(instruments >= 0, days[np.maximum(instruments, 0)], -1)
        out: I64 = per_slot.max(axis=1, initial=-1)
        return out

    def due(self, rows: I64, day: I64) -> tuple[Bool, I64]:
        """Per row: its calendar check is due (a rule, and a period it has not checked yet), and the
        period index ``day`` is in (-1 without a rule)."""
        months = self.months[rows]
        ruled = (months > 0) & (day >= 0)
        index = np.where(ruled, period_index(np.maximum(day, 0), np.maximum(months, 1)), -1)
        return ruled & (index != self.last[rows]), index

    def between_runs(self, rows: I64) -> Bool:
        """Per row: only its calendar trades (its rule turns the bands off)."""
        out: Bool = (self.months[rows] > 0) & ~self.bands[rows]
        return out

    def spent(self, rows: I64, day: I64) -> Bool:
        """Per row: its automatic runs for trading day ``day`` are used up (``max_runs_per_day``)."""
        limit = self.max_runs[rows]
        out: Bool = (limit > 0) & (self.day[rows] == day) & (self.runs[rows] >= limit)
        return out

    def judge(self, ev: Evaluation, days: I64, usable: Bool) -> tuple[Evaluation, Judged]:
        """The rules and limits of ``ev``'s rows (``days``: per instrument, its trading day now;
        ``usable``: rows evaluated on good data, not quarantined): due calendar checks over their
        tolerance breach (``runs``); between runs a calendar-only account does not; a breaching row
        whose runs for the day are used up is ``spent`` (not planned)."""
        rows = ev.rows
        day = self.trading_days(rows, ev.instruments, days)
        due, period = self.due(rows, day)
        due &= usable
        ev, runs = calendar_run(ev, due, self.tolerance[rows])
        breaching = ev.breaching & ~(self.between_runs(rows) & ~runs)
        spent = self.spent(rows, day) & breaching
        ev = dataclasses.replace(ev, breaching=breaching & ~spent)
        return ev, Judged(day, period, runs & ~spent, spent, due & ~runs)

    def checked(self, r: int, index: int) -> None:
        """Row r ran its calendar check for period ``index`` (traded, or nothing was off enough)."""
        if int(self.last[r]) != index:
            self.last[r] = index
            self.changed.add(r)

    def ran(self, r: int, day: int) -> None:
        """Row r published a new order (a run) on trading day ``day``."""
        if not self.max_runs[r]:
            return
        if int(self.day[r]) != day:
            self.day[r], self.runs[r] = day, 0
        self.runs[r] += 1
        self.changed.add(r)

    def label(self, r: int, index: int) -> str:
        """The period a calendar order answers: ``2027-Q1``."""
        return period_label(index, self.rules[r].every)

    def stored(self, r: int) -> tuple[str, str]:
        """(``calendar_run``, ``runs``) as the account hash stores them."""
        rule = self.rules.get(r)
        last = int(self.last[r])
        run = f"{rule.every.value}:{last}" if rule is not None and last != NEVER else ""
        runs = f"{int(self.day[r])}:{int(self.runs[r])}" if int(self.day[r]) >= 0 else ""
        return run, runs

    def drain_changed(self) -> list[int]:
        out, self.changed = sorted(self.changed), set()
        return out
