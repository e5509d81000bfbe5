"""Two workers share the account partitions: every account is served, none by both, and no order is
lost or duplicated while the partitions move between them."""

from __future__ import annotations

from collections import Counter

import pytest

from streamproc.settings import Settings
from streamproc.sim.messages import produce, quote
from streamproc.wire.contract import Contract
from tests.integration.scenario import setup_records
from tests.integration.workers import TopicReader, wait_for

pytestmark = pytest.mark.integration
N = 60


async def _owners(client, settings: Settings) -> list[bytes | None]:
    return await client.mget([f"{settings.redis_prefix}owner:{p}" for p in range(3)])


async def _evaluated(client, settings: Settings, accounts) -> bool:
    async with client.pipeline(transaction=False) as pipe:
        for a in accounts:
            pipe.hexists(f"{settings.redis_prefix}acct:{{{a}}}", "drift")
        return all(await pipe.execute())


async def test_two_workers_serve_every_account_once_across_a_rebalance(
    settings: Settings, workers, stack, redis_client
):
    t = settings.topics
    contract = Contract(settings.schemas_dir)
    accounts = [f"W{i:02d}" for i in range(N)]
    await produce(stack.bootstrap, setup_records(t, {a: ("EQ1", 600, 800) for a in accounts}))
    first = workers("one")
    await wait_for(
        "every account evaluated", lambda: _evaluated(redis_client, settings, accounts), timeout=60
    )

    second = workers("two")
    # the market moves while the second worker joins: orders are decided during the rebalance
    await produce(stack.bootstrap, [(t.quotes, quote("EQ1", 132.34, 2))])
    async with TopicReader(stack, t.orders) as orders:
        values = await orders.wait(
            f"an order for each of {N} accounts", lambda v: len({o["account"] for o in v}) >= N
        )
        await wait_for(
            "both workers to own partitions",
            lambda: _two_owners(redis_client, settings),
            timeout=60,
        )
        await orders.poll()
        values = orders.values()
        records = list(orders.records)
    per_account = Counter(o["account"] for o in values)
    assert set(per_account) == set(accounts)
    assert max(per_account.values()) == 1, {a: n for a, n in per_account.items() if n > 1}
    for rec, order in zip(records, values, strict=True):
        contract.validate("orders", order)
        stored_part = await redis_client.hget(f"{settings.redis_prefix}acct:{{{order['account']}}}", "part")
        assert rec.partition == int(stored_part), "orders are co-partitioned with the account's positions"
    assert first.alive and second.alive


async def _two_owners(client, settings: Settings) -> bool:
    owners = await _owners(client, settings)
    return None not in owners and len(set(owners)) == 2
