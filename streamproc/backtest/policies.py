"""Rebalancing policies compared by the backtest, expressed in the live engine's terms (band, mode)."""

from __future__ import annotations

from dataclasses import dataclass

from streamproc.core import Band, Mode
from streamproc.core.calendar_rule import CalendarRule, Period

# the initial purchase (and a sleeve stop under a calendar policy) trades every deviation back to
# target: any drift "breaches" a near-zero band
_ANY_DRIFT = Band(abs=1e-9)


@dataclass(frozen=True)
class Policy:
    """When to look and how far to trade. ``calendar``: the live engine's calendar rule (a period
    name is the rule with tolerance 0): look at the first trading day of each new period and trade to
    target when off by more than its tolerance; otherwise look every ``every`` trading days and trade
    breached weights per ``mode``; ``hold`` never trades."""

    name: str
    band: Band = _ANY_DRIFT
    mode: Mode = Mode.TARGET
    every: int = 1
    calendar: CalendarRule | str | None = None  # a rule, or month | quarter | half | year
    hold: bool = False

    @property
    def rule(self) -> CalendarRule | None:
        """The calendar rule of a calendar policy."""
        if isinstance(self.calendar, str):
            return CalendarRule(Period.parse(self.calendar))
        return self.calendar


def standard() -> list[Policy]:
    """The policies of the comparison (docs/backtest.md)."""
    out = [Policy("buy-and-hold", hold=True)]
    out += [Policy(f"calendar {c}", calendar=c) for c in ("month", "quarter", "year")]
    out += [Policy(f"abs ±{p} pts", band=Band(abs=p / 100)) for p in (1, 2, 3, 4, 5)]
    out += [Policy(f"rel {p}%", band=Band(abs=None, rel=p / 100)) for p in (10, 15, 20, 25)]
    out += [
        Policy("5/25 rule", band=Band(abs=0.05, rel=0.25)),
        # Daryanani (2008): look every two weeks, 20 % relative bands, trade halfway back
        Policy("Daryanani 20% / 2 wk", band=Band(abs=None, rel=0.20), mode=Mode.HALF, every=10),
        # Leland (1996): trade only to the edge of the band
        Policy("Leland edge ±5 pts", band=Band(abs=0.05), mode=Mode.EDGE),
    ]
    return out
