"""A worker on a real calendar driven by a settable clock: instruments EQ and BOND on a venue, account A
(60/40) holding them, quotes through the feed, and a step that runs a pass and a watch tick."""

from __future__ import annotations

import datetime
from typing import Any

import orjson
from aiokafka import TopicPartition

from streamproc.testkit import InMemoryWorker, ManualClock, MemorySource, worker
from tests.app.kit import CONTRACT, QUIET, open_account, own, settings


def at(text: str) -> float:
    return datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.UTC).timestamp()


def sent(w: InMemoryWorker, topic: str) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for r in w.publisher.sent(topic)]


class Market:
    """A worker whose EQ and BOND trade on XNYS, and account A (60/40) holding them."""

    def __init__(self, start: str, **env: str) -> None:
        self.clock = ManualClock(at(start))
        self.w = worker(
            settings(STREAMPROC_QUOTE_MAX_AGE_S="60", STREAMPROC_FEED_SILENT_S="quotes=60", **env),
            CONTRACT,
            clock=self.clock,
        )
        self.source = MemorySource()
        self.seq = {"EQ": 0, "BOND": 0}
        self.quotes = 0

    def reference(self, name: str, calendar: str) -> None:
        doc = {"instrument": name, "lot": 0.0001, "tier": "large", "calendar": calendar}
        t = self.w.parts.settings.topics.instruments
        self.source.append(TopicPartition(t, 0), name.encode(), orjson.dumps(doc), self.ms())

    def quote(self, name: str, mid: float) -> None:
        self.seq[name] += 1
        self.quotes += 1
        doc = {
            "instrument": name,
            "bid": mid - 0.01,
            "ask": mid + 0.01,
            "seq": self.seq[name],
            "ts": self.ms(),
        }
        t = self.w.parts.settings.topics.quotes
        self.source.append(TopicPartition(t, 0), name.encode(), orjson.dumps(doc), self.ms())

    def ms(self) -> int:
        return int(self.clock.time() * 1000)

    async def start(self) -> None:
        for name in ("EQ", "BOND"):
            self.reference(name, "XNYS")
        self.quote("EQ", 100.0)
        self.quote("BOND", 50.0)
        await own(self.w, 0)
        await self.w.parts.feed.start(self.source)
        await self.w.parts.feed.poll(self.source)
        await open_account(self.w, "A")
        await self.step(1)  # past the settle time after its positions

    async def step(self, seconds: float) -> None:
        """Time passes; the feed applies what arrived, then a pass and a watch tick run."""
        self.clock.advance(seconds)
        await self.w.parts.feed.poll(self.source)
        await self.w.parts.evaluator.run_once()
        await self.w.parts.watcher.tick(self.clock.time(), {**QUIET, "quotes": self.quotes})

    def alerts(self, type_: str) -> list[dict[str, Any]]:
        return [a for a in sent(self.w, self.w.parts.settings.topics.alerts) if a["type"] == type_]

    async def drift(self) -> dict[str, Any]:
        stored = await self.w.store.load_account("A")
        assert stored is not None and stored.drift_json is not None
        return dict(orjson.loads(stored.drift_json))
