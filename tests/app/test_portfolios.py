"""Portfolio rules through the worker's intake and evaluator, in-process: explicit liquidation of what
the model dropped, across a restart (the flag is state, loaded with the account)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from streamproc.app.deadletters import Record
from streamproc.testkit import InMemoryWorker, worker
from tests.app.kit import CONTRACT, orders, own, quote, settings


async def feed(
    w: InMemoryWorker, account: str, docs: list[tuple[str, dict[str, Any]]], partition: int = 0
) -> None:
    """Records through the worker's intake, as its agents would hand them over."""
    ts = int(w.clock.time() * 1000)
    await w.parts.intake.on_records(
        [
            Record(topic, partition, k, account.encode(), orjson.dumps({**doc, "ts": ts}))
            for k, (topic, doc) in enumerate(docs)
        ]
    )


async def passes(w: InMemoryWorker, n: int = 3) -> None:
    for _ in range(n):
        w.clock.advance(1)
        await w.parts.evaluator.run_once()


async def test_liquidate_exits_an_untargeted_holding_inside_its_band_and_survives_a_restart() -> None:
    s = settings()
    w = worker(s, CONTRACT)
    await own(w, 0)
    for k, (inst, mid) in enumerate((("EQ", 100.0), ("BOND", 50.0), ("OLD", 10.0))):
        quote(w, inst, mid, 1 + k)
    t = s.topics
    holdings = (("EQ", 600.0), ("BOND", 760.0), ("OLD", 20.123456))  # OLD ~2 % of 1e5, band 3 points
    docs: list[tuple[str, dict[str, Any]]] = [
        (t.positions, {"account": "A", "instrument": i, "qty": q, "seq": n})
        for n, (i, q) in enumerate(holdings, 1)
    ]
    docs.append((t.positions, {"account": "A", "instrument": "CASH", "qty": 0.0, "seq": 4}))
    model = {"account": "A", "weights": {"EQ": 0.6, "BOND": 0.38}}
    await feed(w, "A", [*docs, (t.targets, {**model, "version": 1})])
    await passes(w)
    assert orders(w) == [], "inside every band: no order without the flag"

    restarted = worker(s, CONTRACT, store=w.store, publisher=w.publisher, clock=w.clock)
    for k, (inst, mid) in enumerate((("EQ", 100.0), ("BOND", 50.0), ("OLD", 10.0))):
        quote(restarted, inst, mid, 1 + k)
    await own(restarted, 0)
    await feed(restarted, "A", [(t.targets, {**model, "version": 2, "liquidate": True})])
    await passes(restarted)
    (order,) = orders(restarted)
    sells = {leg["instrument"]: leg["qty"] for leg in order["legs"] if leg["side"] == "sell"}
    assert sells["OLD"] == "20.123456", order["legs"]  # the exact holding, off the lot grid
    # (in target mode the rest goes back to its targets with the proceeds)

    # the flag is stored with the targets: a worker that loads the account later liquidates too
    later = worker(s, CONTRACT, store=restarted.store, clock=restarted.clock)
    for k, (inst, mid) in enumerate((("EQ", 100.0), ("BOND", 50.0), ("OLD", 10.0))):
        quote(later, inst, mid, 1 + k)
    await own(later, 0)
    loaded = later.parts.accounts.book
    row = loaded.accounts.get("A")
    assert row is not None
    ev = loaded.evaluate()
    assert ev.breaching[row]


EQ = [f"EQ{i}" for i in range(4)]
BD = [f"BD{i}" for i in range(4)]
GROUPS = {"equity": {"members": EQ, "band": {"abs": 0.03}}, "bonds": {"members": BD, "band": {"abs": 0.03}}}


def prices(w: InMemoryWorker, equity: float, seq: int) -> None:
    for e in EQ:
        quote(w, e, equity, seq)
    for b in BD:
        quote(w, b, 50.0, seq)


async def classes(w: InMemoryWorker) -> None:
    """The seed's 60/40 of 4 equity ETFs (150 each at 100) and 4 bond ETFs (200 each at 50), class bands."""
    t = w.parts.settings.topics
    held = [(e, 150.0) for e in EQ] + [(b, 200.0) for b in BD] + [("CASH", 0.0)]
    docs: list[tuple[str, dict[str, Any]]] = [
        (t.positions, {"account": "A", "instrument": i, "qty": q, "seq": n})
        for n, (i, q) in enumerate(held, 1)
    ]
    weights = {**{e: 0.15 for e in EQ}, **{b: 0.10 for b in BD}}
    docs.append((t.targets, {"account": "A", "version": 1, "weights": weights, "groups": GROUPS}))
    await feed(w, "A", docs)


async def in_band() -> InMemoryWorker:
    """A worker owning the seed's 60/40 of classes, evaluated in band (no order)."""
    w = worker(settings(), CONTRACT)
    await own(w, 0)
    prices(w, 100.0, 1)
    await classes(w)
    await passes(w)
    assert orders(w) == []
    return w


async def test_a_class_order_works_while_the_class_is_out_and_is_cancelled_once_it_is_back() -> None:
    w = await in_band()
    prices(w, 132.34, 2)  # equity 66.5 %
    await passes(w, 1)
    (order,) = orders(w)
    CONTRACT.validate("orders", order)
    assert order["reason"]["group"] == "equity"
    prices(w, 130.0, 3)  # still out: the order works, no cancel (members have no band of their own)
    await passes(w)
    assert len(orders(w)) == 1
    prices(w, 100.5, 4)  # back to 60 %: obsolete
    await passes(w)
    (cancel,) = orders(w)[1:]
    assert (
        cancel["type"] == "cancel"
        and cancel["why"] == "back_in_band"
        and cancel["cancels"] == order["event_id"]
    )


async def test_a_targets_record_with_an_instrument_in_two_groups_is_dead_lettered() -> None:
    w = worker(settings(), CONTRACT)
    await own(w, 0)
    t = w.parts.settings.topics
    twice = {"a": {"members": ["EQ0", "EQ1"]}, "b": {"members": ["EQ1"]}}
    await feed(
        w, "A", [(t.targets, {"account": "A", "version": 1, "weights": {"EQ0": 0.5}, "groups": twice})]
    )
    (dead,) = [orjson.loads(r.value) for r in w.publisher.sent(t.deadletter)]
    assert dead["reason"] == "semantic" and "EQ1 is in groups 'a' and 'b'" in dead["error"]
    assert w.parts.counters.deadletters.get("targets", "semantic") == 1


async def test_a_deposit_is_invested_with_buys_only_and_the_order_names_cash() -> None:
    w = await in_band()
    t = w.parts.settings.topics
    # a 5,000 deposit on 100,000 (4.8 %), the classes at 60/40: only cash is out of its band
    await feed(w, "A", [(t.positions, {"account": "A", "instrument": "CASH", "qty": 5000.0, "seq": 10})])
    await passes(w)
    (order,) = orders(w)
    CONTRACT.validate("orders", order)
    assert order["reason"]["instrument"] == "CASH" and order["reason"]["target"] == 0.0
    assert order["reason"]["weight"] == pytest.approx(5000 / 105_000, abs=1e-4)
    assert {leg["side"] for leg in order["legs"]} == {"buy"}
    assert {leg["instrument"] for leg in order["legs"]} == set(EQ + BD)  # all under their targets
    assert float(order["weights_after"]["CASH"]) == pytest.approx(0.0025, abs=1e-3)


def fill_of(order: dict[str, Any], held: dict[str, float], cash: float) -> tuple[list[dict[str, Any]], float]:
    """The atomic change of a full fill of ``order`` at its prices: absolute holdings and the cash."""
    changes = []
    for leg in order["legs"]:
        signed = float(leg["qty"]) * (1 if leg["side"] == "buy" else -1)
        held[leg["instrument"]] = held.get(leg["instrument"], 0.0) + signed
        cash -= signed * float(leg["price"])
        changes.append({"instrument": leg["instrument"], "qty": round(held[leg["instrument"]], 6)})
    changes.append({"instrument": "CASH", "qty": round(cash, 2)})
    return changes, cash


async def test_a_withdrawal_is_raised_from_the_overweights_kept_until_paid_out_and_released_with_it() -> None:
    s = settings()
    w = worker(s, CONTRACT)
    await own(w, 0)
    prices(w, 100.0, 1)
    await classes(w)
    await passes(w)
    t = s.topics
    weights = {**{e: 0.15 for e in EQ}, **{b: 0.10 for b in BD}}
    request = {"account": "A", "version": 2, "weights": weights, "groups": GROUPS}
    await feed(w, "A", [(t.targets, {**request, "withdrawal": {"id": "W-1", "amount": 10_000}})])
    await passes(w)
    (order,) = [o for o in orders(w) if o["type"] == "rebalance"]
    assert {leg["side"] for leg in order["legs"]} == {"sell"}, "a withdrawal sells, it never buys"
    raised = sum(float(leg["notional"]) for leg in order["legs"])
    assert 10_000 <= raised < 10_100  # at least the payout, about one lot more at most per leg

    held = {**{e: 150.0 for e in EQ}, **{b: 200.0 for b in BD}}
    changes, cash = fill_of(order, held, 0.0)
    await feed(w, "A", [(t.positions, {"account": "A", "changes": changes, "seq": 10})])
    await passes(w)
    assert len(orders(w)) == 1, "raised: the reserve is not invested"

    # a restart before the payout keeps the reserve (it comes from the stored targets)
    later = worker(s, CONTRACT, store=w.store, publisher=w.publisher, clock=w.clock)
    prices(later, 100.0, 2)
    await own(later, 0)
    await passes(later)
    assert later.parts.accounts.book.reserve("A") == 10_000
    assert len(orders(later)) == 1

    # the payout: cash leaves, the reserve with it, in one record; nothing to trade afterwards
    payout = {
        "account": "A",
        "instrument": "CASH",
        "qty": round(cash - 10_000, 2),
        "seq": 11,
        "settles": "W-1",
    }
    await feed(later, "A", [(t.positions, payout)])
    await passes(later)
    assert later.parts.accounts.book.reserve("A") == 0.0
    assert len(orders(later)) == 1
    stored = await later.store.load_account("A")
    assert stored is not None and stored.settled == "W-1"
    assert stored.drift is not None and stored.drift["status"] == "ok"
