"""The Kafka views an on-call engineer runs first: `streamproc inspect topics` and `streamproc inspect
deadletters`, run as the runbooks write them (a subprocess with the namespace in the environment), on
records published into the namespace's real topics."""

from __future__ import annotations

import re
import time

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from streamproc.settings import Settings
from streamproc.sim.messages import instrument, now_ms, position, produce, quote, targets
from streamproc.wire.codec import Rejected, deadletter
from tests.conftest import Stack
from tests.integration.conftest import Namespace
from tests.integration.oncall import cli

pytestmark = pytest.mark.integration


def topic_rows(stdout: str) -> dict[str, tuple[int, str]]:
    """`inspect topics` rows: topic -> (records, newest record)."""
    rows = {}
    for line in stdout.splitlines():
        match = re.match(r"^(\S+)\s+(\d+)\s+(.+)$", line)
        if match and not line.startswith("topic "):
            rows[match[1]] = (int(match[2]), match[3].strip())
    return rows


async def test_inspect_topics_shows_each_topics_records_and_newest(settings: Settings, stack: Stack):
    t = settings.topics
    started = time.monotonic()
    # distinct counts per topic, keys spread over the 3 partitions; orders and alerts stay empty
    published = {
        t.quotes: [quote(f"EQ{i % 4}", 100.0 + i, i + 1) for i in range(7)],
        t.positions: [position(f"A{i}", "EQ1", 10 + i, 1) for i in range(5)],
        t.targets: [targets("A0", {"EQ1": 1.0}), targets("A1", {"EQ1": 1.0})],
        t.instruments: [instrument("EQ1", lot=1)],
        t.deadletter: [
            (b"A9", deadletter(t.positions, 0, i, b"{}", Rejected("schema", "account missing"), now_ms()))
            for i in range(3)
        ],
    }
    await produce(stack.bootstrap, [(topic, rec) for topic, recs in published.items() for rec in recs])

    proc = cli(stack, settings.namespace, "inspect", "topics")

    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = topic_rows(proc.stdout)
    assert set(rows) == {
        t.quotes,
        t.positions,
        t.targets,
        t.instruments,
        t.executions,
        t.orders,
        t.alerts,
        t.deadletter,
    }
    for topic, records in published.items():
        count, newest = rows[topic]
        assert count == len(records), f"{topic}: {rows[topic]} (published {len(records)})\n{proc.stdout}"
        seconds = re.fullmatch(r"(\d+\.\d) s ago", newest)
        # the newest record of each was produced by this test: not older than the test itself
        within = time.monotonic() - started + 0.1  # (the age is shown rounded to 0.1 s)
        assert seconds and float(seconds[1]) <= within, f"{topic}: newest {newest!r}\n{proc.stdout}"
    for empty in (t.executions, t.orders, t.alerts):
        assert rows[empty] == (0, "never"), proc.stdout
    assert "no such topic" not in proc.stdout


async def test_inspect_deadletters_shows_the_newest_with_their_reasons(settings: Settings, stack: Stack):
    t = settings.topics
    now = now_ms()
    # (age in s, key, source topic, offset, reason, error); keys spread over the partitions
    letters = [
        (90, b"A1", t.positions, 11, "schema", "qty: -3 is negative"),
        (80, b"EQ1", t.quotes, 12, "invalid_json", "not JSON: unexpected end of data"),
        (70, b"A2", t.targets, 13, "semantic", "weights sum to 1.2, not 1"),
        (2, b"EQ2", t.quotes, 14, "undecodable", "not UTF-8 text"),
        (1, b"A3", t.positions, 15, "schema", "account: missing"),
    ]
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
    await producer.start()
    try:
        for age_s, key, topic, offset, reason, error in letters:
            ts = now - age_s * 1000
            value = deadletter(topic, 0, offset, b"\xff", Rejected(reason, error), ts)
            await producer.send_and_wait(t.deadletter, value, key=key, timestamp_ms=ts)
    finally:
        await producer.stop()

    every = cli(stack, settings.namespace, "inspect", "deadletters")

    assert every.returncode == 0, every.stdout + every.stderr
    lines = every.stdout.splitlines()
    for _age, _key, topic, offset, reason, error in letters:
        assert any(f"{topic}@0:{offset} [{reason}] {error}" in line for line in lines), every.stdout
    summary = re.search(r"^(\d+) dead letters shown; by reason: (\{.*\})$", every.stdout, flags=re.M)
    assert summary, every.stdout
    assert int(summary[1]) == len(letters)
    assert orjson.loads(summary[2]) == {"schema": 2, "invalid_json": 1, "semantic": 1, "undecodable": 1}

    newest = cli(stack, settings.namespace, "inspect", "deadletters", "--last", "2")

    assert newest.returncode == 0, newest.stdout + newest.stderr
    shown = [line for line in newest.stdout.splitlines() if "@0:" in line]
    where = [next(word for word in line.split() if "@0:" in word) for line in shown]
    assert where == [f"{t.quotes}@0:14", f"{t.positions}@0:15"], newest.stdout
    assert "2 dead letters shown" in newest.stdout


async def test_a_wrong_namespace_is_reported_and_no_topic_is_created(
    ns: Namespace, stack: Stack, admin: AIOKafkaAdminClient
):
    wrong = f"{ns.prefix}-nothere"  # the broker auto-creates topics: looking must not create them
    try:
        topics = cli(stack, wrong, "inspect", "topics")
        letters = cli(stack, wrong, "inspect", "deadletters")

        assert topics.returncode == 1, topics.stdout + topics.stderr
        rows = topic_rows(topics.stdout)
        # every topic the worker reads or writes: quotes, positions, targets, instruments, executions,
        # orders, alerts, deadletter
        assert len(rows) == 8 and all("no such topic" in shown for _n, shown in rows.values()), topics.stdout
        assert letters.returncode == 1, letters.stdout + letters.stderr
        assert f"no such topic {wrong}.deadletter" in letters.stdout
        created = [n for n in await admin.list_topics() if n.startswith(f"{wrong}.")]
        assert created == [], f"inspect created {created}"
    finally:
        leaked = [n for n in await admin.list_topics() if n.startswith(f"{wrong}.")]
        if leaked:
            await admin.delete_topics(leaked)
