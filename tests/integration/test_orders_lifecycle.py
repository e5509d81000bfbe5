"""The order lifecycle over the wire (#15): an execution report that rejects an order holds the account
and raises order_rejected once, until an input changes; a worker killed between a fill's instrument and
cash records (v1) never orders on half the change, and an atomic record is applied whole."""

from __future__ import annotations

import re
import signal

import orjson
import pytest

from streamproc.settings import Settings
from streamproc.sim.messages import now_ms, position, produce, quote
from streamproc.state.keys import Keys
from tests.integration.alerts import alerts_of, states
from tests.integration.passes import passes_after
from tests.integration.runbook import Runbook
from tests.integration.scenario import for_account, setup_records
from tests.integration.workers import TopicReader, wait_for

pytestmark = pytest.mark.integration


async def _drift(client, key):
    raw = await client.hget(key, "drift")
    return orjson.loads(raw) if raw else None


async def _seq(client, key) -> int:
    raw = await client.hget(key, "seq")
    return int(raw) if raw else -1


async def test_a_rejected_order_holds_its_account_and_alerts_once_until_an_input_changes(
    settings: Settings, workers, stack, redis_client
):
    t, keys = settings.topics, Keys(settings.redis_prefix)
    await produce(stack.bootstrap, setup_records(t, {"A": ("EQ1", 600, 800)}, cooldown_s=2))
    worker = workers()
    await wait_for("A evaluated", lambda: _drift(redis_client, keys.account("A")), timeout=60)
    await produce(stack.bootstrap, [(t.quotes, quote("EQ1", 132.34, 2))])
    async with TopicReader(stack, t.orders) as orders, TopicReader(stack, t.alerts) as alerts:
        (order,) = await orders.wait("A's order", lambda v: len(for_account(v, "A")) == 1)
        legs = [
            {
                "instrument": leg["instrument"],
                "state": "rejected",
                "cum_qty": 0,
                "leaves_qty": 0,
                "reason": "restricted",
            }
            for leg in order["legs"]
        ]
        report = {
            "account": "A",
            "event_id": order["event_id"],
            "exec_id": "oms-1",
            "legs": legs,
            "ts": now_ms(),
        }
        await produce(stack.bootstrap, [(t.executions, (b"A", orjson.dumps(report)))] * 2)  # and a repeat
        fired = await alerts.wait("order_rejected", lambda v: alerts_of(v, "order_rejected", "A"))
        (alert,) = alerts_of(fired, "order_rejected", "A")
        assert alert["state"] == "firing" and alert["details"]["event_id"] == order["event_id"]
        drift = await _drift(redis_client, keys.account("A"))
        assert drift["status"] == "rejected" and "restricted" in drift["why"]
        # and a report about an order nobody sent (a wrong event_id): dead-lettered, not applied
        stray = {**report, "event_id": "00000000-0000-5000-8000-000000000000", "exec_id": "oms-2"}
        async with TopicReader(stack, t.deadletter) as dead:
            await produce(stack.bootstrap, [(t.executions, (b"A", orjson.dumps(stray)))])
            await dead.wait("the stray report dead-lettered", lambda v: v)
        async with Runbook("order_rejected", stack, settings.namespace, ACCOUNT="A") as rb:
            shown = (await rb.run("streamproc inspect account")).stdout
            assert f"REJECTED       order {order['event_id']}" in shown and "(restricted)" in shown, shown
            assert "order_rejected firing since" in shown and "drift status   rejected" in shown
            letters = (await rb.run("streamproc inspect deadletters")).stdout
            assert re.search(rf"{t.executions}@.*00000000-0000-5000-8000-000000000000", letters), letters
        # past its cooldown (2 s) with quotes moving: not retried
        moves = [(t.quotes, quote("EQ1", 132.5 + 0.1 * i, 3 + i)) for i in range(5)]
        moves.append((t.quotes, quote("BOND", 50.0, 2)))
        await produce(stack.bootstrap, moves)
        settled_at = now_ms() + 2500
        await wait_for("the cooldown to pass", lambda: now_ms() > settled_at, timeout=10)
        await passes_after(worker)
        await orders.to_end()
        assert len(for_account(orders.values(), "A")) == 1, "a rejected order is not retried unchanged"
        # a deposit is a changed input: the alert resolves and A is evaluated (and ordered) again
        await produce(stack.bootstrap, [(t.positions, position("A", "CASH", 100.0, 4))])
        await orders.wait("A ordered again", lambda v: len(for_account(v, "A")) == 2)
        values = await alerts.wait("resolved", lambda v: len(alerts_of(v, "order_rejected", "A")) == 2)
        assert states(alerts_of(values, "order_rejected", "A")) == ["firing", "resolved"]


async def test_a_worker_killed_between_a_fills_two_records_never_orders_on_half_of_it(
    settings: Settings, workers, stack, redis_client
):
    t, keys = settings.topics, Keys(settings.redis_prefix)
    key_a = keys.account("A")
    await produce(stack.bootstrap, setup_records(t, {"A": ("EQ1", 600, 800)}))  # 60/40: in band
    first = workers("first", STREAMPROC_ORDER_SETTLE_S="30")  # it never evaluates the fill itself
    await wait_for("A stored", lambda: _at_least(redis_client, key_a, 3), timeout=60)
    # a fill sells 200 EQ1 for 20,000: its instrument record, then its cash record (v1)
    await produce(stack.bootstrap, [(t.positions, position("A", "EQ1", 400, 4))])
    await wait_for("the instrument half stored", lambda: _at_least(redis_client, key_a, 4))
    first.kill(signal.SIGKILL)
    await produce(stack.bootstrap, [(t.positions, position("A", "CASH", 20_000, 5))])
    async with TopicReader(stack, t.orders) as orders:
        workers("second", STREAMPROC_ORDER_SETTLE_S="1")
        # 40/40/20 is out of band: an order, but one computed from the whole fill
        (order,) = await orders.wait("A's order", lambda v: len(for_account(v, "A")) == 1, timeout=60)
        assert order["inputs"]["positions_seq"] == 5, "ordered on the instrument record without its cash"
        assert order["weights_before"]["CASH"] == pytest.approx(0.2, abs=1e-3)


async def test_an_atomic_fill_is_applied_whole(settings: Settings, workers, stack, redis_client):
    t, keys = settings.topics, Keys(settings.redis_prefix)
    key_a = keys.account("A")
    await produce(stack.bootstrap, setup_records(t, {"A": ("EQ1", 600, 800)}))
    workers()
    await wait_for("A stored", lambda: _at_least(redis_client, key_a, 3), timeout=60)
    changes = [{"instrument": "EQ1", "qty": "400"}, {"instrument": "CASH", "qty": "20000"}]
    fill = {"account": "A", "changes": changes, "seq": 4, "ts": now_ms()}
    async with TopicReader(stack, t.orders) as orders:
        await produce(stack.bootstrap, [(t.positions, (b"A", orjson.dumps(fill)))])
        (order,) = await orders.wait("A's order", lambda v: len(for_account(v, "A")) == 1, timeout=60)
    assert order["inputs"]["positions_seq"] == 4
    assert order["weights_before"]["CASH"] == pytest.approx(0.2, abs=1e-3)
    stored = await redis_client.hgetall(key_a)
    assert float(stored[b"q:EQ1"]) == 400 and float(stored[b"cash"]) == 20_000 and stored[b"seq"] == b"4"


async def _at_least(client, key, seq) -> bool:
    return await _seq(client, key) >= seq
