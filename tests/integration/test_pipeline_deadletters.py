"""Bad input on every input topic becomes a dead letter with a reason; the valid records around it
are processed and the worker keeps going."""

from __future__ import annotations

import base64

import orjson
import pytest

from streamproc.settings import Settings
from streamproc.sim.messages import instrument, position, produce, quote, targets
from streamproc.state.keys import Keys
from streamproc.wire.contract import Contract
from tests.integration.workers import TopicReader

pytestmark = pytest.mark.integration

GARBAGE = b"\xff\xfe\x00\x81binary"


def bad_records(t):
    """(topic, (key, value), expected reason, words the error must contain)."""
    return [
        (t.quotes, (b"EQ1", GARBAGE), "undecodable", "UTF-8"),
        (t.quotes, (b"EQ1", b'{"instrument": "EQ1", "bid": 1,'), "invalid_json", "JSON"),
        (t.quotes, (b"EQ1", b'{"instrument": "EQ1", "bid": 100, "seq": 5, "ts": 1}'), "schema", "ask"),
        (
            t.quotes,
            (b"EQ1", orjson.dumps({"instrument": "EQ1", "bid": 101, "ask": 100, "seq": 6, "ts": 1})),
            "semantic",
            "crossed",
        ),
        (t.positions, (b"D", GARBAGE), "undecodable", "UTF-8"),
        (t.positions, (b"D", b"[1, 2, 3]"), "schema", "object"),
        (t.positions, position("D", "EQ1", -3, 10), "schema", "qty"),
        (t.positions, (b"X", position("D", "EQ1", 3, 11)[1]), "semantic", "key"),
        (t.targets, (b"D", b"not json"), "invalid_json", "JSON"),
        (t.targets, targets("D", {"EQ1": -0.1}, version=5), "schema", "weights"),
        (t.targets, targets("D", {"EQ1": 0.7, "BOND": 0.5}, version=6), "semantic", "sum"),
        (t.instruments, (b"EQ1", b""), "undecodable", "empty"),
        (t.instruments, instrument("EQ1", lot=0), "schema", "lot"),
    ]


async def test_bad_records_are_dead_lettered_and_the_rest_processed(
    settings: Settings, workers, stack, redis_client
):
    t = settings.topics
    contract = Contract(settings.schemas_dir)
    bad = bad_records(t)
    good = [
        (t.instruments, instrument("EQ1", lot=0.0001)),
        (t.instruments, instrument("BOND", lot=1)),
        (t.quotes, quote("EQ1", 100.0, 1)),
        (t.quotes, quote("BOND", 50.0, 1)),
        (t.positions, position("D", "EQ1", 600, 1)),
        (t.positions, position("D", "BOND", 800, 2)),
        (t.targets, targets("D", {"EQ1": 0.6, "BOND": 0.4}, band={"abs": 0.03})),
        (t.quotes, quote("EQ1", 132.34, 7)),
    ]
    # interleave: each good record is surrounded by bad ones on the same topics
    mixed = []
    for i in range(max(len(bad), len(good))):
        if i < len(bad):
            mixed.append((bad[i][0], bad[i][1]))
        if i < len(good):
            mixed.append(good[i])
    await produce(stack.bootstrap, mixed)
    worker = workers()
    async with TopicReader(stack, t.deadletter) as dead:
        letters = await dead.wait(f"{len(bad)} dead letters", lambda v: len(v) >= len(bad))
    for letter in letters:
        contract.validate("deadletter", letter)
    for topic, (_key, value), reason, words in bad:
        match = [d for d in letters if d["topic"] == topic and _payload(d) == (value or b"")]
        assert match, f"no dead letter for {value!r} on {topic}; got {letters}"
        assert match[0]["reason"] == reason, match[0]
        assert words.lower() in match[0]["error"].lower(), match[0]
    assert any(d["encoding"] == "base64" for d in letters), "non-UTF-8 payloads travel as base64"

    # the good records were all applied: D's positions and targets, quotes, instruments (BOND lot 1)
    async with TopicReader(stack, t.orders) as orders:
        (order,) = await orders.wait("D's order", lambda v: len(v) >= 1)
    contract.validate("orders", order)
    bond = next(leg for leg in order["legs"] if leg["instrument"] == "BOND")
    assert "." not in bond["qty"], "BOND trades in whole units (lot 1 from the instruments topic)"
    stored = await redis_client.hgetall(Keys(settings.redis_prefix).account("D"))
    assert stored[b"seq"] == b"2" and float(stored[b"q:EQ1"]) == 600
    assert worker.alive


def _payload(letter) -> bytes:
    if letter["encoding"] == "base64":
        return base64.b64decode(letter["payload"])
    return letter["payload"].encode()
