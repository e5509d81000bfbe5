"""The watch loop, once a second: input-topic silence and the dead-letter rate from end offsets, the
storm hold mirrored from the store, operator reconcile requests and quarantine timeouts, the
referenced instruments, and this worker's summary for `streamproc inspect status`."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Mapping
from typing import Protocol

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from streamproc.app.accounts import Accounts
from streamproc.app.alerting import TOPIC_ALERTS, Alerter
from streamproc.app.counters import Counters
from streamproc.app.ownership import Ownership
from streamproc.app.ports import AccountStore, Clock, ControlStore
from streamproc.app.progress import Progress
from streamproc.app.storm import StormGuard
from streamproc.app.topics import newest_timestamps
from streamproc.app.trading import TYPES as TRADING_ALERTS
from streamproc.app.trading import Trading
from streamproc.app.watch import Watch
from streamproc.settings import Settings, Topics
from streamproc.state.records import AccountPatch, OrderRequest

log = structlog.get_logger(__name__)
WATCHED = ("quotes", "positions", "targets", "instruments", "deadletter")


class _Store(ControlStore, AccountStore, Protocol):
    """Storm state, requests, summaries, and the accounts whose quarantine is lifted."""


class Watcher:
    """One ``tick`` per second, given the summed end offsets of the watched topics."""

    def __init__(
        self,
        settings: Settings,
        store: _Store,
        watch: Watch,
        storm: StormGuard,
        accounts: Accounts,
        ownership: Ownership,
        alerter: Alerter,
        counters: Counters,
        progress: Progress,
        lock: asyncio.Lock,
        clock: Clock,
        trading: Trading | None = None,
    ) -> None:
        self.trading = trading or Trading(accounts)
        self.settings = settings
        self.topics = settings.topics
        self.store = store
        self.watch = watch
        self.storm = storm
        self.accounts = accounts
        self.book = accounts.book
        self.ownership = ownership
        self.alerter = alerter
        self.counters = counters
        self.progress = progress
        self.lock = lock
        self.clock = clock

    async def tick(self, now: float, offsets: Mapping[str, int]) -> None:
        """One watch step given the summed end offsets of the input and dead-letter topics."""
        store, watch = self.store, self.watch
        now_ms = int(now * 1000)
        released = await self.storm.refresh()
        if watch.tick % 5 == 0:
            watch.held = await store.held_instruments()
        requests = await store.reconcile_requests()
        decided = await store.order_requests()
        states = await store.trading_states()
        async with self.lock:
            if self.trading.apply(states):
                log.warning("trading states", states={k: d["state"] for k, d in states.items()})
            if released:
                self.storm.on_released()
            watch.refresh_referenced(self.book)
            handled, lifted = self._lift_quarantines(requests, now_ms)
            acted = self._order_actions(decided, now)
        await store.write_accounts({a: AccountPatch().gap(None) for a in lifted}, {})
        await store.reconciled(handled)
        await store.order_requests_handled(acted)
        if self.alerter.stale:
            await self.alerter.load()
        open_now = watch.topic_episodes(now, offsets, self.topics, self.alerter.firing, self.storm.episode())
        await self.alerter.sync(TOPIC_ALERTS, open_now, (), now_ms)
        await self.alerter.sync(TRADING_ALERTS, self.trading.episodes(), (), now_ms)
        partitions = sorted(self.ownership.owned)
        summary = watch.summary(
            self.accounts, self.book, partitions, now_ms, self.counters.summary(), self.storm.holding
        )
        # the trading states this worker applies, so an operator can see a halt reached every worker
        summary["trading"] = sorted(f"{k}={d['state']}" for k, d in self.trading.docs.items())
        # and the feeds it watches, so `inspect topics` shows the workers' thresholds, not the shell's
        summary["feed_silent_s"] = dict(self.settings.feed_silent_s)
        summary["limits"] = self.settings.limits.version
        summary["lag"] = dict(self.progress.lag)  # records behind, per input topic
        await store.write_worker(self.ownership.token, summary)
        if summary["suppressed"] != watch.last_suppressed:
            watch.last_suppressed = summary["suppressed"]
            log.info("accounts suppressed", count=summary["suppressed"], by=summary["suppressed_by"])
        watch.tick += 1

    def _owned_row(self, account: str) -> int | None:
        """The row of an account this worker owns (None: another worker's, or unknown)."""
        accounts = self.accounts
        r = self.book.accounts.get(account)
        if r is None or r >= len(accounts.part) or not self.ownership.owns_partition(int(accounts.part[r])):
            return None
        return r

    def _order_actions(self, requests: Mapping[str, OrderRequest], now: float) -> list[str]:
        """Operator decisions (`streamproc orders retry|release`) on owned accounts; returns them."""
        handled = []
        for account, request in requests.items():
            r = self._owned_row(account)
            if r is None:
                continue
            handled.append(account)
            self.accounts.operator(r, request.action, now)
            log.warning("orders: operator decision", account=account, action=request.action.value)
        return handled

    def _lift_quarantines(self, requests: Mapping[str, int], now_ms: int) -> tuple[list[str], list[str]]:
        """Operator reconciliations of owned accounts, and timed-out gaps; returns (the requests
        handled, the accounts whose quarantine was lifted)."""
        accounts, handled, lifted = self.accounts, [], []
        for account, at_ms in requests.items():
            r = self._owned_row(account)
            if r is None:
                continue
            handled.append(account)
            if accounts.clear_gap(r, reconciled_at=at_ms):
                lifted.append(account)
                log.warning("position gap reconciled by operator", account=account)
        for account in accounts.expire_gaps(now_ms, self.settings.position_gap_timeout_s):
            lifted.append(account)
            log.warning("position gap timed out: quarantine lifted", account=account)
        return handled, lifted

    async def run(self, consumer: AIOKafkaConsumer, partitions: Mapping[str, int]) -> None:
        """Tick once a second with the end offsets read by ``consumer`` (started by the caller); the
        silence clocks are seeded from each topic's newest record first."""
        tps = [TopicPartition(getattr(self.topics, t), p) for t in WATCHED for p in range(partitions[t])]
        seeded = False
        while True:
            started = time.monotonic()
            try:
                ends = await consumer.end_offsets(tps)
                if not seeded:
                    newest = await newest_timestamps(consumer, [tp for tp in tps if ends[tp] > 0], ends)
                    self.watch.seed(
                        by_topic(self.topics, ends), {self.topics.logical(t): ms for t, ms in newest.items()}
                    )
                    seeded = True
            except KafkaError as exc:  # a slow or restarting broker: the next tick asks again
                self.counters.watch_errors.inc()
                log.warning("end offsets unavailable, retrying next tick", error=repr(exc))
            else:
                self.progress.update_lag(ends, self.ownership.reads)
                await self.tick(self.clock.time(), by_topic(self.topics, ends))
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))


def by_topic(topics: Topics, ends: Mapping[TopicPartition, int]) -> Counter[str]:
    """Summed end offsets by logical topic name."""
    out: Counter[str] = Counter()
    for tp, end in ends.items():
        out[topics.logical(tp.topic)] += end
    return out
