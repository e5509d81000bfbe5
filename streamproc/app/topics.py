"""Creates missing topics and checks the partitioning the pipeline relies on, before the worker starts."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streamproc import kafka
from streamproc.clients import kafka_args, redis_client
from streamproc.settings import Settings

# Co-partitioned by account: the owner of partition p of positions and targets publishes p of orders.
CO_PARTITIONED = ("positions", "targets", "orders", "executions")
_METADATA_WAIT_S = 15.0
_CONFIGS = {"instruments": {"cleanup.policy": "compact"}}


class TopicError(RuntimeError):
    """The topics exist but cannot be used as they are; the message says what to change."""


async def ensure_topics(settings: Settings, admin: AIOKafkaAdminClient) -> dict[str, int]:
    """Create the namespace's missing topics; return logical name -> partition count."""
    topics = settings.topics
    names = {
        f: getattr(topics, f)
        for f in (
            "quotes",
            "positions",
            "targets",
            "instruments",
            "orders",
            "alerts",
            "deadletter",
            "executions",
        )
    }
    existing = set(await admin.list_topics())
    missing = [n for n in names.values() if n not in existing]
    # a topic added to a namespace that exists (executions) is co-partitioned with its accounts' topics
    co_partitions = settings.partitions
    if names["positions"] in existing:
        (described,) = await admin.describe_topics([names["positions"]])
        co_partitions = len(described["partitions"]) or settings.partitions
    if missing:
        await admin.create_topics(
            [
                NewTopic(
                    n,
                    num_partitions=co_partitions
                    if topics.logical(n) in CO_PARTITIONED
                    else settings.partitions,
                    replication_factor=settings.replication,
                    topic_configs=_CONFIGS.get(topics.logical(n), {}),
                )
                for n in missing
            ]
        )
    # a topic just created takes a moment to appear in metadata: poll for it, briefly
    deadline = time.monotonic() + _METADATA_WAIT_S
    while True:
        described = await admin.describe_topics(list(names.values()))
        counts = {
            topics.logical(d["topic"]): len(d["partitions"]) for d in described if not d.get("error_code")
        }
        lacking = [n for n in names if counts.get(n, 0) == 0]
        if not lacking:
            break
        if time.monotonic() > deadline:
            raise TopicError(f"topics {', '.join(names[n] for n in lacking)} are not available on the broker")
        await asyncio.sleep(0.2)
    sizes = {names[n]: counts[n] for n in CO_PARTITIONED}
    if len(set(sizes.values())) != 1:
        raise TopicError(
            f"{', '.join(f'{k} has {v}' for k, v in sizes.items())} partitions: "
            "positions, targets, orders and executions must have the same number of partitions "
            "(they are co-partitioned by account); add partitions with kafka-topics --alter to match"
        )
    return counts


async def newest_timestamps(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], ends: dict[TopicPartition, int]
) -> dict[str, int]:
    """Per topic, the timestamp (ms) of its newest record among ``tps`` (non-empty partitions), read
    with ``consumer`` (assigned to them for the call, then unassigned)."""
    newest: dict[str, int] = {}
    if not tps:
        return newest
    try:
        records, _ = await kafka.read_to_end(consumer, tps, {tp: ends[tp] - 1 for tp in tps}, timeout_s=10.0)
    finally:
        consumer.unsubscribe()
    for r in records:
        newest[r.topic] = max(newest.get(r.topic, 0), r.timestamp)
    return newest


async def remove_namespace(settings: Settings) -> None:
    """Delete a namespace's topics and Redis keys (the demo's and the benchmarks' clean-up)."""
    client = redis_client(settings)
    try:
        keys = [k async for k in client.scan_iter(match=f"{settings.namespace}:*", count=5000)]
        for i in range(0, len(keys), 5000):
            await client.delete(*keys[i : i + 5000])
    finally:
        await client.aclose()
    admin = AIOKafkaAdminClient(**kafka_args(settings))
    await admin.start()
    try:
        mine = [x for x in await admin.list_topics() if x.startswith(f"{settings.namespace}.")]
        if mine:
            await admin.delete_topics(mine)
    finally:
        await admin.close()
