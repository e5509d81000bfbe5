"""The accounts a worker owns: the engine's book plus what the pipeline tracks per account (input
sequence numbers, targets version, partition, the open order), with no I/O."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any

import numpy as np

from streamproc.app.adjustment import Adjustments
from streamproc.app.capacity import Capacity
from streamproc.app.freshness import Freshness
from streamproc.app.quarantine import Quarantine
from streamproc.app.schedules import Schedules
from streamproc.app.sleeves import Sleeves, closed_names, decode
from streamproc.app.status import Status
from streamproc.app.targets import targets_args
from streamproc.app.working import Report, WorkingOrders
from streamproc.core import Book
from streamproc.core.bands import band_pair
from streamproc.core.book import RowSpec
from streamproc.core.types import F64, I64, Bool
from streamproc.state.records import AccountRecord, OrderAction, WorkingOrder
from streamproc.wire.documents import OrderDoc, position_changes

# targets fields that make a loaded account's settings differ from the book's defaults
_SPEC_FIELDS = (
    "band",
    "bands",
    "mode",
    "min_trade",
    "liquidate",
    "groups",
    "cash_band",
    "cash_buffer",
    "min_trade_fraction",
)


class Applied(Enum):
    """What ``apply_position`` did with a record."""

    REPLAY = "replay"  # its seq was already applied: dropped
    APPLIED = "applied"
    FILLED = "filled"  # a late record of a gap, its quantity applied
    FILLED_SUPERSEDED = "filled_superseded"  # a late record of a gap, a newer quantity already applied


class Accounts:
    """Per-account pipeline state in numpy columns indexed like the book's rows."""

    def __init__(
        self,
        book: Book,
        *,
        cooldown_s: float,
        settle_s: float,
        max_attempts: int = 0,
        drift_min_move: float = 0.0025,
        drift_refresh_s: float = 60.0,
    ) -> None:
        self.book = book
        self.default_cooldown_s = cooldown_s
        self.settle_s = settle_s
        self.max_attempts = max_attempts  # unanswered orders in a row before an operator decides (0: no cap)
        self.seq: I64 = np.zeros(0, dtype=np.int64)  # last applied positions seq, -1 none
        self.pts: I64 = np.zeros(0, dtype=np.int64)  # newest positions ts
        self.tver: I64 = np.zeros(0, dtype=np.int64)  # targets version, -1 none (not managed)
        self.tts: I64 = np.zeros(0, dtype=np.int64)
        self.part: I64 = np.zeros(0, dtype=np.int64)
        self.owned: Bool = np.zeros(0, dtype=bool)
        self.cooldown: F64 = np.zeros(0)
        self.hold_until: F64 = np.zeros(0)  # wall seconds; no evaluation before (open order, settling fills)
        self.order_seq: I64 = np.zeros(0, dtype=np.int64)  # inputs of the last order
        self.order_tver: I64 = np.zeros(0, dtype=np.int64)
        self.attempt: I64 = np.zeros(0, dtype=np.int64)
        self.status: I64 = np.zeros(0, dtype=np.int64)  # last drift status written (a Status)
        self.left_out = np.zeros(0, dtype=np.uint8)  # LeftOut flags of the last plan (0: all traded)
        self.last_order: dict[int, str] = {}  # row -> event_id of the last order published
        self.working = WorkingOrders()  # the orders holding their accounts
        self.targets_doc: dict[int, dict[str, Any]] = {}
        self.dirty: set[int] = set()
        self.quarantine = Quarantine()  # rows with missing position seqs
        self.freshness = Freshness(drift_min_move, drift_refresh_s)  # when drift documents are rewritten
        self.settled: dict[int, str] = {}  # row -> the last withdrawal paid out (positions ``settles``)
        self.sleeves = Sleeves(book)
        self.capacity = Capacity(book)  # what thin books left for later orders
        self.adjustments = Adjustments()  # models naming restricted instruments
        self.order_closures: I64 = np.zeros(0, dtype=np.int64)  # stopped sleeves when the last order went
        self.schedules = Schedules()  # calendar rules and daily run limits

    def __len__(self) -> int:
        return self.book.n_accounts

    def _grow(self, n: int) -> None:
        have = len(self.seq)
        if n <= have:
            return
        extra = max(n, 2 * have, 64) - have

        def ext(a: np.ndarray, fill: Any) -> Any:
            return np.concatenate([a, np.full(extra, fill, dtype=a.dtype)])

        self.seq, self.pts = ext(self.seq, -1), ext(self.pts, 0)
        self.tver, self.tts = ext(self.tver, -1), ext(self.tts, 0)
        self.part, self.owned = ext(self.part, -1), ext(self.owned, False)
        self.cooldown, self.hold_until = ext(self.cooldown, math.nan), ext(self.hold_until, 0.0)
        self.order_seq, self.order_tver = ext(self.order_seq, -1), ext(self.order_tver, -1)
        self.attempt, self.status = ext(self.attempt, 0), ext(self.status, Status.UNKNOWN)
        self.order_closures = ext(self.order_closures, 0)
        self.left_out = ext(self.left_out, 0)
        self.schedules.grow(len(self.seq))

    def row(self, account: str) -> int:
        """The account's row, adding it when new."""
        r = self.book.account(account)
        self._grow(r + 1)
        return r

    # ---- input records -----------------------------------------------------------------------

    def apply_position(self, doc: Mapping[str, Any], partition: int, now: float) -> Applied:
        """Apply a validated position record, all its changes or none (v1: one instrument; v2: several
        at once, cash included): APPLIED; FILLED when it is a late record of a gap (FILLED_SUPERSEDED
        when newer records of its instruments were applied since); REPLAY when its seq was already
        applied. A seq jump quarantines the account (``position_gap``) until the gap is filled or
        cleared."""
        account = doc["account"]
        changes = position_changes(doc)
        r = self.row(account)
        seq, last = int(doc["seq"]), int(self.seq[r])
        gaps = self.quarantine.get(r)
        set_holding = self.book.set_holding
        if seq <= last:
            if gaps is None or not gaps.fill(seq):
                return Applied.REPLAY
            self.quarantine.accepted(r, seq)
            done = Applied.FILLED_SUPERSEDED
            for inst, qty in changes:
                if gaps.newest.get(inst, -1) < seq:
                    set_holding(account, inst, qty)
                    gaps.newest[inst] = seq
                    done = Applied.FILLED
            if not gaps.ranges:
                self.clear_gap(r, filled_at_seq=seq)
            self._settle(r, now)
            return done
        if last >= 0 and seq > last + 1:
            gaps = self.quarantine.jumped(r, account, last, seq, int(doc["ts"]), int(now * 1000))
        for inst, qty in changes:
            if gaps is not None:
                gaps.newest[inst] = seq
            set_holding(account, inst, qty)
        if "settles" in doc:
            self.settle_withdrawal(r, doc["settles"])
        self.seq[r] = seq
        self.quarantine.accepted(r, seq)
        self.pts[r] = max(int(self.pts[r]), int(doc["ts"]))
        self.part[r], self.owned[r] = partition, True
        self._settle(r, now)
        return Applied.APPLIED

    def skip_position(self, doc: Mapping[str, Any], partition: int, now: float, why: str) -> bool:
        """A positions record that cannot be applied (stamped in the future): its seq counts as missing,
        so the account is quarantined (``position_gap``, with ``why``) until the record comes again with
        a sane ts, or the gap is reconciled or times out. False when its seq was already applied."""
        account = doc["account"]
        r = self.row(account)
        seq, last = int(doc["seq"]), int(self.seq[r])
        if seq <= last:
            return False
        after = last if last >= 0 else seq - 1
        details = {"missing_from": after + 1, "missing_to": seq, "refused_seq": seq, "why": why}
        now_ms = int(now * 1000)
        self.quarantine.jumped(r, account, after, seq + 1, now_ms, now_ms, details)
        self.quarantine.refused(r, account, seq, int(doc["ts"]), now_ms)
        self.seq[r] = seq
        self.part[r], self.owned[r] = partition, True
        self.dirty.add(r)
        return True

    def clear_gap(self, r: int, **resolution: Any) -> bool:
        """Lift row r's quarantine (gap filled, reconciled or timed out); False if it had none."""
        if not self.quarantine.lift(r, **resolution):
            return False
        self.dirty.add(r)
        return True

    def expire_gaps(self, now_ms: int, timeout_s: float) -> list[str]:
        """Lift the quarantines of owned accounts older than ``timeout_s`` (0: never); returns them."""
        if timeout_s <= 0:
            return []
        late = self.quarantine.older_than(now_ms, timeout_s, lambda r: bool(self.owned[r]))
        for r in late:
            self.clear_gap(r, timed_out_after_s=timeout_s)
        return [self.book.accounts.id_of(r) for r in late]

    def apply_targets(self, doc: Mapping[str, Any], partition: int, now: float) -> bool:
        """Apply a validated targets record; False when its version is not newer. ValueError if unusable."""
        r = self.row(doc["account"])
        version = int(doc["version"])
        if version <= self.tver[r]:
            return False
        self.book.set_targets(doc["account"], **targets_args(doc, self.sleeves.closed_names(r, doc)))
        self.sleeves.applied(r, doc)
        self.tver[r] = version
        self.tts[r] = max(int(self.tts[r]), int(doc["ts"]))
        self.part[r], self.owned[r] = partition, True
        self.cooldown[r] = float(doc["cooldown_s"]) if "cooldown_s" in doc else math.nan
        self.schedules.apply(r, doc)
        self.targets_doc[r] = dict(doc)
        self._reserve(r, doc)
        self.working.make_obsolete(r, "targets_changed")  # cancelled, and replaced if still needed
        self._settle(r, now)
        return True

    def stop_sleeves(self, rows: Iterable[int], now: float) -> None:
        """Sleeves of ``rows`` were stopped (``Sleeves.check``): their targets go to the rest of the
        model, the next pass sells them, and a working order is cancelled and replaced."""
        for r in set(rows):
            doc = self.targets_doc.get(r)
            if doc is None:
                continue
            account = self.book.accounts.id_of(r)
            closed = self.sleeves.closed_names(r, doc)
            self.book.set_targets(account, **targets_args(doc, closed))
            self.sleeves.applied(r, doc)
            for name in closed:
                if r not in self.sleeves.stopped:
                    self.sleeves.start_episode(r, account, name)
            self.working.make_obsolete(r, "targets_changed")
            self.hold_until[r] = now
            self.dirty.add(r)

    def _reserve(self, r: int, targets: Mapping[str, Any] | None) -> None:
        """Set aside the cash of the targets' withdrawal until a positions record pays it out."""
        withdrawal: Mapping[str, Any] | None = (targets or {}).get("withdrawal")
        amount = 0.0
        if withdrawal is not None and self.settled.get(r) != withdrawal["id"]:
            amount = float(withdrawal["amount"])
        self.book.set_reserve(self.book.accounts.id_of(r), amount)

    def settle_withdrawal(self, r: int, withdrawal: str) -> None:
        """A positions record paid out ``withdrawal``: its reserve ends with that record."""
        self.settled[r] = withdrawal
        self._reserve(r, self.targets_doc.get(r))

    def _settle(self, r: int, now: float) -> None:
        """Changed inputs (and an open order's answer) often come as several records: evaluate the
        account once they have been quiet for ``settle_s``, never on a half-applied change. While an
        order works, no change releases the account (a partial fill, a dividend): only positions that
        complete its legs, its cooldown, or new targets (then it is cancelled)."""
        settled = now + self.settle_s
        working = self.working
        if r in working and r not in working.obsolete:
            account = self.book.accounts.id_of(r)
            if not working.completed_by(r, self.book.holdings(account), self.book.lot_of):
                self.hold_until[r] = max(float(self.hold_until[r]), settled)
                return
        working.input_changed(r, retried_at_ms=int(now * 1000))
        self.hold_until[r] = settled
        self.dirty.add(r)

    def apply_execution(self, doc: Mapping[str, Any], partition: int, now: float) -> Report:
        """Apply a validated execution report. An answered order releases its account once settled; a
        rejected one holds it (status ``rejected``) until one of its inputs changes."""
        account = doc["account"]
        r = self.row(account)
        self.part[r], self.owned[r] = partition, True
        capped = self.status[r] == Status.UNANSWERED
        done = self.working.report(r, account, doc, int(now * 1000))
        # answered, unless a replacement still works; or any answer to an account waiting at the cap
        if (done == Report.ANSWERED and r not in self.working) or (capped and done != Report.REJECTED):
            self.hold_until[r] = now + self.settle_s
            self.dirty.add(r)
        elif done == Report.REJECTED:
            self.hold_until[r] = math.inf
            self.status[r] = Status.REJECTED
        return done

    # ---- ownership and loading ---------------------------------------------------------------

    def load(self, records: Iterable[AccountRecord], now: float) -> I64:
        """Replace accounts with their stored state (bulk: one ``Book.load_rows``); returns their rows."""
        recs = list(records)
        if not recs:
            return np.zeros(0, dtype=np.int64)
        width = max(1, *(len(set(r.holdings) | set((r.targets or {}).get("weights", {}))) for r in recs))
        inst = np.full((len(recs), width), -1, dtype=np.int64)
        qty = np.zeros((len(recs), width))
        tgt = np.zeros((len(recs), width))
        cash = np.zeros(len(recs))
        specs: dict[int, RowSpec] = {}
        instrument = self.book.instrument
        stored_sleeves = [decode(rec.sleeves) for rec in recs]
        for j, rec in enumerate(recs):
            doc = rec.targets or {}
            closed = closed_names(stored_sleeves[j], doc) if stored_sleeves[j] else set()
            weights = targets_args(doc, closed)["weights"] if closed else doc.get("weights", {})
            if any(k in doc for k in _SPEC_FIELDS):
                args = targets_args(doc, closed)
                specs[j] = RowSpec(
                    band_pair(args["band"]),
                    {instrument(i): band_pair(b) for i, b in args["bands"].items()},
                    args["mode"],
                    args["min_trade"],
                    args["liquidate"],
                    self.book.group_row(args["groups"]) if args["groups"] else None,
                    args["cash"],
                    args["min_trade_fraction"],
                )
            names = sorted(set(rec.holdings) | {i for i, w in weights.items() if float(w) > 0})
            for s, name in enumerate(names):
                inst[j, s] = instrument(name)
                qty[j, s] = rec.holdings.get(name, 0.0)
                tgt[j, s] = float(weights.get(name, 0.0))
            cash[j] = rec.cash
        rows = self.book.load_rows([r.account for r in recs], inst, qty, tgt, cash, specs)
        self._grow(int(rows.max()) + 1)
        for r, rec, sleeves in zip(rows.tolist(), recs, stored_sleeves, strict=True):
            self.seq[r], self.pts[r], self.part[r] = rec.seq, rec.pts, rec.partition
            if sleeves or r in self.sleeves.records:
                self.sleeves.load(r, rec.account, sleeves, rec.targets)
            if rec.settled is not None:
                self.settled[r] = rec.settled
            else:
                self.settled.pop(r, None)
            self._reserve(r, rec.targets)
            self.schedules.restore(r, rec.targets, rec.calendar_run, rec.runs, rec.order)
            stored = rec.targets
            if stored is not None:
                self.tver[r], self.tts[r] = int(stored["version"]), int(stored["ts"])
                self.cooldown[r] = float(stored["cooldown_s"]) if "cooldown_s" in stored else math.nan
                self.targets_doc[r] = stored
            else:
                self.tver[r] = -1
                self.targets_doc.pop(r, None)
            self.restore_order(r, rec.order, now, rec.working)
            stored_status = Status.__members__.get(rec.drift["status"].upper()) if rec.drift else None
            self.freshness.restore(r, -1 if stored_status is None else int(stored_status), rec.drift)
            if rec.cancelling:  # (restore_order cleared what the row had open)
                self.working.cancelling[r] = list(rec.cancelling)
            if rec.unanswered is not None:
                self.working.unanswered[r] = rec.unanswered
            if self.capped(r):
                self.hold_until[r] = math.inf
                self.status[r] = Status.UNANSWERED
            if rec.rejected is not None:  # not retried until an input changes, across restarts too
                self.working.rejected[r] = rec.rejected
                self.hold_until[r] = math.inf
                self.status[r] = Status.REJECTED
            # its last change may be half applied (a v1 fill is an instrument record, then a cash one):
            # the records after what the store holds are consumed next, so wait for them to settle
            self.hold_until[r] = max(float(self.hold_until[r]), now + self.settle_s)
            self.quarantine.restore(r, rec.gap)
        self.owned[rows] = True
        self.dirty.update(rows.tolist())
        return rows

    def restore_order(
        self, r: int, order: Mapping[str, Any] | None, now: float, working: WorkingOrder | None = None
    ) -> None:
        """Re-open the hold of a recorded order still working (within its cooldown), or, for an order
        recorded without its working state (recovered after a crash), when its inputs are current."""
        self.hold_until[r] = 0.0
        self.working.restore(r, None)
        if working is not None and order and working.event_id == order["event_id"]:
            until = working.ts_ms / 1000.0 + self.cooldown_of(r)
            if until > now:
                self.working.restore(r, working)
                self.hold_until[r] = until
        if not order:
            self.last_order.pop(r, None)
            self.order_seq[r] = self.order_tver[r] = -1
            self.attempt[r] = 0
            return
        inputs = order["inputs"]
        if r in self.working and inputs["targets_version"] < self.tver[r]:  # new targets came meanwhile
            self.working.make_obsolete(r, "targets_changed")
            self.hold_until[r] = 0.0
        self.last_order[r] = order["event_id"]
        self.order_seq[r], self.order_tver[r] = inputs["positions_seq"], inputs["targets_version"]
        self.attempt[r] = inputs.get("attempt", 0)
        self.order_closures[r] = inputs.get("sleeves_closed", 0)
        if r not in self.working and self._same_inputs(r):
            self.hold_until[r] = order["ts"] / 1000.0 + self.cooldown_of(r)

    def cooldown_of(self, r: int) -> float:
        """Seconds an unanswered order holds the account."""
        c = float(self.cooldown[r])
        return self.default_cooldown_s if math.isnan(c) else c

    def rows_in(self, partitions: Iterable[int]) -> I64:
        """Rows of accounts whose records live in these partitions."""
        n = len(self)
        out: I64 = np.flatnonzero(np.isin(self.part[:n], list(partitions)))
        return out

    def owned_rows(self) -> I64:
        """Rows of the accounts this worker evaluates."""
        out: I64 = np.flatnonzero(self.owned[: len(self)])
        return out

    def tracked(self) -> int:
        """Owned accounts with targets (the ones that can breach)."""
        n = len(self)
        return int(np.count_nonzero(self.owned[:n] & (self.tver[:n] >= 0)))

    def rows_with_status(self, status: int) -> I64:
        """Owned rows whose last drift status is ``status``."""
        n = len(self)
        out: I64 = np.flatnonzero(self.owned[:n] & (self.status[:n] == status))
        return out

    def release(self, partitions: Iterable[int]) -> None:
        """Stop evaluating the accounts of partitions this worker no longer owns."""
        self.owned[self.rows_in(partitions)] = False

    def resume(self, partitions: Iterable[int]) -> None:
        """Evaluate the (still current) accounts of partitions owned again."""
        rows = self.rows_in(partitions)
        self.owned[rows] = True
        self.dirty.update(rows.tolist())

    # ---- evaluation gate ---------------------------------------------------------------------

    def candidates(self, affected: I64, now: float) -> I64:
        """Owned, managed, not-held rows to evaluate: dirty ones, ones affected by price changes,
        and ones whose hold just ended."""
        n = len(self)
        mask = np.zeros(n, dtype=bool)
        if self.dirty:
            mask[np.fromiter(self.dirty, dtype=np.int64, count=len(self.dirty))] = True
            self.dirty.clear()
        mask[affected] = True
        held = self.hold_until[:n]
        ended = (held > 0.0) & (held <= now)
        if ended.any():
            mask |= ended
            held[ended] = 0.0
            working = self.working
            if working.orders or working.cancelling:  # a cooldown ended: the order went unanswered
                ids, now_ms = self.book.accounts, int(now * 1000)
                for r in np.flatnonzero(ended).tolist():
                    account = ids.id_of(r)
                    holdings = self.book.holdings(account)
                    working.give_up(r, account, holdings, now_ms, self.cooldown_of(r) * 1000)
        mask &= self.owned[:n] & (self.tver[:n] >= 0) & (held <= now)
        out: I64 = np.flatnonzero(mask)
        return out

    def attempt_for(self, r: int) -> int:
        """0 for the first order on the current inputs, +1 per re-issue after a cooldown."""
        return int(self.attempt[r]) + 1 if self._same_inputs(r) else 0

    def _same_inputs(self, r: int) -> bool:
        """The last order answered the account's current inputs (positions, targets, stopped sleeves)."""
        return bool(
            self.order_seq[r] == self.seq[r]
            and self.order_tver[r] == self.tver[r]
            and self.order_closures[r] == self.sleeves.closures(r)
        )

    def opened(
        self, r: int, doc: OrderDoc, now: float, held: Mapping[str, float] | None = None
    ) -> WorkingOrder:
        """An order was published for row r: it works, holding the account, until positions complete
        its legs or its cooldown ends; returns the working order (stored with the order). ``held``:
        the projected holdings it was sized on (default: the holdings now)."""
        inputs = doc["inputs"]
        self.last_order[r] = doc["event_id"]
        self.order_seq[r], self.order_tver[r] = inputs["positions_seq"], inputs["targets_version"]
        self.attempt[r] = inputs["attempt"]
        self.order_closures[r] = inputs.get("sleeves_closed", 0)
        if held is None:
            held = self.book.holdings(self.book.accounts.id_of(r))
        working = self.working.open(r, doc, held)
        self.hold_until[r] = now + self.cooldown_of(r)
        return working

    def cancelled(self, r: int, event_id: str, now: float) -> WorkingOrder | None:
        """The cancel of row r's working order was delivered; without a replacement working, the
        account waits for order management's confirmation, or a cooldown. Returns it as cancelled."""
        if not self.working.cancelled(r, event_id, int(now * 1000)):
            return None
        if r not in self.working:
            self.hold_until[r] = max(float(self.hold_until[r]), now + self.cooldown_of(r))
        return self.working.cancelling[r][-1]

    def capped(self, r: int) -> bool:
        """Row r's orders went unanswered ``max_attempts`` times in a row: it waits for an operator."""
        return 0 < self.max_attempts <= self.working.attempts_unanswered(r)

    def operator(self, r: int, action: OrderAction, now: float) -> None:
        """``streamproc orders retry|release``: another attempt, or forget what is open and start over
        from the holdings (the operator settled it with order management)."""
        if action == OrderAction.RELEASE:
            self.working.forget(r, released_by="operator")
        else:
            self.working.retry(r, retried_by="operator")
        if self.status[r] == Status.UNANSWERED:
            self.status[r] = Status.UNKNOWN
        self.hold_until[r] = now
        self.dirty.add(r)
