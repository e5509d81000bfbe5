"""Order publication: send a pass's orders, await their delivery, then record them (the account's last
order and its emitted ids); and the recovery scan that records what a crash left published but
unrecorded, so no event_id is ever published twice."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import orjson
import structlog

from streamproc.app.accounts import Accounts
from streamproc.app.counters import Counters
from streamproc.app.decisions import CancelDraft, Draft
from streamproc.app.ports import AccountStore, Clock, OrderLog, OrderStore, Publisher
from streamproc.app.status import Status
from streamproc.app.working import projected
from streamproc.state.records import AccountRecord, RecordedOrder, WorkingOrder, order_key

log = structlog.get_logger(__name__)

# One document to send: (row, account, partition, document).
_Outgoing = tuple[int, str, int, Mapping[str, Any]]

# Called with the orders delivered, before they are recorded: tests make the process "die" there.
AfterPublish = Callable[[list[Draft]], None]


class _Store(OrderStore, AccountStore, Protocol):
    """What publication and recovery keep in the store."""


class Orders:
    """publish -> await -> record (the order then works, holding its account), and the recovery scan of
    partitions taken over."""

    def __init__(
        self,
        publisher: Publisher,
        log_: OrderLog,
        store: _Store,
        accounts: Accounts,
        topic: str,
        counters: Counters,
        clock: Clock,
        *,
        observe_latency: Callable[[float], None] = lambda s: None,
        after_publish: AfterPublish | None = None,
    ) -> None:
        self.publisher = publisher
        self.log = log_
        self.store = store
        self.accounts = accounts
        self.topic = topic
        self.counters = counters
        self.clock = clock
        self.observe_latency = observe_latency  # quote (newest input) to publication, per order
        self.after_publish = after_publish

    async def publish(self, drafts: list[Draft], cancels: Sequence[CancelDraft] = ()) -> list[Draft]:
        """Send a pass's cancels, then its orders (an order replacing a working one goes out only once
        that one's cancel is delivered), await delivery, then record them. A crash in between is
        repaired by ``recover``; a failed send leaves the account dirty (retried next pass) and nothing
        of it recorded."""
        if not drafts and not cancels:
            return []
        offsets: dict[int, int] = {}
        now = self.clock.time()
        cancelled: dict[int, tuple[str, WorkingOrder]] = {}
        for (r, account, _, doc), meta in await self._send(
            [(c.row, c.account, c.partition, c.doc) for c in cancels]
        ):
            if meta is None:
                continue
            offsets[meta.partition] = max(offsets.get(meta.partition, 0), meta.offset + 1)
            order = self.accounts.cancelled(r, doc["cancels"], now)
            if order is not None:
                cancelled[r] = (doc["event_id"], order)
                log.info(
                    "cancel",
                    account=account,
                    event_id=doc["event_id"],
                    cancels=order.event_id,
                    why=doc["why"],
                )
        failed = {c.row for c in cancels if c.row not in cancelled}
        drafts = [d for d in drafts if d.row not in failed]
        ok: list[Draft] = []
        records = []
        sent = await self._send([(d.row, d.account, d.partition, d.doc) for d in drafts])
        for d, (_, meta) in zip(drafts, sent, strict=True):
            if meta is None:
                continue
            ok.append(d)
            offsets[meta.partition] = max(offsets.get(meta.partition, 0), meta.offset + 1)
            working = self.accounts.opened(d.row, d.doc, now, d.held)
            records.append(
                self._record(d.row, d.account, d.event_id, orjson.dumps(d.doc), working, cancelled)
            )
            log.info(
                "order",
                account=d.account,
                event_id=d.event_id,
                legs=len(d.doc["legs"]),
                partition=meta.partition,
                replaces=d.doc.get("replaces"),
            )
        ids = self.accounts.book.accounts
        records += [self._record(r, ids.id_of(r), "", b"", None, cancelled) for r in list(cancelled)]
        self.counters.orders.inc(n=len(ok))
        sent_at = self.clock.time()
        for d in ok:
            self.observe_latency(max(0.0, sent_at - d.doc["as_of"] / 1000.0))
        if self.after_publish is not None and (ok or cancelled):
            self.after_publish(ok)
        await self.store.record_orders(records, offsets)
        return ok

    def _record(
        self,
        r: int,
        account: str,
        event_id: str,
        doc: bytes,
        working: WorkingOrder | None,
        cancelled: dict[int, tuple[str, WorkingOrder]],
    ) -> RecordedOrder:
        """What to record of row r: its order (if any) and the cancel published with it (taken from
        ``cancelled``), with the orders it now has open."""
        cancel = cancelled.pop(r, None)
        if cancel is None:
            return RecordedOrder(account, event_id, doc, working)
        open_ = tuple(self.accounts.working.cancelling.get(r, ()))
        return RecordedOrder(account, event_id, doc, working, (cancel[0],), open_)

    async def _send(self, docs: list[_Outgoing]) -> list[tuple[_Outgoing, Any]]:
        """Send documents, await all; each with its delivery metadata, or None if it failed (its
        account is left dirty, retried next pass)."""
        futures = []
        for item in docs:
            r, account, partition, doc = item
            fut = await self.publisher.send(
                self.topic, value=orjson.dumps(doc), key=account.encode(), partition=partition
            )
            futures.append((item, fut))
        out: list[tuple[_Outgoing, Any]] = []
        for item, fut in futures:
            try:
                out.append((item, await fut))
            except Exception as exc:  # the broker refused or timed out: leave it for the next pass
                r, account, _, doc = item
                log.error(
                    "not published, will retry", account=account, event_id=doc["event_id"], error=str(exc)
                )
                self.accounts.dirty.add(r)
                self.accounts.status[r] = Status.UNKNOWN
                out.append((item, None))
        return out

    async def recover(self, partitions: Iterable[int]) -> int:
        """Record what a crash between publishing and recording left unrecorded: per account the newest
        order published after the last recorded one (working from the stored holdings, projected by
        what its cancelled predecessors still trade) and the cancels of its stored working order;
        returns how many accounts were repaired."""
        parts = sorted(partitions)
        offsets = await self.store.order_offsets()
        values, end = await self.log.read(parts, {p: o for p, o in offsets.items() if p in parts})
        found: dict[str, dict[str, Any]] = {}
        cancels: dict[str, list[dict[str, Any]]] = {}
        for value in values:
            order = orjson.loads(value)
            if order.get("type") == "cancel":
                cancels.setdefault(order["account"], []).append(order)
                continue
            prev = found.get(order["account"])
            if prev is None or order_key(order) > order_key(prev):
                found[order["account"]] = order
        latest = []
        for account in sorted(found.keys() | cancels.keys()):
            stored = await self.store.load_account(account)
            record = _repair(account, stored, found.get(account), cancels.get(account, []))
            if record is not None:
                latest.append(record)
        await self.store.record_orders(latest, end)
        if latest:
            log.warning("recovered orders published before a crash", accounts=len(latest), partitions=parts)
        return len(latest)


def _repair(
    account: str, stored: AccountRecord | None, order: dict[str, Any] | None, cancels: list[dict[str, Any]]
) -> RecordedOrder | None:
    """What to record for one account after a crash: None when the store already has it all."""
    holdings = stored.holdings if stored is not None else {}
    working = stored.working if stored is not None else None
    cancelling = list(stored.cancelling) if stored is not None else []
    ids = []
    for c in cancels:
        if working is not None and working.event_id == c["cancels"]:
            cancelling.append(dataclasses.replace(working, cancelled_ms=int(c["ts"])))
            working = None
            ids.append(str(c["event_id"]))
    new = order is not None and (
        stored is None or stored.order is None or order_key(order) > order_key(stored.order)
    )
    if not new and not ids:
        return None
    if order is not None and new:
        held = projected(holdings, cancelling)
        # it works from the holdings stored (projected): those it was computed from, or ones already
        # part-filled towards it (then it holds until its cooldown, never trades twice)
        working = WorkingOrder.of(order, held)
        return RecordedOrder(
            account, str(order["event_id"]), orjson.dumps(order), working, tuple(ids), tuple(cancelling)
        )
    return RecordedOrder(account, "", b"", working, tuple(ids), tuple(cancelling))
