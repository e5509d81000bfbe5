"""The Kafka helpers every part shares: one consumer factory (settings, TLS, SASL) and one reader of
partitions to their end, so no module writes its own assign/seek/poll loop."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import murmur2

from streamproc.clients import kafka_args
from streamproc.settings import Settings

_POLL_MS = 500


def consumer(settings: Settings, **options: Any) -> AIOKafkaConsumer:
    """A group-less, manually assigned consumer (not started) with the settings' connection arguments;
    ``options`` override the defaults (no auto-commit, earliest)."""
    args: dict[str, Any] = {"group_id": None, "enable_auto_commit": False, "auto_offset_reset": "earliest"}
    return AIOKafkaConsumer(**kafka_args(settings), **(args | options))


async def partitions(settings: Settings, topics: Iterable[str]) -> dict[str, list[int]]:
    """The partitions of each of ``topics`` that exists on the broker (absent: no such topic).

    From the broker's metadata: a consumer's ``partitions_for_topic()`` is None for a topic it has not
    fetched metadata for. All topics are described at once because a request naming a topic creates it
    on a broker with ``auto.create.topics.enable`` (looking at a wrong namespace must not create it)."""
    wanted = set(topics)
    admin = AIOKafkaAdminClient(**kafka_args(settings), request_timeout_ms=10_000)
    await admin.start()
    try:
        described = await admin.describe_topics()
    finally:
        await admin.close()
    return {
        d["topic"]: sorted(p["partition"] for p in d["partitions"])
        for d in described
        if d["topic"] in wanted and not d["error_code"]
    }


async def read_to_end(
    client: AIOKafkaConsumer,
    tps: Iterable[TopicPartition],
    start: Mapping[TopicPartition, int] | None = None,
    *,
    timeout_s: float | None = None,
) -> tuple[list[Any], dict[TopicPartition, int]]:
    """Every record of ``tps`` from ``start`` (an offset per partition; the beginning where absent, and
    never past the end) up to their end offsets as of the call; returns (records in partition order,
    end offsets). ``timeout_s`` bounds the wait (what arrived by then is returned); None waits."""
    parts = list(tps)
    if not parts:
        return [], {}
    client.assign(parts)
    end: dict[TopicPartition, int] = await client.end_offsets(parts)
    start = start or {}
    for tp in parts:
        if tp in start:
            client.seek(tp, min(start[tp], end[tp]))
        else:
            await client.seek_to_beginning(tp)
    out: dict[TopicPartition, list[Any]] = {tp: [] for tp in parts}
    pending = {tp for tp in parts if await client.position(tp) < end[tp]}
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while pending and (deadline is None or time.monotonic() < deadline):
        batch = await client.getmany(*pending, timeout_ms=_POLL_MS)
        for tp, records in batch.items():
            out[tp].extend(r for r in records if r.offset < end[tp])
        pending = {tp for tp in pending if await client.position(tp) < end[tp]}
    return [r for tp in parts for r in out[tp]], end


async def read_tail(
    settings: Settings, tps: Iterable[TopicPartition], last: int, *, timeout_s: float = 10.0
) -> list[Any]:
    """The newest ``last`` records of each of ``tps`` (a short-lived consumer)."""
    parts = list(tps)
    if not parts:
        # no consumer: stopping one straight after its start raises CancelledError (aiokafka 0.14)
        return []
    client = consumer(settings)
    await client.start()
    try:
        end = await client.end_offsets(parts)
        records, _ = await read_to_end(
            client, parts, {tp: max(0, end[tp] - last) for tp in parts}, timeout_s=timeout_s
        )
        return records
    finally:
        await client.stop()


@functools.lru_cache(maxsize=65536)
def partition_of(key: str, partitions: int) -> int:
    """Kafka's default partition of a key (murmur2), e.g. so alerts about an instrument have one owner."""
    return int(murmur2(key.encode()) & 0x7FFFFFFF) % partitions


async def end_offsets(settings: Settings, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
    """The end offset (next offset to be written) of each of ``tps`` now (a short-lived consumer)."""
    client = consumer(settings)
    await client.start()
    try:
        parts = list(tps)
        ends: dict[TopicPartition, int] = await client.end_offsets(parts) if parts else {}
        return ends
    finally:
        await client.stop()
