"""`streamproc fill`: a stand-in order-management system on Kafka and Redis, so the drift loop closes."""

from __future__ import annotations

import argparse
import asyncio
import time
from decimal import Decimal
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streamproc import kafka
from streamproc.clients import kafka_args, redis_client
from streamproc.settings import Settings
from streamproc.sim.fill_desk import Desk, FillStats, Outbox, Policy
from streamproc.sim.fill_logic import Ledger
from streamproc.sim.simulate import assign_tail, behind, command_settings, now_ms, run_command
from streamproc.wire.contract import Contract

__all__ = ["FillStats", "Policy", "RedisClaims", "add_arguments", "main", "policy", "run"]

CLAIM_TTL_S = 86_400
QUOTE_LOOKBACK = 20_000
POLL_MS = 200  # the longest wait for orders


# ---- the process: Kafka in and out, Redis for the claims ----


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


class Feed:
    """Quotes, positions and instruments read into the ledger."""

    def __init__(
        self, consumer: AIOKafkaConsumer, ledger: Ledger, stats: FillStats, settings: Settings
    ) -> None:
        self.consumer = consumer
        self.ledger = ledger
        self.stats = stats
        self.quotes = settings.topics.quotes
        self.positions = settings.topics.positions

    async def read(self, timeout_ms: int) -> None:
        """Apply one fetched batch to the ledger."""
        for tp, rows in (await self.consumer.getmany(timeout_ms=timeout_ms, max_records=5000)).items():
            if tp.topic == self.quotes:
                self.stats.quotes += sum(self.ledger.on_quote(r.key, r.value) for r in rows)
            elif tp.topic == self.positions:
                self.stats.positions += sum(self.ledger.on_position(r.key, r.value) for r in rows)
            else:
                for r in rows:
                    self.ledger.on_instrument(r.key, r.value)


async def run(
    settings: Settings,
    *,
    duration_s: float = 0.0,
    group: str = "fill",
    policy: Policy | None = None,
    quote_lookback: int = QUOTE_LOOKBACK,
    catchup_timeout_s: float = 10.0,
    stats: FillStats | None = None,
) -> FillStats:
    """Fill the namespace's orders as ``policy`` says until ``duration_s`` (0: until cancelled). Positions
    and instruments are read from the beginning and quotes from ``quote_lookback`` records before the end
    of each partition (-1: all), all up to their end before the first order; orders are read in the
    consumer group ``group`` (prefixed with the namespace) and committed once what answering them
    published is acknowledged. Parts still to come when it stops are not resumed by the next run (the
    order's claim holds; the monitor re-issues an order left unanswered)."""
    from streamproc.app.worker import prepare

    stats = stats if stats is not None else FillStats()
    partitions = await prepare(settings)
    t = settings.topics
    ledger = Ledger(Contract(settings.schemas_dir))
    client = redis_client(settings)
    desk = Desk(ledger, RedisClaims(client, settings.redis_prefix), stats, policy)
    feed = Feed(kafka.consumer(settings), ledger, stats, settings)
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
        for c in (feed.consumer, producer, orders):
            await c.start()
            started.append(c)
        end = await assign_tail(
            feed.consumer,
            {
                t.quotes: (partitions["quotes"], quote_lookback),
                t.positions: (partitions["positions"], -1),
                t.instruments: (partitions["instruments"], -1),
            },
        )
        while await behind(feed.consumer, end):
            await feed.read(500)
        deadline = time.monotonic() + duration_s if duration_s else float("inf")
        while time.monotonic() < deadline:
            await feed.read(0)
            batch = await orders.getmany(timeout_ms=desk.idle_ms(now_ms(), POLL_MS))
            out = Outbox()
            for rows in batch.values():
                for r in rows:
                    out.extend(await _order(desk, feed, r.value, catchup_timeout_s))
            out.extend(desk.due(now_ms()))
            futures = [await producer.send(t.positions, key=k, value=v) for k, v in out.positions]
            futures += [await producer.send(t.executions, key=k, value=v) for k, v in out.executions]
            await asyncio.gather(*futures)
            if batch:
                await orders.commit()
    finally:
        for c in reversed(started):
            await c.stop()
        await client.aclose()
    return stats


async def _order(desk: Desk, feed: Feed, value: bytes | None, catchup_timeout_s: float) -> Outbox:
    """One orders record: parsed and answered; a rebalance once its account's positions are read up to
    its seq (or the wait timed out)."""
    doc = desk.parse(value)
    if doc is None:
        return Outbox()
    if doc["type"] == "rebalance":
        deadline = time.monotonic() + catchup_timeout_s
        while not desk.ledger.current(doc) and time.monotonic() < deadline:
            await feed.read(100)
    return await desk.answer(doc, now_ms())


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def _ratio(text: str) -> Decimal:
    if not 0 < _number(text) <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not in (0, 1]")
    return Decimal(text)


def _share(text: str) -> float:
    value = _number(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not in [0, 1]")
    return value


def _milliseconds(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of milliseconds >= 0")
    return int(text)


def _names(text: str) -> frozenset[str]:
    return frozenset(name for name in text.split(",") if name)


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
        "--fill-ratio",
        type=_ratio,
        default=Decimal(1),
        help="a part fills at most this fraction of each leg's remaining qty, on the lot grid (1: at once)",
    )
    parser.add_argument(
        "--fill-latency-ms", type=_milliseconds, default=0, help="milliseconds between an order's parts (0)"
    )
    parser.add_argument(
        "--reject",
        type=_names,
        default=frozenset(),
        help="comma-separated instruments that are restricted: orders with a leg in one are rejected",
    )
    parser.add_argument(
        "--reject-instruments",
        type=_names,
        default=frozenset(),
        help="comma-separated instruments whose legs are rejected (restricted instrument); the others fill",
    )
    parser.add_argument(
        "--reject-share",
        type=_share,
        default=0.0,
        help="share of orders rejected whole, drawn by a hash of event_id (0)",
    )
    parser.add_argument(
        "--ignore-cancels",
        action="store_true",
        help="keep filling orders that a cancel names (a consumer that ignores cancels)",
    )


def policy(args: argparse.Namespace) -> Policy:
    """The policy the options of `streamproc fill` describe."""
    return Policy(
        fee_bps=Decimal(str(args.fee_bps)),
        ratio=args.fill_ratio,
        latency_ms=args.fill_latency_ms,
        reject=args.reject,
        reject_instruments=args.reject_instruments,
        reject_share=args.reject_share,
        ignore_cancels=args.ignore_cancels,
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
        policy=policy(args),
        quote_lookback=args.quote_lookback,
        stats=stats,
    )
    return run_command("fill", work, stats)
