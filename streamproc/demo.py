"""`streamproc demo`: checks the local stack with real clients, then runs the engine on a small scenario.

Until the streaming pipeline lands (issue #4) the scenario runs in-process; the stack check proves the
broker and server the pipeline will use are up.
"""

from __future__ import annotations

import asyncio
import os

import numpy as np

from streamproc.core import Band, Book, LegLimits, Mode


async def _check_stack(bootstrap: str, redis_url: str) -> tuple[int, str]:
    """(broker count, Redis version) from a real metadata request and a real INFO."""
    import redis.asyncio as aioredis
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
    finally:
        await admin.close()
    client = aioredis.Redis.from_url(redis_url)
    try:
        info = await client.info("server")
    finally:
        await client.aclose()
    return len(cluster["brokers"]), str(info["redis_version"])


def scenario() -> list[str]:
    """Three model portfolios, a market move, and the orders the engine plans (one line each)."""
    book = Book()
    for inst, tier, lot in (
        ("EQ-WORLD", "large", 0.0001),
        ("BOND-AGG", "bond", 0.01),
        ("MICRO-1", "micro", 0.0001),
    ):
        book.set_instrument(inst, tier=tier, lot=lot)
    prices = {"EQ-WORLD": 100.0, "BOND-AGG": 50.0, "MICRO-1": 10.0}
    for inst, p in prices.items():
        book.set_price(inst, p * 0.9995, p * 1.0005)
    models = {
        "balanced-60-40": ({"EQ-WORLD": 0.6, "BOND-AGG": 0.4}, Mode.TARGET),
        "micro-sleeve": ({"EQ-WORLD": 0.7, "MICRO-1": 0.1, "BOND-AGG": 0.15}, Mode.HALF),
        "edge-60-40": ({"EQ-WORLD": 0.6, "BOND-AGG": 0.4}, Mode.EDGE),
    }
    for account, (weights, mode) in models.items():
        book.set_targets(account, weights, band=Band(abs=0.03), mode=mode, min_trade=1.0)
        value = 100_000.0
        for inst, w in weights.items():
            book.set_holding(account, inst, round(w * value / prices[inst], 2))
        book.set_cash(account, value * (1 - sum(weights.values())))
    lines = [f"before the move: {int(book.evaluate().breaching.sum())} of {book.n_accounts} accounts breach"]
    moved = {"EQ-WORLD": 112.0, "BOND-AGG": 48.0, "MICRO-1": 14.0}
    idx = book.instrument_indices(moved)
    mids = np.array(list(moved.values()))
    book.apply_prices(idx, mids * 0.9995, mids * 1.0005)
    ev = book.evaluate(book.accounts_affected_by(idx))
    plan = book.plan(ev, LegLimits(max_spread_bps=25))
    lines.append(f"after EQ +12%, BOND -4%, MICRO +40%: {int(ev.breaching.sum())} accounts breach")
    for j, row in enumerate(plan.rows.tolist()):
        legs = ", ".join(
            f"{leg.side} {leg.qty:g} {book.instruments.id_of(leg.instrument)} @ {leg.price:.4f}"
            for leg in plan.legs(j)
        )
        lines.append(f"  order {book.accounts.id_of(row)}: {legs}")
    book.mark_answered(plan)
    lines.append(
        f"re-evaluated after answering: {int(book.evaluate().breaching.sum())} breaching (hysteresis)"
    )
    return lines


def run() -> int:
    """Entry point of `streamproc demo`."""
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        brokers, redis_version = asyncio.run(_check_stack(bootstrap, redis_url))
    except Exception as exc:
        print(f"demo: the stack is not reachable ({exc!r}); start it with `ops/local/stack up`")
        return 1
    print(f"stack ready: Kafka at {bootstrap} ({brokers} broker), Redis {redis_version} at {redis_url}")
    print("drift engine on a small scenario (the streaming pipeline arrives with issue #4):")
    for line in scenario():
        print(line)
    return 0
