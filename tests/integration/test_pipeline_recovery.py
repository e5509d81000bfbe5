"""Crashes, restarts and replays: state applied exactly once, no order event_id published twice."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter

import pytest

from streamproc.settings import Settings
from streamproc.sim.messages import position, produce, quote
from tests.integration.scenario import for_account, group_caught_up, setup_records
from tests.integration.workers import TopicReader, wait_for

pytestmark = pytest.mark.integration


async def test_replay_with_a_fresh_group_publishes_no_new_order(
    settings: Settings, workers, stack, redis_client, admin
):
    t = settings.topics
    await produce(stack.bootstrap, setup_records(t, {"A": ("EQ1", 600, 800), "B": ("EQ2", 600, 800)}))
    first = workers("first")
    await wait_for(
        "A evaluated", lambda: redis_client.hget(f"{settings.redis_prefix}acct:{{A}}", "drift"), timeout=60
    )
    await produce(stack.bootstrap, [(t.quotes, quote("EQ1", 132.34, 2)), (t.quotes, quote("EQ2", 75.19, 2))])
    async with TopicReader(stack, t.orders) as orders:
        before = await orders.wait("orders for A and B", lambda v: len(v) >= 2)
        first.stop()
        # Replay everything: a new consumer group over the same topics, and the price feed from offset 0.
        await redis_client.delete(f"{settings.redis_prefix}offsets:quotes")
        group = f"{settings.namespace}.replay"
        workers("replay", STREAMPROC_GROUP_ID=group)
        await wait_for(
            "the replay group to consume every position and target",
            lambda: group_caught_up(admin, group, [t.positions, t.targets]),
            timeout=60,
        )
        await wait_for(
            "the price feed to replay the quotes",
            lambda: redis_client.hlen(f"{settings.redis_prefix}offsets:quotes"),
        )
        await asyncio.sleep(1.0)  # evaluation passes (every 20 ms) after the replay
        await orders.poll()
        after = orders.values()
    assert [o["event_id"] for o in after] == [o["event_id"] for o in before]


async def test_sigkill_mid_stream_applies_every_update_once(
    settings: Settings, workers, stack, redis_client, admin
):
    t = settings.topics
    accounts = {f"K{i:02d}": ("EQ1", 600, 800) for i in range(40)}
    await produce(stack.bootstrap, setup_records(t, accounts))
    worker = workers("before-kill")
    rounds = 12
    expected: dict[str, tuple[float, int]] = {}

    async def stream_updates() -> None:
        for r in range(rounds):
            batch = []
            for j, acct in enumerate(accounts):
                qty = 600 + ((r * 37 + j * 11) % 9 - 4) * 40.0  # swings of +-160 units: some breach
                seq = 4 + r
                batch.append((t.positions, position(acct, "EQ1", qty, seq)))
                expected[acct] = (qty, seq)
            batch += [
                (t.quotes, quote(i, p, 2 + r)) for i, p in (("EQ1", 100.0), ("BOND", 50.0))
            ]  # fresh prices
            await produce(stack.bootstrap, batch)
            await asyncio.sleep(0.25)

    producer = asyncio.create_task(stream_updates())
    async with TopicReader(stack, t.orders) as orders:
        await orders.wait("orders from the swings", lambda v: len(v) > 0, timeout=60)
    worker.kill(signal.SIGKILL)
    workers("after-kill")
    await producer
    await wait_for(
        "every update consumed after the restart",
        lambda: group_caught_up(admin, settings.app_id, [t.positions, t.targets]),
        timeout=90,
    )
    for acct, (qty, seq) in expected.items():
        stored = await redis_client.hgetall(f"{settings.redis_prefix}acct:{{{acct}}}")
        assert float(stored[b"q:EQ1"]) == qty and int(stored[b"seq"]) == seq, (acct, stored)
        assert float(stored[b"q:BOND"]) == 800
    await wait_for(
        "the restarted worker to evaluate", lambda: _all_evaluated(redis_client, settings, accounts)
    )
    await asyncio.sleep(1.0)  # evaluation passes after the last update
    async with TopicReader(stack, t.orders) as orders:
        await orders.wait("the orders topic", lambda v: len(v) > 0)
        await asyncio.sleep(0.5)  # the rest of the topic
        await orders.poll()
        ids = Counter(o["event_id"] for o in orders.values())
    assert max(ids.values()) == 1, [i for i, n in ids.items() if n > 1]


async def _all_evaluated(client, settings, accounts) -> bool:
    for acct in accounts:
        if not await client.hexists(f"{settings.redis_prefix}acct:{{{acct}}}", "drift"):
            return False
    return True


async def test_crash_between_publishing_and_recording_an_order(
    settings: Settings, workers, stack, redis_client
):
    t = settings.topics
    await produce(stack.bootstrap, setup_records(t, {"A": ("EQ1", 600, 800)}))
    await produce(stack.bootstrap, [(t.quotes, quote("EQ1", 132.34, 2))])
    crashing = workers("crashing", module="tests.integration.crashing_worker")
    async with TopicReader(stack, t.orders) as orders:
        (order,) = await orders.wait("A's order", lambda v: len(v) >= 1)
        await wait_for("the worker to die after publishing", lambda: not crashing.alive)
        emitted = f"{settings.redis_prefix}emitted:{{A}}"
        assert not await redis_client.sismember(emitted, order["event_id"]), "the crash came before recording"
        workers("restarted")
        await wait_for(
            "the restarted worker to recover the order",
            lambda: redis_client.sismember(emitted, order["event_id"]),
        )
        await wait_for(
            "the order recorded as A's last",
            lambda: redis_client.hget(f"{settings.redis_prefix}acct:{{A}}", "order"),
        )
        await asyncio.sleep(0.5)  # evaluation passes
        await orders.poll()
        assert [o["event_id"] for o in for_account(orders.values(), "A")] == [order["event_id"]]
