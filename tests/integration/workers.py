"""Real `streamproc worker` processes for integration tests, and helpers to read what they publish."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streamproc import worker_process
from streamproc.kafka import read_to_end
from tests.conftest import ROOT, Stack


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WorkerProcess(worker_process.WorkerProcess):
    """One `python -m streamproc worker` subprocess with a namespace's settings and the tests' defaults
    (fast passes, short timeouts, JSON logs, a free web port); its log is ``<log_dir>/worker-<name>.log``.
    Starting, signalling, stopping and probing it are the shared ``streamproc.worker_process``'s."""

    def __init__(
        self,
        stack: Stack,
        namespace: str,
        log_dir: Path,
        name: str = "w",
        module: str = "streamproc",
        **env: str,
    ) -> None:
        super().__init__(
            {
                **os.environ,
                "KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap,
                "REDIS_URL": stack.redis_url,
                "STREAMPROC_NAMESPACE": namespace,
                "STREAMPROC_PARTITIONS": "3",
                "STREAMPROC_EVAL_INTERVAL_MS": "20",
                "STREAMPROC_ORDER_SETTLE_S": "0.2",
                "STREAMPROC_OUTLIER_MOVE": "0.5",  # scenarios move prices far for clear breaches
                "STREAMPROC_STORM_MIN_ACCOUNTS": "100000",  # ... of many accounts at once (storms: own test)
                "STREAMPROC_SESSION_TIMEOUT_S": "6",
                "STREAMPROC_LOG_FORMAT": "json",
                "STREAMPROC_WEB_PORT": str(free_port()),
                "STREAMPROC_STATE_DIR": str(log_dir / "state"),  # Faust's data directory: the test's tmp
                **env,
            },
            log_dir / f"worker-{name}.log",
            cwd=ROOT,
            new_session=False,  # a Ctrl-C of pytest reaches the workers too
            append=True,
            argv=[sys.executable, "-m", module, *(["worker"] if module == "streamproc" else [])],
        )

    def stop(self, timeout_s: float = 30.0) -> int | None:
        return super().stop(timeout_s)


async def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0, every: float = 0.1) -> Any:
    """Poll an async or sync ``check`` until it returns something truthy; fail saying what was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(every)


class TopicReader:
    """Reads a whole topic (all partitions, no group) and keeps every record seen, in order."""

    def __init__(self, stack: Stack, topic: str) -> None:
        self.stack = stack
        self.topic = topic
        self.records: list[Any] = []
        self._consumer: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> TopicReader:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.stack.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await self._consumer.start()
        admin = AIOKafkaAdminClient(bootstrap_servers=self.stack.bootstrap)
        await admin.start()
        try:
            (described,) = await admin.describe_topics([self.topic])
        finally:
            await admin.close()
        parts = [p["partition"] for p in described["partitions"]]
        assert parts, f"{self.topic} has no partitions: {described}"
        self._consumer.assign([TopicPartition(self.topic, p) for p in parts])
        await self._consumer.seek_to_beginning()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._consumer is not None
        await self._consumer.stop()

    async def poll(self) -> list[Any]:
        """Fetch what arrived since the last call; returns all records so far."""
        assert self._consumer is not None
        batch = await self._consumer.getmany(timeout_ms=100)
        for records in batch.values():
            self.records.extend(records)
        return self.records

    async def to_end(self) -> list[Any]:
        """Fetch everything up to the topic's end offsets as of the call: every record published before
        it is then in ``records`` (what a "nothing else arrived" assertion must read); returns them all."""
        assert self._consumer is not None
        tps = sorted(self._consumer.assignment())
        start = {tp: await self._consumer.position(tp) for tp in tps}
        records, _ = await read_to_end(self._consumer, tps, start)
        self.records.extend(records)
        return self.records

    def values(self) -> list[dict[str, Any]]:
        return [orjson.loads(r.value) for r in self.records]

    async def wait(
        self, what: str, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 30.0
    ) -> list[dict[str, Any]]:
        """Poll until ``predicate(values)`` holds; returns the values."""

        async def check() -> bool:
            await self.poll()
            return predicate(self.values())

        await wait_for(what, check, timeout=timeout, every=0.0)
        return self.values()
