"""Shared test scenario: 60/40 accounts over a few instruments."""

from __future__ import annotations

from typing import Any

from streamproc.settings import Settings, Topics
from streamproc.sim.messages import instrument, position, quote, targets
from streamproc.state.keys import Keys


def setup_records(t: Topics, accounts: dict[str, tuple[str, float, float]], **target_extra: Any) -> list[Any]:
    """Instruments, opening quotes (EQ* 100, BOND 50) and 60/40 accounts: name -> (equity, qty, bond qty)."""
    recs = [(t.instruments, instrument(i, lot=0.0001, tier="large")) for i in ("EQ1", "EQ2", "EQ3")]
    recs.append((t.instruments, instrument("BOND", lot=0.01, tier="bond")))
    recs += [(t.quotes, quote(i, 100.0, 1)) for i in ("EQ1", "EQ2", "EQ3")]
    recs.append((t.quotes, quote("BOND", 50.0, 1)))
    for acct, (eq, eq_qty, bond_qty) in accounts.items():
        recs += [
            (t.positions, position(acct, eq, eq_qty, 1)),
            (t.positions, position(acct, "BOND", bond_qty, 2)),
            (t.positions, position(acct, "CASH", 0.0, 3)),
            (t.targets, targets(acct, {eq: 0.6, "BOND": 0.4}, band={"abs": 0.03}, **target_extra)),
        ]
    return recs


def for_account(orders: list[dict[str, Any]], account: str) -> list[dict[str, Any]]:
    return [o for o in orders if o["account"] == account]


async def group_caught_up(admin: Any, group: str, topics: list[str]) -> bool:
    """Whether ``group`` has committed offsets at the end of every partition of ``topics``."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    described = await admin.describe_topics(topics)
    tps = [TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]]
    committed = await admin.list_consumer_group_offsets(group)
    consumer = AIOKafkaConsumer(bootstrap_servers=admin._client.hosts[0][0] + f":{admin._client.hosts[0][1]}")
    await consumer.start()
    try:
        end = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    return all(end[tp] == 0 or (tp in committed and committed[tp].offset >= end[tp]) for tp in tps)


async def feed_at_end(admin: Any, settings: Settings, redis_client: Any) -> bool:
    """Whether the worker's price feed has stored quote offsets at the end of every quotes partition
    (its checkpoint, written once it is idle): every quote published so far has been applied."""
    from aiokafka import TopicPartition

    from streamproc.kafka import consumer

    raw = await redis_client.hgetall(Keys(settings.redis_prefix).quote_offsets)
    stored = {int(p): int(o) for p, o in raw.items()}
    (described,) = await admin.describe_topics([settings.topics.quotes])
    tps = [TopicPartition(settings.topics.quotes, p["partition"]) for p in described["partitions"]]
    client = consumer(settings)
    await client.start()
    try:
        end = await client.end_offsets(tps)
    finally:
        await client.stop()
    return bool(end) and all(stored.get(tp.partition, 0) >= n for tp, n in end.items())
