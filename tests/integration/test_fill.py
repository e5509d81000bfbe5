"""The fill simulator on the real broker and Redis: an order delivered twice is filled once, at the quote's
bid and ask (not the order's prices), with positions continuing the account's seqs; in parts latency apart,
the last filled; stopped by a cancel; and rejected whole by a reject share of 1."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from itertools import pairwise
from typing import Any

import orjson
import pytest

from streamproc.settings import Settings, Topics
from streamproc.sim import fill
from streamproc.sim.messages import instrument, position, produce
from streamproc.wire.contract import Contract
from tests.integration.scenario import group_caught_up
from tests.integration.workers import TopicReader, wait_for

pytestmark = pytest.mark.integration


def _order(
    contract: Contract, account: str = "ACC-1", legs: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    """The schema example's shape: sell 10 LC-0001, buy 20 BD-0001, at reference prices off the market."""
    doc = copy.deepcopy(contract.examples("orders")[0])
    doc["event_id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"fill-test|{uuid.uuid4()}"))
    doc["account"] = account
    doc["legs"] = legs or [
        {"instrument": "LC-0001", "side": "sell", "qty": "10.0000", "price": "101.5", "notional": "1015"},
        {"instrument": "BD-0001", "side": "buy", "qty": "20.00", "price": "48", "notional": "960"},
    ]
    doc["inputs"] = {"positions_seq": 3, "targets_version": 1, "attempt": 0}
    contract.validate("orders", doc)
    return doc


def _cancel(contract: Contract, order: dict[str, Any]) -> dict[str, Any]:
    """An operator's cancel of ``order``, naming all its legs."""
    doc = copy.deepcopy(contract.examples("orders")[1])
    del doc["replaced_by"]
    doc.update(
        event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"fill-test-cancel|{order['event_id']}")),
        account=order["account"],
        cancels=order["event_id"],
        why="operator",
        legs=[{k: leg[k] for k in ("instrument", "side", "qty")} for leg in order["legs"]],
    )
    contract.validate("orders", doc)
    return doc


def _market(t: Topics, *accounts: str) -> list[tuple[str, tuple[bytes, bytes]]]:
    """Whole-unit lots, quotes (LC-0001 99.98 / 100.02, BD-0001 49.99 / 50.01) and each account's opening
    positions (100 LC-0001, 200.00 BD-0001, 1000 cash under seqs 1-3)."""
    out = [(t.instruments, instrument(name, lot="1")) for name in ("LC-0001", "BD-0001")]
    for name, bid, ask in (("LC-0001", 99.98, 100.02), ("BD-0001", 49.99, 50.01)):
        doc = {"instrument": name, "bid": bid, "ask": ask, "seq": 1, "ts": 1}
        out.append((t.quotes, (name.encode(), orjson.dumps(doc))))
    for account in accounts:
        out += [
            (t.positions, position(account, "LC-0001", "100", 1)),
            (t.positions, position(account, "BD-0001", "200.00", 2)),
            (t.positions, position(account, "CASH", "1000", 3)),
        ]
    return out


def _orders(t: Topics, *docs: dict[str, Any]) -> list[tuple[str, tuple[bytes, bytes]]]:
    return [(t.orders, (doc["account"].encode(), orjson.dumps(doc))) for doc in docs]


async def _published(settings: Settings, stack: Any, deliveries: int = 1) -> tuple[Contract, dict[str, Any]]:
    """ACC-1's market and opening positions, and an order for it delivered ``deliveries`` times."""
    contract = Contract(settings.schemas_dir)
    order = _order(contract)
    t = settings.topics
    await produce(stack.bootstrap, _market(t, "ACC-1") + _orders(t, *[order] * deliveries))
    return contract, order


@contextlib.asynccontextmanager
async def _filling(settings: Settings, stats: fill.FillStats, **policy: Any) -> AsyncIterator[None]:
    """`streamproc fill` with ``policy`` running in the test; a crash of it fails the test at the end."""
    task = asyncio.create_task(fill.run(settings, stats=stats, policy=fill.Policy(**policy)))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _of(values: list[dict[str, Any]], key: str, value: Any) -> list[dict[str, Any]]:
    return [v for v in values if v[key] == value]


def _states(report: dict[str, Any]) -> set[str]:
    return {leg["state"] for leg in report["legs"]}


def _cum(reports: list[dict[str, Any]], instrument: str) -> list[str]:
    return [next(leg["cum_qty"] for leg in r["legs"] if leg["instrument"] == instrument) for r in reports]


async def test_an_order_delivered_twice_is_filled_once_at_the_quotes(
    settings: Settings, stack, admin, redis_client
):
    t = settings.topics
    contract, order = await _published(settings, stack, deliveries=2)

    stats = fill.FillStats()
    async with _filling(settings, stats):
        async with TopicReader(stack, t.positions) as positions:
            await positions.wait("the fill's positions", lambda v: len(v) >= 4)
            await wait_for("both deliveries taken", lambda: stats.filled + stats.duplicates == 2)
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
        assert report["event_id"] == order["event_id"] and _states(report) == {"filled"}
        assert (stats.orders, stats.filled, stats.duplicates, stats.invalid) == (2, 1, 1, 0)
        assert stats.positions_published == 1
        claims = fill.RedisClaims(redis_client, settings.redis_prefix)  # the fill simulator's own keys
        assert await redis_client.exists(claims.prefix + str(order["event_id"])) == 1


async def test_an_order_fills_in_parts_latency_apart_each_a_positions_record_and_a_report(
    settings: Settings, stack
):
    t = settings.topics
    contract, order = await _published(settings, stack)

    stats = fill.FillStats()
    async with _filling(settings, stats, ratio=Decimal("0.5"), latency_ms=200):
        async with TopicReader(stack, t.executions) as reader:
            await reader.wait("the order filled", lambda v: any(_states(r) == {"filled"} for r in v))
            reports = reader.values()
        async with TopicReader(stack, t.positions) as positions:
            await positions.to_end()
            values = positions.values()
    fills = values[3:]
    for doc in fills:
        contract.validate("positions", doc)
    for doc in reports:
        contract.validate("executions", doc)
    # half of what is left, toward zero on the whole-unit lot: LC 5, 2, 1, 1, 1; BD 10, 5, 2, 1, 1, 1
    assert [d["seq"] for d in fills] == [4, 5, 6, 7, 8, 9] and len(reports) == 6
    assert [r["exec_id"] for r in reports] == [f"{order['event_id']}:{n}" for n in range(1, 7)]
    assert [_states(r) for r in reports] == [{"partially_filled"}] * 4 + [
        {"filled", "partially_filled"},
        {"filled"},
    ]
    assert _cum(reports, "LC-0001") == ["5", "7", "8", "9", "10.0000", "10.0000"]
    assert _cum(reports, "BD-0001") == ["10", "15", "17", "18", "19", "20.00"]
    for r in reports[:4]:
        for leg, ordered in zip(r["legs"], ("10", "20"), strict=True):
            assert Decimal(leg["cum_qty"]) + Decimal(leg["leaves_qty"]) == Decimal(ordered)
    assert all(b["ts"] - a["ts"] >= 200 for a, b in pairwise(reports))
    held = {}
    for doc in fills:
        held.update({c["instrument"]: Decimal(c["qty"]) for c in doc["changes"]})
    assert held == {"LC-0001": 90, "BD-0001": 220, "CASH": Decimal("999.6")}  # as if filled at once
    assert (stats.filled, stats.parts, stats.partly_filled, stats.positions_published) == (1, 6, 5, 6)


async def test_a_cancel_after_the_first_part_stops_the_parts_to_come(settings: Settings, stack):
    t = settings.topics
    contract = Contract(settings.schemas_dir)
    order = _order(contract)
    cancel = _cancel(contract, order)
    # ACC-2 sells 2 in parts of 1 and 1, a latency apart: published after the cancel, its second part is
    # due after the cancelled order's would have been
    sell_2 = {"instrument": "LC-0001", "side": "sell", "qty": "2", "price": "100", "notional": "200"}
    later = _order(contract, "ACC-2", [sell_2])
    await produce(stack.bootstrap, _market(t, "ACC-1", "ACC-2") + _orders(t, order))

    stats = fill.FillStats()
    filling = _filling(settings, stats, ratio=Decimal("0.5"), latency_ms=1500)
    async with filling, TopicReader(stack, t.positions) as positions:
        await positions.wait("the first part", lambda v: len(_of(v, "account", "ACC-1")) >= 4)
        await produce(stack.bootstrap, _orders(t, cancel))
        async with TopicReader(stack, t.executions) as reader:
            await reader.wait("the cancelled report", lambda v: any("cancelled" in _states(r) for r in v))
            await produce(stack.bootstrap, _orders(t, later))
            await reader.wait(
                "ACC-2 filled",
                lambda v: any(_states(r) == {"filled"} for r in _of(v, "account", "ACC-2")),
            )
            reports = _of(reader.values(), "event_id", order["event_id"])
        await positions.to_end()
        acc1 = _of(positions.values(), "account", "ACC-1")
    assert [d["seq"] for d in acc1] == [1, 2, 3, 4], "no part after the cancel"
    assert [r["exec_id"] for r in reports] == [f"{order['event_id']}:1", f"{order['event_id']}:2"]
    assert [(leg["state"], leg["cum_qty"], leg["leaves_qty"]) for leg in reports[1]["legs"]] == [
        ("cancelled", "5", "0"),
        ("cancelled", "10", "0"),
    ]
    assert {leg["reason"] for leg in reports[1]["legs"]} == {f"cancelled by {cancel['event_id']}"}
    assert (stats.cancels, stats.cancelled, stats.cancels_ignored, stats.filled) == (1, 1, 0, 1)


async def test_a_reject_share_of_one_rejects_every_order_with_a_report_and_no_positions(
    settings: Settings, stack
):
    t = settings.topics
    contract, order = await _published(settings, stack)

    stats = fill.FillStats()
    async with _filling(settings, stats, reject_share=1.0):
        async with TopicReader(stack, t.executions) as reader:
            (report,) = await reader.wait("the report", lambda v: len(v) >= 1)
            await reader.to_end()
            assert len(reader.values()) == 1
        async with TopicReader(stack, t.positions) as positions:
            await positions.to_end()
    contract.validate("executions", report)
    assert report["exec_id"] == f"{order['event_id']}:1"
    assert [d["seq"] for d in positions.values()] == [1, 2, 3], "nothing filled"
    assert [(leg["state"], leg["cum_qty"], leg["leaves_qty"], leg["reason"]) for leg in report["legs"]] == [
        ("rejected", "0", "0", "rejected by the fill stand-in (--reject-share)")
    ] * 2
    assert (stats.rejected, stats.parts, stats.filled, stats.positions_published) == (1, 0, 0, 0)
