"""Demand a thin displayed book left waiting: per account, the part of its legs the depth cap
(``max_participation`` of the quote's size) kept out of its order, to be traded by a later one, and
the sums per instrument for the capacity report (``inspect instrument``, ``inspect status``, a metric)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streamproc.core import Book, LegPlan
from streamproc.core.types import I64


@dataclass(frozen=True, slots=True)
class Waiting:
    """What waits on one instrument: quantities to buy and to sell, and how many accounts wait."""

    buy: float
    sell: float
    accounts: int


class Capacity:
    """Per book row: instrument index -> signed quantity waiting (> 0 to buy, < 0 to sell)."""

    def __init__(self, book: Book) -> None:
        self.book = book
        self.rows: dict[int, dict[int, float]] = {}

    def planned(self, plan: LegPlan) -> None:
        """The accounts of ``plan`` were planned: what the depth cap left of their legs replaces what
        waited before (an account the cap did not touch waits for nothing)."""
        waiting = plan.waiting
        if waiting is None:  # no leg was cut (the common case): only forget what waited before
            if self.rows:
                for r in plan.rows.tolist():
                    self.rows.pop(r, None)
            return
        for j, r in enumerate(plan.rows.tolist()):
            slots = np.flatnonzero(waiting[j])
            if slots.size:
                self.rows[r] = {int(plan.instruments[j, s]): float(waiting[j, s]) for s in slots}
            else:
                self.rows.pop(r, None)

    def settled(self, rows: I64) -> None:
        """``rows`` were evaluated and need no trade: nothing of theirs waits any more."""
        if self.rows:
            for r in rows.tolist():
                self.rows.pop(r, None)

    def totals(self) -> dict[str, Waiting]:
        """Per instrument id, what waits across this worker's accounts."""
        buy: dict[int, float] = {}
        sell: dict[int, float] = {}
        count: dict[int, int] = {}
        for legs in self.rows.values():
            for i, q in legs.items():
                side = buy if q > 0 else sell
                side[i] = side.get(i, 0.0) + abs(q)
                count[i] = count.get(i, 0) + 1
        names = self.book.instruments
        return {names.id_of(i): Waiting(buy.get(i, 0.0), sell.get(i, 0.0), n) for i, n in count.items()}

    def notional(self) -> tuple[float, float]:
        """The (buy, sell) notional waiting at the instruments' current mids."""
        buy = sell = 0.0
        for name, w in self.totals().items():
            bid, ask, _flags = self.book.price(name)
            mid = (bid + ask) * 0.5
            if mid == mid:  # NaN: never quoted
                buy += w.buy * mid
                sell += w.sell * mid
        return buy, sell
