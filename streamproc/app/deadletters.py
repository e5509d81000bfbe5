"""Dead letters: an input record that cannot be used goes to the ``deadletter`` topic with its reason,
is counted by topic and reason, and logged; the stream goes on."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from streamproc.app.counters import Counters
from streamproc.app.ports import Clock, Publisher
from streamproc.settings import Topics
from streamproc.wire.codec import Rejected, deadletter

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Record:
    """A consumed record, whichever client consumed it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    ts_ms: int = 0  # record timestamp


class DeadLetters:
    """Publishes rejected records (awaiting their delivery) and counts them."""

    def __init__(self, publisher: Publisher, topics: Topics, counters: Counters, clock: Clock) -> None:
        self.publisher = publisher
        self.topics = topics
        self.counters = counters
        self.clock = clock

    async def publish(self, items: Sequence[tuple[Record, Rejected]]) -> None:
        if not items:
            return
        now_ms = int(self.clock.time() * 1000)
        futures = []
        for rec, why in items:
            value = deadletter(rec.topic, rec.partition, rec.offset, rec.value, why, now_ms)
            futures.append(await self.publisher.send(self.topics.deadletter, value=value, key=rec.key))
            self.counters.deadletters.inc(self.topics.logical(rec.topic), why.reason)
            log.warning(
                "dead letter",
                topic=rec.topic,
                partition=rec.partition,
                offset=rec.offset,
                reason=why.reason,
                error=why.error,
            )
        await asyncio.gather(*futures)
