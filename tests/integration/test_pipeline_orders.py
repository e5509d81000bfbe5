"""Orders end to end on the real broker and Redis: a 60/40 account out of band gets exactly one order
back to target; no second order while it works, a partial fill included; positions that complete it,
or the cooldown, re-open the account."""

from __future__ import annotations

import re

import orjson
import pytest

from streamproc.settings import Settings
from streamproc.sim.messages import now_ms, position, produce, quote
from streamproc.state.keys import Keys
from streamproc.wire.contract import Contract
from tests.integration.alerts import alerts_of
from tests.integration.passes import passes_after
from tests.integration.runbook import Runbook
from tests.integration.scenario import for_account, setup_records
from tests.integration.workers import TopicReader, wait_for

pytestmark = pytest.mark.integration


async def test_band_breaches_become_one_order_each_until_a_fill(
    settings: Settings, workers, stack, redis_client
):
    t, keys = settings.topics, Keys(settings.redis_prefix)
    contract = Contract(settings.schemas_dir)
    books = {"A": ("EQ1", 600, 800), "B": ("EQ2", 600, 800)}
    await produce(stack.bootstrap, setup_records(t, books))
    worker = workers()
    key_a = keys.account("A")
    await wait_for("A and B loaded and evaluated", lambda: redis_client.hget(key_a, "drift"), timeout=60)

    # EQ1 up: 600 * 132.34 / (600 * 132.34 + 40,000) = 66.5 %; EQ2 down: 53 %.
    await produce(stack.bootstrap, [(t.quotes, quote("EQ1", 132.34, 2)), (t.quotes, quote("EQ2", 75.19, 2))])
    async with TopicReader(stack, t.orders) as orders:
        values = await orders.wait(
            "an order for A and for B", lambda v: {o["account"] for o in v} >= {"A", "B"}
        )
        for o in values:
            contract.validate("orders", o)
        (a,) = for_account(values, "A")
        assert a["reason"]["instrument"] == "EQ1" and a["reason"]["weight"] == pytest.approx(0.665, abs=1e-3)
        assert {leg["instrument"]: leg["side"] for leg in a["legs"]} == {"EQ1": "sell", "BOND": "buy"}
        assert a["weights_after"]["EQ1"] == pytest.approx(0.6, abs=2e-3)
        assert a["weights_after"]["BOND"] == pytest.approx(0.4, abs=2e-3)
        assert a["inputs"] == {"positions_seq": 3, "targets_version": 1, "attempt": 0}
        assert all(
            float(leg["qty"]) * 100 == round(float(leg["qty"]) * 100)
            for leg in a["legs"]
            if leg["instrument"] == "BOND"
        )
        (b,) = for_account(values, "B")
        assert b["reason"]["weight"] == pytest.approx(0.53, abs=1e-3)
        assert {leg["instrument"]: leg["side"] for leg in b["legs"]} == {"EQ2": "buy", "BOND": "sell"}
        assert b["weights_after"]["EQ2"] == pytest.approx(0.6, abs=2e-3)

        # Quotes keep arriving, A stays out of band: still one order (it is open).
        moves = [(t.quotes, quote("EQ1", 132.34 + 0.5 * i, 3 + i)) for i in range(10)]
        await produce(stack.bootstrap, moves)
        await wait_for(
            "the last EQ1 quote stored",
            lambda: redis_client.hget(keys.quote("EQ1"), "seq"),
            timeout=30,
        )
        await wait_for(
            "the price feed to apply the last quote",
            lambda: _seq_at_least(redis_client, keys.quote("EQ1"), 12),
        )
        await passes_after(worker)  # passes that would evaluate A, were its order not open
        await orders.to_end()
        assert len(for_account(orders.values(), "A")) == 1

        # A fill of the equity sale only (EQ1 and cash): BOND is under its band now, but the order still
        # works (its buy is open): no second order.
        sell = next(leg for leg in a["legs"] if leg["side"] == "sell")
        buy = next(leg for leg in a["legs"] if leg["side"] == "buy")
        cash = float(sell["notional"])
        await produce(
            stack.bootstrap,
            [
                (t.positions, position("A", "EQ1", 600 - float(sell["qty"]), 4)),
                (t.positions, position("A", "CASH", cash, 5)),
            ],
        )
        await wait_for("the partial fill applied", lambda: _seq_at_least(redis_client, key_a, 5))
        await passes_after(worker)
        await orders.to_end()
        assert len(for_account(orders.values(), "A")) == 1, "a partial fill is not an answer"
        # the buy fills too, as one atomic record: the order is answered, A is evaluated in band
        filled_at = now_ms()
        changes = [
            {"instrument": "BOND", "qty": 800 + float(buy["qty"])},
            {"instrument": "CASH", "qty": round(cash - float(buy["notional"]), 6)},
        ]
        await produce(stack.bootstrap, [(t.positions, _atomic("A", changes, 6))])
        drift = await wait_for(
            "A evaluated after the fill", lambda: _evaluated_since(redis_client, key_a, filled_at), timeout=30
        )
        assert drift["status"] == "ok" and drift["weights"]["BOND"] == pytest.approx(0.4, abs=0.03)  # in band
        assert await redis_client.hget(key_a, "working") == b""
        await passes_after(worker)
        await orders.to_end()
        assert len(for_account(orders.values(), "A")) == 1
    assert worker.alive
    emitted = await redis_client.smembers(keys.emitted("A"))
    assert {e.decode() for e in emitted} == {a["event_id"]}


def _atomic(account: str, changes: list[dict[str, object]], seq: int) -> tuple[bytes, bytes]:
    return account.encode(), orjson.dumps(
        {"account": account, "changes": changes, "seq": seq, "ts": now_ms()}
    )


async def _evaluated_since(client, key, since_ms):
    raw = await client.hget(key, "drift")
    doc = orjson.loads(raw) if raw else None
    return doc if doc is not None and doc["evaluated_at"] >= since_ms else None


async def _seq_at_least(client, key, seq):
    raw = await client.hget(key, "seq")
    return raw is not None and int(raw) >= seq


async def test_unanswered_orders_are_cancelled_reissued_and_capped(
    settings: Settings, workers, stack, redis_client
):
    t = settings.topics
    await produce(stack.bootstrap, setup_records(t, {"C": ("EQ3", 600, 800)}, cooldown_s=1))
    worker = workers()
    key_c = Keys(settings.redis_prefix).account("C")
    await wait_for("C evaluated", lambda: redis_client.hget(key_c, "drift"), timeout=60)
    await produce(stack.bootstrap, [(t.quotes, quote("EQ3", 132.34, 2))])
    async with TopicReader(stack, t.orders) as orders, TopicReader(stack, t.alerts) as alerts:
        # each unanswered for its cooldown (1 s): cancelled, its cancel unconfirmed for 1 s more, then
        # re-issued; the third unanswered one reaches the cap (STREAMPROC_ORDER_MAX_ATTEMPTS, 3)
        values = await orders.wait("three orders and their cancels", lambda v: len(v) >= 6, timeout=60)
        drift = await wait_for(
            "C waiting for an operator", lambda: _drift_status(redis_client, key_c, "unanswered")
        )
        assert "streamproc orders retry C" in drift["why"]
        fired = await alerts.wait("order_unanswered", lambda v: alerts_of(v, "order_unanswered", "C"))
        await passes_after(worker)
        await orders.to_end()
        values = orders.values()
    assert [o["type"] for o in values] == ["rebalance", "cancel"] * 3, "nothing after the cap"
    rebalances, cancels = values[0::2], values[1::2]
    assert [o["inputs"]["attempt"] for o in rebalances] == [0, 1, 2]
    assert [c["cancels"] for c in cancels] == [o["event_id"] for o in rebalances]
    assert all(c["why"] == "unanswered" for c in cancels)
    assert rebalances[1]["ts"] - rebalances[0]["ts"] >= 2000  # a cooldown, then one for the cancel
    (alert,) = alerts_of(fired, "order_unanswered", "C")[:1]
    assert alert["state"] == "firing" and alert["runbook"] == "runbooks/order_unanswered.md"
    # a report about an order the monitor never sent: dead-lettered, and no answer for C
    stray = {"account": "C", "event_id": "00000000-0000-5000-8000-000000000001", "exec_id": "oms-9"}
    stray |= {"legs": [{"instrument": "EQ3", "state": "filled", "cum_qty": 1, "leaves_qty": 0}]}
    async with TopicReader(stack, t.deadletter) as dead:
        await produce(stack.bootstrap, [(t.executions, (b"C", orjson.dumps({**stray, "ts": now_ms()})))])
        await dead.wait("the stray report dead-lettered", lambda v: v)
    async with Runbook("order_unanswered", stack, settings.namespace, ACCOUNT="C") as rb:
        shown = (await rb.run("streamproc inspect account")).stdout
        assert "UNANSWERED     3 orders in a row" in shown and "streamproc orders retry C" in shown, shown
        assert f"CANCELLED      {rebalances[2]['event_id']}" in shown
        topics = (await rb.run("streamproc inspect topics")).stdout
        assert re.search(rf"{t.orders}\s+6\s", topics) and re.search(rf"{t.executions}\s+1\s", topics)
        letters = (await rb.run("streamproc inspect deadletters")).stdout
        assert re.search(rf"{t.executions}@.*00000000-0000-5000-8000-000000000001", letters), letters
        async with TopicReader(stack, t.orders) as orders:
            retried = await rb.run("streamproc orders retry")
            assert "asked the owner of C to retry" in retried.stdout, retried
            values = await orders.wait("the retried order", lambda v: len(v) >= 7, timeout=30)
            # the other mitigation, once order management says it dropped them: forget what is open
            await wait_for(
                "the retry unanswered too",
                lambda: _drift_status(redis_client, key_c, "unanswered"),
                timeout=30,
            )
            released = await rb.run("streamproc orders release")
            assert "asked the owner of C to release" in released.stdout, released
            await wait_for(
                "C evaluated on its holdings again",
                lambda: _drift_status(redis_client, key_c, "ordered"),
                timeout=30,
            )
    assert values[6]["type"] == "rebalance" and values[6]["inputs"]["attempt"] == 3


async def _drift_status(client, key, status):
    raw = await client.hget(key, "drift")
    doc = orjson.loads(raw) if raw else None
    return doc if doc is not None and doc["status"] == status else None
