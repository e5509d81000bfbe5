"""The order throttle of one worker: at most ``max_per_s`` orders a second (a token bucket with a
second's burst) and ``max_notional_per_min`` of leg notional over any minute. Orders over the limit are
not published now: their accounts are ``throttled`` and drafted again at the next pass (on the prices
then, with the same deterministic ids), the ones waiting longest first, so none is dropped, none
published twice and they go out in the order they were first held."""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Sequence

from streamproc.app.decisions import Draft


def notional(draft: Draft) -> float:
    """The order's notional: the sum of its legs'."""
    return math.fsum(float(leg["notional"]) for leg in draft.doc["legs"])


class Throttle:
    """Admits a pass's drafts under the limits; 0 for a limit turns it off."""

    def __init__(self, max_per_s: float, max_notional_per_min: float) -> None:
        self.max_per_s = max_per_s
        self.max_notional = max_notional_per_min
        self.tokens = max_per_s
        self.refilled = -math.inf
        self.window: deque[tuple[float, float]] = deque()  # (time, notional) published in the last minute
        self.in_window = 0.0
        self.waiting: dict[int, int] = {}  # row -> its place in the queue (first held first)
        self._places = itertools.count()

    @property
    def on(self) -> bool:
        return self.max_per_s > 0 or self.max_notional > 0

    def admit(self, drafts: Sequence[Draft], now: float) -> tuple[list[Draft], list[Draft]]:
        """(the drafts to publish now, the ones held), the accounts waiting longest first."""
        if not self.on or not drafts:
            return list(drafts), []
        self._refill(now)
        ordered = sorted(drafts, key=lambda d: self.waiting.get(d.row, math.inf))
        allowed: list[Draft] = []
        held: list[Draft] = []
        for d in ordered:
            size = notional(d)
            if held or not self._fits(size):  # once one waits, the later ones wait behind it
                held.append(d)
                self.waiting.setdefault(d.row, next(self._places))
                continue
            allowed.append(d)
            self.waiting.pop(d.row, None)
            if self.max_per_s > 0:
                self.tokens -= 1.0
            if self.max_notional > 0:
                self.window.append((now, size))
                self.in_window += size
        return allowed, held

    def describe(self) -> str:
        """The limits, for a drift document's ``why``."""
        parts = []
        if self.max_per_s > 0:
            parts.append(f"{self.max_per_s:g} orders/s")
        if self.max_notional > 0:
            parts.append(f"{self.max_notional:g} notional/min")
        return " and ".join(parts) + " (STREAMPROC_MAX_ORDERS_PER_S, STREAMPROC_MAX_NOTIONAL_PER_MIN)"

    def forget(self, rows: Sequence[int]) -> None:
        """Accounts no longer waiting for an order (back in band, suppressed, released)."""
        for r in rows:
            self.waiting.pop(r, None)

    def _fits(self, size: float) -> bool:
        if self.max_per_s > 0 and self.tokens < 1.0:
            return False
        # an order larger than the whole budget goes out alone, once the minute is clear
        return not (
            self.max_notional > 0 and self.in_window > 0 and self.in_window + size > self.max_notional
        )

    def _refill(self, now: float) -> None:
        if self.max_per_s > 0:
            elapsed = now - self.refilled
            self.tokens = min(self.max_per_s, self.tokens + elapsed * self.max_per_s)
            self.refilled = now
        while self.window and self.window[0][0] <= now - 60.0:
            self.in_window -= self.window.popleft()[1]
