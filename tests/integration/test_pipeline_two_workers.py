"""Two workers share the account partitions: every account is served, none by both, and no order is
lost or duplicated while the partitions move between them."""

from __future__ import annotations

import time
from collections import Counter

import orjson
import pytest

from streamproc.settings import Settings
from streamproc.sim.messages import produce, quote
from streamproc.state.keys import Keys
from streamproc.wire.contract import Contract
from tests.integration.alerts import Ticker, alerts_of, states, ticking
from tests.integration.passes import passes_after
from tests.integration.scenario import setup_records
from tests.integration.workers import TopicReader, wait_for

pytestmark = pytest.mark.integration
N = 60


async def _owners(client, settings: Settings) -> list[bytes | None]:
    return await client.mget([Keys(settings.redis_prefix).owner(p) for p in range(3)])


async def _evaluated(client, settings: Settings, accounts) -> bool:
    async with client.pipeline(transaction=False) as pipe:
        for a in accounts:
            pipe.hexists(Keys(settings.redis_prefix).account(a), "drift")
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
        for w in (first, second):
            if w.alive:
                await passes_after(w)
        await orders.to_end()
        values = orders.values()
        records = list(orders.records)
    per_account = Counter(o["account"] for o in values)
    assert set(per_account) == set(accounts)
    assert max(per_account.values()) == 1, {a: n for a, n in per_account.items() if n > 1}
    for rec, order in zip(records, values, strict=True):
        contract.validate("orders", order)
        stored_part = await redis_client.hget(Keys(settings.redis_prefix).account(order["account"]), "part")
        assert rec.partition == int(stored_part), "orders are co-partitioned with the account's positions"
    assert first.alive and second.alive


async def _two_owners(client, settings: Settings) -> bool:
    owners = await _owners(client, settings)
    return None not in owners and len(set(owners)) == 2


async def test_an_alert_is_announced_and_resolved_once_across_a_rebalance(
    settings: Settings, workers, stack, redis_client
):
    t = settings.topics
    # accounts on every instrument, so whichever worker owns an instrument's alerts also holds it
    books = {f"R{i:02d}": (f"EQ{1 + i % 3}", 600, 800) for i in range(12)}
    await produce(stack.bootstrap, setup_records(t, books))
    ticker = Ticker(
        stack.bootstrap,
        t.quotes,
        {"EQ1": 100.0, "EQ2": 100.0, "EQ3": 100.0},
        dict.fromkeys(("EQ1", "EQ2", "EQ3"), 1) | {"BOND": 1},
    )
    async with ticking(ticker), TopicReader(stack, t.alerts) as alerts:
        one = workers("one", STREAMPROC_QUOTE_MAX_AGE_S="2")
        await alerts.wait(
            "BOND stale (never quoted again)", lambda v: alerts_of(v, "quote_stale", "BOND"), timeout=60
        )
        workers("two", STREAMPROC_QUOTE_MAX_AGE_S="2")
        await wait_for(
            "both workers own partitions", lambda: _n_owners(redis_client, settings, 2), timeout=60
        )
        later = time.time() * 1000 + 3000
        await wait_for(
            "3 s of watch ticks after the rebalance", lambda: _reported(redis_client, settings, later)
        )
        one.stop()  # now every subject, BOND's included, is owned by worker two
        await wait_for("two owns everything", lambda: _n_owners(redis_client, settings, 1), timeout=60)
        later = time.time() * 1000 + 3000
        await wait_for(
            "3 s of watch ticks after the handover", lambda: _reported(redis_client, settings, later)
        )
        await alerts.poll()
        assert states(alerts_of(alerts.values(), "quote_stale", "BOND")) == ["firing"]  # not again

        ticker.mids["BOND"] = 50.0
        values = await alerts.wait("resolved", lambda v: len(alerts_of(v, "quote_stale", "BOND")) == 2)
        assert states(alerts_of(values, "quote_stale", "BOND")) == ["firing", "resolved"]
        later = time.time() * 1000 + 3000
        await wait_for("3 s more", lambda: _reported(redis_client, settings, later))
        await alerts.poll()
        assert states(alerts_of(alerts.values(), "quote_stale")) == ["firing", "resolved"]


async def _summaries(client, settings: Settings) -> list[dict]:
    """Summaries of the workers that reported in the last 3 s."""
    raw = await client.hgetall(Keys(settings.redis_prefix).workers)
    docs = [orjson.loads(v) for v in raw.values()]
    return [d for d in docs if d["ts"] > time.time() * 1000 - 3000]


async def _n_owners(client, settings: Settings, n: int) -> bool:
    owned = [d["partitions"] for d in await _summaries(client, settings) if d["partitions"]]
    return len(owned) == n and sorted(p for ps in owned for p in ps) == [0, 1, 2]


async def _reported(client, settings: Settings, since_ms: float) -> bool:
    """Every live worker has reported since ``since_ms``."""
    docs = await _summaries(client, settings)
    return bool(docs) and all(d["ts"] >= since_ms for d in docs)
