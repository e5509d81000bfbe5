"""`streamproc demo`: the README's run command. Starts a real worker against the local stack, feeds it a
small market and three model portfolios, moves the market, and prints the orders and dead letters it
publishes. Everything runs in a fresh namespace that is removed afterwards."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from streamproc.clients import kafka_args, redis_client
from streamproc.settings import Settings
from streamproc.sim.messages import instrument, position, produce, quote, targets

INSTRUMENTS = {
    "EQ-WORLD": ("large", 0.0001, 100.0),
    "BOND-AGG": ("bond", 0.01, 50.0),
    "MICRO-1": ("micro", 0.0001, 10.0),
}
MODELS = {
    "balanced-60-40": ({"EQ-WORLD": 0.6, "BOND-AGG": 0.4}, "target"),
    "micro-sleeve": ({"EQ-WORLD": 0.7, "MICRO-1": 0.1, "BOND-AGG": 0.15}, "half"),
    "edge-60-40": ({"EQ-WORLD": 0.6, "BOND-AGG": 0.4}, "edge"),
}
MOVE = {"EQ-WORLD": 112.0, "BOND-AGG": 48.0, "MICRO-1": 14.0}


def scenario(s: Settings) -> list[tuple[str, tuple[bytes, bytes]]]:
    """Reference data, opening quotes, and accounts on model portfolios (100,000 each, on target)."""
    t = s.topics
    recs = [(t.instruments, instrument(i, tier=tier, lot=lot)) for i, (tier, lot, _) in INSTRUMENTS.items()]
    recs += [(t.quotes, quote(i, px, 1)) for i, (_, _, px) in INSTRUMENTS.items()]
    for account, (weights, mode) in MODELS.items():
        seq = 0
        for inst, w in weights.items():
            seq += 1
            recs.append(
                (t.positions, position(account, inst, round(w * 100_000 / INSTRUMENTS[inst][2], 2), seq))
            )
        recs.append(
            (t.positions, position(account, "CASH", round(100_000 * (1 - sum(weights.values())), 2), seq + 1))
        )
        recs.append((t.targets, targets(account, weights, band={"abs": 0.03}, mode=mode, min_trade=1)))
    return recs


async def _run(s: Settings, log_path: Path) -> int:
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    from streamproc.app.worker import prepare

    partitions = await prepare(s)
    t = s.topics
    env = {**os.environ, "STREAMPROC_NAMESPACE": s.namespace, "STREAMPROC_LOG_FORMAT": "json"}
    env.setdefault("STREAMPROC_ORDER_SETTLE_S", "0.3")
    env.setdefault("STREAMPROC_OUTLIER_MOVE_BY_TIER", "micro=0.5")  # microcaps move more than 20% for real
    with log_path.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "streamproc", "worker"], env=env, stdout=out, stderr=out
        )
    client = redis_client(s)
    consumer = AIOKafkaConsumer(**kafka_args(s), group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    try:
        print(f"worker started (pid {worker.pid}, namespace {s.namespace}, logs {log_path})")
        await produce(s.kafka_bootstrap_servers, scenario(s))
        print(
            f"fed {len(INSTRUMENTS)} instruments and {len(MODELS)} accounts on target; "
            "waiting for the worker..."
        )
        keys = [f"{s.redis_prefix}acct:{{{a}}}" for a in MODELS]
        deadline = time.monotonic() + 90
        while not all([await client.hexists(k, "drift") for k in keys]):
            if worker.poll() is not None or time.monotonic() > deadline:
                print(f"demo: the worker did not evaluate the accounts; see {log_path}")
                return 1
            await asyncio.sleep(0.2)
        print("all accounts evaluated: inside their bands, no orders")
        moves = [(t.quotes, quote(i, px, 2)) for i, px in MOVE.items()]
        moves.append((t.positions, (b"balanced-60-40", b'{"account": "balanced-60-40", "qty": -5}')))
        await produce(s.kafka_bootstrap_servers, moves)
        print("market moves: EQ-WORLD +12%, BOND-AGG -4%, MICRO-1 +40% (and one malformed position record)")
        consumer.assign(
            [TopicPartition(t.orders, p) for p in range(partitions["orders"])]
            + [TopicPartition(t.deadletter, p) for p in range(partitions["deadletter"])]
        )
        await consumer.seek_to_beginning()
        seen_orders: set[str] = set()
        dead = 0
        while len(seen_orders) < len(MODELS) or dead < 1:
            if time.monotonic() > deadline + 30:
                print(f"demo: expected {len(MODELS)} orders and 1 dead letter; see {log_path}")
                return 1
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                for r in records:
                    doc = orjson.loads(r.value)
                    if tp.topic == t.orders:
                        seen_orders.add(doc["account"])
                        _print_order(doc)
                    else:
                        dead += 1
                        print(f"dead letter from {doc['topic']}@{doc['offset']}: {doc['error']}")
        return 0
    finally:
        await consumer.stop()
        worker.terminate()
        worker.wait(timeout=30)
        keys_ = [k async for k in client.scan_iter(match=f"{s.namespace}:*", count=1000)]
        if keys_:
            await client.delete(*keys_)
        await client.aclose()
        admin = AIOKafkaAdminClient(**kafka_args(s))
        await admin.start()
        try:
            mine = [x for x in await admin.list_topics() if x.startswith(f"{s.namespace}.")]
            if mine:
                await admin.delete_topics(mine)
        finally:
            await admin.close()


def _print_order(doc: dict[str, Any]) -> None:
    r = doc["reason"]
    print(
        f"ORDER {doc['event_id']} {doc['account']}: {r['instrument']} at {r['weight']:.1%} "
        f"(target {r['target']:.0%} ± {r['band'] * 100:.0f} pts)"
    )
    for leg in doc["legs"]:
        print(
            f"    {leg['side']:4} {leg['qty']:>12} {leg['instrument']:<9} "
            f"@ {leg['price']:<10} = {leg['notional']}"
        )
    after = ", ".join(f"{k} {v:.1%}" for k, v in doc["weights_after"].items())
    print(f"    weights after: {after}")


def run() -> int:
    """Entry point of `streamproc demo`."""
    logging.getLogger("aiokafka").setLevel(logging.ERROR)  # retries right after topic creation are expected
    try:
        settings = Settings.from_env(None, namespace=f"demo-{int(time.time())}")
    except ValueError as exc:
        print(f"demo: {exc}")
        return 2
    log_path = Path("bench-results") / "demo-worker.log"
    log_path.parent.mkdir(exist_ok=True)
    try:
        return asyncio.run(_run(settings, log_path))
    except SystemExit as exc:
        print(exc)
        return 1
