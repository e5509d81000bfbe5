"""Where the worker's components meet I/O: small Protocols for the clock, the publisher, the order log,
the price-feed source and the stores. Redis (``state.store.Store``) and Kafka (``app.kafka_io``)
implement them in production; ``state.memory.MemoryStore`` and ``streamproc.testkit`` in tests."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from aiokafka import TopicPartition

from streamproc.core.trading import StateDoc
from streamproc.state.records import (
    AccountPatch,
    AccountRecord,
    EpisodeDoc,
    OrderRequest,
    RecordedOrder,
    StoredQuote,
    StormDoc,
)


class Clock(Protocol):
    """Wall-clock time in seconds since the epoch (the settable clock of the tests, or the system's)."""

    def time(self) -> float: ...


class SystemClock:
    """The real wall clock."""

    def time(self) -> float:
        return time.time()


class Delivered(Protocol):
    """Where a published record landed (aiokafka's RecordMetadata has these)."""

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...


class Publisher(Protocol):
    """Sends records; ``send`` enqueues and returns the delivery to await (so a batch is sent before any
    of it is awaited). A failed delivery raises when awaited."""

    async def send(
        self, topic: str, value: bytes, key: bytes | None = None, partition: int | None = None
    ) -> Awaitable[Delivered]: ...


class OrderLog(Protocol):
    """Reads the orders topic back (crash recovery)."""

    async def read(
        self, partitions: Sequence[int], start: Mapping[int, int]
    ) -> tuple[list[bytes], dict[int, int]]:
        """The values of the orders in ``partitions`` from ``start`` (per partition, the beginning where
        absent) to their end; returns (values, end offset per partition)."""
        ...


class FeedRecord(Protocol):
    """A consumed quote or instrument record (aiokafka's ConsumerRecord has these)."""

    @property
    def offset(self) -> int: ...

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...

    @property
    def timestamp(self) -> int: ...


class FeedSource(Protocol):
    """The price feed's consumer: manually assigned partitions read from chosen offsets."""

    def assign(self, partitions: list[TopicPartition]) -> None: ...

    def seek(self, partition: TopicPartition, offset: int) -> None: ...

    async def seek_to_beginning(self, *partitions: TopicPartition) -> Any: ...

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]: ...

    async def position(self, partition: TopicPartition) -> int: ...

    def highwater(self, partition: TopicPartition) -> int | None: ...

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[Any]]: ...


class AccountStore(Protocol):
    """Account state, the partition index and the instruments accounts reference."""

    async def load_partitions(self, partitions: Iterable[int]) -> list[AccountRecord]: ...

    async def load_account(self, account: str) -> AccountRecord | None: ...

    async def write_accounts(
        self,
        patches: Mapping[str, AccountPatch],
        partitions: Mapping[str, int],
        referenced: Iterable[str] = (),
    ) -> None: ...

    async def held_instruments(self) -> set[str]: ...


class OwnerStore(Protocol):
    """Who last claimed each account partition."""

    async def claim(self, partitions: Iterable[int], token: str) -> dict[int, str | None]: ...

    async def owners(self, partitions: Iterable[int]) -> dict[int, str | None]: ...


class OrderStore(Protocol):
    """Published orders: each account's last order, its emitted ids, where the recovery scan starts."""

    async def record_orders(self, orders: Iterable[RecordedOrder], offsets: Mapping[int, int]) -> None: ...

    async def order_offsets(self) -> dict[int, int]: ...


class QuoteStore(Protocol):
    """The price feed's checkpoint: per-instrument feed state and the offsets it reflects."""

    async def load_quotes(self) -> tuple[dict[int, int], dict[str, StoredQuote]]: ...

    async def write_quotes(self, quotes: Mapping[str, StoredQuote], offsets: Mapping[int, int]) -> None: ...

    async def quote_offsets(self) -> dict[int, int]: ...


class AlertStore(Protocol):
    """The announced (firing) alerts, shared by all workers."""

    async def firing_alerts(self) -> dict[str, EpisodeDoc]: ...

    async def record_alerts(self, firing: Mapping[str, EpisodeDoc], resolved: Iterable[str]) -> None: ...


class ControlStore(Protocol):
    """State shared between workers and operators: the storm hold, reconcile requests, trading states,
    summaries."""

    async def storm(self) -> tuple[StormDoc | None, bool]: ...

    async def start_storm(self, doc: StormDoc) -> bool: ...

    async def release_storm(self, mute_s: float) -> StormDoc | None: ...

    async def reconcile_requests(self) -> dict[str, int]: ...

    async def reconciled(self, accounts: Iterable[str]) -> None: ...

    async def order_requests(self) -> dict[str, OrderRequest]: ...

    async def order_requests_handled(self, accounts: Iterable[str]) -> None: ...

    async def trading_states(self) -> dict[str, StateDoc]: ...

    async def write_worker(self, token: str, doc: Mapping[str, Any]) -> None: ...


class WorkerStore(AccountStore, OwnerStore, OrderStore, QuoteStore, AlertStore, ControlStore, Protocol):
    """Everything a worker keeps in its store (what the composition root hands out)."""

    async def ping(self) -> None: ...
