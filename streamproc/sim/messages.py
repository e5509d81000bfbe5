"""Builders of wire-contract v1 input records (key, value bytes) and a small producer helper."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer


def now_ms() -> int:
    """Epoch milliseconds now."""
    return int(time.time() * 1000)


def quote(
    instrument: str, mid: float, seq: int, *, spread_bps: float = 2.0, ts: int | None = None
) -> tuple[bytes, bytes]:
    """A quote around ``mid``."""
    half = mid * spread_bps / 2e4
    doc = {
        "instrument": instrument,
        "bid": round(mid - half, 6),
        "ask": round(mid + half, 6),
        "seq": seq,
        "ts": ts or now_ms(),
    }
    return instrument.encode(), orjson.dumps(doc)


def position(
    account: str, instrument: str, qty: float, seq: int, ts: int | None = None
) -> tuple[bytes, bytes]:
    """An absolute holding after a change (``CASH`` for cash)."""
    doc = {"account": account, "instrument": instrument, "qty": qty, "seq": seq, "ts": ts or now_ms()}
    return account.encode(), orjson.dumps(doc)


def targets(
    account: str, weights: Mapping[str, float], version: int = 1, **extra: Any
) -> tuple[bytes, bytes]:
    """A targets record (``band``, ``mode``, ``min_trade``, ``cooldown_s`` as keywords)."""
    doc = {"account": account, "version": version, "weights": dict(weights), "ts": now_ms(), **extra}
    return account.encode(), orjson.dumps(doc)


def instrument(name: str, **fields: Any) -> tuple[bytes, bytes]:
    """Reference data (``lot``, ``tier``, ``max_quote_age_s``)."""
    return name.encode(), orjson.dumps({"instrument": name, **fields})


async def produce(bootstrap: str, records: Iterable[tuple[str, tuple[bytes | None, bytes | None]]]) -> None:
    """Send (topic, (key, value)) records in order and wait until the broker has them all."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        futures = [await producer.send(topic, key=key, value=value) for topic, (key, value) in records]
        for fut in futures:
            await fut
    finally:
        await producer.stop()
