"""The clock-skew gate in-process: a quote stamped a day ahead is dead-lettered and raises clock_skew,
is not applied, and cannot keep its instrument fresh (the stale gate still fires); a quote a little
ahead, within the allowance, is applied with its age counted from when it arrived; a positions record
from the future is dead-lettered and its seq counts as missing until it comes again."""

from __future__ import annotations

from typing import Any

import orjson
from aiokafka import TopicPartition

from streamproc.app.deadletters import Record
from streamproc.core import PriceFlag
from streamproc.testkit import InMemoryWorker, MemorySource, worker
from tests.app.kit import CONTRACT, open_account, own, settings

DAY_MS = 86_400_000


def send(
    source: MemorySource, w: InMemoryWorker, instrument: str, mid: float, seq: int, ahead_ms: int = 0
) -> None:
    ts = int(w.clock.time() * 1000) + ahead_ms
    doc = {"instrument": instrument, "bid": mid - 0.01, "ask": mid + 0.01, "seq": seq, "ts": ts}
    source.append(
        TopicPartition(w.parts.settings.topics.quotes, 0), instrument.encode(), orjson.dumps(doc), ts
    )


def sent(w: InMemoryWorker, topic: str) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for r in w.publisher.sent(topic)]


async def test_a_quote_from_the_future_is_refused_and_cannot_keep_a_price_fresh() -> None:
    w = worker(settings(STREAMPROC_QUOTE_MAX_AGE_S="30"), CONTRACT)
    t = w.parts.settings.topics
    await own(w, 0)
    source = MemorySource()
    send(source, w, "EQ", 100.0, 1)
    send(source, w, "BOND", 50.0, 1)
    feed, prices = w.parts.feed, w.parts.prices
    await feed.start(source)
    await feed.poll(source)
    await open_account(w, "A")
    w.clock.advance(1)
    await w.parts.evaluator.run_once()

    send(source, w, "BOND", 55.0, 2, ahead_ms=DAY_MS)  # BOND stamped a day ahead
    await feed.poll(source)
    (dead,) = sent(w, t.deadletter)
    assert dead["reason"] == "semantic" and dead["error"].startswith("future timestamp: ts ")
    assert (
        "86400.0 s ahead of this worker's clock (allowed 5 s, STREAMPROC_MAX_CLOCK_SKEW_S)" in dead["error"]
    )
    assert prices.book.price("BOND")[:2] == (49.99, 50.01)  # not applied
    await w.parts.evaluator.run_once()
    (alert,) = [a for a in sent(w, t.alerts) if a["type"] == "clock_skew"]
    CONTRACT.validate("alerts", alert)
    assert alert["state"] == "firing" and alert["subject"] == {"instrument": "BOND"}
    assert alert["runbook"] == "runbooks/clock_skew.md" and alert["details"]["ahead_ms"] == DAY_MS

    # 31 s later, EQ quoted on: BOND's last good quote is past its max age (the future one counts nothing)
    for k in range(31):
        w.clock.advance(1)
        send(source, w, "EQ", 100.0, 2 + k)
        await feed.poll(source)
        await w.parts.evaluator.run_once()
    _bid, _ask, flags = prices.book.price("BOND")
    assert flags & PriceFlag.STALE
    stored = await w.store.load_account("A")
    assert stored is not None and stored.drift is not None and stored.drift["status"] == "suppressed"

    # a sane quote resolves clock_skew; one 3 s ahead (inside the 5 s allowance) is applied, aged from now
    send(source, w, "BOND", 50.5, 3, ahead_ms=3_000)
    await feed.poll(source)
    await w.parts.evaluator.run_once()
    assert prices.book.price("BOND")[:2] == (50.49, 50.51)
    assert int(prices.ts[prices.book.instrument("BOND")]) == int(w.clock.time() * 1000)
    assert [a["state"] for a in sent(w, t.alerts) if a["type"] == "clock_skew"] == ["firing", "resolved"]


async def test_a_positions_record_from_the_future_counts_as_missing_until_it_comes_again() -> None:
    w = worker(settings(), CONTRACT)
    t = w.parts.settings.topics
    await own(w, 0)
    await open_account(w, "A")  # seqs 1-3
    now = int(w.clock.time() * 1000)
    late = {"account": "A", "instrument": "EQ", "qty": 650.0, "seq": 4}

    def record(offset: int, ts: int) -> Record:
        return Record(t.positions, 0, offset, b"A", orjson.dumps({**late, "ts": ts}))

    await w.parts.intake.on_records([record(10, now + DAY_MS)])
    (dead,) = sent(w, t.deadletter)
    assert "future timestamp" in dead["error"] and "its seq counts as missing" in dead["error"]
    accounts = w.parts.accounts
    r = accounts.row("A")
    assert r in accounts.quarantine and accounts.book.holdings("A")["EQ"] == 600.0
    (ep,) = [
        e for e in accounts.quarantine.open_episodes(lambda _r: True).values() if e.type == "position_gap"
    ]
    assert ep.type == "position_gap" and ep.details["why"] == "clock_skew" and ep.details["refused_seq"] == 4
    stored = await w.store.load_account("A")
    assert stored is not None and stored.gap is not None and stored.seq == 4  # survives a restart
    skew = [e for e in accounts.quarantine.open_episodes(lambda _r: True).values() if e.type == "clock_skew"]
    assert [e.details["seq"] for e in skew] == [4] and skew[0].subject == ("account", "A")
    # the producer fixes its clock and sends seq 4 again: applied, the quarantine lifts
    await w.parts.intake.on_records([record(11, now)])
    assert r not in accounts.quarantine and accounts.book.holdings("A")["EQ"] == 650.0
    assert sorted(e.type for e in accounts.quarantine.drain_closed()) == ["clock_skew", "position_gap"]
