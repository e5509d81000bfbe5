"""Rebalance legs for breaching accounts, vectorized over accounts x slots.

Rules (issue #3, #16): sells at bid, buys at ask; edge mode aims a margin inside the edge; a target of
0 exits in every mode; quantities rounded toward zero to the lot; an exit
(desired weight 0) sells the whole holding; legs above ``max_notional`` are cut to it; instruments
whose spread exceeds their budget are not traded and reported, nor bought when not eligible; every leg
has a limit price (the slippage budget past the quote); sells never exceed the holding;
sells below ``min_trade`` are dropped first, then buys are funded by sell proceeds plus free cash
above the cash target (scaled down pro rata when short, so cash never goes negative), then buys
below ``min_trade`` are dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from streamproc.core.cash import CashPlan, overweights_first
from streamproc.core.evaluate import Evaluation
from streamproc.core.groups import GroupDrift
from streamproc.core.limits import LimitTable
from streamproc.core.trading import TradingState
from streamproc.core.types import F64, I8, I64, Bool, Mode

# Relative: 0.3 / 0.1 = 2.9999999999999996 must count as 3 lots, 2.9999999995 must not.
_ROUND_EPS = 1e-12
_BPS_TOLERANCE = 1e-6  # 100 bps quoted as 9.95 / 10.05 computes as 100.00000000000009


@dataclass(frozen=True, slots=True)
class LegLimits:
    """Deployment-wide trading limits."""

    max_notional: float = math.inf  # per leg (position-size limit)
    max_spread_bps: float = math.inf  # slippage budget; wider quotes are not traded

    def __post_init__(self) -> None:
        if not self.max_notional > 0:
            raise ValueError(f"max_notional must be positive, got {self.max_notional!r}")
        if not self.max_spread_bps >= 0:
            raise ValueError(f"max_spread_bps must be >= 0, got {self.max_spread_bps!r}")


@dataclass(frozen=True, slots=True)
class Leg:
    """One trade of one instrument: signed by ``side``, priced at the reference bid or ask."""

    instrument: int
    side: Literal["buy", "sell"]
    qty: float
    price: float
    notional: float
    held: float = 0.0  # the quantity held before the trade
    limit_price: float = math.nan  # the worst price it may trade at (the slippage budget past the quote)


@dataclass(frozen=True, slots=True)
class LegPlan:
    """Planned trades for ``rows``; 2-D arrays are accounts x slots as in the evaluation."""

    rows: I64
    instruments: I64
    qty: F64  # signed: > 0 buy, < 0 sell, 0 none
    price: F64  # reference price used (bid for sells, ask for buys)
    notional: F64  # |qty| * price
    skipped_spread: Bool  # a trade was wanted but the spread exceeded its budget
    breach_slots: Bool
    cash_after: F64
    weights_after: F64
    held: F64  # what could be sold before the trades (the holding, less what working orders sell)
    groups: GroupDrift | None = None  # the evaluation's group drift, for re-arming answered groups
    limit_price: F64 | None = None  # per leg: buy <= ask x (1 + slippage), sell >= bid x (1 - slippage)
    skipped_restricted: Bool | None = None  # a buy was wanted of an instrument not eligible for buys
    spread_bps: F64 | None = None  # the quoted spread per slot, and its budget (for the reasons)
    spread_budget: F64 | None = None
    waiting: F64 | None = None  # per slot, signed: what the depth cap left for a later order
    skipped_state: Bool | None = None  # a leg was wanted but its instrument or account is halted/reducing
    slot_state: I8 | None = None  # the TradingState that applied per slot

    @property
    def has_legs(self) -> Bool:
        """Accounts with at least one non-zero leg."""
        out: Bool = (self.qty != 0.0).any(axis=1)
        return out

    def legs(self, j: int) -> list[Leg]:
        """The legs of the j-th account of the plan, sells first (they fund the buys), then by instrument."""
        out = []
        for s in np.flatnonzero(self.qty[j]):
            q = float(self.qty[j, s])
            out.append(
                Leg(
                    instrument=int(self.instruments[j, s]),
                    side="buy" if q > 0 else "sell",
                    qty=abs(q),
                    price=float(self.price[j, s]),
                    notional=float(self.notional[j, s]),
                    held=float(self.held[j, s]),
                    limit_price=math.nan if self.limit_price is None else float(self.limit_price[j, s]),
                )
            )
        out.sort(key=lambda leg: (leg.side != "sell", leg.instrument))
        return out


def _round_to_lot(qty: F64, lot: F64, *, exact: bool = False) -> F64:
    """Round toward zero to a whole number of lots; ``exact`` for bounds (caps, funding) never rounds up."""
    lots = qty / lot
    lots = np.trunc(lots if exact else lots * (1.0 + _ROUND_EPS))
    out: F64 = lots * lot
    return out


def plan_legs(
    ev: Evaluation,
    *,
    bid: F64,
    ask: F64,
    lot: F64,
    cash_target: F64,
    mode: I8,
    min_trade: F64,
    limits: LegLimits,
    edge_margin: float = 0.0,
    group_desired: F64 | None = None,
    cash: CashPlan | None = None,
    table: LimitTable | None = None,
    sizes: tuple[F64, F64] | None = None,
    trading: tuple[I8, I8] | None = None,
) -> LegPlan:
    """Plan legs for every account in ``ev`` (callers pass only breaching ones).

    ``bid``, ``ask`` and ``lot`` are per-instrument vectors ending with a sentinel for empty slots;
    ``cash_target`` (fraction of value), ``mode`` and ``min_trade`` are per account of ``ev``;
    ``mode`` may also be per slot (accounts x slots); ``edge_margin`` is the fraction of the band
    inside the edge that edge mode aims at; ``group_desired`` (per slot, NaN: none) the weight members
    of breached groups trade to, which wins over their own; ``cash`` the accounts' cash bands: an
    account whose only breach is too much cash invests it with buys only into its underweights
    (leaving the buffer), one whose only breach is too little raises it with sells only, overweights
    first (with other breaches, the mode's rebalance brings cash along); ``table`` the per-instrument
    limits (max notional per leg, spread budget, slippage budget, eligibility for buys, participation),
    each combined with ``limits`` (the tighter wins); ``sizes`` the displayed (bid, ask) sizes per
    instrument (NaN: unknown): a leg is at most its participation of the size on its side, and the rest
    is ``waiting`` (a later order trades it); ``trading`` the operators' states per instrument and per
    account of ``ev``: HALTED allows no leg, REDUCING only sells (a holding is reduced, never added to).
    """
    inst = ev.instruments
    b = bid[inst]
    a = ask[inst]
    mid = (a + b) * 0.5
    lots = lot[inst]
    t, lim, q = ev.targets, ev.limits, ev.qty
    breach = ev.breach_slots
    value = ev.value[:, None]

    # Desired weight per mode: target moves every slot; edge and half move breached slots only. An
    # exit (target 0) is an exit in every mode.
    m = mode if mode.ndim == 2 else mode[:, None]
    direction = np.sign(ev.deviations)
    with np.errstate(invalid="ignore"):  # padded slots: 0 * inf
        desired = np.where(m == Mode.EDGE, t + direction * lim * (1.0 - edge_margin), t)
        desired = np.where(m == Mode.HALF, t + direction * lim * 0.5, desired)
    desired = np.where(t > 0.0, np.clip(desired, 0.0, 1.0), 0.0)
    used = inst >= 0
    move = used & (breach | (m == Mode.TARGET))
    if group_desired is not None:
        in_breached_group = ~np.isnan(group_desired)
        desired = np.where(in_breached_group, group_desired, desired)
        move |= used & in_breached_group
    investing = raising = short = np.zeros(inst.shape[0], dtype=bool)
    if cash is not None:
        investing = cash.drift.over & ~cash.other_breach
        short = cash.drift.short
        raising = short & ~cash.other_breach
        move = np.where(investing[:, None], used & (ev.deviations < 0.0), move)
    delta_value = np.where(move, desired * value - q * mid, 0.0)
    if cash is not None and raising.any():
        floor = cash_target - cash.allowance(edge_margin)
        need = np.maximum(floor * ev.value - ev.cash, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            at_bid = np.where(used & (mid > 0.0), b / mid, 0.0)  # value the overweights where they sell
        sell = overweights_first(np.where(used, q * b, 0.0), t * value * at_bid, need)
        delta_value = np.where(raising[:, None], -sell, delta_value)
    selling = delta_value < 0
    with np.errstate(divide="ignore", invalid="ignore"):
        price = np.where(selling, b, a)
        raw = np.where(used & (price > 0), delta_value / price, 0.0)
        spread_bps = np.where(mid > 0, (a - b) / mid * 1e4, np.inf)
    wanted = raw != 0.0
    spread_budget = np.full(inst.shape, limits.max_spread_bps)
    max_notional: F64 | float = limits.max_notional
    restricted = np.zeros(inst.shape, dtype=bool)
    if table is not None:
        spread_budget = np.minimum(spread_budget, table.spread_bps[inst])
        max_notional = np.minimum(limits.max_notional, table.max_notional[inst])
        restricted = wanted & (raw > 0.0) & ~table.eligible[inst]
    skipped = wanted & (spread_bps > spread_budget + _BPS_TOLERANCE)  # a spread at its budget trades
    stopped = np.zeros(inst.shape, dtype=bool)
    state = None
    if trading is not None:
        state = np.maximum(trading[0][inst], trading[1][:, None])
        stopped = wanted & ((state == TradingState.HALTED) | ((state == TradingState.REDUCING) & (raw > 0.0)))
    raw = np.where(skipped | restricted | stopped, 0.0, raw)
    qty = _round_to_lot(raw, lots)
    if short.any():  # raise at least what is short: a sell's last lot is rounded up
        with np.errstate(divide="ignore", invalid="ignore"):
            up = -np.ceil(np.round(-raw / lots, 9)) * lots
        qty = np.where(short[:, None] & (raw < 0.0), up, qty)
    if np.isfinite(max_notional).any():
        with np.errstate(divide="ignore", invalid="ignore"):  # padded slots: price 0
            cap = _round_to_lot(max_notional / price, lots, exact=True)
        qty = np.clip(qty, -cap, cap)
    exiting = selling & (desired == 0.0) & ~skipped & ~stopped & ~raising[:, None]
    # what working orders still sell is not for sale again (``sellable``; ``q`` is the projected holding)
    held = np.minimum(q, ev.sellable)
    qty = np.where(exiting & (max_notional >= held * b), -held, qty)
    qty = np.maximum(qty, -held)  # never sell more than is held
    if table is not None:
        cap_w = table.max_weight[inst]
        if np.isfinite(cap_w).any():  # a buy stops at the position's max weight (at the ask, on lots)
            with np.errstate(divide="ignore", invalid="ignore"):
                room = np.maximum(cap_w * value - q * a, 0.0) / a
            room = _round_to_lot(np.where(np.isfinite(room), room, np.inf), lots, exact=True)
            qty = np.where((qty > 0) & (qty > room), room, qty)
    waiting = None
    if table is not None and sizes is not None:
        depth = np.where(qty > 0, sizes[1][inst], sizes[0][inst]) * table.participation[inst]
        deep = np.isfinite(depth) & (np.abs(qty) > depth)
        if deep.any():
            cap = _round_to_lot(np.where(deep, depth, 0.0), lots, exact=True)
            capped = np.where(deep, np.sign(qty) * cap, qty)
            waiting = qty - capped
            qty = capped
    qty = np.where((investing[:, None] & (qty < 0.0)) | (raising[:, None] & (qty > 0.0)), 0.0, qty)

    min_t = min_trade[:, None]
    notional = np.abs(qty) * price
    qty = np.where((qty < 0) & (notional < min_t), 0.0, qty)

    proceeds = np.where(qty < 0, -qty * price, 0.0).sum(axis=1)
    if cash is None:
        keep = cash_target
    else:
        keep = cash_target + np.where(investing, np.maximum(cash.buffer, cash.allowance(edge_margin)), 0.0)
    free_cash = np.maximum(0.0, np.minimum(ev.cash, ev.spendable) - keep * ev.value)
    available = proceeds + free_cash
    buys = np.where(qty > 0, qty * price, 0.0).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(buys > available, available / buys, 1.0)
    scaled = np.where(qty > 0, _round_to_lot(qty * scale[:, None], lots, exact=True), qty)
    qty = np.where(scale[:, None] < 1.0, scaled, qty)
    notional = np.abs(qty) * price
    qty = np.where((qty > 0) & (notional < min_t), 0.0, qty)
    notional = np.abs(qty) * price

    signed_cash = np.where(qty < 0, notional, -notional).sum(axis=1)
    cash_after = ev.cash + signed_cash
    qty_after = q + qty
    values_after = qty_after * np.where(used, mid, 0.0)
    total_after = values_after.sum(axis=1) + cash_after
    with np.errstate(divide="ignore", invalid="ignore"):
        weights_after = values_after / total_after[:, None]
    slip = 0.0 if table is None else table.slippage_bps[inst] / 1e4
    limit_price = np.where(qty > 0, a * (1.0 + slip), b * (1.0 - slip))
    return LegPlan(
        rows=ev.rows,
        instruments=inst,
        qty=qty,
        price=price,
        notional=notional,
        skipped_spread=skipped,
        breach_slots=breach,
        cash_after=cash_after,
        weights_after=weights_after,
        held=held,
        groups=ev.groups,
        limit_price=limit_price,
        skipped_restricted=restricted,
        spread_bps=spread_bps,
        spread_budget=spread_budget,
        waiting=waiting,
        skipped_state=stopped,
        slot_state=state,
    )
