"""Order publication: send a pass's orders, await their delivery, then record them (the account's last
order and its emitted ids); and the recovery scan that records what a crash left published but
unrecorded, so no event_id is ever published twice."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

import orjson
import structlog

from streamproc.app.accounts import Accounts
from streamproc.app.counters import Counters
from streamproc.app.decisions import Draft
from streamproc.app.ports import AccountStore, Clock, OrderLog, OrderStore, Publisher
from streamproc.app.status import Status
from streamproc.state.records import RecordedOrder, WorkingOrder, order_key

log = structlog.get_logger(__name__)

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

    async def publish(self, drafts: list[Draft]) -> list[Draft]:
        """Send orders, await delivery, then record them. A crash in between is repaired by ``recover``;
        a failed send leaves the account dirty (retried next pass) and nothing recorded."""
        if not drafts:
            return []
        sent = []
        for d in drafts:
            value = orjson.dumps(d.doc)
            fut = await self.publisher.send(
                self.topic, value=value, key=d.account.encode(), partition=d.partition
            )
            sent.append((d, value, fut))
        ok: list[Draft] = []
        offsets: dict[int, int] = {}
        records = []
        for d, value, fut in sent:
            try:
                meta = await fut
            except Exception as exc:  # the broker refused or timed out: leave it for the next pass
                log.error(
                    "order not published, will retry", account=d.account, event_id=d.event_id, error=str(exc)
                )
                self.accounts.dirty.add(d.row)
                self.accounts.status[d.row] = Status.UNKNOWN
                continue
            ok.append(d)
            offsets[meta.partition] = max(offsets.get(meta.partition, 0), meta.offset + 1)
            working = self.accounts.opened(d.row, d.doc, self.clock.time())
            records.append(RecordedOrder(d.account, d.event_id, value, working))
            log.info(
                "order",
                account=d.account,
                event_id=d.event_id,
                legs=len(d.doc["legs"]),
                partition=meta.partition,
            )
        self.counters.orders.inc(n=len(ok))
        sent_at = self.clock.time()
        for d in ok:
            self.observe_latency(max(0.0, sent_at - d.doc["as_of"] / 1000.0))
        if self.after_publish is not None and ok:
            self.after_publish(ok)
        await self.store.record_orders(records, offsets)
        return ok

    async def recover(self, partitions: Iterable[int]) -> int:
        """Record the newest order of each account published after the last recorded one (a crash
        between publishing and recording); returns how many were recovered."""
        parts = sorted(partitions)
        offsets = await self.store.order_offsets()
        values, end = await self.log.read(parts, {p: o for p, o in offsets.items() if p in parts})
        found: dict[str, dict[str, Any]] = {}
        for value in values:
            order = orjson.loads(value)
            prev = found.get(order["account"])
            if prev is None or order_key(order) > order_key(prev):
                found[order["account"]] = order
        latest = []
        for account, order in found.items():
            stored = await self.store.load_account(account)
            if stored is None or stored.order is None or order_key(order) > order_key(stored.order):
                # it works (holds its account) from the holdings stored: those it was computed from, or
                # ones already part-filled towards it (then it holds until its cooldown, never trades twice)
                working = WorkingOrder.of(order, stored.holdings) if stored is not None else None
                latest.append(RecordedOrder(account, str(order["event_id"]), orjson.dumps(order), working))
        await self.store.record_orders(latest, end)
        if latest:
            log.warning("recovered orders published before a crash", orders=len(latest), partitions=parts)
        return len(latest)
