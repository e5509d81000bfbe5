"""Crashes, restarts and replays: state applied exactly once, no order event_id published twice."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter

import pytest

from streamproc.settings import Settings
from streamproc.sim.messages import position, produce, quote
from streamproc.state.keys import Keys
from tests.integration.passes import passes_after
from tests.integration.scenario import feed_at_end, for_account, group_caught_up, setup_records
from tests.integration.workers import TopicReader, wait_for

pytestmark = pytest.mark.integration


async def test_replay_with_a_fresh_group_publishes_no_new_order(
    settings: Settings, workers, stack, redis_client, admin
):
    t, keys = settings.topics, Keys(settings.redis_prefix)
    books = {"A": ("EQ1", 600, 800), "B": ("EQ2", 600, 800)}
    await produce(stack.bootstrap, setup_records(t, books))
    first = workers("first")
    await wait_for("A evaluated", lambda: redis_client.hget(keys.account("A"), "drift"), timeout=60)
    await produce(stack.bootstrap, [(t.quotes, quote("EQ1", 132.34, 2)), (t.quotes, quote("EQ2", 75.19, 2))])
    async with TopicReader(stack, t.orders) as orders:
        before = await orders.wait("orders for A and B", lambda v: len(v) >= 2)
        first.stop()
        # Replay everything: a new consumer group over the same topics, and the price feed from offset 0.
        await redis_client.delete(keys.quote_offsets)
        group = f"{settings.namespace}.replay"
        replay = workers("replay", STREAMPROC_GROUP_ID=group)
        await wait_for(
            "the replay group to consume every position and target",
            lambda: group_caught_up(admin, group, [t.positions, t.targets]),
            timeout=60,
        )
        await wait_for(
            "the price feed to replay every quote", lambda: feed_at_end(admin, settings, redis_client)
        )
        # the replayed records were all applied: passes after them (and after any hold they started)
        await passes_after(replay)
        await orders.to_end()
        after = orders.values()
    assert [o["event_id"] for o in after] == [o["event_id"] for o in before]


async def test_sigkill_mid_stream_applies_every_update_once(
    settings: Settings, workers, stack, redis_client, admin
):
    t, keys = settings.topics, Keys(settings.redis_prefix)
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
            await asyncio.sleep(0.25)  # pacing of the input (rounds spread over the kill), no assertion

    producer = asyncio.create_task(stream_updates())
    async with TopicReader(stack, t.orders) as orders:
        await orders.wait("orders from the swings", lambda v: len(v) > 0, timeout=60)
    worker.kill(signal.SIGKILL)
    restarted = workers("after-kill")
    await producer
    await wait_for(
        "every update consumed after the restart",
        lambda: group_caught_up(admin, settings.app_id, [t.positions, t.targets]),
        timeout=90,
    )
    for acct, (qty, seq) in expected.items():
        stored = await redis_client.hgetall(keys.account(acct))
        assert float(stored[b"q:EQ1"]) == qty and int(stored[b"seq"]) == seq, (acct, stored)
        assert float(stored[b"q:BOND"]) == 800
    # each account evaluated, or held by its order still working (the swings are not its answer)
    try:
        await wait_for(
            "the restarted worker to evaluate", lambda: _all_evaluated(redis_client, keys, accounts)
        )
    except AssertionError as timed_out:
        unevaluated = {a: await redis_client.hgetall(keys.account(a)) for a in accounts}
        unevaluated = {a: h for a, h in unevaluated.items() if b"drift" not in h and b"working" not in h}
        raise AssertionError(f"{timed_out}: {unevaluated}") from None
    await wait_for("the price feed to apply every quote", lambda: feed_at_end(admin, settings, redis_client))
    # every update applied: passes after them (and after the settle hold they started) end the orders
    await passes_after(restarted)
    async with TopicReader(stack, t.orders) as orders:
        await orders.to_end()
        ids = Counter(o["event_id"] for o in orders.values())
    assert ids, "the swings published orders"
    assert max(ids.values()) == 1, [i for i, n in ids.items() if n > 1]


async def _all_evaluated(client, keys: Keys, accounts) -> bool:
    """Every account has a drift status or an order working."""
    for acct in accounts:
        drift, working = await client.hmget(keys.account(acct), ["drift", "working"])
        if not drift and not working:
            return False
    return True


async def test_crash_between_publishing_and_recording_an_order(
    settings: Settings, workers, stack, redis_client
):
    t, keys = settings.topics, Keys(settings.redis_prefix)
    await produce(stack.bootstrap, setup_records(t, {"A": ("EQ1", 600, 800)}))
    await produce(stack.bootstrap, [(t.quotes, quote("EQ1", 132.34, 2))])
    crashing = workers("crashing", module="tests.integration.crashing_worker")
    async with TopicReader(stack, t.orders) as orders:
        (order,) = await orders.wait("A's order", lambda v: len(v) >= 1)
        await wait_for("the worker to die after publishing", lambda: not crashing.alive)
        emitted = keys.emitted("A")
        assert not await redis_client.sismember(emitted, order["event_id"]), "the crash came before recording"
        restarted = workers("restarted")
        await wait_for(
            "the restarted worker to recover the order",
            lambda: redis_client.sismember(emitted, order["event_id"]),
        )
        await wait_for(
            "the order recorded as A's last", lambda: redis_client.hget(keys.account("A"), "order")
        )
        await passes_after(restarted)  # A's partition is loaded: it has been evaluated since
        await orders.to_end()
        assert [o["event_id"] for o in for_account(orders.values(), "A")] == [order["event_id"]]
