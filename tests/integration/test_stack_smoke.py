"""The real broker and server work end to end: produce/consume, transactions, Redis pipelines."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tests.integration.conftest import Namespace, Stack, create_topics

pytestmark = pytest.mark.integration


async def _drain(consumer: AIOKafkaConsumer, want: int, timeout_s: float = 30.0) -> list[tuple[bytes, bytes]]:
    """Read until ``want`` records arrived (or the timeout passes)."""
    got: list[tuple[bytes, bytes]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while len(got) < want and loop.time() < deadline:
        batch = await consumer.getmany(timeout_ms=500)
        for records in batch.values():
            got.extend((r.key, r.value) for r in records)
    return got


async def test_produce_and_consume_keyed_records(
    stack: Stack, ns: Namespace, admin: AIOKafkaAdminClient, topics: list[str]
) -> None:
    topic = ns.topic("smoke")
    await create_topics(admin, topics, topic)
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        sent = [(f"acct-{i % 7}".encode(), f'{{"n":{i}}}'.encode()) for i in range(100)]
        for k, v in sent:
            await producer.send(topic, key=k, value=v)
        await producer.flush()
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=stack.bootstrap, group_id=ns.group, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        got = await _drain(consumer, len(sent))
    finally:
        await consumer.stop()
    assert sorted(got) == sorted(sent)
    # same key, same partition, order kept within a key
    per_key = [v for k, v in got if k == b"acct-3"]
    assert per_key == [v for k, v in sent if k == b"acct-3"]


async def test_transactional_produce_commits_and_aborts(
    stack: Stack, ns: Namespace, admin: AIOKafkaAdminClient, topics: list[str]
) -> None:
    topic = ns.topic("txn")
    await create_topics(admin, topics, topic, partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, transactional_id=f"{ns.prefix}-tx")
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send(topic, key=b"k", value=b"committed-1")
            await producer.send(topic, key=b"k", value=b"committed-2")
        await producer.begin_transaction()
        await producer.send(topic, key=b"k", value=b"aborted")
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send(topic, key=b"k", value=b"committed-3")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        bootstrap_servers=stack.bootstrap, isolation_level="read_committed", enable_auto_commit=False
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        got = await _drain(consumer, 3)
        end = (await consumer.end_offsets([tp]))[tp]
    finally:
        await consumer.stop()
    assert [v for _, v in got] == [b"committed-1", b"committed-2", b"committed-3"]
    assert end > 3  # the aborted record and the commit markers occupy offsets too


async def test_redis_pipelined_writes_and_reads(redis_client: aioredis.Redis, ns: Namespace) -> None:
    async with redis_client.pipeline(transaction=True) as pipe:
        for i in range(50):
            pipe.hset(ns.key(f"acct:{i}"), mapping={"cash": str(i * 10), "seq": str(i)})
        pipe.sadd(ns.key("emitted"), "evt-1", "evt-2")
        await pipe.execute()
    async with redis_client.pipeline(transaction=False) as pipe:
        for i in range(50):
            pipe.hgetall(ns.key(f"acct:{i}"))
        rows = await pipe.execute()
    assert [int(r[b"seq"]) for r in rows] == list(range(50))
    assert await redis_client.sismember(ns.key("emitted"), "evt-2")
    assert not await redis_client.sismember(ns.key("emitted"), "evt-3")
