"""Sleeves: groups with a lifecycle and kill criteria (a calendar stop, a stop-loss, a drawdown stop, a
take-profit), judged on the sleeve's price return since each member was first held, vectorized.

A sleeve's mark is the value of its holdings at today's mids over their value at the mids they were
first held at (``entry`` per slot): trades inside the sleeve do not move it, prices do. The peak of
the mark is kept for the drawdown stop. The first criterion met closes the sleeve: its members'
targets become 0 (the rest of the model takes their weight, in proportion) and they are sold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from streamproc.core.types import F64, I8, I64, Bool

DAY_MS = 86_400_000


class Trigger(IntEnum):
    """Why a sleeve was stopped (0: it was not). Checked in this order; the first that holds names it."""

    NONE = 0
    STOP_LOSS = 1
    MAX_DRAWDOWN = 2
    MAX_DAYS = 3
    TAKE_PROFIT = 4

    @property
    def wire(self) -> str:
        """The name in orders' ``reason.trigger`` and the alert's details."""
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Kill:
    """A sleeve's kill criteria, each optional: ``max_days`` since it opened; ``stop_loss`` a fraction
    below its entry value; ``max_drawdown`` a fraction below its peak; ``take_profit`` a fraction above
    its entry value."""

    max_days: float | None = None
    stop_loss: float | None = None
    max_drawdown: float | None = None
    take_profit: float | None = None

    def __post_init__(self) -> None:
        for name in ("stop_loss", "max_drawdown"):
            value = getattr(self, name)
            if value is not None and not 0.0 < value < 1.0:
                raise ValueError(f"kill {name} must be a fraction in (0, 1), got {value!r}")
        for name in ("max_days", "take_profit"):
            value = getattr(self, name)
            if value is not None and not value > 0.0:
                raise ValueError(f"kill {name} must be > 0, got {value!r}")

    def columns(self) -> tuple[float, float, float, float]:
        """(max_days, stop_loss, max_drawdown, take_profit) with NaN for a criterion not set."""

        def col(v: float | None) -> float:
            return math.nan if v is None else float(v)

        return col(self.max_days), col(self.stop_loss), col(self.max_drawdown), col(self.take_profit)


NO_KILL = (math.nan, math.nan, math.nan, math.nan)


def sleeve_marks(slot_group: I8, qty: F64, mid: F64, entry: F64, sleeve: Bool) -> F64:
    """Per row x group: the mark (value at mid over value at entry mids) of the groups that are
    sleeves (``sleeve``, rows x G), NaN elsewhere or while nothing is held."""
    m, width = sleeve.shape
    ones = np.ones(slot_group.shape[1])
    now = np.where(np.isnan(entry), 0.0, qty * mid)
    then = np.where(np.isnan(entry), 0.0, qty * entry)
    out = np.full((m, width), np.nan)
    for g in range(width):
        if not sleeve[:, g].any():
            continue
        member = slot_group == g
        value_now = np.where(member, now, 0.0) @ ones
        value_then = np.where(member, then, 0.0) @ ones
        with np.errstate(divide="ignore", invalid="ignore"):
            out[:, g] = np.where(sleeve[:, g] & (value_then > 0.0), value_now / value_then, np.nan)
    return out


def triggers(marks: F64, peak: F64, opened_ms: I64, kill: F64, closed: Bool, now_ms: int) -> I8:
    """Per row x group: the ``Trigger`` of each open sleeve (``kill``: rows x G x 4, NaN = not set)."""
    max_days, stop_loss, max_drawdown, take_profit = (kill[..., i] for i in range(4))
    with np.errstate(invalid="ignore"):
        hit = [
            marks <= 1.0 - stop_loss,
            marks <= peak * (1.0 - max_drawdown),
            (opened_ms > 0) & (now_ms - opened_ms >= max_days * DAY_MS),
            marks >= 1.0 + take_profit,
        ]
    out = np.zeros(marks.shape, dtype=np.int8)
    for code, condition in reversed(list(enumerate(hit, start=1))):  # the first in order wins
        out = np.where(condition, np.int8(code), out)
    out[closed] = Trigger.NONE
    return out


class SleeveTable:
    """The book's sleeves: per account x group the kill criteria, when it opened, its peak mark, and
    whether it was closed; ``rows`` counts the accounts with a sleeve."""

    def __init__(self) -> None:
        self.kill: F64 = np.zeros((0, 0, 4))
        self.opened_ms: I64 = np.zeros((0, 0), dtype=np.int64)
        self.peak: F64 = np.zeros((0, 0))
        self.closed: Bool = np.zeros((0, 0), dtype=bool)
        self.is_sleeve: Bool = np.zeros((0, 0), dtype=bool)
        self.rows: set[int] = set()

    def ensure(self, accounts: int, width: int) -> None:
        """Capacity for ``accounts`` rows and ``width`` groups per row."""
        n, g = self.peak.shape
        if accounts <= n and width <= g:
            return
        n2, g2 = max(accounts, n), max(width, g)
        kill = np.full((n2, g2, 4), np.nan)
        kill[:n, :g] = self.kill
        self.kill = kill
        for name, fill in (("opened_ms", 0), ("peak", np.nan), ("closed", False), ("is_sleeve", False)):
            old = getattr(self, name)
            arr = np.full((n2, g2), fill, dtype=old.dtype)
            arr[:n, :g] = old
            setattr(self, name, arr)

    def clear(self, rows: I64) -> None:
        """Forget the sleeves of ``rows``."""
        self.kill[rows] = np.nan
        self.opened_ms[rows] = 0
        self.peak[rows] = np.nan
        self.closed[rows] = False
        self.is_sleeve[rows] = False
        if self.rows:
            self.rows.difference_update(rows.tolist())
