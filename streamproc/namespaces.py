"""`streamproc namespace list | rm NAME`: the namespaces on the stack (their topics and live workers),
and removing one (its topics and Redis keys), refused while workers of it are alive unless forced."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter

from aiokafka.admin import AIOKafkaAdminClient

from streamproc.app.topics import remove_namespace
from streamproc.clients import kafka_args, redis_client
from streamproc.settings import Settings
from streamproc.state.store import Store

_FRESH_MS = 30_000  # a worker whose summary is older is taken for gone (as `inspect status` does)
_OWN_TOPICS = (
    "quotes",
    "positions",
    "targets",
    "instruments",
    "executions",
    "orders",
    "alerts",
    "deadletter",
)


async def _namespaces(settings: Settings) -> Counter[str]:
    admin = AIOKafkaAdminClient(**kafka_args(settings))
    await admin.start()
    try:
        names = await admin.list_topics()
    finally:
        await admin.close()
    found: Counter[str] = Counter()
    for name in names:
        prefix, _, rest = name.rpartition(".")
        if prefix and rest in _OWN_TOPICS:
            found[prefix] += 1
    return found


async def _live_workers(settings: Settings, namespace: str) -> int:
    client = redis_client(settings, socket_connect_timeout=5)
    try:
        prefix = dataclasses.replace(settings, namespace=namespace).redis_prefix
        workers = await Store(client, prefix).workers()
    finally:
        await client.aclose()
    now_ms = int(time.time() * 1000)
    return sum(1 for doc in workers.values() if now_ms - int(doc.get("ts", 0)) < _FRESH_MS)


def list_view(settings: Settings) -> int:
    """Each namespace with topics on the broker, how many of them and its live workers."""

    async def main() -> int:
        found = await _namespaces(settings)
        print(f"{'namespace':<32} {'topics':>6}  live workers")
        for ns, count in sorted(found.items()):
            print(f"{ns:<32} {count:>6}  {await _live_workers(settings, ns)}")
        print(f"{len(found)} namespaces; remove one with: streamproc namespace rm NAME")
        return 0

    return asyncio.run(main())


def remove(settings: Settings, namespace: str, force: bool) -> int:
    """Delete ``namespace``'s topics and Redis keys (1 if it has live workers and not ``force``)."""

    async def main() -> int:
        live = await _live_workers(settings, namespace)
        if live and not force:
            print(
                f"namespace {namespace} has {live} live workers (a summary in the last "
                f"{_FRESH_MS // 1000} s): stop them first, or pass --force"
            )
            return 1
        topics = (await _namespaces(settings)).get(namespace, 0)
        await remove_namespace(dataclasses.replace(settings, namespace=namespace))
        print(f"removed namespace {namespace}: {topics} topics and its Redis keys")
        return 0

    return asyncio.run(main())
