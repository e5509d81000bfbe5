"""The fill simulator on the real broker and Redis: an order delivered twice is filled once, at the quote's
bid and ask (not the order's prices), with positions continuing the account's seqs."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import uuid

import orjson
import pytest

from streamproc.settings import Settings
from streamproc.sim import fill
from streamproc.sim.messages import position, produce
from streamproc.wire.contract import Contract
from tests.integration.scenario import group_caught_up
from tests.integration.workers import TopicReader, wait_for

pytestmark = pytest.mark.integration


def _order(contract: Contract) -> dict[str, object]:
    """The schema example's shape: sell 10 LC-0001, buy 20 BD-0001, at reference prices off the market."""
    doc = copy.deepcopy(contract.examples("orders")[0])
    doc["event_id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"fill-test|{uuid.uuid4()}"))
    doc["account"] = "ACC-1"
    doc["legs"] = [
        {"instrument": "LC-0001", "side": "sell", "qty": "10.0000", "price": "101.5", "notional": "1015"},
        {"instrument": "BD-0001", "side": "buy", "qty": "20.00", "price": "48", "notional": "960"},
    ]
    doc["inputs"] = {"positions_seq": 3, "targets_version": 1, "attempt": 0}
    contract.validate("orders", doc)
    return doc


async def test_an_order_delivered_twice_is_filled_once_at_the_quotes(
    settings: Settings, stack, admin, redis_client
):
    t = settings.topics
    contract = Contract(settings.schemas_dir)
    order = _order(contract)
    quotes = [
        (
            t.quotes,
            (
                b"LC-0001",
                orjson.dumps({"instrument": "LC-0001", "bid": 99.98, "ask": 100.02, "seq": 1, "ts": 1}),
            ),
        ),
        (
            t.quotes,
            (
                b"BD-0001",
                orjson.dumps({"instrument": "BD-0001", "bid": 49.99, "ask": 50.01, "seq": 1, "ts": 1}),
            ),
        ),
    ]
    opening = [
        (t.positions, position("ACC-1", "LC-0001", "100", 1)),
        (t.positions, position("ACC-1", "BD-0001", "200.00", 2)),
        (t.positions, position("ACC-1", "CASH", "1000", 3)),
    ]
    twice = [(t.orders, (b"ACC-1", orjson.dumps(order)))] * 2
    await produce(stack.bootstrap, quotes + opening + twice)

    stats = fill.FillStats()
    task = asyncio.create_task(fill.run(settings, stats=stats))
    try:
        async with TopicReader(stack, t.positions) as positions:
            await positions.wait("the fill's positions", lambda v: len(v) >= 4)
            await wait_for(
                "both deliveries taken", lambda: stats.filled + stats.duplicates == 2 or task.done()
            )
            await wait_for(
                "the orders committed",
                lambda: group_caught_up(admin, f"{settings.namespace}.fill", [t.orders]),
            )
            await positions.to_end()
            values = positions.values()
        async with TopicReader(stack, t.executions) as reports:  # the fill created it at start
            (report,) = await reports.wait("the execution report", lambda v: len(v) >= 1)
            await reports.to_end()
        for v in values:
            contract.validate("positions", v)
        # sell 10 at the bid 99.98 = 999.80, buy 20 at the ask 50.01 = 1000.20: cash 1000 - 0.40
        (fill_doc,) = values[3:]
        assert fill_doc["account"] == "ACC-1" and fill_doc["seq"] == 4
        assert [(c["instrument"], c["qty"]) for c in fill_doc["changes"]] == [
            ("LC-0001", "90.0000"),
            ("BD-0001", "220.00"),
            ("CASH", "999.6"),
        ]
        contract.validate("executions", report)
        assert len(reports.values()) == 1, "one report: the duplicate delivery was not filled again"
        assert report["event_id"] == order["event_id"] and {leg["state"] for leg in report["legs"]} == {
            "filled"
        }
        assert (stats.orders, stats.filled, stats.duplicates, stats.invalid) == (2, 1, 1, 0)
        assert stats.positions_published == 1
        claims = fill.RedisClaims(redis_client, settings.redis_prefix)  # the fill simulator's own keys
        assert await redis_client.exists(claims.prefix + str(order["event_id"])) == 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
