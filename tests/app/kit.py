"""In-process scenario helpers over the test kit: settings, one 60/40 account fed through intake, quotes
applied as the feed would, and the evaluation passes run by hand."""

from __future__ import annotations

from typing import Any

import orjson

from streamproc.app.deadletters import Record
from streamproc.settings import Settings
from streamproc.testkit import InMemoryWorker
from streamproc.wire.contract import Contract
from tests.conftest import ROOT

CONTRACT = Contract(ROOT / "schemas")
# end offsets for ``watcher.tick`` that never move: no feed silence is judged
QUIET = {"quotes": 0, "positions": 0, "targets": 0, "instruments": 0, "deadletter": 0}


def settings(**env: str) -> Settings:
    return Settings.from_env(
        {
            "STREAMPROC_NAMESPACE": "t",
            "STREAMPROC_ORDER_COOLDOWN_S": "300",
            "STREAMPROC_ORDER_SETTLE_S": "0.2",
            "STREAMPROC_OUTLIER_MOVE": "0.5",  # big moves make clear breaches
            "STREAMPROC_STORM_MIN_ACCOUNTS": "100000",
            **env,
        }
    )


async def own(w: InMemoryWorker, *partitions: int) -> None:
    """Assign account partitions to the worker and wait until they are loaded."""
    await w.parts.ownership.on_assigned(set(partitions))
    for task in list(w.parts.ownership.loading.values()):
        await task


def quote(w: InMemoryWorker, instrument: str, mid: float, seq: int) -> None:
    """A quote applied to the worker's prices (what its feed does with a decoded batch)."""
    ts = int(w.clock.time() * 1000)
    w.parts.prices.accept(
        [{"instrument": instrument, "bid": mid - 0.01, "ask": mid + 0.01, "seq": seq, "ts": ts}]
    )


async def open_account(
    w: InMemoryWorker, account: str, partition: int = 0, eq: float = 600.0, bond: float = 800.0
) -> None:
    """Positions (EQ, BOND, CASH) and 60/40 targets at +-3 points, through the worker's intake."""
    t = w.parts.settings.topics
    ts = int(w.clock.time() * 1000)
    docs = [
        (t.positions, {"account": account, "instrument": i, "qty": q, "seq": s, "ts": ts})
        for s, (i, q) in enumerate((("EQ", eq), ("BOND", bond), ("CASH", 0.0)), start=1)
    ]
    targets = {"account": account, "version": 1, "weights": {"EQ": 0.6, "BOND": 0.4}, "band": {"abs": 0.03}}
    docs.append((t.targets, {**targets, "ts": ts}))
    await w.parts.intake.on_records(
        [
            Record(topic, partition, k, account.encode(), orjson.dumps(doc))
            for k, (topic, doc) in enumerate(docs)
        ]
    )


def market(w: InMemoryWorker, eq: float = 100.0, seq: int = 1) -> None:
    quote(w, "EQ", eq, seq)
    quote(w, "BOND", 50.0, seq)


def orders(w: InMemoryWorker) -> list[dict[str, object]]:
    return [orjson.loads(r.value) for r in w.publisher.sent(w.parts.settings.topics.orders)]


async def opened(w: InMemoryWorker) -> None:
    """Account A owned, opened at 60/40 in band and evaluated once."""
    await own(w, 0)
    market(w)
    await open_account(w, "A")
    w.clock.advance(1)
    await w.parts.evaluator.run_once()


async def ordered(w: InMemoryWorker) -> dict[str, Any]:
    """Account A owned, opened in band, then EQ rallies: its one order (sell EQ, buy BOND)."""
    await opened(w)
    quote(w, "EQ", 132.0, 2)
    assert await w.parts.evaluator.run_once() == 1
    (order,) = orders(w)
    return order
