"""Orders end to end on the real broker and Redis: a 60/40 account out of band gets exactly one order
back to target; no second order while it is open; a fill or the cooldown re-opens it."""

from __future__ import annotations

import pytest

from streamproc.settings import Settings
from streamproc.sim.messages import position, produce, quote
from streamproc.state.keys import Keys
from streamproc.wire.contract import Contract
from tests.integration.passes import passes_after
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

        # A fill of the equity sale only (EQ1 and cash): BOND is now under its band -> a new order buys it.
        sell = next(leg for leg in a["legs"] if leg["side"] == "sell")
        await produce(
            stack.bootstrap,
            [
                (t.positions, position("A", "EQ1", 600 - float(sell["qty"]), 4)),
                (t.positions, position("A", "CASH", float(sell["notional"]), 5)),
            ],
        )
        values = await orders.wait(
            "a second order for A after the fill", lambda v: len(for_account(v, "A")) == 2
        )
        second = for_account(values, "A")[1]
        contract.validate("orders", second)
        assert second["event_id"] != a["event_id"]
        assert second["inputs"]["positions_seq"] == 5
        assert {leg["instrument"]: leg["side"] for leg in second["legs"]}["BOND"] == "buy"
        assert second["weights_after"]["BOND"] == pytest.approx(0.4, abs=2e-3)
    assert worker.alive
    # an order is recorded once the broker has it: the reader may see it first
    await wait_for(
        "the second order recorded", lambda: redis_client.sismember(keys.emitted("A"), second["event_id"])
    )
    emitted = await redis_client.smembers(keys.emitted("A"))
    assert {e.decode() for e in emitted} == {a["event_id"], second["event_id"]}


async def _seq_at_least(client, key, seq):
    raw = await client.hget(key, "seq")
    return raw is not None and int(raw) >= seq


async def test_unanswered_order_is_reissued_after_its_cooldown(
    settings: Settings, workers, stack, redis_client
):
    t = settings.topics
    await produce(stack.bootstrap, setup_records(t, {"C": ("EQ3", 600, 800)}, cooldown_s=1))
    workers()
    key_c = Keys(settings.redis_prefix).account("C")
    await wait_for("C evaluated", lambda: redis_client.hget(key_c, "drift"), timeout=60)
    await produce(stack.bootstrap, [(t.quotes, quote("EQ3", 132.34, 2))])
    async with TopicReader(stack, t.orders) as orders:
        values = await orders.wait("two orders for C (the second after 1 s)", lambda v: len(v) >= 2)
    first, second = values[:2]
    assert first["inputs"]["attempt"] == 0 and second["inputs"]["attempt"] == 1
    assert first["event_id"] != second["event_id"]
    assert second["ts"] - first["ts"] >= 1000
