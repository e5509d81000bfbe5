"""The vectorized drift kernel: weights, deviations and breaches for many accounts in one numpy pass.

Hot path (1M accounts x 10 slots is 10M cells): every full-size temporary costs page faults, so the
kernel allocates three (values/deviations, excess, and the gather) and works in place; per-account
sums are matrix-vector products (BLAS), much faster than ``sum(axis=1)`` over a short row.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from streamproc.core.bands import BAND_TOLERANCE
from streamproc.core.cash import CashDrift
from streamproc.core.groups import GroupDrift
from streamproc.core.types import F64, I64, U8, Bool, PriceFlag

CASH_REASON = -2  # ``Evaluation.worst``'s group when the cash weight is the worst breach


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Drift of ``rows`` (account indices); 2-D arrays are accounts x slots (padded slots: instrument -1).

    A full evaluation holds views of the book's arrays: use it before the book changes again.
    """

    rows: I64
    instruments: I64
    qty: F64
    targets: F64
    limits: F64
    cash: F64
    value: F64  # total market value at mid, holdings plus cash
    deviations: F64  # weight - target; NaN on rows that are not evaluable
    excess: (
        F64  # |deviation| - limit - BAND_TOLERANCE where an armed slot of an evaluable row breaches, else 0
    )
    status: U8  # OR of PriceFlag over held/targeted instruments, plus EMPTY_ACCOUNT; 0 = evaluable
    breaching: Bool  # evaluable accounts with at least one armed slot outside its band
    sellable: F64  # what a new sell may take per slot: ``qty`` less what working orders still sell
    spendable: F64  # the cash new buys may use: ``cash`` less what working orders still buy
    groups: GroupDrift | None = None  # group weights and breaches, when the book has groups
    cash_drift: CashDrift | None = None  # the cash weight against its band

    @property
    def weights(self) -> F64:
        """Weights at mid (NaN on rows that are not evaluable)."""
        out: F64 = self.deviations + self.targets
        return out

    @property
    def evaluable(self) -> Bool:
        """Accounts whose every held or targeted instrument has a usable price and whose value is positive."""
        out: Bool = self.status == 0
        return out

    @property
    def breach_slots(self) -> Bool:
        """Armed slots outside their band (only on evaluable rows)."""
        out: Bool = self.excess > 0.0
        return out

    def worst_slot(self) -> I64:
        """Per account, the slot with the largest deviation relative to its limit (the order's reason)."""
        return self.worst()[0]

    def worst(self) -> tuple[I64, I64]:
        """Per account, the breach furthest outside its band relative to the band (the order's reason):
        (slot, -1) for an instrument, (slot of no meaning, group) when a group's is the worst, and
        (slot of no meaning, ``CASH_REASON``) when the cash weight's is."""
        with np.errstate(divide="ignore", invalid="ignore"):
            severity = np.where(self.excess > 0.0, np.abs(self.deviations) / self.limits, -1.0)
        # equal breaches (a two-asset account) differ only by float noise: ties go to the first slot
        severity = np.round(severity, 9)
        slot: I64 = severity.argmax(axis=1).astype(np.int64)
        group: I64 = np.full(slot.shape, -1, dtype=np.int64)
        g = self.groups
        if g is not None and g.excess.shape[1]:
            with np.errstate(divide="ignore", invalid="ignore"):
                gsev = np.round(np.where(g.excess > 0.0, np.abs(g.deviations) / g.limits, -1.0), 9)
            best = gsev.argmax(axis=1)
            wins = np.take_along_axis(gsev, best[:, None], axis=1)[:, 0] > severity.max(axis=1)
            group = np.where(wins, best, -1).astype(np.int64)
            severity = np.maximum(severity.max(axis=1), np.take_along_axis(gsev, best[:, None], axis=1)[:, 0])
        else:
            severity = severity.max(axis=1)
        c = self.cash_drift
        if c is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                csev = np.round(np.where(c.excess > 0.0, np.abs(c.deviation) / c.limit, -1.0), 9)
            group = np.where(csev > severity, CASH_REASON, group).astype(np.int64)
        return slot, group

    def calm(self, fraction: float) -> Bool:
        """Per account: every weight, and every group's, within ``fraction`` of its band (NaN: False)."""
        with np.errstate(invalid="ignore"):
            out: Bool = np.all(np.abs(self.deviations) <= fraction * self.limits, axis=1)
            if self.groups is not None:
                g = self.groups
                out &= np.all(np.abs(g.deviations) <= fraction * g.limits, axis=1)
            if self.cash_drift is not None:
                out &= np.abs(self.cash_drift.deviation) <= fraction * self.cash_drift.limit
        return out

    def take(self, which: Bool | I64) -> Evaluation:
        """The same evaluation restricted to some of its accounts (a mask or positions)."""
        parts = ("groups", "cash_drift")
        picked = {f.name: getattr(self, f.name)[which] for f in fields(self) if f.name not in parts}
        return Evaluation(
            **picked,
            groups=None if self.groups is None else self.groups.take(which),
            cash_drift=None if self.cash_drift is None else self.cash_drift.take(which),
        )

    def with_cash(self, drift: CashDrift) -> Evaluation:
        """This evaluation with its accounts' cash drift: a cash weight outside its band breaches."""
        return replace(self, cash_drift=drift, breaching=self.breaching | (drift.excess > 0.0))

    def with_groups(self, groups: GroupDrift) -> Evaluation:
        """This evaluation with its accounts' group drift: group breaches make accounts breach."""
        return replace(self, groups=groups, breaching=self.breaching | groups.breaching)


@dataclass(frozen=True, slots=True)
class Shift:
    """What working orders will still trade, to evaluate their accounts on projected holdings: per
    entry, a position into the evaluated rows, an instrument, and the quantity still to buy (> 0) or
    sell (< 0) at ``price``. Cash moves the other way. ``cap`` (default ``qty``) is what caps new
    sells and buys: the most the entry may still trade, where ``qty`` is the best estimate."""

    at: I64
    instrument: I64
    qty: F64
    price: F64
    cap: F64 | None = None

    def apply(self, instruments: I64, qty: F64, cash: F64) -> tuple[F64, F64, F64, F64]:
        """(projected qty, projected cash, sellable qty, spendable cash) for slot arrays ``instruments``,
        ``qty`` and ``cash`` of the evaluated rows (not changed). An entry whose instrument has no slot
        in its row (no longer held nor targeted) moves cash only."""
        projected, proj_cash = qty.copy(), cash.copy()
        sellable, spendable = qty.copy(), cash.copy()
        if self.at.size == 0:
            return projected, proj_cash, sellable, spendable
        match = instruments[self.at] == self.instrument[:, None]
        found = match.any(axis=1)
        slot = match.argmax(axis=1)
        cap = self.qty if self.cap is None else self.cap
        at, sl = self.at[found], slot[found]
        np.add.at(projected, (at, sl), self.qty[found])
        np.add.at(sellable, (at, sl), np.minimum(cap[found], 0.0))
        np.add.at(proj_cash, self.at, -self.qty * self.price)  # a buy spends, a sell brings cash
        np.add.at(spendable, self.at, np.minimum(-cap * self.price, 0.0))
        np.maximum(projected, 0.0, out=projected)
        np.maximum(proj_cash, 0.0, out=proj_cash)
        np.maximum(sellable, 0.0, out=sellable)
        np.maximum(spendable, 0.0, out=spendable)
        return projected, proj_cash, sellable, spendable


def evaluate_arrays(
    rows: I64,
    instruments: I64,
    qty: F64,
    targets: F64,
    limits: F64,
    disarmed: Bool,
    cash: F64,
    mid: F64,
    price_flags: U8,
) -> Evaluation:
    """Evaluate accounts given their slot arrays and the instrument price vectors (index -1 = empty slot).

    ``mid`` and ``price_flags`` end with a sentinel entry (mid 0, flag 0) that empty slots gather.
    """
    m, k = instruments.shape
    ones = np.ones(k)
    if price_flags.any():
        status = np.bitwise_or.reduce(price_flags[instruments], axis=1)
    else:
        status = np.zeros(m, dtype=np.uint8)

    # take(mode="wrap") into a fresh array is ~2x faster than mid[instruments]; index -1 wraps to the sentinel
    values = np.take(mid, instruments, out=np.empty(instruments.shape), mode="wrap")
    np.multiply(values, qty, out=values)
    total = values @ ones
    total += cash
    empty = ~(total > 0.0) & (status == 0)  # a NaN total from a missing price is not "empty"
    if empty.any():
        status = status | np.where(empty, np.uint8(PriceFlag.EMPTY_ACCOUNT), np.uint8(0))
    bad = status != 0
    any_bad = bool(bad.any())

    deviations = values  # becomes weights, then deviations, in place
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(deviations, total[:, None], out=deviations)
    np.subtract(deviations, targets, out=deviations)
    if any_bad:
        deviations[bad] = np.nan

    excess = np.abs(deviations)
    np.subtract(excess, limits, out=excess)  # padded slots: limit inf -> -inf
    np.subtract(excess, BAND_TOLERANCE, out=excess)  # a weight exactly on its edge is inside
    np.maximum(excess, 0.0, out=excess)  # NaN (bad rows) propagates, cleared below
    if any_bad:
        excess[bad] = 0.0
    if disarmed.any():
        excess[disarmed] = 0.0
    breaching = (excess @ ones) > 0.0
    return Evaluation(
        rows=rows,
        instruments=instruments,
        qty=qty,
        targets=targets,
        limits=limits,
        cash=cash,
        value=total,
        deviations=deviations,
        excess=excess,
        status=status.astype(np.uint8, copy=False),
        breaching=breaching,
        sellable=qty,
        spendable=cash,
    )
