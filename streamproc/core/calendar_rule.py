"""Calendar rebalancing, shared by the live worker and the backtest: on the first trading day of each
new period (month, quarter, half year, year) an account looks once and, if any weight is off its target
by more than the rule's tolerance, trades every weight back to target (Vanguard's "annually, when off
by more than 5 %"). Trading days are days since 1970-01-01 (a session's label); periods are indices."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from streamproc.core.bands import BAND_TOLERANCE
from streamproc.core.evaluate import Evaluation
from streamproc.core.types import F64, I64, Bool

NEVER = -1  # the period index of an account that has not run its calendar check yet


class Period(StrEnum):
    """How often a calendar rule looks."""

    MONTH = "month"
    QUARTER = "quarter"
    HALF = "half"
    YEAR = "year"

    @property
    def months(self) -> int:
        return {"month": 1, "quarter": 3, "half": 6, "year": 12}[self.value]

    @classmethod
    def parse(cls, name: str) -> Period:
        try:
            return cls(name)
        except ValueError:
            raise ValueError(f"unknown calendar period {name!r}; use month, quarter, half or year") from None


@dataclass(frozen=True, slots=True)
class CalendarRule:
    """Look on the first trading day of every ``every``; trade to target when a weight is off by more
    than ``tolerance`` (0: any drift). ``bands``: whether the account's bands also trigger between
    calendar runs (calendar plus threshold) or only the calendar does."""

    every: Period
    tolerance: float = 0.0
    bands: bool = True

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> CalendarRule:
        """From a targets document's ``calendar`` (validated by the schema; ValueError if unusable)."""
        tolerance = float(doc.get("tolerance", 0.0))
        if not 0.0 <= tolerance < 1.0:
            raise ValueError(f"calendar tolerance must be within [0, 1), got {tolerance!r}")
        return cls(Period.parse(str(doc["every"])), tolerance, bool(doc.get("bands", True)))


def period_index(days: I64, months: I64 | int) -> I64:
    """Per trading day (days since 1970-01-01): the index of its period of ``months`` months."""
    month = np.asarray(days, dtype="datetime64[D]").astype("datetime64[M]").astype(np.int64)
    out: I64 = month // months
    return out


def period_label(index: int, every: Period) -> str:
    """``2027-01`` (month), ``2027-Q1``, ``2027-H1``, ``2027``: the period as orders and views name it."""
    first_month = index * every.months
    year, month = 1970 + first_month // 12, first_month % 12 + 1
    if every == Period.MONTH:
        return f"{year}-{month:02d}"
    if every == Period.QUARTER:
        return f"{year}-Q{(month - 1) // 3 + 1}"
    if every == Period.HALF:
        return f"{year}-H{(month - 1) // 6 + 1}"
    return str(year)


def label_index(label: str, every: Period) -> int:
    """The period index of a label ``period_label`` wrote (ValueError if it is not one)."""
    year, _, part = label.partition("-")
    month = 1
    if every == Period.MONTH:
        month = int(part)
    elif every in (Period.QUARTER, Period.HALF):
        step = 3 if every == Period.QUARTER else 6
        if part[:1] != ("Q" if every == Period.QUARTER else "H"):
            raise ValueError(f"{label!r} is not a {every.value} label")
        month = (int(part[1:]) - 1) * step + 1
    return ((int(year) - 1970) * 12 + month - 1) // every.months


def over_tolerance(ev: Evaluation, tolerance: F64) -> Bool:
    """Per account of ``ev``: evaluable, and a weight (or its cash weight) off target by more than its
    row's ``tolerance``."""
    with np.errstate(invalid="ignore"):
        edge = tolerance + BAND_TOLERANCE
        out: Bool = np.any(np.abs(ev.deviations) > edge[:, None], axis=1)
        if ev.cash_drift is not None:
            out = out | (np.abs(ev.cash_drift.deviation) > edge)
    return out & ev.evaluable


def calendar_run(ev: Evaluation, due: Bool, tolerance: F64) -> tuple[Evaluation, Bool]:
    """The calendar check of the ``due`` accounts of ``ev``: those over their ``tolerance`` breach
    (plan them with ``Book.plan(..., to_target=runs)``: every weight goes back to target). Returns the
    evaluation and the accounts that run."""
    runs = due & over_tolerance(ev, tolerance)
    if not runs.any():
        return ev, runs
    return dataclasses.replace(ev, breaching=ev.breaching | runs), runs
