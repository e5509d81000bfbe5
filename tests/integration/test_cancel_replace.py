"""Cancel and replace over the wire (#15): new targets while an order works publish its cancel and a
replacement chained by ``replaces``; a worker killed between publishing the two and recording them
leaves, after the restart, neither published twice and the chain intact in Redis."""

from __future__ import annotations

from collections import Counter

import pytest

from streamproc.settings import Settings
from streamproc.sim.messages import produce, quote, targets
from streamproc.state.keys import Keys
from streamproc.state.records import parse_account
from tests.integration.passes import passes_after
from tests.integration.scenario import for_account, setup_records
from tests.integration.workers import TopicReader, wait_for

pytestmark = pytest.mark.integration


async def test_new_targets_cancel_and_replace_and_a_crash_between_publishes_neither_twice(
    settings: Settings, workers, stack, redis_client
):
    t, keys = settings.topics, Keys(settings.redis_prefix)
    await produce(stack.bootstrap, setup_records(t, {"A": ("EQ1", 600, 800)}))
    await produce(stack.bootstrap, [(t.quotes, quote("EQ1", 132.34, 2))])
    crashing = workers(
        "crashing", module="tests.integration.crashing_worker", STREAMPROC_TEST_DIE_ON="replaces"
    )
    async with TopicReader(stack, t.orders) as orders:
        (first,) = await orders.wait("A's order", lambda v: len(for_account(v, "A")) == 1, timeout=60)
        await wait_for(
            "the order recorded", lambda: redis_client.sismember(keys.emitted("A"), first["event_id"])
        )
        new = targets("A", {"EQ1": 0.5, "BOND": 0.5}, version=2, band={"abs": 0.03})
        await produce(stack.bootstrap, [(t.targets, new)])
        _, cancel, replacement = await orders.wait(
            "cancel and replacement", lambda v: len(for_account(v, "A")) == 3
        )
        await wait_for("the worker to die after publishing them", lambda: not crashing.alive)
        assert not await redis_client.sismember(keys.emitted("A"), replacement["event_id"]), (
            "died before recording"
        )
        assert cancel["type"] == "cancel" and cancel["cancels"] == first["event_id"]
        assert cancel["why"] == "targets_changed" and cancel["replaced_by"] == replacement["event_id"]
        assert replacement["replaces"] == first["event_id"] and replacement["inputs"]["targets_version"] == 2
        assert {w["event_id"] for w in replacement["working"]} == {first["event_id"]}
        restarted = workers("restarted")
        await wait_for(
            "the restarted worker to recover both",
            lambda: redis_client.sismember(keys.emitted("A"), replacement["event_id"]),
            timeout=60,
        )
        await passes_after(restarted, 3)
        await orders.to_end()
        published = for_account(orders.values(), "A")
    ids = Counter(o["event_id"] for o in published)
    assert max(ids.values()) == 1 and len(ids) == 3, ids
    assert set(ids) == {first["event_id"], cancel["event_id"], replacement["event_id"]}
    stored = parse_account("A", await redis_client.hgetall(keys.account("A")))
    assert stored.working is not None and stored.working.event_id == replacement["event_id"], (
        "the chain is intact"
    )
    assert [c.event_id for c in stored.cancelling] == [first["event_id"]]
    assert stored.order is not None and stored.order["replaces"] == first["event_id"]
