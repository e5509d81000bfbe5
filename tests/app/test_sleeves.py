"""Sleeves with kill criteria, in-process: the calendar stop, the stop-loss and the drawdown stop each
liquidate the sleeve once (its weight going to the rest of the model), survive a restart between the
trigger and the order without a second liquidation, and raise one ``sleeve_stopped`` alert."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from streamproc.app.deadletters import Record
from streamproc.testkit import InMemoryWorker, worker
from tests.app.kit import CONTRACT, orders, own, quote, settings

CORE, MICRO = ["CORE0", "CORE1"], ["MC0", "MC1"]
DAY = 86_400.0


def market(w: InMemoryWorker, micro: float, seq: int) -> None:
    for c in CORE:
        quote(w, c, 100.0, seq)
    for m in MICRO:
        quote(w, m, micro, seq)


async def feed(w: InMemoryWorker, docs: list[tuple[str, dict[str, Any]]]) -> None:
    ts = int(w.clock.time() * 1000)
    await w.parts.intake.on_records(
        [Record(topic, 0, k, b"A", orjson.dumps({**doc, "ts": ts})) for k, (topic, doc) in enumerate(docs)]
    )


async def open_sleeve(w: InMemoryWorker, kill: dict[str, float]) -> None:
    """90 % in two large caps, a 10 % microcap sleeve (+-2 points) with ``kill``, on target at 100,000."""
    t = w.parts.settings.topics
    held = [("CORE0", 450.0), ("CORE1", 450.0), ("MC0", 500.0), ("MC1", 500.0), ("CASH", 0.0)]
    docs: list[tuple[str, dict[str, Any]]] = [
        (t.positions, {"account": "A", "instrument": i, "qty": q, "seq": n})
        for n, (i, q) in enumerate(held, 1)
    ]
    opened = int(w.clock.time() * 1000)
    sleeve = {"members": MICRO, "band": {"abs": 0.02}, "opened_at": opened, "kill": kill}
    weights = {"CORE0": 0.45, "CORE1": 0.45, "MC0": 0.05, "MC1": 0.05}
    docs.append((t.targets, {"account": "A", "version": 1, "weights": weights, "groups": {"micro": sleeve}}))
    await feed(w, docs)


async def passes(w: InMemoryWorker, micro: float, seq: int, n: int = 3, advance: float = 1.0) -> None:
    for k in range(n):
        w.clock.advance(advance if k == 0 else 1.0)
        market(w, micro, seq + k)
        await w.parts.evaluator.run_once()


def rebalances(w: InMemoryWorker) -> list[dict[str, Any]]:
    return [o for o in orders(w) if o["type"] == "rebalance"]


def alerts(w: InMemoryWorker) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for r in w.publisher.sent(w.parts.settings.topics.alerts)]


def assert_liquidation(order: dict[str, Any], trigger: str) -> None:
    CONTRACT.validate("orders", order)
    assert order["reason"]["group"] == "micro" and order["reason"]["trigger"] == trigger
    sells = {leg["instrument"]: leg["qty"] for leg in order["legs"] if leg["side"] == "sell"}
    assert sells == {"MC0": "500", "MC1": "500"}, order["legs"]  # the exact holdings
    buys = {leg["instrument"] for leg in order["legs"] if leg["side"] == "buy"}
    assert buys == set(CORE), "the sleeve's weight goes to the rest of the model"
    assert order["inputs"]["sleeves_closed"] == 1
    assert order["weights_after"]["CORE0"] == pytest.approx(0.5, abs=2e-3)


@pytest.mark.parametrize(
    ("kill", "path", "trigger"),
    [
        ({"max_days": 30}, [(10.0, 31 * DAY)], "max_days"),
        ({"stop_loss": 0.2}, [(7.5, 1.0)], "stop_loss"),
        ({"max_drawdown": 0.1, "stop_loss": 0.5}, [(12.0, 1.0), (10.5, 1.0)], "max_drawdown"),
    ],
)
async def test_a_kill_criterion_liquidates_the_sleeve_once(
    kill: dict[str, float], path: list[tuple[float, float]], trigger: str
) -> None:
    w = worker(settings(), CONTRACT)
    await own(w, 0)
    market(w, 10.0, 1)
    await open_sleeve(w, kill)
    await passes(w, 10.0, 2)
    assert rebalances(w) == []
    seq = 5  # quote seqs stay consecutive: a jump would flag a quote gap and hold the judgement
    for micro, advance in path:
        await passes(w, micro, seq, advance=advance)
        seq += 3
    (order,) = rebalances(w)
    assert_liquidation(order, trigger)
    stored = await w.store.load_account("A")
    assert stored is not None and stored.sleeves is not None
    assert orjson.loads(stored.sleeves)["micro"]["closed"]["trigger"] == trigger
    await passes(w, path[-1][0], seq)
    assert len(rebalances(w)) == 1, "stopped once"
    (fired,) = [a for a in alerts(w) if a["type"] == "sleeve_stopped"]
    CONTRACT.validate("alerts", fired)
    assert (
        fired["state"] == "firing" and fired["severity"] == "info" and fired["details"]["trigger"] == trigger
    )
    assert fired["runbook"] == "runbooks/sleeve_stopped.md"


async def test_a_restart_between_the_trigger_and_the_order_liquidates_once_and_the_fill_ends_the_alert() -> (
    None
):
    s = settings()
    w = worker(s, CONTRACT)
    await own(w, 0)
    market(w, 10.0, 1)
    await open_sleeve(w, {"stop_loss": 0.2})
    await passes(w, 10.0, 2)
    w.clock.advance(1)
    market(w, 7.5, 5)
    await w.parts.evaluator.run_once()  # the trigger: stored, but no order yet (the next pass sells)
    assert rebalances(w) == []
    stored = await w.store.load_account("A")
    assert stored is not None and stored.sleeves is not None and b"stop_loss" in stored.sleeves

    later = worker(s, CONTRACT, store=w.store, publisher=w.publisher, clock=w.clock)
    await own(later, 0)
    await passes(later, 7.5, 6)
    (order,) = rebalances(later)
    assert_liquidation(order, "stop_loss")
    await passes(later, 7.5, 9)
    assert len(rebalances(later)) == 1

    # the fill: the sleeve is sold out, the alert resolves, nothing else is ordered
    t = s.topics
    changes = [{"instrument": "MC0", "qty": 0.0}, {"instrument": "MC1", "qty": 0.0}]
    cash = 0.0
    for leg in order["legs"]:
        signed = float(leg["qty"]) * (1 if leg["side"] == "buy" else -1)
        cash -= signed * float(leg["price"])
        if leg["side"] == "buy":
            changes.append({"instrument": leg["instrument"], "qty": 450.0 + signed})
    changes.append({"instrument": "CASH", "qty": round(cash, 2)})
    await feed(later, [(t.positions, {"account": "A", "changes": changes, "seq": 6})])
    await passes(later, 7.5, 12)
    assert len(rebalances(later)) == 1
    states = [a["state"] for a in alerts(later) if a["type"] == "sleeve_stopped"]
    assert states == ["firing", "resolved"], states
