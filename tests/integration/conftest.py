"""Fixtures for tests against the real local Kafka broker and Redis server (ops/local/stack).

One stack for the whole session; each test gets its own namespace (topic prefix, consumer group,
Redis key prefix) so tests never see each other's data.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import redis.asyncio as aioredis
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.conftest import Stack


@dataclass(frozen=True)
class Namespace:
    """A test's private slice of the shared broker and server."""

    prefix: str

    def topic(self, name: str) -> str:
        return f"{self.prefix}.{name}"

    @property
    def group(self) -> str:
        return f"{self.prefix}.group"

    def key(self, name: str) -> str:
        return f"{self.prefix}:{name}"


@pytest.fixture
def ns() -> Namespace:
    return Namespace(prefix=f"t{uuid.uuid4().hex[:10]}")


@pytest.fixture
async def admin(stack: Stack) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def topics(admin: AIOKafkaAdminClient, ns: Namespace) -> AsyncIterator[list[str]]:
    """Collects topic names a test creates with ``create_topics`` and deletes them afterwards."""
    created: list[str] = []
    yield created
    if created:
        await admin.delete_topics(created)


async def create_topics(
    admin: AIOKafkaAdminClient, created: list[str], *names: str, partitions: int = 3
) -> None:
    await admin.create_topics([NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names])
    created.extend(names)


@pytest.fixture
async def redis_client(stack: Stack, ns: Namespace) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(stack.redis_url)
    try:
        yield client
    finally:
        keys = [k async for k in client.scan_iter(match=f"{ns.prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()
