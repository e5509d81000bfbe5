"""The price feed in-process: the owner of a quotes partition checkpoints the feed state with the offsets
it reflects; a restart resumes after them with that state; gaining an account partition seeks its quote
partition back to the stored offsets."""

from __future__ import annotations

import orjson
from aiokafka import TopicPartition

from streamproc.app.counters import Outcome
from streamproc.testkit import InMemoryWorker, MemorySource, worker
from tests.app.kit import CONTRACT, own, settings


def add_quote(source: MemorySource, w: InMemoryWorker, seq: int, mid: float) -> int:
    tp = TopicPartition(w.parts.settings.topics.quotes, 0)
    ts = int(w.clock.time() * 1000)
    doc = {"instrument": "EQ", "bid": mid - 0.01, "ask": mid + 0.01, "seq": seq, "ts": ts}
    return source.append(tp, b"EQ", orjson.dumps(doc), ts)


def checked(w: InMemoryWorker) -> int:
    return w.parts.counters.messages.get("quotes", Outcome.CHECKED)


async def test_the_feed_resumes_after_its_checkpoint_and_seeks_back_on_a_gained_partition() -> None:
    s = settings(STREAMPROC_QUOTE_CHECKPOINT_MS="1000")
    first = worker(s, CONTRACT)
    await own(first, 0)  # the owner of account partition 0 answers for quotes partition 0
    source = MemorySource()
    for seq in (1, 2, 3):
        add_quote(source, first, seq, 100.0 + seq)
    feed = first.parts.feed
    await feed.start(source)
    assert await feed.poll(source) == 3 and feed.ready.is_set()
    assert await feed.poll(source) == 0  # idle: the checkpoint is written
    quotes_tp = TopicPartition(s.topics.quotes, 0)
    assert first.store.quote_offsets_ == {0: 3} and first.store.quotes["EQ"].seq == 3
    # a restart resumes after the stored offsets, from the stored state
    add_quote(source, first, 4, 110.0)
    restarted = worker(s, CONTRACT, store=first.store, clock=first.clock)
    await restarted.parts.feed.start(source)
    assert await source.position(quotes_tp) == 3
    assert restarted.parts.prices.book.price("EQ")[0] == 102.99  # restored before anything was read
    assert await restarted.parts.feed.poll(source) == 1 and checked(restarted) == 1
    assert restarted.parts.prices.book.price("EQ")[0] == 109.99
    # restarted does not own partition 0 yet: it neither checkpoints nor answers for quotes 0
    await restarted.parts.feed.poll(source)
    assert first.store.quote_offsets_ == {0: 3}
    # it gains account partition 0: its quote partition is read again from the stored offset (3)
    await own(restarted, 0)
    assert await restarted.parts.feed.poll(source) == 1
    assert restarted.parts.counters.messages.get("quotes", Outcome.DUPLICATE) == 1
    await restarted.parts.feed.poll(source)
    assert first.store.quote_offsets_ == {0: 4} and first.store.quotes["EQ"].seq == 4
