"""The seed's example on the real broker and Redis: a 60/40 built from 4 equity and 4 bond ETFs with
class bands (`groups`). Equity at 66.5 % -> one order back to 60/40 at class level; at 53 % -> one
order buying equity; at 62 % (inside +-3) -> none, although no single ETF ever leaves its own band."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest

from streamproc.settings import Settings, Topics
from streamproc.sim.messages import instrument, now_ms, position, produce, quote, targets
from streamproc.state.keys import Keys
from streamproc.wire.contract import Contract
from tests.integration.alerts import account_field, alerts_of
from tests.integration.passes import passes_after
from tests.integration.runbook import Runbook
from tests.integration.scenario import for_account
from tests.integration.workers import TopicReader, wait_for

pytestmark = pytest.mark.integration

# equity price (bonds at 50) at which 4 x 150 equity + 4 x 200 bonds weigh this much equity
UP, DOWN, INSIDE = 132.34, 75.19, 108.77  # 66.5 %, 53 %, 62 %


def etfs(account: str) -> tuple[list[str], list[str]]:
    return [f"{account}-EQ{i}" for i in range(4)], [f"{account}-BD{i}" for i in range(4)]


def account_records(t: Topics, account: str) -> list[Any]:
    """4 equity ETFs at 100 (150 each) and 4 bond ETFs at 50 (200 each): 60/40 of 100,000."""
    eq, bd = etfs(account)
    recs: list[Any] = [(t.instruments, instrument(i, lot=0.0001, tier="large")) for i in eq + bd]
    recs += [(t.quotes, quote(i, 100.0, 1)) for i in eq] + [(t.quotes, quote(i, 50.0, 1)) for i in bd]
    held = [(i, 150.0) for i in eq] + [(i, 200.0) for i in bd] + [("CASH", 0.0)]
    recs += [(t.positions, position(account, i, q, n)) for n, (i, q) in enumerate(held, 1)]
    weights = {**{i: 0.15 for i in eq}, **{i: 0.10 for i in bd}}
    groups = {
        "equity": {"members": eq, "band": {"abs": 0.03}},
        "bonds": {"members": bd, "band": {"abs": 0.03}},
    }
    recs.append((t.targets, targets(account, weights, groups=groups)))
    return recs


def class_weights(doc: dict[str, str | float], account: str) -> tuple[float, float]:
    eq, bd = etfs(account)
    return sum(float(doc[i]) for i in eq), sum(float(doc[i]) for i in bd)


async def test_class_bands_order_the_seeds_60_40_back_at_class_level(
    settings: Settings, workers, stack, redis_client
):
    t, keys = settings.topics, Keys(settings.redis_prefix)
    contract = Contract(settings.schemas_dir)
    accounts = {"U": UP, "D": DOWN, "I": INSIDE}
    await produce(stack.bootstrap, [r for a in accounts for r in account_records(t, a)])
    worker = workers()
    for a in accounts:
        drift = await wait_for(
            f"{a} evaluated", lambda a=a: redis_client.hget(keys.account(a), "drift"), timeout=60
        )
        assert orjson.loads(drift)["status"] == "ok", "60/40 at the start: in band"

    moves = [(t.quotes, quote(e, price, 2)) for a, price in accounts.items() for e in etfs(a)[0]]
    async with TopicReader(stack, t.orders) as orders:
        await produce(stack.bootstrap, moves)
        values = await orders.wait("orders for U and D", lambda v: {o["account"] for o in v} >= {"U", "D"})
        for o in values:
            contract.validate("orders", o)

        (up,) = for_account(values, "U")
        assert up["reason"] == {
            "group": "equity",
            "weight": pytest.approx(0.665, abs=1e-3),
            "target": 0.6,
            "band": 0.03,
        }
        eq, bd = etfs("U")
        assert {leg["instrument"]: leg["side"] for leg in up["legs"]} == {
            **{i: "sell" for i in eq},
            **{i: "buy" for i in bd},
        }
        assert class_weights(up["weights_before"], "U") == pytest.approx((0.665, 0.335), abs=1e-3)
        assert class_weights(up["weights_after"], "U") == pytest.approx((0.6, 0.4), abs=2e-3)
        # no single ETF was out of a 3-point band: 16.6 % against 15 %
        assert all(abs(float(up["weights_before"][i]) - 0.15) < 0.03 for i in eq)

        (down,) = for_account(values, "D")
        # equity 7 points under and bonds 7 over are equally bad: the first group named is the reason
        assert down["reason"] == {
            "group": "equity",
            "weight": pytest.approx(0.53, abs=1e-3),
            "target": 0.6,
            "band": 0.03,
        }
        eq, bd = etfs("D")
        assert {leg["instrument"]: leg["side"] for leg in down["legs"]} == {
            **{i: "buy" for i in eq},
            **{i: "sell" for i in bd},
        }
        assert class_weights(down["weights_after"], "D") == pytest.approx((0.6, 0.4), abs=2e-3)

        await passes_after(worker)
        await orders.to_end()
        assert for_account(orders.values(), "I") == [], "62 % equity is inside its class band"
        assert len(for_account(orders.values(), "U")) == 1 and len(for_account(orders.values(), "D")) == 1
    drift = orjson.loads(await redis_client.hget(keys.account("I"), "drift"))
    assert drift["status"] == "ok"  # rewritten after its 2-point move, with the class weights
    assert drift["groups"] == {
        "equity": pytest.approx(0.62, abs=1e-3),
        "bonds": pytest.approx(0.38, abs=1e-3),
    }
    assert worker.alive


async def test_a_sleeve_past_its_stop_loss_is_sold_once_and_on_call_sees_why(
    settings: Settings, workers, stack, redis_client
):
    # K: 90 % in two large caps, a 10 % microcap sleeve with a 15 % stop-loss; the microcaps fall 20 %
    t = settings.topics
    core, micro = ["K-EQ0", "K-EQ1"], ["K-MC0", "K-MC1"]
    recs: list[Any] = [(t.instruments, instrument(i, lot=0.0001, tier="large")) for i in core]
    recs += [(t.instruments, instrument(i, lot=1, tier="micro")) for i in micro]
    recs += [(t.quotes, quote(i, 100.0, 1)) for i in core] + [(t.quotes, quote(i, 10.0, 1)) for i in micro]
    held = [(i, 450.0) for i in core] + [(i, 500.0) for i in micro] + [("CASH", 0.0)]
    recs += [(t.positions, position("K", i, q, n)) for n, (i, q) in enumerate(held, 1)]
    sleeve = {"members": micro, "band": {"abs": 0.02}, "opened_at": now_ms(), "kill": {"stop_loss": 0.15}}
    weights = {**{i: 0.45 for i in core}, **{i: 0.05 for i in micro}}
    recs.append((t.targets, targets("K", weights, groups={"micro": sleeve})))
    await produce(stack.bootstrap, recs)
    async with TopicReader(stack, t.orders) as orders, TopicReader(stack, t.alerts) as alerts:
        workers()
        await wait_for("K evaluated", lambda: account_field(redis_client, settings, "K", "drift"), timeout=60)
        await produce(stack.bootstrap, [(t.quotes, quote(i, 8.0, 2)) for i in micro])
        (fired,) = await alerts.wait("sleeve_stopped", lambda v: alerts_of(v, "sleeve_stopped", "K"))
        assert fired["details"]["trigger"] == "stop_loss"
        (order,) = await orders.wait("the liquidation", lambda v: for_account(v, "K"))
        assert {leg["instrument"]: leg["qty"] for leg in order["legs"] if leg["side"] == "sell"} == {
            "K-MC0": "500",
            "K-MC1": "500",
        }
        async with Runbook("sleeve_stopped", stack, settings.namespace, ACCOUNT="K") as rb:
            shown = (await rb.run("streamproc inspect account")).stdout
            assert re.search(r"sleeve .*micro.*STOPPED by stop_loss", shown), shown
            assert f"last order     {order['event_id']}" in shown and "WORKING" in shown  # still to fill
            topics = (await rb.run("streamproc inspect topics")).stdout
            assert re.search(rf"{t.executions}\s+0\s+never", topics), topics  # nobody answered yet
