"""The Kafka side of the ports: the publisher over an idempotent producer and the orders log reader."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence

from aiokafka import AIOKafkaProducer, TopicPartition

from streamproc import kafka
from streamproc.app.ports import Delivered
from streamproc.clients import kafka_args
from streamproc.settings import Settings


class KafkaPublisher:
    """``Publisher`` over one idempotent producer (acks=all); started lazily, since rebalance hooks may
    publish before the worker's service has started."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        if self.producer is None:
            producer = AIOKafkaProducer(
                **kafka_args(self.settings), enable_idempotence=True, acks="all", linger_ms=2
            )
            self.producer = producer
            await producer.start()

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()

    async def send(
        self, topic: str, value: bytes, key: bytes | None = None, partition: int | None = None
    ) -> Awaitable[Delivered]:
        await self.start()
        assert self.producer is not None
        fut: Awaitable[Delivered] = await self.producer.send(topic, value=value, key=key, partition=partition)
        return fut


class KafkaOrderLog:
    """``OrderLog``: reads the orders topic with a short-lived consumer per scan."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def read(
        self, partitions: Sequence[int], start: Mapping[int, int]
    ) -> tuple[list[bytes], dict[int, int]]:
        topic = self.settings.topics.orders
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer = kafka.consumer(self.settings)
        await consumer.start()
        try:
            begin = {TopicPartition(topic, p): o for p, o in start.items() if p in partitions}
            records, end = await kafka.read_to_end(consumer, tps, begin)
        finally:
            await consumer.stop()
        return [r.value for r in records], {tp.partition: o for tp, o in end.items()}
