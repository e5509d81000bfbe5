"""Cash as a banded weight: a deposit above the band is invested with buys only, a shortfall below it
is raised by selling overweights first. Pure numpy over the evaluated accounts.

The cash target is ``1 - sum(weights)``; the cash band defaults to the account's band, else the
deployment's. How far cash is brought back follows the account's mode, as for any weight: to the
target (``target``; investing a deposit leaves ``buffer`` above it, 25 bp of the account by default
as Alpaca recommends), to just inside the band's edge (``edge``) or to half the band (``half``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from streamproc.core.bands import BAND_TOLERANCE, Band
from streamproc.core.types import F64, I8, I64, Bool, Mode

DEFAULT_CASH_BUFFER = 0.0025


@dataclass(frozen=True, slots=True)
class CashRules:
    """An account's cash rules: its band (None: the account's band, else the deployment's) and the
    buffer a deposit leaves uninvested above the cash target (None: the deployment's)."""

    band: Band | None = None
    buffer: float | None = None

    def __post_init__(self) -> None:
        if self.buffer is not None and not 0.0 <= self.buffer < 1.0:
            raise ValueError(f"cash buffer must be a fraction in [0, 1), got {self.buffer!r}")


@dataclass(frozen=True, slots=True)
class CashDrift:
    """Per evaluated account: cash weight minus its target, the band's limit and the excess beyond."""

    deviation: F64  # NaN on rows that are not evaluable
    limit: F64
    excess: F64  # |deviation| - limit - BAND_TOLERANCE where outside the band, else 0

    @property
    def over(self) -> Bool:
        """More cash than the band allows (a deposit to invest)."""
        out: Bool = (self.excess > 0.0) & (self.deviation > 0.0)
        return out

    @property
    def short(self) -> Bool:
        """Less cash than the band allows (a shortfall to raise)."""
        out: Bool = (self.excess > 0.0) & (self.deviation < 0.0)
        return out

    def take(self, which: Bool | I64) -> CashDrift:
        """The same drift restricted to some of its accounts."""
        return CashDrift(*(getattr(self, f.name)[which] for f in fields(self)))


def cash_drift(cash: F64, value: F64, cash_target: F64, limit: F64, bad: Bool) -> CashDrift:
    """Cash deviations of evaluated accounts (``bad``: not evaluable, never breaching)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        deviation = cash / value - cash_target
    deviation = np.where(bad, np.nan, deviation)
    excess = np.abs(deviation) - limit - BAND_TOLERANCE
    excess = np.where(bad | ~(excess > 0.0), 0.0, excess)
    return CashDrift(deviation, limit, excess)


@dataclass(frozen=True, slots=True)
class CashPlan:
    """What the planner needs about cash, per planned account: the drift, the buffer, and whether a
    slot or group breach also asks for a rebalance (then cash is not the only reason)."""

    drift: CashDrift
    buffer: F64
    other_breach: Bool
    mode: I8  # the account's

    def allowance(self, edge_margin: float) -> F64:
        """Per account, how far from its target cash is left (a fraction of the account): the buffer
        above it in ``target`` mode, just inside the edge in ``edge``, half the band in ``half``."""
        limit = self.drift.limit
        with np.errstate(invalid="ignore"):
            out: F64 = np.where(
                self.mode == Mode.EDGE,
                limit * (1.0 - edge_margin),
                np.where(self.mode == Mode.HALF, limit * 0.5, 0.0),
            )
        return out


def overweights_first(held_value: F64, target_value: F64, need: F64) -> F64:
    """Per slot, the value to sell to raise ``need`` per account: from the overweights first (pro
    rata to how far each is over its target), then, if that is not enough, from every holding pro
    rata to what is left of it. Never more than is held."""
    over = np.maximum(held_value - target_value, 0.0)
    over_total = over.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        first = over * np.where(over_total > 0.0, np.minimum(1.0, need / over_total), 0.0)[:, None]
        rest = np.maximum(need - over_total, 0.0)
        left = held_value - over
        left_total = left.sum(axis=1)
        second = left * np.where(left_total > 0.0, np.minimum(1.0, rest / left_total), 0.0)[:, None]
    out: F64 = np.minimum(first + second, held_value)
    return out
