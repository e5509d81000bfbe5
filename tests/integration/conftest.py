"""Fixtures for tests against the real local Kafka broker and Redis server (ops/local/stack).

One stack for the whole session; each test gets its own namespace (topic prefix, consumer group,
Redis key prefix) so tests never see each other's data.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streamproc.app.topics import ensure_topics
from streamproc.settings import Settings
from tests.conftest import Stack
from tests.integration.workers import WorkerProcess


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
    """Collects topic names a test creates with ``create_topics``; afterwards deletes them and every
    other topic of the namespace (workers create some)."""
    created: list[str] = []
    yield created
    mine = {t for t in await admin.list_topics() if t.startswith(f"{ns.prefix}.")} | set(created)
    if mine:
        await admin.delete_topics(sorted(mine))


@pytest.fixture
async def settings(stack: Stack, ns: Namespace, admin: AIOKafkaAdminClient, topics: list[str]) -> Settings:
    """The namespace's worker settings, with its topics created (3 partitions) as a worker would."""
    return await namespace_settings(stack, ns, admin)


async def namespace_settings(
    stack: Stack, ns: Namespace, admin: AIOKafkaAdminClient, partitions: int = 3
) -> Settings:
    """A namespace's worker settings, its topics created with ``partitions`` as a worker would."""
    s = Settings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap,
            "REDIS_URL": stack.redis_url,
            "STREAMPROC_NAMESPACE": ns.prefix,
            "STREAMPROC_PARTITIONS": str(partitions),
        }
    )
    await ensure_topics(s, admin)
    return s


@pytest.fixture
def workers(stack: Stack, ns: Namespace, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Starts `streamproc worker` processes in the namespace; stops them after the test and prints
    their logs (shown when the test fails)."""
    started: list[WorkerProcess] = []

    def start(name: str = "w", module: str = "streamproc", **env: str) -> WorkerProcess:
        worker = WorkerProcess(stack, ns.prefix, tmp_path, name, module, **env).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
        print(f"---- {worker.log_path.name} (tail) ----")
        print("\n".join(worker.logs().splitlines()[-60:]))


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
