"""The price feed: every partition of quotes and instruments (a broadcast: each worker needs every
price), decoded as columns and run through the quote checks into the book; the owner of a quotes
partition checkpoints its instruments' feed state with the offsets it reflects, and a worker that gains
account partitions seeks their input partitions back to the stored offsets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import structlog
from aiokafka import TopicPartition

from streamproc.app.counters import Counters, Outcome
from streamproc.app.deadletters import DeadLetters, Record
from streamproc.app.ports import Clock, FeedSource, QuoteStore
from streamproc.app.prices import Prices
from streamproc.app.progress import Progress
from streamproc.settings import Topics
from streamproc.wire.codec import Reason, Rejected, decode, future_error
from streamproc.wire.contract import Contract
from streamproc.wire.quotes import QuoteColumns, QuoteDecoder

log = structlog.get_logger(__name__)


class Feed:
    """Consumes quotes and reference data into ``prices``; one ``poll`` is one fetched batch."""

    def __init__(
        self,
        contract: Contract,
        topics: Topics,
        partitions: dict[str, int],
        prices: Prices,
        store: QuoteStore,
        deadletters: DeadLetters,
        owns_input: Callable[[int], bool],
        counters: Counters,
        progress: Progress,
        clock: Clock,
        *,
        batch_max: int,
        checkpoint_ms: int,
    ) -> None:
        self.contract = contract
        self.topics = topics
        self.partitions = partitions
        self.prices = prices
        self.book = prices.book
        self.store = store
        self.deadletters = deadletters
        self.owns_input = owns_input  # whether this worker answers for a quotes/instruments partition
        self.counters = counters
        self.progress = progress
        self.clock = clock
        self.batch_max = batch_max
        self.checkpoint_s = checkpoint_ms / 1000.0
        self.decoder = QuoteDecoder(contract)
        self.ready = asyncio.Event()  # caught up with the end offsets seen at start
        self.ready_ms: int | None = None
        self.lag = 0  # quote records behind the partitions' high watermarks at the last fetch
        self.quote_tps = [TopicPartition(topics.quotes, p) for p in range(partitions["quotes"])]
        self.ref_tps = [TopicPartition(topics.instruments, p) for p in range(partitions["instruments"])]
        self._reseek: set[int] = set()  # account partitions gained: re-read their input partitions
        self._dirty: set[int] = set()  # instruments of owned quotes partitions changed since the last
        self._dirty_offsets: dict[int, int] = {}  # checkpoint, and the offsets it will store
        self._waiting: set[TopicPartition] = set()
        self._end: dict[TopicPartition, int] = {}
        self._checkpointed = 0.0

    def request_reseek(self, partitions: Iterable[int]) -> None:
        """Account partitions were gained (reused from memory or loaded): re-read their inputs."""
        self._reseek |= set(partitions)

    async def start(self, source: FeedSource) -> None:
        """Assign every partition, restore the stored feed state and resume after its offsets."""
        source.assign(self.quote_tps + self.ref_tps)
        offsets, stored = await self.store.load_quotes()
        self.prices.restore(stored)
        for tp in self.quote_tps:
            if tp.partition in offsets:
                source.seek(tp, offsets[tp.partition])
            else:
                await source.seek_to_beginning(tp)
        await source.seek_to_beginning(*self.ref_tps)
        self._end = await source.end_offsets(self.quote_tps + self.ref_tps)
        self._waiting = {tp for tp, end in self._end.items() if end > 0}
        self._checkpointed = time.monotonic()
        log.info("price feed started", stored_quotes=len(stored), catching_up=len(self._waiting))

    async def poll(self, source: FeedSource, timeout_ms: int = 50) -> int:
        """Fetch and apply one batch, checkpoint when due, note catching up; returns the records."""
        if self._reseek:
            await self._seek_back(source)
        batch = await source.getmany(timeout_ms=timeout_ms, max_records=self.batch_max)
        if batch:
            await self.apply(batch)
            self.lag = self.progress.behind(self.quote_tps, source.highwater)
        else:
            self.lag = 0
        now = time.monotonic()
        if not batch or now - self._checkpointed >= self.checkpoint_s:
            await self.checkpoint()
            self._checkpointed = now
        if not self.ready.is_set():
            self._waiting = {tp for tp in self._waiting if await source.position(tp) < self._end[tp]}
            if not self._waiting:
                self.ready_ms = int(self.clock.time() * 1000)
                self.ready.set()
                log.info("price feed caught up", instruments=self.book.n_instruments)
        return sum(len(r) for r in batch.values())

    async def run(self, source: FeedSource) -> None:
        """Start, then poll forever (the source is started and stopped by the caller)."""
        await self.start(source)
        while True:
            await self.poll(source)

    async def _seek_back(self, source: FeedSource) -> None:
        """Re-read the input partitions of gained account partitions from the stored offsets, so records
        between the previous owner's last checkpoint and now get their dead letters and checkpoint."""
        parts, self._reseek = self._reseek, set()
        offsets = await self.store.quote_offsets()
        n = self.partitions["positions"]
        for tp in self.quote_tps:
            if tp.partition % n in parts:
                if tp.partition in offsets:
                    source.seek(tp, offsets[tp.partition])
                else:
                    await source.seek_to_beginning(tp)
        # reference data is compacted and small: re-read it (its dead letters may repeat: docs/delivery.md)
        owned_refs = [tp for tp in self.ref_tps if tp.partition % n in parts]
        if owned_refs:
            await source.seek_to_beginning(*owned_refs)

    async def apply(self, batch: dict[TopicPartition, list[Any]]) -> None:
        """Apply a fetched batch: quotes as columns (one numpy pass per partition), reference data record
        by record; dead letters for the partitions this worker answers for."""
        dead: list[tuple[Record, Rejected]] = []
        counters = self.counters
        for tp, records in batch.items():
            logical = self.topics.logical(tp.topic)
            owner = self.owns_input(tp.partition)
            counters.consumed.inc(logical, n=len(records))
            self.progress.consumed(tp, records[-1].offset + 1, records[-1].timestamp)
            if logical != "quotes":
                for r in records:
                    doc = decode(self.contract, logical, r.key, r.value)
                    if isinstance(doc, Rejected):
                        if owner:
                            dead.append((Record(tp.topic, tp.partition, r.offset, r.key, r.value), doc))
                        continue
                    error = self.prices.set_reference(doc, int(self.clock.time() * 1000))
                    if error is not None and owner:
                        record = Record(tp.topic, tp.partition, r.offset, r.key, r.value)
                        dead.append((record, Rejected(Reason.SEMANTIC, error)))
                    elif owner:  # its stored feed state names its calendar (for `inspect instrument`)
                        self._dirty.add(self.book.instrument(doc["instrument"]))
                continue
            cols = self.decoder.decode([r.key for r in records], [r.value for r in records])
            kept: Sequence[Any] = records
            if cols is None:
                counters.per_record_batches.inc()
                cols, kept = self._quotes_one_by_one(tp, records, dead if owner else None)
            now_ms = int(self.clock.time() * 1000)
            if owner:
                dead += self._future(tp, cols, kept, now_ms)
            before = self.prices.duplicates
            idx = self.book.instrument_indices(cols.instrument)
            instruments = self.prices.accept_columns(
                idx, cols.seq, cols.bid, cols.ask, cols.ts, now_ms, cols.sizes
            )
            duplicates = self.prices.duplicates - before
            counters.messages.inc("quotes", Outcome.CHECKED, n=idx.size - duplicates)
            counters.messages.inc("quotes", Outcome.DUPLICATE, n=duplicates)
            if owner:
                self._dirty.update(instruments.tolist())
                self._dirty_offsets[tp.partition] = records[-1].offset + 1
        await self.deadletters.publish(dead)

    def _future(
        self, tp: TopicPartition, cols: QuoteColumns, records: Sequence[Any], now_ms: int
    ) -> list[tuple[Record, Rejected]]:
        """Dead letters for the quotes (``records``: row for row with ``cols``) stamped beyond the clock
        skew allowance; the quote checks reject them and raise ``clock_skew``."""
        out = []
        for k in np.flatnonzero(self.prices.future(cols.ts, now_ms)).tolist():
            r = records[k]
            why = future_error(int(cols.ts[k]), now_ms, self.prices.max_skew_ms)
            out.append(
                (Record(tp.topic, tp.partition, r.offset, r.key, r.value), Rejected(Reason.SEMANTIC, why))
            )
        return out

    def _quotes_one_by_one(
        self, tp: TopicPartition, records: Sequence[Any], dead: list[tuple[Record, Rejected]] | None
    ) -> tuple[QuoteColumns, list[Any]]:
        """Decode quotes record by record (a batch with anything unusual): the rejected ones become dead
        letters (when ``dead`` is given); crossed and non-positive ones still reach the quote checks.
        Returns the columns and the records they came from, row for row."""
        docs = []
        kept = []
        for r in records:
            doc = decode(self.contract, "quotes", r.key, r.value)
            if isinstance(doc, Rejected):
                if dead is not None:
                    dead.append((Record(tp.topic, tp.partition, r.offset, r.key, r.value), doc))
                if doc.doc is None:
                    continue
                doc = doc.doc  # crossed or non-positive: the quote checks flag the instrument
            docs.append(doc)
            kept.append(r)
        return QuoteColumns.of(docs), kept

    async def checkpoint(self) -> None:
        """Store the feed state of the instruments changed since the last checkpoint with the offsets it
        reflects (a restart resumes after them; anything later is read again and deduplicated by seq)."""
        if not self._dirty and not self._dirty_offsets:
            return
        quotes = self.prices.snapshot(self._dirty)
        offsets = dict(self._dirty_offsets)
        self._dirty.clear()
        self._dirty_offsets.clear()
        await self.store.write_quotes(quotes, offsets)
