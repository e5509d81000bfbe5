"""The worker's moving parts between Kafka and Redis: account intake, the price feed, the evaluator,
order publication with recovery, and partition ownership. The Faust wiring is in ``worker.py``."""

from __future__ import annotations

import asyncio
import functools
import gc
import os
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2

from streamproc.app.accounts import APPLIED, FILLED_SUPERSEDED, REPLAY, Accounts
from streamproc.app.alerting import Alerter
from streamproc.app.decisions import Draft, Status, decide, state_counts
from streamproc.app.metrics import Metrics
from streamproc.app.prices import Prices
from streamproc.app.topics import newest_timestamps
from streamproc.app.watch import Watch
from streamproc.clients import kafka_args, redis_client
from streamproc.core import Book, LegLimits
from streamproc.core.alerts import Subject
from streamproc.core.book import CASH
from streamproc.settings import Settings, Topics
from streamproc.state.store import Store
from streamproc.wire.codec import Rejected, deadletter, decode
from streamproc.wire.contract import Contract
from streamproc.wire.quotes import QuoteColumns, QuoteDecoder

log = structlog.get_logger(__name__)
# Fault injection for the crash-recovery test: die like SIGKILL between publishing orders and recording them.
_CRASH_AFTER_PUBLISH = os.environ.get("STREAMPROC_FAULT") == "crash-after-publish"


@dataclass(frozen=True, slots=True)
class Record:
    """A consumed record, whichever client consumed it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    ts_ms: int = 0  # record timestamp


class Pipeline:
    """Everything one worker does, driven by Faust (account partitions) and its own price-feed consumer."""

    def __init__(self, settings: Settings, contract: Contract, partitions: dict[str, int]) -> None:
        self.settings = settings
        self.contract = contract
        self.topics = settings.topics
        self.partitions = partitions  # logical topic -> partition count
        self.token = uuid.uuid4().hex
        self.book = Book()
        self.accounts = Accounts(
            self.book, cooldown_s=settings.order_cooldown_s, settle_s=settings.order_settle_s
        )
        self.prices = Prices(
            self.book,
            max_age_s=settings.quote_max_age_s,
            outlier_move=settings.outlier_move,
            max_age_by_tier=settings.quote_max_age_by_tier,
            outlier_by_tier=settings.outlier_move_by_tier,
        )
        self.limits = LegLimits()
        self.stats: Counter[str] = Counter()  # what the worker did (metrics arrive with #6)
        self.alerter = Alerter(
            lambda: self._store, lambda: self._producer, self.topics.alerts, self.owns_subject, self.stats
        )
        self.watch = Watch(settings)
        self.feed_ready_ms: int | None = None
        self.feed_lag = 0  # quote records behind the partitions' high watermarks at the last fetch
        self.metrics = Metrics(self.metrics_snapshot)
        self.last_event_ms: dict[str, int] = {}  # logical topic -> newest record ts processed
        self.next_offsets: dict[TopicPartition, int] = {}  # consumed up to, per input partition
        self.lag: dict[str, int] = {}
        self.assigned = False  # a first assignment arrived (possibly empty)
        self.loop_lag_s = 0.0
        self.jobs: list[asyncio.Task[None]] = []  # feed, evaluator, watch, heartbeat (set by the worker)
        self.lock = asyncio.Lock()  # one evaluation / rebalance step at a time
        self.owned: set[int] = set()  # account partitions assigned to this worker
        self.suspended: set[int] = set()  # revoked but still in memory (reused if assigned back)
        self.loaded: dict[int, asyncio.Event] = {}
        self._loading: dict[int, asyncio.Task[None]] = {}
        self._reseek: set[int] = set()
        self.feed_ready = asyncio.Event()
        self.quote_decoder = QuoteDecoder(contract)
        self._checkpoint: set[int] = set()  # instruments of owned quotes partitions changed since the last
        self._checkpoint_offsets: dict[int, int] = {}  # checkpoint, and the offsets it will store
        self._referenced_sent: set[str] = set()  # instruments already added to the Redis ``held`` set
        self.redis: aioredis.Redis | None = None
        self.store: Store | None = None
        self.producer: AIOKafkaProducer | None = None

    # ---- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect to Redis and start the output producer (idempotent: rebalance hooks may run first)."""
        if self.producer is not None:
            return
        self.redis = redis_client(self.settings, health_check_interval=10)
        self.store = Store(
            self.redis,
            self.settings.redis_prefix,
            observe=self.metrics.observe_redis,
            failed=lambda op: self.stats.update((f"redis_errors.{op}",)),
        )
        producer = AIOKafkaProducer(
            **kafka_args(self.settings),
            enable_idempotence=True,
            acks="all",
            linger_ms=2,
        )
        self.producer = producer
        await producer.start()

    async def stop(self) -> None:
        """Flush and close the clients."""
        for task in self._loading.values():
            task.cancel()
        if self.producer is not None:
            await self.producer.stop()
        if self.redis is not None:
            await self.redis.aclose()

    @property
    def _store(self) -> Store:
        assert self.store is not None, "Pipeline.start() first"
        return self.store

    @property
    def _producer(self) -> AIOKafkaProducer:
        assert self.producer is not None, "Pipeline.start() first"
        return self.producer

    def owns_partition(self, p: int) -> bool:
        """Whether account partition ``p`` is assigned to this worker and loaded."""
        event = self.loaded.get(p)
        return p in self.owned and event is not None and event.is_set()

    def owns_input(self, partition: int) -> bool:
        """Whether this worker answers for a quotes/instruments partition (dead letters, stored quotes):
        the owner of account partition ``partition mod N``, so exactly one worker does."""
        return self.owns_partition(partition % self.partitions["positions"])

    def owns_subject(self, subject: Subject) -> bool:
        """Whether this worker announces alerts about ``subject``: an instrument's quotes partition
        owner, an account's owner, and for topics the owner of account partition 0."""
        kind, ident = subject
        if kind == "instrument":
            return self.owns_input(partition_of(ident, self.partitions["quotes"]))
        if kind == "account":
            r = self.book.accounts.get(ident)
            return (
                r is not None
                and r < len(self.accounts.part)
                and self.owns_partition(int(self.accounts.part[r]))
            )
        return self.owns_partition(0)

    # ---- dead letters ------------------------------------------------------------------------

    async def _dead_letters(self, items: Sequence[tuple[Record, Rejected]]) -> None:
        if not items:
            return
        now_ms = int(time.time() * 1000)
        futures = []
        for rec, why in items:
            value = deadletter(rec.topic, rec.partition, rec.offset, rec.value, why, now_ms)
            futures.append(await self._producer.send(self.topics.deadletter, value=value, key=rec.key))
            self.stats[f"deadletter.{self.topics.logical(rec.topic)}.{why.reason}"] += 1
            log.warning(
                "dead letter",
                topic=rec.topic,
                partition=rec.partition,
                offset=rec.offset,
                reason=why.reason,
                error=why.error,
            )
        await asyncio.gather(*futures)

    # ---- account intake (Faust agent) --------------------------------------------------------

    async def wait_loaded(self, partitions: Iterable[int]) -> None:
        """Block until these account partitions are loaded from Redis."""
        for p in partitions:
            event = self.loaded.setdefault(p, asyncio.Event())
            await event.wait()

    async def on_account_records(self, records: Sequence[Record]) -> None:
        """Apply a batch of positions/targets records, then persist the changed accounts in one pipeline.
        Runs before the batch's offsets are acknowledged (at-least-once; replays are dropped by seq)."""
        await self.wait_loaded({r.partition for r in records})
        now = time.time()
        self._consumed(records)
        dead: list[tuple[Record, Rejected]] = []
        fields: dict[str, dict[str, Any]] = {}
        parts: dict[str, int] = {}
        referenced: set[str] = set()
        accounts = self.accounts
        for rec in records:
            logical = self.topics.logical(rec.topic)
            doc = decode(self.contract, logical, rec.key, rec.value)
            if isinstance(doc, Rejected):
                dead.append((rec, doc))
                continue
            account = doc["account"]
            if logical == "positions":
                done = accounts.apply_position(doc, rec.partition, now)
                if done == REPLAY:
                    self.stats["positions.replayed"] += 1
                    continue
                self.stats["positions.applied" if done == APPLIED else "positions.gap_filled"] += 1
                f = fields.setdefault(account, {})
                inst = doc["instrument"]
                r = accounts.row(account)
                if inst != CASH and float(doc["qty"]) > 0:
                    referenced.add(inst)
                if done != FILLED_SUPERSEDED:
                    f["cash" if inst == CASH else f"q:{inst}"] = float(doc["qty"])
                f["seq"], f["pts"] = int(accounts.seq[r]), int(accounts.pts[r])
                if done != APPLIED or r in accounts.gaps:
                    f["gap"] = accounts.gap_field(r)
            else:
                try:
                    applied = accounts.apply_targets(doc, rec.partition, now)
                except ValueError as exc:
                    dead.append((rec, Rejected("semantic", f"targets cannot be applied: {exc}")))
                    continue
                if not applied:
                    self.stats["targets.replayed"] += 1
                    continue
                self.stats["targets.applied"] += 1
                f = fields.setdefault(account, {})
                f["targets"] = orjson.dumps(doc)
                referenced.update(i for i, w in doc["weights"].items() if float(w) > 0)
            f["part"] = rec.partition
            parts[account] = rec.partition
        await self._dead_letters(dead)
        await self._store.write_accounts(fields, parts, referenced - self._referenced_sent)
        self._referenced_sent |= referenced

    # ---- partition ownership -----------------------------------------------------------------

    async def on_assigned(self, partitions: set[int]) -> None:
        """New assignment of account partitions: reuse what is still ours, load the rest in the background."""
        await self.start()
        self.assigned = True
        async with self.lock:
            new = partitions - self.owned
            owners = await self._store.owners(new) if new else {}
            keep = {p for p in new if p in self.suspended and owners.get(p) == self.token}
            self.owned |= partitions
            self.suspended -= partitions
            if keep:
                self.accounts.resume(keep)
                self._reseek |= keep
            # the agent may already wait on a partition's event: reuse the object, never replace it
            for p in keep:
                self.loaded.setdefault(p, asyncio.Event()).set()
            self.alerter.stale = True
            for p in new - keep:
                self.loaded.setdefault(p, asyncio.Event()).clear()
                self._loading[p] = asyncio.create_task(self._load({p}))
        log.info(
            "partitions assigned",
            partitions=sorted(partitions),
            reused=sorted(keep),
            loading=sorted(new - keep),
        )

    async def on_revoked(self, partitions: set[int]) -> None:
        """Partitions taken away: finish the current evaluation, then stop evaluating their accounts."""
        async with self.lock:
            for p in partitions:
                task = self._loading.pop(p, None)
                if task is not None:
                    task.cancel()
                event = self.loaded.get(p)
                if event is not None and event.is_set():
                    self.suspended.add(p)
                    event.clear()
            self.owned -= partitions
            self.accounts.release(partitions)
        log.info("partitions revoked", partitions=sorted(partitions))

    async def _load(self, partitions: set[int]) -> None:
        started = time.perf_counter()
        store = self._store
        await store.claim(partitions, self.token)
        await self.recover_orders(partitions)
        records = await store.load_partitions(partitions)
        async with self.lock:
            if not partitions <= self.owned:
                return
            rows = self.accounts.load(records, time.time())
            for p in partitions:
                self.loaded[p].set()
                self._loading.pop(p, None)
            self._reseek |= partitions
            self.alerter.stale = True
        gc.freeze()  # the loaded accounts live long: keep them out of the cyclic collector's scans
        log.info(
            "partitions loaded",
            partitions=sorted(partitions),
            accounts=int(rows.size),
            seconds=round(time.perf_counter() - started, 3),
        )

    async def recover_orders(self, partitions: set[int]) -> None:
        """Find orders published after the last recorded one (a crash between publishing and recording)
        and record them, so the same event_id is never published again."""
        store = self._store
        offsets = await store.order_offsets()
        consumer = AIOKafkaConsumer(
            **kafka_args(self.settings),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            tps = [TopicPartition(self.topics.orders, p) for p in sorted(partitions)]
            consumer.assign(tps)
            end = await consumer.end_offsets(tps)
            for tp in tps:
                start = min(offsets.get(tp.partition, 0), end[tp])
                consumer.seek(tp, start)
            found: dict[str, dict[str, Any]] = {}
            pending = {tp for tp in tps if await consumer.position(tp) < end[tp]}
            while pending:
                batch = await consumer.getmany(*pending, timeout_ms=1000)
                for records in batch.values():
                    for rec in records:
                        order = orjson.loads(rec.value)
                        prev = found.get(order["account"])
                        if prev is None or _order_key(order) > _order_key(prev):
                            found[order["account"]] = order
                pending = {tp for tp in pending if await consumer.position(tp) < end[tp]}
        finally:
            await consumer.stop()
        latest = []
        for account, order in found.items():
            stored = await store.load_account(account)
            if stored is None or stored.order is None or _order_key(order) > _order_key(stored.order):
                latest.append((account, order["event_id"], orjson.dumps(order), {}))
        await store.record_orders(latest, {tp.partition: end[tp] for tp in tps})
        if latest:
            log.warning(
                "recovered orders published before a crash", orders=len(latest), partitions=sorted(partitions)
            )

    # ---- price feed --------------------------------------------------------------------------

    async def run_feed(self) -> None:
        """Read every partition of quotes and instruments (a broadcast: each worker needs every price),
        resuming after the quotes stored in Redis."""
        store = self._store
        consumer = AIOKafkaConsumer(
            **kafka_args(self.settings),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.settings.batch_max,
            fetch_max_wait_ms=20,
        )
        await consumer.start()
        try:
            quotes = [TopicPartition(self.topics.quotes, p) for p in range(self.partitions["quotes"])]
            instruments = [
                TopicPartition(self.topics.instruments, p) for p in range(self.partitions["instruments"])
            ]
            consumer.assign(quotes + instruments)
            offsets, stored = await store.load_quotes()
            self.prices.restore(stored)
            for tp in quotes:
                consumer.seek(
                    tp, offsets[tp.partition]
                ) if tp.partition in offsets else await consumer.seek_to_beginning(tp)
            await consumer.seek_to_beginning(*instruments)
            end = await consumer.end_offsets(quotes + instruments)
            waiting = {tp for tp in end if end[tp] > 0}
            log.info("price feed started", stored_quotes=len(stored), catching_up=len(waiting))
            checkpoint_s, checkpointed = self.settings.quote_checkpoint_ms / 1000.0, time.monotonic()
            while True:
                if self._reseek:
                    await self._seek_back(consumer)
                batch = await consumer.getmany(timeout_ms=50, max_records=self.settings.batch_max)
                if batch:
                    await self._on_feed_batch(batch)
                    self.feed_lag = sum(
                        max(0, (consumer.highwater(tp) or 0) - self.next_offsets.get(tp, 0)) for tp in quotes
                    )
                else:
                    self.feed_lag = 0
                now = time.monotonic()
                if not batch or now - checkpointed >= checkpoint_s:
                    await self._write_checkpoint()
                    checkpointed = now
                if not self.feed_ready.is_set():
                    waiting = {tp for tp in waiting if await consumer.position(tp) < end[tp]}
                    if not waiting:
                        self.feed_ready_ms = int(time.time() * 1000)
                        self.feed_ready.set()
                        log.info("price feed caught up", instruments=self.book.n_instruments)
        finally:
            await consumer.stop()

    async def _seek_back(self, consumer: AIOKafkaConsumer) -> None:
        """After gaining account partitions, re-read their input partitions from the stored offsets, so
        records between the previous owner's last write and now get their dead letters and snapshot."""
        parts, self._reseek = self._reseek, set()
        offsets = await self._store.quote_offsets()
        n = self.partitions["positions"]
        for p in range(self.partitions["quotes"]):
            if p % n in parts:
                tp = TopicPartition(self.topics.quotes, p)
                consumer.seek(tp, offsets[p]) if p in offsets else await consumer.seek_to_beginning(tp)
        # reference data is compacted and small: re-read it (its dead letters may repeat, see README)
        owned_refs = [
            TopicPartition(self.topics.instruments, p)
            for p in range(self.partitions["instruments"])
            if p % n in parts
        ]
        if owned_refs:
            await consumer.seek_to_beginning(*owned_refs)

    async def _on_feed_batch(self, batch: dict[TopicPartition, list[Any]]) -> None:
        """Apply a fetched batch: quotes as columns (one numpy pass per partition), reference data record
        by record; dead letters for the partitions this worker answers for."""
        dead: list[tuple[Record, Rejected]] = []
        for tp, records in batch.items():
            logical = self.topics.logical(tp.topic)
            owner = self.owns_input(tp.partition)
            self.stats[f"consumed.{logical}"] += len(records)
            self.next_offsets[tp] = records[-1].offset + 1
            self.last_event_ms[logical] = max(self.last_event_ms.get(logical, 0), records[-1].timestamp)
            if logical != "quotes":
                for r in records:
                    doc = decode(self.contract, logical, r.key, r.value)
                    if isinstance(doc, Rejected):
                        if owner:
                            dead.append((Record(tp.topic, tp.partition, r.offset, r.key, r.value), doc))
                    else:
                        self.prices.set_reference(doc)
                continue
            cols = self.quote_decoder.decode([r.key for r in records], [r.value for r in records])
            if cols is None:
                self.stats["quotes.batches_per_record"] += 1
                cols = self._quotes_one_by_one(tp, records, dead if owner else None)
            before = self.prices.duplicates
            idx = self.book.instrument_indices(cols.instrument)
            instruments = self.prices.accept_columns(idx, cols.seq, cols.bid, cols.ask, cols.ts)
            duplicates = self.prices.duplicates - before
            self.stats["quotes.seen"] += idx.size - duplicates
            self.stats["quotes.duplicates"] += duplicates
            if owner:
                self._checkpoint.update(instruments.tolist())
                self._checkpoint_offsets[tp.partition] = records[-1].offset + 1
        await self._dead_letters(dead)

    def _quotes_one_by_one(
        self, tp: TopicPartition, records: Sequence[Any], dead: list[tuple[Record, Rejected]] | None
    ) -> QuoteColumns:
        """Decode quotes record by record (a batch with anything unusual): the rejected ones become dead
        letters (when ``dead`` is given); crossed and non-positive ones still reach the quote checks."""
        docs = []
        for r in records:
            doc = decode(self.contract, "quotes", r.key, r.value)
            if isinstance(doc, Rejected):
                if dead is not None:
                    dead.append((Record(tp.topic, tp.partition, r.offset, r.key, r.value), doc))
                if doc.doc is None:
                    continue
                doc = doc.doc  # crossed or non-positive: the quote checks flag the instrument
            docs.append(doc)
        return QuoteColumns.of(docs)

    async def _write_checkpoint(self) -> None:
        """Store the feed state of the instruments changed since the last checkpoint with the offsets it
        reflects (a restart resumes after them; anything later is read again and deduplicated by seq)."""
        if not self._checkpoint and not self._checkpoint_offsets:
            return
        quotes = self.prices.snapshot(self._checkpoint)
        offsets = dict(self._checkpoint_offsets)
        self._checkpoint.clear()
        self._checkpoint_offsets.clear()
        await self._store.write_quotes(quotes, offsets)

    # ---- evaluation and orders ---------------------------------------------------------------

    async def run_evaluator(self) -> None:
        """Evaluate changed and price-affected accounts every ``eval_interval_ms``."""
        await self.feed_ready.wait()
        self.watch.storm, self.watch.muted = await self._store.storm()  # a storm may already hold orders
        interval = self.settings.eval_interval_ms / 1000.0
        max_defer = self.settings.eval_max_defer_ms / 1000.0
        last = 0.0
        while True:
            started = time.monotonic()
            # while the feed works through a backlog the prices in the book are already superseded in
            # Kafka: evaluate once it has caught up (conflation), yet at least every max_defer
            if self.feed_lag <= self.settings.batch_max or started - last >= max_defer:
                last = started
                await self.evaluate_once()
            else:
                self.stats["evaluations.deferred"] += 1
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    async def evaluate_once(self) -> int:
        """One pass: refresh staleness, evaluate candidates, publish orders, record them, announce
        quote and position alerts; returns the orders published."""
        async with self.lock:
            now = time.time()
            published = await self._evaluate(now)
            await self._announce_data_alerts(int(now * 1000))
            return published

    async def _evaluate(self, now: float) -> int:
        started = time.perf_counter()
        now_ms = int(now * 1000)
        self.prices.refresh_stale(now_ms)
        changed = self.prices.drain_changed()
        affected = self.book.accounts_affected_by(changed) if changed.size else changed
        rows = self.accounts.candidates(affected, now)
        if rows.size == 0:
            return 0
        watch = self.watch
        decisions = decide(self.accounts, self.prices, rows, now, self.limits, hold=watch.storm is not None)
        self.stats["evaluations"] += decisions.evaluated
        self.stats["breaches"] += decisions.new_breaches
        if watch.storm is None and watch.breaches(now, decisions.new_breaches, self.accounts.tracked()):
            doc = watch.storm_doc(now_ms, self.topics.orders)
            if not await self._store.start_storm(doc):
                doc = (await self._store.storm())[0] or doc
            watch.storm = doc
            held = decisions.hold(self.accounts, now_ms)
            log.error(
                "breach storm: orders held until `streamproc storm release`", held=held, **doc["details"]
            )
        elif decisions.orders and watch.storm is None:
            # another worker may have started a storm since the last watch tick: one GET per pass that
            # would publish, so no order leaves after a storm is set
            storm, _muted = await self._store.storm()
            if storm is not None:
                watch.storm = storm
                decisions.hold(self.accounts, now_ms)
        drafts = [d for d in decisions.orders if self.accounts.last_order.get(d.row) != d.event_id]
        published = await self._publish(drafts)
        now = time.time()
        for d in published:
            self.accounts.opened(d.row, d.event_id, d.doc["inputs"], now)
        statuses = {
            self.book.accounts.id_of(r): {"drift": orjson.dumps(doc)} for r, doc in decisions.statuses.items()
        }
        await self._store.write_accounts(statuses, {})
        self.metrics.evaluation.observe(time.perf_counter() - started)
        return len(published)

    async def _announce_data_alerts(self, now_ms: int) -> None:
        """Reconcile the quote and position detectors with the announced alerts."""
        prices, accounts, alerter = self.prices, self.accounts, self.alerter
        open_now = prices.checks.open_episodes()
        open_now.update(accounts.open_gap_episodes())
        closed = prices.checks.drain_closed() + accounts.drain_closed()
        types: tuple[str, ...] = DATA_ALERTS
        if self.watch.tick == 0:  # which instruments are referenced is not known yet: judge staleness later
            types = tuple(t for t in types if t != "quote_stale")
        else:
            open_now.update(prices.stale_episodes(self.watch.referenced, now_ms, self.feed_ready_ms))
            if alerter.stale:
                await alerter.load()
            # a "never quoted" alert outlives a restart (its clock restarts with the feed) while unquoted
            for key, ep in alerter.firing.items():
                never = ep.type == "quote_stale" and ep.id.endswith(":never")
                if never and key not in open_now and prices.never_quoted(ep.subject[1]):
                    open_now[key] = ep
        await alerter.sync(types, open_now, closed, now_ms)

    # ---- the watch: topics, storm, operator requests, summary -------------------------------

    async def run_watch(self) -> None:
        """Once a second: input-topic silence and dead-letter rate from end offsets, the breach storm
        state, operator requests, quarantine timeouts, and this worker's summary in Redis."""
        await self.feed_ready.wait()
        consumer = AIOKafkaConsumer(**kafka_args(self.settings), group_id=None)
        await consumer.start()
        try:
            watched = ("quotes", "positions", "targets", "instruments", "deadletter")
            tps = [
                TopicPartition(getattr(self.topics, t), p) for t in watched for p in range(self.partitions[t])
            ]
            seeded = False
            while True:
                started = time.monotonic()
                try:
                    ends = await consumer.end_offsets(tps)
                    if not seeded:
                        newest = await newest_timestamps(consumer, [tp for tp in tps if ends[tp] > 0], ends)
                        newest_ms = {self.topics.logical(t): ms for t, ms in newest.items()}
                        self.watch.seed(_by_topic(self.topics, ends), newest_ms)
                        seeded = True
                except KafkaError as exc:  # a slow or restarting broker: the next tick asks again
                    self.stats["watch.offset_errors"] += 1
                    log.warning("end offsets unavailable, retrying next tick", error=repr(exc))
                else:
                    self.lag = self._lag(ends)
                    await self.watch_once(time.time(), _by_topic(self.topics, ends))
                await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
        finally:
            await consumer.stop()

    async def watch_once(self, now: float, offsets: Mapping[str, int]) -> None:
        """One watch step given the summed end offsets of the input and dead-letter topics."""
        store, watch = self._store, self.watch
        now_ms = int(now * 1000)
        before = watch.storm
        storm, muted = await store.storm()
        released = before is not None and storm is None
        if watch.storm is before:  # else this worker started a storm meanwhile: keep it
            watch.storm = storm
        watch.muted = muted
        if watch.tick % 5 == 0:
            watch.held = await store.held_instruments()
        requests = await store.reconcile_requests()
        async with self.lock:
            if released:
                watch.window.clear()  # the breaches that made the storm are not a new one
                rows = self.accounts.rows_with_status(Status.HELD)
                self.accounts.dirty.update(rows.tolist())
                log.warning(
                    "breach storm released: held accounts are evaluated again", accounts=int(rows.size)
                )
            watch.refresh_referenced(self.book)
            handled, gap_fields = self._lift_quarantines(requests, now_ms)
        await store.write_accounts(gap_fields, {})
        await store.reconciled(handled)
        if self.alerter.stale:
            await self.alerter.load()
        open_now = watch.topic_episodes(now, offsets, self.topics, self.alerter.firing)
        await self.alerter.sync(TOPIC_ALERTS, open_now, (), now_ms)
        summary = watch.summary(self.accounts, self.book, sorted(self.owned), now_ms, self.stats)
        await store.write_worker(self.token, summary)
        if summary["suppressed"] != watch.last_suppressed:
            watch.last_suppressed = summary["suppressed"]
            log.info("accounts suppressed", count=summary["suppressed"], by=summary["suppressed_by"])
        watch.tick += 1

    def _consumed(self, records: Sequence[Record]) -> None:
        """Account-topic bookkeeping for metrics: records, newest ts, consumed offsets."""
        for rec in records:
            logical = self.topics.logical(rec.topic)
            self.stats[f"consumed.{logical}"] += 1
            self.next_offsets[TopicPartition(rec.topic, rec.partition)] = rec.offset + 1
            if rec.ts_ms > self.last_event_ms.get(logical, 0):
                self.last_event_ms[logical] = rec.ts_ms

    def _lag(self, ends: Mapping[TopicPartition, int]) -> dict[str, int]:
        """Records behind the end, per input topic, over the partitions this worker reads."""
        lag: Counter[str] = Counter()
        n = self.partitions["positions"]
        for tp, end in ends.items():
            logical = self.topics.logical(tp.topic)
            if logical == "deadletter":
                continue
            if logical in ("positions", "targets") and not self.owns_partition(tp.partition % n):
                continue
            lag[logical] += max(0, end - self.next_offsets.get(tp, end))
        return dict(lag)

    def metrics_snapshot(self) -> dict[str, Any]:
        """What /metrics reports beyond the histograms (read at scrape time)."""
        firing = Counter(k[0] for k in self.alerter.firing if self.owns_subject(k[1]))
        return {
            "stats": dict(self.stats),
            "accounts": state_counts(self.accounts),
            "firing": dict(firing),
            "last_event_ms": dict(self.last_event_ms),
            "lag": dict(self.lag),
            "partitions": sum(1 for p in self.owned if self.owns_partition(p)),
        }

    def health(self) -> list[str]:
        """Why this worker is not healthy (empty: healthy): a pipeline task ended, or the event loop
        was blocked for more than ``_MAX_LOOP_LAG_S`` in the last 30 s."""
        problems = [f"{job.get_name()} task ended" for job in self.jobs if job.done()]
        if self.loop_lag_s > _MAX_LOOP_LAG_S:
            problems.append(f"event loop blocked for {self.loop_lag_s:.1f} s (limit {_MAX_LOOP_LAG_S} s)")
        return problems

    async def readiness(self) -> list[str]:
        """Why this worker is not ready to serve (empty: ready)."""
        reasons = []
        if not self.assigned:
            reasons.append("no partition assignment received yet")
        loading = sorted(p for p in self.owned if not self.owns_partition(p))
        if loading:
            reasons.append(f"loading partitions {loading} from Redis")
        if not self.feed_ready.is_set():
            reasons.append("price feed catching up")
        try:
            assert self.redis is not None, "not started"
            await asyncio.wait_for(self.redis.ping(), 1.0)
        except Exception as exc:
            reasons.append(f"redis unreachable: {exc or type(exc).__name__}")
        return reasons

    async def run_heartbeat(self, every: float = 0.25, window: int = 120) -> None:
        """Measure how late the event loop wakes up; ``loop_lag_s`` is the worst of the last ``window``
        beats (30 s), so a loop that was blocked shows in /health after it recovers."""
        recent: deque[float] = deque(maxlen=window)
        while True:
            started = time.monotonic()
            await asyncio.sleep(every)
            recent.append(max(0.0, time.monotonic() - started - every))
            self.loop_lag_s = max(recent)

    def _lift_quarantines(
        self, requests: Mapping[str, int], now_ms: int
    ) -> tuple[list[str], dict[str, dict[str, Any]]]:
        """Operator reconciliations of owned accounts, and timed-out gaps; returns the requests
        handled and the account fields to write."""
        accounts, handled = self.accounts, []
        fields: dict[str, dict[str, Any]] = {}
        for account, at_ms in requests.items():
            r = self.book.accounts.get(account)
            if r is None or r >= len(accounts.part) or not self.owns_partition(int(accounts.part[r])):
                continue
            handled.append(account)
            if accounts.clear_gap(r, reconciled_at=at_ms):
                fields[account] = {"gap": b""}
                log.warning("position gap reconciled by operator", account=account)
        for account in accounts.expire_gaps(now_ms, self.settings.position_gap_timeout_s):
            fields[account] = {"gap": b""}
            log.warning("position gap timed out: quarantine lifted", account=account)
        return handled, fields

    async def _publish(self, drafts: list[Draft]) -> list[Draft]:
        """Send orders (idempotent producer, acks=all), await delivery, then record them in Redis.
        A crash in between is repaired by ``recover_orders``; a failed send is retried next pass."""
        if not drafts:
            return []
        sent = []
        for d in drafts:
            value = orjson.dumps(d.doc)
            fut = await self._producer.send(
                self.topics.orders, value=value, key=d.account.encode(), partition=d.partition
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
                self.accounts.status[d.row] = -1
                continue
            ok.append(d)
            offsets[meta.partition] = max(offsets.get(meta.partition, 0), meta.offset + 1)
            records.append((d.account, d.event_id, value, {}))
            log.info(
                "order",
                account=d.account,
                event_id=d.event_id,
                legs=len(d.doc["legs"]),
                partition=meta.partition,
            )
        self.stats["orders"] += len(ok)
        sent_at = time.time()
        for d in ok:
            self.metrics.quote_to_order.observe(max(0.0, sent_at - d.doc["as_of"] / 1000.0))
        if _CRASH_AFTER_PUBLISH and ok:
            os._exit(137)
        await self._store.record_orders(records, offsets)
        return ok


_MAX_LOOP_LAG_S = 5.0
DATA_ALERTS = ("quote_stale", "quote_gap", "quote_crossed", "quote_outlier", "position_gap")
TOPIC_ALERTS = ("feed_silent", "deadletter_rate", "breach_storm")


def _by_topic(topics: Topics, ends: Mapping[TopicPartition, int]) -> Counter[str]:
    """Summed end offsets by logical topic name."""
    out: Counter[str] = Counter()
    for tp, end in ends.items():
        out[topics.logical(tp.topic)] += end
    return out


@functools.lru_cache(maxsize=65536)
def partition_of(key: str, partitions: int) -> int:
    """Kafka's default partition of a key (murmur2), so alerts about an instrument have one owner."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def _order_key(order: dict[str, Any]) -> tuple[int, int, int]:
    inputs = order["inputs"]
    return (inputs["positions_seq"], inputs["targets_version"], inputs.get("attempt", 0))
