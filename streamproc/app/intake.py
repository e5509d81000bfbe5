"""Account intake: a batch of positions and targets records is decoded, applied by seq or version
(replays dropped, gaps quarantined) and persisted in one store write, before its offsets are
acknowledged (at-least-once)."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable, Sequence

import numpy as np
from aiokafka import TopicPartition

from streamproc.app.accounts import Accounts, Applied
from streamproc.app.counters import Counters, Outcome
from streamproc.app.deadletters import DeadLetters, Record
from streamproc.app.ports import AccountStore, Clock
from streamproc.app.progress import Progress
from streamproc.app.status import Status
from streamproc.app.working import Report
from streamproc.core.book import CASH
from streamproc.settings import Topics
from streamproc.state.records import AccountPatch
from streamproc.wire.codec import Reason, Rejected, decode, future_error
from streamproc.wire.contract import Contract
from streamproc.wire.documents import position_changes

_OUTCOME = {Applied.APPLIED: Outcome.APPLIED, Applied.REPLAY: Outcome.REPLAYED}
_REPORT_OUTCOME = {Report.DUPLICATE: Outcome.DUPLICATE, Report.LATE: Outcome.REPLAYED}


class Intake:
    """Applies account records to the book and writes the changed accounts back."""

    def __init__(
        self,
        contract: Contract,
        topics: Topics,
        accounts: Accounts,
        store: AccountStore,
        deadletters: DeadLetters,
        wait_loaded: Callable[[Iterable[int]], Awaitable[None]],
        counters: Counters,
        progress: Progress,
        clock: Clock,
        max_skew_s: float = math.inf,
    ) -> None:
        self.contract = contract
        self.max_skew_ms = max_skew_s * 1000.0  # a positions record stamped further ahead is refused
        self.topics = topics
        self.accounts = accounts
        self.store = store
        self.deadletters = deadletters
        self.wait_loaded = wait_loaded  # records of a partition wait until its accounts are loaded
        self.counters = counters
        self.progress = progress
        self.clock = clock
        self._referenced_sent: set[str] = set()  # instruments already added to the store's ``held`` set

    async def on_records(self, records: Sequence[Record]) -> None:
        """Apply a batch of positions/targets records, then persist the changed accounts in one write."""
        await self.wait_loaded({r.partition for r in records})
        now = self.clock.time()
        now_ms = int(now * 1000)
        for rec in records:
            self.counters.consumed.inc(self.topics.logical(rec.topic))
            self.progress.consumed(TopicPartition(rec.topic, rec.partition), rec.offset + 1, rec.ts_ms)
        dead: list[tuple[Record, Rejected]] = []
        patches: dict[str, AccountPatch] = {}
        parts: dict[str, int] = {}
        referenced: set[str] = set()
        accounts, messages = self.accounts, self.counters.messages
        for rec in records:
            logical = self.topics.logical(rec.topic)
            doc = decode(self.contract, logical, rec.key, rec.value)
            if isinstance(doc, Rejected):
                dead.append((rec, doc))
                continue
            account = doc["account"]
            if logical == "positions" and doc["ts"] - now_ms > self.max_skew_ms:
                why = future_error(doc["ts"], now_ms, self.max_skew_ms) + ", its seq counts as missing"
                dead.append((rec, Rejected(Reason.SEMANTIC, why)))
                if accounts.skip_position(doc, rec.partition, now, "clock_skew"):
                    r = accounts.row(account)
                    patch = patches.setdefault(account, AccountPatch())
                    patch.positions(int(accounts.seq[r]), int(accounts.pts[r]))
                    patch.gap(accounts.quarantine.record(r))
                    patch.partition(rec.partition)
                    parts[account] = rec.partition
                continue
            if logical == "positions":
                done = accounts.apply_position(doc, rec.partition, now)
                messages.inc("positions", _OUTCOME.get(done, Outcome.GAP_FILLED))
                if done == Applied.REPLAY:
                    continue
                patch = patches.setdefault(account, AccountPatch())
                changes = position_changes(doc)
                r = accounts.row(account)
                if done != Applied.APPLIED:  # a late record: newer ones may have superseded parts of it
                    changes = self._current(account, changes)
                for inst, qty in changes:
                    if inst == CASH:
                        patch.cash(qty)
                    else:
                        patch.holding(inst, qty)
                        if qty > 0:
                            referenced.add(inst)
                patch.positions(int(accounts.seq[r]), int(accounts.pts[r]))
                if "settles" in doc and done == Applied.APPLIED:
                    patch.settled(doc["settles"])
                if done != Applied.APPLIED or r in accounts.quarantine:
                    patch.gap(accounts.quarantine.record(r))
            elif logical == "executions":
                report = accounts.apply_execution(doc, rec.partition, now)
                if report in (Report.UNKNOWN, Report.INVALID):
                    dead.append((rec, Rejected(Reason.SEMANTIC, accounts.working.error)))
                    continue
                messages.inc("executions", _REPORT_OUTCOME.get(report, Outcome.APPLIED))
                if report in (Report.DUPLICATE, Report.LATE):
                    continue
                patch = patches.setdefault(account, AccountPatch())
            else:
                try:
                    applied = accounts.apply_targets(doc, rec.partition, now)
                except ValueError as exc:
                    dead.append((rec, Rejected(Reason.SEMANTIC, f"targets cannot be applied: {exc}")))
                    continue
                if not applied:
                    messages.inc("targets", Outcome.REPLAYED)
                    continue
                messages.inc("targets", Outcome.APPLIED)
                patch = patches.setdefault(account, AccountPatch()).targets(doc)
                referenced.update(i for i, w in doc["weights"].items() if float(w) > 0)
            patch.partition(rec.partition)
            parts[account] = rec.partition
        ids, working = accounts.book.accounts, accounts.working
        for r in working.drain_changed():  # orders answered, reported on, rejected, retried
            patch = working.stored(r, patches.setdefault(ids.id_of(r), AccountPatch()))
            if r in working.rejected:
                (since,) = accounts.freshness.since(
                    np.array([r]), np.array([Status.REJECTED]), now_ms
                ).tolist()
                why = working.why_rejected(r)
                patch.drift({"status": "rejected", "why": why, "evaluated_at": now_ms, "status_since": since})
        for r, sleeves in accounts.sleeves.drain_changed().items():  # sleeves that new targets ended
            patches.setdefault(ids.id_of(r), AccountPatch()).sleeves(sleeves)
        await self.deadletters.publish(dead)
        await self.store.write_accounts(patches, parts, referenced - self._referenced_sent)
        self._referenced_sent |= referenced

    def _current(self, account: str, changes: list[tuple[str, float]]) -> list[tuple[str, float]]:
        """The book's quantities now of the instruments a record changed."""
        book = self.accounts.book
        held = book.holdings(account)
        return [(i, book.cash(account) if i == CASH else held.get(i, 0.0)) for i, _ in changes]
