"""Portfolio rules through the worker's intake and evaluator, in-process: explicit liquidation of what
the model dropped, across a restart (the flag is state, loaded with the account)."""

from __future__ import annotations

from typing import Any

import orjson

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
