"""The test kit for in-process tests of the worker's components: a settable clock, a publisher that
records what it sends (and can be told to fail), the orders log read back from it, a feed source over
in-memory partitions, and ``worker()``: the real component graph over these and a ``MemoryStore``."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition

from streamproc.app.orders import AfterPublish
from streamproc.app.runtime import Components, build
from streamproc.settings import Settings
from streamproc.state.memory import MemoryStore
from streamproc.wire.contract import Contract


class ManualClock:
    """Wall time that moves only when told to."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


@dataclass(frozen=True, slots=True)
class Sent:
    """A record a ``RecordingPublisher`` delivered (the fields aiokafka's records and metadata have)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp: int = 0


class PublishFailed(Exception):
    """A delivery the test told the publisher to fail."""


class RecordingPublisher:
    """``Publisher`` into in-memory topic partitions; ``fail_next(n)`` fails the next n deliveries."""

    def __init__(self, partitions: int = 1) -> None:
        self.partitions = partitions
        self.logs: dict[tuple[str, int], list[Sent]] = {}
        self._fail = 0

    def fail_next(self, n: int = 1) -> None:
        self._fail += n

    async def send(
        self, topic: str, value: bytes, key: bytes | None = None, partition: int | None = None
    ) -> asyncio.Future[Sent]:
        fut: asyncio.Future[Sent] = asyncio.get_running_loop().create_future()
        if self._fail:
            self._fail -= 1
            fut.set_exception(PublishFailed(f"told to fail a send to {topic}"))
            return fut
        log = self.logs.setdefault((topic, partition or 0), [])
        rec = Sent(topic, partition or 0, len(log), key, value)
        log.append(rec)
        fut.set_result(rec)
        return fut

    def sent(self, topic: str) -> list[Sent]:
        """Everything delivered to ``topic``, partition by partition."""
        return [r for (t, _p), log in sorted(self.logs.items()) if t == topic for r in log]


class MemoryOrderLog:
    """``OrderLog`` over a ``RecordingPublisher``'s orders topic."""

    def __init__(self, publisher: RecordingPublisher, topic: str) -> None:
        self.publisher = publisher
        self.topic = topic

    async def read(
        self, partitions: Sequence[int], start: Mapping[int, int]
    ) -> tuple[list[bytes], dict[int, int]]:
        values: list[bytes] = []
        end: dict[int, int] = {}
        for p in partitions:
            log = self.publisher.logs.get((self.topic, p), [])
            values += [r.value for r in log[start.get(p, 0) :]]
            end[p] = len(log)
        return values, end


class MemorySource:
    """``FeedSource`` over in-memory partitions: ``append`` records, then the feed fetches them."""

    def __init__(self) -> None:
        self.logs: dict[TopicPartition, list[Sent]] = {}
        self.positions: dict[TopicPartition, int] = {}
        self.fetches = 0

    def append(self, tp: TopicPartition, key: bytes | None, value: bytes, timestamp: int = 0) -> int:
        log = self.logs.setdefault(tp, [])
        log.append(Sent(tp.topic, tp.partition, len(log), key, value, timestamp))
        return len(log) - 1

    def assign(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.logs.setdefault(tp, [])
            self.positions.setdefault(tp, 0)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.positions[partition] = offset

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        for tp in partitions or tuple(self.positions):
            self.positions[tp] = 0

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: len(self.logs.get(tp, [])) for tp in partitions}

    async def position(self, partition: TopicPartition) -> int:
        return self.positions[partition]

    def highwater(self, partition: TopicPartition) -> int | None:
        return len(self.logs.get(partition, []))

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[Any]]:
        self.fetches += 1
        out: dict[TopicPartition, list[Any]] = {}
        budget = max_records or 1 << 30
        for tp in partitions or tuple(self.positions):
            at = self.positions[tp]
            records = self.logs.get(tp, [])[at : at + budget]
            if records:
                out[tp] = records
                budget -= len(records)
                self.positions[tp] = at + len(records)
        return out


@dataclass(slots=True)
class InMemoryWorker:
    """One worker's components over the test kit's ports."""

    parts: Components
    store: MemoryStore
    publisher: RecordingPublisher
    clock: ManualClock


def worker(
    settings: Settings,
    contract: Contract,
    *,
    partitions: int = 1,
    store: MemoryStore | None = None,
    publisher: RecordingPublisher | None = None,
    clock: ManualClock | None = None,
    after_publish: AfterPublish | None = None,
    token: str | None = None,
) -> InMemoryWorker:
    """The real component graph over in-memory ports; pass a shared ``store``/``publisher`` to build
    several workers of one namespace."""
    store = store if store is not None else MemoryStore()
    publisher = publisher if publisher is not None else RecordingPublisher(partitions)
    clock = clock or ManualClock()
    counts = dict.fromkeys(
        ("quotes", "positions", "targets", "instruments", "orders", "deadletter", "executions"), partitions
    )
    parts = build(
        settings,
        contract,
        counts,
        store=store,
        publisher=publisher,
        order_log=MemoryOrderLog(publisher, settings.topics.orders),
        clock=clock,
        after_publish=after_publish,
        token=token,
    )
    return InMemoryWorker(parts, store, publisher, clock)
