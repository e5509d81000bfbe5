"""Depth-aware sizing in-process: with a thin displayed book a leg is capped at its share of the size
shown; the rest waits (the capacity report says how much) and a later order, after the fill, trades it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from streamproc.app.deadletters import Record
from streamproc.app.decisions import state_counts
from streamproc.testkit import InMemoryWorker, worker
from tests.app.kit import CONTRACT, orders, own, settings

LIMITS = """\
version = "depth-1"
tiers = ["large", "micro"]

[tier.micro]
max_participation = 0.1
"""


def market(w: InMemoryWorker, seq: int) -> None:
    ts = int(w.clock.time() * 1000)
    w.parts.prices.accept(
        [
            {"instrument": "EQ", "bid": 100.0, "ask": 100.0, "seq": seq, "ts": ts},
            # a thin microcap book: 10,000 shares shown each side
            {
                "instrument": "MC",
                "bid": 10.0,
                "ask": 10.0,
                "seq": seq,
                "ts": ts,
                "bid_size": 10_000,
                "ask_size": 10_000,
            },
        ]
    )


async def feed(w: InMemoryWorker, docs: list[tuple[str, dict[str, Any]]], offset: int) -> None:
    ts = int(w.clock.time() * 1000)
    await w.parts.intake.on_records(
        [
            Record(topic, 0, offset + k, b"A", orjson.dumps({**doc, "ts": ts}))
            for k, (topic, doc) in enumerate(docs)
        ]
    )


async def passes(w: InMemoryWorker, seq: int, n: int = 3) -> int:
    for k in range(n):
        w.clock.advance(1.0)
        market(w, seq + k)
        await w.parts.evaluator.run_once()
    return seq + n


async def test_a_thin_book_caps_the_leg_and_a_later_order_buys_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "limits.toml"
    path.write_text(LIMITS)
    w = worker(settings(STREAMPROC_LIMITS_FILE=str(path)), CONTRACT)
    t = w.parts.settings.topics
    await own(w, 0)
    w.parts.prices.set_reference({"instrument": "EQ", "lot": 0.0001, "tier": "large"})
    w.parts.prices.set_reference({"instrument": "MC", "lot": 1, "tier": "micro"})
    market(w, 1)
    held = [("EQ", 1000.0), ("CASH", 0.0)]
    docs: list[tuple[str, dict[str, Any]]] = [
        (t.positions, {"account": "A", "instrument": i, "qty": q, "seq": n})
        for n, (i, q) in enumerate(held, 1)
    ]
    docs.append((t.targets, {"account": "A", "version": 1, "weights": {"EQ": 0.5, "MC": 0.5}}))
    await feed(w, docs, 0)
    seq = await passes(w, 2)
    (first,) = orders(w)
    legs = {leg["instrument"]: (leg["side"], leg["qty"]) for leg in first["legs"]}
    # 5,000 MC wanted; 10 % of the 10,000 shown: 1,000 now
    assert legs == {"EQ": ("sell", "500"), "MC": ("buy", "1000")}
    capacity = w.parts.accounts.capacity
    (mc,) = capacity.totals().values()
    assert (mc.buy, mc.sell, mc.accounts) == (4000.0, 0.0, 1)
    assert capacity.notional() == (40_000.0, 0.0)
    assert state_counts(w.parts.accounts)["left_out_depth"] == 1
    summary = w.parts.watch.summary(w.parts.accounts, w.parts.prices.book, [0], 0, {}, False)
    assert summary["waiting"] == {"MC": {"buy": 4000.0, "sell": 0.0, "accounts": 1}}

    # the fill comes back as positions: the account is free, and the next order buys the next 1,000
    fill = {
        "account": "A",
        "changes": [
            {"instrument": "EQ", "qty": 500.0},
            {"instrument": "MC", "qty": 1000.0},
            {"instrument": "CASH", "qty": 40_000.0},
        ],
        "seq": 3,
    }
    await feed(w, [(t.positions, fill)], 10)
    await passes(w, seq)
    second = orders(w)[1]
    assert second["type"] == "rebalance" and second["event_id"] != first["event_id"]
    assert [(leg["instrument"], leg["side"], leg["qty"]) for leg in second["legs"]] == [("MC", "buy", "1000")]
    (mc,) = capacity.totals().values()
    assert mc.buy == 3000.0
