"""`streamproc fill`: a stand-in order-management system. It fills each rebalance order once (deduplicated
by ``event_id`` in Redis) at the then-current quotes, sells at the bid and buys at the ask, and publishes
the account's resulting absolute positions with its next seqs, as a broker's fills would arrive."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streamproc import kafka
from streamproc.clients import kafka_args, redis_client
from streamproc.settings import Settings
from streamproc.sim.fill_desk import Desk, FillStats, Outbox
from streamproc.sim.fill_logic import Ledger
from streamproc.sim.simulate import assign_tail, behind, command_settings, now_ms, run_command
from streamproc.wire.contract import Contract

__all__ = ["FillStats", "RedisClaims", "add_arguments", "main", "run"]

CLAIM_TTL_S = 86_400
QUOTE_LOOKBACK = 20_000


class RedisClaims:
    """Claims as ``{prefix}fill:done:{event_id}`` keys (SET NX, one day), shared by every fill process."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.prefix = f"{prefix}fill:done:"

    async def claim(self, event_id: str) -> bool:
        """True the first time ``event_id`` is claimed."""
        return bool(await self.client.set(self.prefix + event_id, 1, nx=True, ex=CLAIM_TTL_S))

    async def release(self, event_id: str) -> None:
        """Forget a claim (the order could not be filled after all)."""
        await self.client.delete(self.prefix + event_id)


# ---- the process: Kafka in and out, Redis for the claims ----


async def run(
    settings: Settings,
    *,
    duration_s: float = 0.0,
    group: str = "fill",
    fee_bps: float = 0.0,
    quote_lookback: int = QUOTE_LOOKBACK,
    catchup_timeout_s: float = 10.0,
    stats: FillStats | None = None,
    reject: Iterable[str] = (),
) -> FillStats:
    """Fill the namespace's orders until ``duration_s`` (0: until cancelled). Positions are read from the
    beginning and quotes from ``quote_lookback`` records before the end of each partition (-1: all), both
    up to their end before the first order; orders are read in the consumer group ``group`` (prefixed with
    the namespace) and committed once their positions are acknowledged."""
    from streamproc.app.worker import prepare

    stats = stats if stats is not None else FillStats()
    partitions = await prepare(settings)
    t = settings.topics
    ledger = Ledger(Contract(settings.schemas_dir))
    client = redis_client(settings)
    claims = RedisClaims(client, settings.redis_prefix)
    desk = Desk(ledger, claims, stats, Decimal(str(fee_bps)), frozenset(reject))
    feed = kafka.consumer(settings)
    orders = AIOKafkaConsumer(
        t.orders,
        **kafka_args(settings),
        group_id=f"{settings.namespace}.{group}" if settings.namespace else group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(**kafka_args(settings), linger_ms=5, acks="all", enable_idempotence=True)
    started: list[Any] = []
    try:
        for c in (feed, producer, orders):
            await c.start()
            started.append(c)
        end = await assign_tail(
            feed,
            {t.quotes: (partitions["quotes"], quote_lookback), t.positions: (partitions["positions"], -1)},
        )
        topics = (t.quotes, t.positions)
        while await behind(feed, end):
            await _read_feed(feed, ledger, stats, topics, 500)
        deadline = time.monotonic() + duration_s if duration_s else float("inf")
        while time.monotonic() < deadline:
            await _read_feed(feed, ledger, stats, topics, 0)
            batch = await orders.getmany(timeout_ms=200)
            out = Outbox()
            for rows in batch.values():
                for r in rows:
                    taken = await _order(desk, feed, stats, topics, r.value, catchup_timeout_s)
                    out.positions += taken.positions
                    out.executions += taken.executions
            if batch:
                futures = [await producer.send(t.positions, key=k, value=v) for k, v in out.positions]
                futures += [await producer.send(t.executions, key=k, value=v) for k, v in out.executions]
                await asyncio.gather(*futures)
                await orders.commit()
    finally:
        for c in reversed(started):
            await c.stop()
        await client.aclose()
    return stats


async def _read_feed(
    feed: AIOKafkaConsumer, ledger: Ledger, stats: FillStats, topics: tuple[str, str], timeout_ms: int
) -> None:
    """Apply one fetched batch of quotes and positions to the ledger."""
    quotes, _positions = topics
    for tp, rows in (await feed.getmany(timeout_ms=timeout_ms, max_records=5000)).items():
        if tp.topic == quotes:
            stats.quotes += sum(ledger.on_quote(r.key, r.value) for r in rows)
        else:
            stats.positions += sum(ledger.on_position(r.key, r.value) for r in rows)


async def _order(
    desk: Desk,
    feed: AIOKafkaConsumer,
    stats: FillStats,
    topics: tuple[str, str],
    value: bytes | None,
    catchup_timeout_s: float,
) -> Outbox:
    """One orders record: parsed and answered; a rebalance once its account's positions are read up to
    its seq (or the wait timed out)."""
    doc = desk.parse(value)
    if doc is None:
        return Outbox()
    if doc["type"] == "rebalance":
        deadline = time.monotonic() + catchup_timeout_s
        while not desk.ledger.current(doc) and time.monotonic() < deadline:
            await _read_feed(feed, desk.ledger, stats, topics, 100)
    return await desk.answer(doc, now_ms())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `streamproc fill`."""
    parser.add_argument("--duration-s", type=float, default=0.0, help="seconds to run; 0: until Ctrl-C")
    parser.add_argument(
        "--group", default="fill", help="consumer group of the orders, prefixed with the namespace (fill)"
    )
    parser.add_argument("--fee-bps", type=float, default=0.0, help="fee per leg in bps of its notional (0)")
    parser.add_argument(
        "--quote-lookback",
        type=int,
        default=QUOTE_LOOKBACK,
        help=f"quotes read back per partition at start for current prices; -1: all ({QUOTE_LOOKBACK})",
    )
    parser.add_argument(
        "--reject",
        default="",
        help="comma-separated instruments that are restricted: orders with a leg in one are rejected",
    )


def main(args: argparse.Namespace) -> int:
    """Entry point of `streamproc fill`: runs until the duration ends or Ctrl-C, then prints counts."""
    settings = command_settings("fill")
    stats = FillStats()
    print(f"filling orders of namespace {settings.namespace or '(none)'}")
    work = run(
        settings,
        duration_s=args.duration_s,
        group=args.group,
        fee_bps=args.fee_bps,
        quote_lookback=args.quote_lookback,
        stats=stats,
        reject=[i for i in args.reject.split(",") if i],
    )
    return run_command("fill", work, stats)
