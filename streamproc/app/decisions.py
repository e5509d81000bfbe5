"""One evaluation pass over candidate accounts: the orders to publish and the drift statuses that
changed (no I/O; the worker publishes and records them)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

import numpy as np

from streamproc.app.accounts import Accounts
from streamproc.app.prices import Prices
from streamproc.app.schedules import Judged
from streamproc.app.status import BREACHED, WEIGHTED, LeftOut, Status
from streamproc.app.working import among, projected, projection, unfilled
from streamproc.core import Book, LegLimits, LegPlan, PriceFlag
from streamproc.core.book import CASH
from streamproc.core.evaluate import CASH_REASON, Evaluation
from streamproc.core.groups import GroupDrift
from streamproc.core.trading import TradingState
from streamproc.core.types import I64, Bool
from streamproc.state.records import open_legs
from streamproc.wire.codec import decimal_str, leg_qty
from streamproc.wire.documents import (
    ORDERS_VERSION,
    CancelDoc,
    CancelLeg,
    DriftDoc,
    OrderDoc,
    OrderLeg,
    OrderReason,
)
from streamproc.wire.ids import cancel_event_id, rebalance_event_id

_FLAG_NAMES = {
    PriceFlag.MISSING: "quote_missing",
    PriceFlag.STALE: "quote_stale",
    PriceFlag.CROSSED: "quote_crossed",
    PriceFlag.OUTLIER: "quote_outlier",
    PriceFlag.GAP: "quote_gap",
    PriceFlag.CLOSED: "closed",
}


@dataclass(slots=True)
class Draft:
    """An order ready to publish."""

    row: int
    account: str
    partition: int
    event_id: str
    attempt: int
    doc: OrderDoc
    held: dict[str, float] | None = None  # the projected holdings it was sized on (None: the holdings)
    day: int = -1  # the account's trading day (for max_runs_per_day; -1: not counted)
    period: int = -1  # a calendar run: the period it answers (its index), else -1


@dataclass(slots=True)
class CancelDraft:
    """The cancel of a working order, ready to publish (before the order replacing it, if any)."""

    row: int
    account: str
    partition: int
    doc: CancelDoc


@dataclass(slots=True)
class Decisions:
    """What one pass decided."""

    evaluated: int = 0
    orders: list[Draft] = field(default_factory=list)
    cancels: list[CancelDraft] = field(default_factory=list)  # never held by a breach storm
    statuses: dict[int, DriftDoc] = field(default_factory=dict)  # row -> drift document
    suppressed: int = 0
    new_breaches: int = 0  # accounts breaching now that were in band at their previous evaluation
    opening_breaches: int = 0  # ... that were closed (their markets just opened): an opening wave

    def hold(self, accounts: Accounts, now_ms: int) -> int:
        """A breach storm: turn this pass's orders into HELD statuses; returns how many were held."""
        for d in self.orders:
            accounts.status[d.row] = Status.HELD
            self.statuses[d.row] = _held_doc(now_ms)
        held, self.orders = len(self.orders), []
        return held


def _held_doc(now_ms: int) -> DriftDoc:
    return {"status": "held", "why": "held: breach_storm (streamproc storm release)", "evaluated_at": now_ms}


def state_counts(accounts: Accounts) -> dict[str, int]:
    """Owned accounts by state: tracked (managed), suppressed, held (storm), quarantined (gap)."""
    rows = accounts.owned_rows()
    status = accounts.status[rows]
    left = accounts.left_out[rows]
    return {
        "tracked": accounts.tracked(),
        "suppressed": int(np.count_nonzero(status == Status.SUPPRESSED)),
        "held": int(np.count_nonzero(status == Status.HELD)),
        "rejected": int(np.count_nonzero(status == Status.REJECTED)),
        "unanswered": int(np.count_nonzero(status == Status.UNANSWERED)),
        "throttled": int(np.count_nonzero(status == Status.THROTTLED)),
        "closed": int(np.count_nonzero(status == Status.CLOSED)),
        "scheduled": int(np.count_nonzero(status == Status.SCHEDULED)),
        "untradable": int(np.count_nonzero(status == Status.UNTRADABLE)),
        # breaching accounts whose last plan left legs out, by why (an account may count under several)
        **{f"left_out_{f.label}": int(np.count_nonzero(left & f)) for f in LeftOut},
        "quarantined": int(accounts.quarantine.mask(rows).sum()),
    }


def _weights(book_ids: Any, instruments: Any, weights: Any, cash_weight: float) -> dict[str, float]:
    out = {
        book_ids.id_of(int(i)): round(float(w), 6)
        for i, w in zip(instruments, weights, strict=True)
        if i >= 0
    }
    out[CASH] = round(cash_weight, 6)
    return out


def suppressed_why(accounts: Accounts, ev: Evaluation, j: int, quarantined: bool) -> str:
    """Why row j of ``ev`` is suppressed: ``suppressed: quote_stale EQ, position_gap seq 4``."""
    if ev.status[j] & PriceFlag.EMPTY_ACCOUNT and not quarantined:
        return "empty account: value <= 0"
    book = accounts.book
    parts = [accounts.quarantine.why(int(ev.rows[j]))] if quarantined else []
    for i in ev.instruments[j].tolist():
        if i < 0:
            continue
        name = book.instruments.id_of(i)
        flags = PriceFlag(book.price(name)[2])
        parts += [f"{label} {name}" for flag, label in _FLAG_NAMES.items() if flags & flag]
    return "suppressed: " + ", ".join(parts)


def closed_why(accounts: Accounts, prices: Prices, ev: Evaluation, j: int, now_ms: int) -> str:
    """Why row j of ``ev`` is closed: ``market closed: BOND (XNYS, opens 2026-12-04T14:30Z)``."""
    book = accounts.book
    parts = []
    for i in ev.instruments[j].tolist():
        if i >= 0 and PriceFlag(book.price(book.instruments.id_of(i))[2]) & PriceFlag.CLOSED:
            parts.append(f"{book.instruments.id_of(i)} ({prices.session_line(i, now_ms)})")
    return "market closed: " + ", ".join(parts)


def back_in_band(accounts: Accounts, affected: I64, now: float) -> int:
    """Working orders of accounts that prices moved back well inside their bands (every weight within
    the re-arm fraction of its band, half by default) are obsolete: released, their next evaluation
    cancels them (``back_in_band``, no replacement); returns how many. Judged on the holdings without
    what the orders have filled so far: a partial fill bringing the account inside the band is the
    order working, not a reason to cancel its rest."""
    working = accounts.working
    if not working.orders or affected.size == 0:
        return 0
    live = np.fromiter(working.orders.keys(), dtype=np.int64, count=len(working.orders))
    keep = np.isin(live, affected) & accounts.owned[live]  # few working orders, many accounts
    if working.obsolete:
        keep &= ~among(live, working.obsolete.keys())
    rows = live[keep]
    if rows.size == 0:
        return 0
    book = accounts.book
    ev = book.evaluate(rows, unfilled(working, book, rows))
    # hysteresis, as for re-arming a band: a weight just back inside its edge is noise, not a reason
    calm = ev.calm(book.policy.rearm_fraction)  # groups too; NaN deviations (not evaluable): not calm
    inside = rows[ev.evaluable & calm & ~accounts.quarantine.mask(rows)]
    for r in inside.tolist():
        working.make_obsolete(r, "back_in_band")
    accounts.hold_until[inside] = now
    return int(inside.size)


def decide(
    accounts: Accounts, prices: Prices, rows: I64, now: float, limits: LegLimits, *, hold: bool = False
) -> Decisions:
    """Evaluate ``rows`` in one vectorized pass; plan legs for the breaching ones; draft orders with
    deterministic event ids (none while ``hold``: a breach storm); report drift statuses that changed.
    Quarantined accounts (position gaps) and ones with a flagged price are suppressed."""
    out = Decisions(evaluated=int(rows.size))
    if rows.size == 0:
        return out
    book = accounts.book
    ev = book.evaluate(rows, projection(accounts.working, book, rows))
    now_ms = int(now * 1000)
    # stopped sleeves: their accounts trade on the targets without them, from the next pass
    stopping = accounts.sleeves.check(ev, now_ms, accounts.targets_doc.get)
    if stopping:
        accounts.stop_sleeves(stopping, now)
    quarantined = accounts.quarantine.mask(rows)
    codes = np.full(rows.size, Status.OK, dtype=np.int64)
    suppressed = ~ev.evaluable | quarantined
    codes[suppressed] = Status.SUPPRESSED
    # between sessions: closed, not suppressed (nothing is wrong; no order on a closed session's prices)
    closed = suppressed & ~quarantined & (ev.status == PriceFlag.CLOSED)
    codes[closed] = Status.CLOSED
    out.suppressed = int(suppressed.sum() - closed.sum())
    judged = Judged.none(rows.size)
    if accounts.schedules.rows:  # calendar rules and daily limits (few accounts have them)
        days = prices.venues.days(book.n_instruments, now_ms)
        ev, judged = accounts.schedules.judge(ev, days, ~suppressed)
        for j in np.flatnonzero(judged.checked).tolist():
            accounts.schedules.checked(int(rows[j]), int(judged.period[j]))
        codes[judged.spent & ~quarantined] = Status.SCHEDULED
    capped = _capped(accounts, rows)
    # an order cancelled because the account is back in band is not replaced (its cancel is enough)
    back = _back_in_band(accounts, rows)
    stopped_now = among(rows, stopping) if stopping else np.zeros(rows.size, dtype=bool)
    breaching = np.flatnonzero(ev.breaching & ~quarantined & ~capped & ~back & ~stopped_now)
    codes[breaching] = Status.HELD if hold else Status.UNTRADABLE
    codes[capped] = Status.UNANSWERED
    to_target = judged.runs[breaching]
    plan = book.plan(ev.take(breaching), limits, to_target) if breaching.size and not hold else None
    accounts.left_out[rows] = 0
    flags = None
    if plan is not None:
        accounts.capacity.planned(plan)
        flags = left_out_flags(plan)
        accounts.left_out[ev.rows[breaching]] = flags
    accounts.capacity.settled(rows[~ev.breaching & ~suppressed])
    _flag_restricted(accounts, ev, rows[~suppressed], now_ms)
    left_out: dict[int, str] = {}  # position in rows -> what was not traded and why
    if plan is not None:
        br = ev.take(breaching)
        worst, worst_group = br.worst()
        as_of = np.maximum(
            prices.newest_ts(br.instruments), np.maximum(accounts.pts[br.rows], accounts.tts[br.rows])
        )
        cash_after_w = 1.0 - np.nansum(plan.weights_after, axis=1)
        br_weights = br.weights
        assert flags is not None
        # a reason for accounts with no leg or with legs left out (a depth cap alone needs none): Python
        # per such account only
        explain = ((flags & ~np.uint8(LeftOut.DEPTH)) != 0) | ~plan.has_legs
        for j in np.flatnonzero(explain).tolist():
            left_out[int(breaching[j])] = untradable_why(book, plan, j)
        # a calendar run with nothing that reaches a minimum trade or a lot is the period's check done
        for j in np.flatnonzero(to_target & ~plan.has_legs & (flags == LeftOut.MIN_TRADE)).tolist():
            accounts.schedules.checked(int(br.rows[j]), int(judged.period[breaching[j]]))
        for j in np.flatnonzero(plan.has_legs).tolist():
            r = int(br.rows[j])
            codes[breaching[j]] = Status.ORDERED
            draft = _draft(
                accounts,
                br,
                br_weights[j],
                plan,
                j,
                r,
                (int(worst[j]), int(worst_group[j])),
                int(as_of[j]),
                float(cash_after_w[j]),
                now_ms,
                int(judged.period[breaching[j]]) if to_target[j] else -1,
            )
            draft.day = int(judged.day[breaching[j]])
            out.orders.append(draft)
    out.cancels = _cancels(accounts, rows, out.orders, now_ms)
    before = accounts.status[rows]
    # only in band -> breached counts: after a load (status unknown) or a suppression the account may
    # have been out of band all along, and counting it would make every restart look like a storm
    out.new_breaches = int(np.count_nonzero(np.isin(codes, BREACHED) & (before == Status.OK)))
    out.opening_breaches = int(np.count_nonzero(np.isin(codes, BREACHED) & (before == Status.CLOSED)))
    # rewritten on a status change, and for an account with weights when they moved or grew old
    fresh = accounts.freshness
    weighted = np.isin(codes, WEIGHTED)
    all_weights = ev.weights  # a computed matrix: once, not per account
    due = weighted & fresh.due(rows, now, ev.instruments, all_weights)
    write = np.flatnonzero((codes != before) | due)
    since = fresh.since(rows, codes, now_ms)
    weights = all_weights[write]
    for k, j in enumerate(write.tolist()):
        r = int(rows[j])
        code = Status(int(codes[j]))
        doc: DriftDoc = {"status": code.name.lower(), "evaluated_at": now_ms, "status_since": int(since[j])}
        if code == Status.HELD:
            doc = {**_held_doc(now_ms), "status_since": int(since[j])}
        elif code == Status.UNANSWERED:
            doc["why"] = _unanswered_why(accounts, r)
        elif code == Status.SUPPRESSED:
            doc["why"] = suppressed_why(accounts, ev, j, bool(quarantined[j]))
        elif code == Status.CLOSED:
            doc["why"] = closed_why(accounts, prices, ev, j, now_ms)
        else:
            if code == Status.SCHEDULED:
                doc["why"] = _scheduled_why(accounts, r)
            elif code == Status.UNTRADABLE and j in left_out:
                doc["why"] = left_out[j]
            elif code == Status.ORDERED and j in left_out:
                doc["why"] = f"partly untradable: {left_out[j]}"
            adjust = accounts.adjustments.why(r)
            if adjust is not None:
                doc["why"] = f"{doc['why']}; {adjust}" if "why" in doc else adjust
            value = float(ev.value[j])
            doc["weights"] = _weights(
                book.instruments, ev.instruments[j], weights[k], float(ev.cash[j]) / value
            )
            if ev.groups is not None and book.groups.count[r]:
                doc["groups"] = _group_weights(book.groups.names(r), ev.groups, j)
        out.statuses[r] = doc
    fresh.written(rows[write], now, ev.instruments[write], np.where(weighted[write, None], weights, np.nan))
    accounts.status[rows] = codes
    if capped.any():
        accounts.hold_until[rows[capped]] = np.inf  # until an operator retries or releases it
    return out


def _scheduled_why(accounts: Accounts, r: int) -> str:
    limit = int(accounts.schedules.max_runs[r])
    return f"scheduled: max_runs_per_day {limit} used today; trades again on the next trading day"


def _liquidating(accounts: Accounts, br: Evaluation, j: int, r: int) -> OrderReason | None:
    """The reason of an order that sells a stopped sleeve still held: the sleeve and its trigger."""
    stopped = accounts.sleeves.stopped.get(r)
    if stopped is None or br.groups is None:
        return None
    name = stopped.details["sleeve"]
    names = accounts.book.groups.names(r)
    if name not in names:
        return None
    g = names.index(name)
    weight = float(br.groups.targets[j, g] + br.groups.deviations[j, g])
    if weight <= 0.0:
        return None
    return {
        "group": name,
        "trigger": stopped.details["trigger"],
        "weight": round(weight, 6),
        "target": 0.0,
        "band": 0.0,
    }


def _group_weights(names: tuple[str, ...], groups: GroupDrift, j: int) -> dict[str, float]:
    """An evaluated account's group weights, by group name (for its drift document)."""
    weights = groups.targets[j] + groups.deviations[j]
    return {name: round(float(weights[g]), 6) for g, name in enumerate(names)}


def _back_in_band(accounts: Accounts, rows: I64) -> Bool:
    """Per row: its working order is to be cancelled because the account is back in band."""
    back = [r for r, why in accounts.working.obsolete.items() if why == "back_in_band"]
    return among(rows, back)


def _capped(accounts: Accounts, rows: I64) -> Bool:
    """Per row: its orders went unanswered too often in a row (it waits for an operator)."""
    if accounts.max_attempts <= 0:
        return np.zeros(rows.size, dtype=bool)
    return among(rows, [r for r in accounts.working.unanswered if accounts.capped(r)])


def _unanswered_why(accounts: Accounts, r: int) -> str:
    account = accounts.book.accounts.id_of(r)
    details = accounts.working.unanswered[r].details
    return (
        f"unanswered: {details['attempts']} orders in a row (last {details['event_id']}); waiting for an"
        f" operator: streamproc orders retry {account} | streamproc orders release {account}"
    )


def _cancels(accounts: Accounts, rows: I64, orders: list[Draft], now_ms: int) -> list[CancelDraft]:
    """Cancels of the obsolete working orders among ``rows``, chained to the orders replacing them."""
    working = accounts.working
    if not working.obsolete:
        return []
    replacing = {d.row: d for d in orders}
    book = accounts.book
    out = []
    for r in rows[among(rows, working.obsolete)].tolist():
        why, order = working.obsolete[r], working.get(r)
        if order is None:
            continue
        account = book.accounts.id_of(r)
        legs = [
            _open_leg(name, left)
            for event_id, name, left in open_legs(working.open_orders(r), book.holdings(account))
            if event_id == order.event_id
        ]
        doc: CancelDoc = {
            "schema_version": ORDERS_VERSION,
            "event_id": cancel_event_id(order.event_id),
            "type": "cancel",
            "account": account,
            "ts": now_ms,
            "cancels": order.event_id,
            "why": why,
            "legs": legs,
        }
        replacement = replacing.get(r)
        if replacement is not None:
            doc["replaced_by"] = replacement.event_id
            replacement.doc["replaces"] = order.event_id
        out.append(CancelDraft(r, account, int(accounts.part[r]), doc))
    return out


def left_out_flags(plan: LegPlan) -> np.ndarray:
    """Per account of ``plan``, the ``LeftOut`` flags of what it did not trade (vectorized)."""
    flags = np.where(plan.skipped_spread.any(axis=1), LeftOut.SPREAD, 0)
    if plan.skipped_restricted is not None:
        flags |= np.where(plan.skipped_restricted.any(axis=1), LeftOut.RESTRICTED, 0)
    if plan.skipped_state is not None and plan.slot_state is not None:
        halted = (plan.skipped_state & (plan.slot_state == TradingState.HALTED)).any(axis=1)
        reducing = (plan.skipped_state & (plan.slot_state == TradingState.REDUCING)).any(axis=1)
        flags |= np.where(halted, LeftOut.HALTED, 0) | np.where(reducing, LeftOut.REDUCING, 0)
    if plan.waiting is not None:
        flags |= np.where((plan.waiting != 0.0).any(axis=1), LeftOut.DEPTH, 0)
    flags |= np.where(~plan.has_legs & (flags == 0), LeftOut.MIN_TRADE, 0)
    return flags.astype(np.uint8)


def _flag_restricted(accounts: Accounts, ev: Evaluation, evaluated: I64, now_ms: int) -> None:
    """``needs_adjustment`` for evaluated accounts holding or targeting an instrument not eligible for
    buys (one vectorized test; nothing to do while every instrument is eligible)."""
    book = accounts.book
    eligible = book.limit_table.eligible
    adjust = accounts.adjustments
    if eligible.all() and not adjust.episodes:
        return
    inst = ev.instruments
    bad = (inst >= 0) & ~eligible[inst] & ((ev.qty > 0.0) | (ev.targets > 0.0))
    flagged: dict[int, tuple[str, list[str]]] = {}
    for j in np.flatnonzero(bad.any(axis=1)).tolist():
        r = int(ev.rows[j])
        names = sorted(book.instruments.id_of(int(i)) for i in inst[j][bad[j]])
        flagged[r] = (book.accounts.id_of(r), names)
    adjust.update(evaluated.tolist(), flagged, now_ms)


def untradable_why(book: Book, plan: LegPlan, j: int) -> str:
    """Why account ``j`` of ``plan`` did not trade all it wanted, or anything: the instruments whose
    spread is over its budget, the restricted ones it would buy, the halted or reducing ones; for an
    account with no leg at all and none of these, the minimum trade or the lot."""
    names = book.instruments
    parts: list[str] = []
    if plan.skipped_spread[j].any() and plan.spread_bps is not None and plan.spread_budget is not None:
        wide = [
            f"{names.id_of(int(plan.instruments[j, s]))} {plan.spread_bps[j, s]:.0f} bps > "
            f"{plan.spread_budget[j, s]:.0f}"
            for s in np.flatnonzero(plan.skipped_spread[j]).tolist()
        ]
        parts.append("spread " + ", ".join(wide))
    if plan.skipped_restricted is not None and plan.skipped_restricted[j].any():
        held = [names.id_of(int(plan.instruments[j, s])) for s in np.flatnonzero(plan.skipped_restricted[j])]
        parts.append(f"restricted {', '.join(held)}: not eligible for buys")
    if plan.skipped_state is not None and plan.skipped_state[j].any() and plan.slot_state is not None:
        slots = np.flatnonzero(plan.skipped_state[j]).tolist()
        for state, what in (
            (TradingState.HALTED, "halted {}"),
            (TradingState.REDUCING, "reducing {}: no buys"),
        ):
            named = [
                names.id_of(int(plan.instruments[j, s])) for s in slots if plan.slot_state[j, s] == state
            ]
            if named:
                parts.append(what.format(", ".join(named)))
    return "; ".join(parts) or "no leg reaches the minimum trade or a whole lot"


_LIMIT_STEP = Decimal("1e-10")


def _limit_price(side: str, limit: float, price: float) -> str:
    """A leg's limit price as a decimal string, rounded so it never passes the budget (a buy's down, a
    sell's up, to 10 decimals); the reference price when the plan has none."""
    if math.isnan(limit):
        return decimal_str(price)
    rounding = ROUND_FLOOR if side == "buy" else ROUND_CEILING
    text = f"{Decimal(repr(limit)).quantize(_LIMIT_STEP, rounding=rounding):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _open_leg(instrument: str, left: float) -> CancelLeg:
    """A leg still to trade ``left`` (> 0 buys, < 0 sells), as the orders contract writes it."""
    return {"instrument": instrument, "side": "sell" if left < 0 else "buy", "qty": decimal_str(abs(left))}


def _reason(
    accounts: Accounts,
    br: Evaluation,
    weights: Any,
    j: int,
    r: int,
    worst: tuple[int, int],
    period: str | None = None,
) -> OrderReason:
    """The worst breach of an order's account: an instrument's, or a group's (named by ``group``); for
    a calendar run, the weight furthest off its target, against the rule's tolerance."""
    slot, group = worst
    selling = _liquidating(accounts, br, j, r)
    if selling is not None:
        return selling
    if period is not None:
        rule = accounts.schedules.rules[r]
        off = np.where(br.instruments[j] >= 0, np.abs(br.deviations[j]), -1.0)
        s = int(np.argmax(off))
        return {
            "instrument": accounts.book.instruments.id_of(int(br.instruments[j, s])),
            "weight": round(float(weights[s]), 6),
            "target": round(float(br.targets[j, s]), 6),
            "band": round(rule.tolerance, 6),
            "calendar": {"every": rule.every.value, "period": period},
        }
    if group == CASH_REASON and br.cash_drift is not None:
        c = br.cash_drift
        return {
            "instrument": CASH,
            "weight": round(float(c.deviation[j] + accounts.book.cash_target_of(r)), 6),
            "target": round(accounts.book.cash_target_of(r), 6),
            "band": round(float(c.limit[j]), 6),
        }
    if group >= 0 and br.groups is not None:
        g = br.groups
        return {
            "group": accounts.book.groups.name(r, group),
            "weight": round(float(g.targets[j, group] + g.deviations[j, group]), 6),
            "target": round(float(g.targets[j, group]), 6),
            "band": round(float(g.limits[j, group]), 6),
        }
    return {
        "instrument": accounts.book.instruments.id_of(int(br.instruments[j, slot])),
        "weight": round(float(weights[slot]), 6),
        "target": round(float(br.targets[j, slot]), 6),
        "band": round(float(br.limits[j, slot]), 6),
    }


def _draft(
    accounts: Accounts,
    br: Evaluation,
    weights: Any,
    plan: Any,
    j: int,
    r: int,
    worst: tuple[int, int],
    as_of: int,
    cash_after_w: float,
    now_ms: int,
    period: int = -1,
) -> Draft:
    book = accounts.book
    names = book.instruments
    account = book.accounts.id_of(r)
    attempt = accounts.attempt_for(r)
    seq, tver = int(accounts.seq[r]), int(accounts.tver[r])
    closures = accounts.sleeves.closures(r)
    label = accounts.schedules.label(r, period) if period >= 0 else None
    event_id = rebalance_event_id(account, seq, tver, attempt, closures, label)
    legs: list[OrderLeg] = []
    for leg in plan.legs(j):
        name = names.id_of(leg.instrument)
        qty, price = leg_qty(leg.side, leg.qty, leg.held, book.lot_of(name)), decimal_str(leg.price)
        # the notional of what is emitted (an exit's exact holding, a sell cut to the grid)
        notional = decimal_str(float(qty) * float(price))
        limit = _limit_price(leg.side, leg.limit_price, leg.price)
        legs.append(
            {
                "instrument": name,
                "side": leg.side,
                "qty": qty,
                "price": price,
                "notional": notional,
                "limit_price": limit,
            }
        )
    value = float(br.value[j])
    doc: OrderDoc = {
        "schema_version": ORDERS_VERSION,
        "event_id": event_id,
        "type": "rebalance",
        "account": account,
        "ts": now_ms,
        "as_of": as_of,
        "reason": _reason(accounts, br, weights, j, r, worst, label),
        "legs": legs,
        "weights_before": _weights(names, br.instruments[j], weights, float(br.cash[j]) / value),
        "weights_after": _weights(names, plan.instruments[j], plan.weights_after[j], cash_after_w),
        "inputs": {"positions_seq": max(seq, 0), "targets_version": tver, "attempt": attempt},
    }
    if closures:
        doc["inputs"]["sleeves_closed"] = closures
    held = None
    open_orders = accounts.working.open_orders(r)
    if open_orders:  # sized on top of what they still trade: it works from the projected holdings
        holdings = book.holdings(account)
        doc["working"] = [
            {"event_id": event_id, **_open_leg(name, left)}
            for event_id, name, left in open_legs(open_orders, holdings)
        ]
        held = projected(holdings, open_orders)
    return Draft(
        row=r,
        account=account,
        partition=int(accounts.part[r]),
        event_id=event_id,
        attempt=attempt,
        doc=doc,
        held=held,
        period=period,
    )
