"""The fill stand-in's parts, rejects and cancels, in-process: part sizes on the lot grid, each part one
positions record and one report (cum + leaves = ordered while a leg works), never selling more than held,
rejections drawn by event_id, and cancels that stop an order's parts."""

from __future__ import annotations

import uuid
from decimal import Decimal as D
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamproc.sim.fill_desk import Desk, FillStats, MemoryClaims, Outbox, Policy
from streamproc.sim.fill_logic import Ledger
from streamproc.sim.fill_parts import part_qty, share
from streamproc.sim.messages import instrument, position, quote
from tests.sim.fill_kit import CONTRACT, a_leg, book, cancel_of, decoded, rebalance

T0 = 1795000000000


@pytest.mark.parametrize(
    ("remaining", "lot", "ratio", "part"),
    [
        ("10", "1", "0.5", "5"),
        ("5", "1", "0.5", "2"),  # 2.5 toward zero
        ("3", "1", "0.5", "1"),
        ("1", "1", "0.5", "1"),  # half a lot rounds to none: one lot, the rest
        ("10", "1", "0.05", "1"),  # at least one lot
        ("20.00", "0.01", "0.3", "6.00"),
        ("358.080275", "0.0001", "0.5", "179.0401"),  # an exit off the grid
        ("0.000175", "0.0001", "0.5", "0.000175"),  # less than a lot would be left: all of it
        ("0.00005", "0.0001", "0.5", "0.00005"),  # below one lot: whole
        ("7.25", "1", "1", "7.25"),  # ratio 1: at once, as ordered
    ],
)
def test_a_part_is_the_ratio_of_what_is_left_toward_zero_on_the_lot_grid(
    remaining: str, lot: str, ratio: str, part: str
) -> None:
    got = part_qty(D(remaining), D(lot), D(ratio))
    assert got == D(part) and str(got) == part


def test_the_lot_is_the_instruments_else_the_precision_the_leg_is_given_to() -> None:
    ledger = Ledger(CONTRACT)
    assert ledger.on_instrument(*instrument("EQ", lot="1"))
    assert not ledger.on_instrument(*instrument("BOND", tier="bond"))  # no lot
    assert ledger.lot("EQ", D("10.0000")) == D("1")
    assert (ledger.lot("BOND", D("20.00")), ledger.lot("X", D("10"))) == (D("0.01"), D("1"))


def _lots(ledger: Ledger) -> Ledger:
    for name in ("EQ", "BOND"):
        assert ledger.on_instrument(*instrument(name, lot="1"))
    return ledger


def _drain(desk: Desk, ts: int) -> list[dict[str, Any]]:
    """The reports of every part to come, each asked for when due (from ``ts``)."""
    reports = []
    while desk.working:
        ts = max(ts, min(p.due_ms for p in desk.working.values()))
        reports += decoded(desk.due(ts).executions, "executions")
    return reports


def _legs(report: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    return [(leg["instrument"], leg["state"], leg["cum_qty"], leg["leaves_qty"]) for leg in report["legs"]]


def _order() -> dict[str, Any]:
    return rebalance("A", [a_leg("EQ", "sell", "10.0000"), a_leg("BOND", "buy", "20.00")], positions_seq=3)


async def test_without_latency_every_part_comes_at_once_each_one_record_and_one_report() -> None:
    ledger, stats = _lots(book()), FillStats()
    desk = Desk(ledger, MemoryClaims(), stats, Policy(ratio=D("0.5")))
    order = _order()
    out = await desk.take(order, T0)
    positions, reports = decoded(out.positions), decoded(out.executions, "executions")
    assert [p["seq"] for p in positions] == [4, 5, 6, 7, 8, 9]
    assert [r["exec_id"] for r in reports] == [f"{order['event_id']}:{n}" for n in range(1, 7)]
    # EQ 10: 5, 2, 1, 1, 1; BOND 20: 10, 5, 2, 1, 1, 1 (a part has what works: BOND alone at the end)
    assert [_legs(r) for r in reports] == [
        [("EQ", "partially_filled", "5", "5.0000"), ("BOND", "partially_filled", "10", "10.00")],
        [("EQ", "partially_filled", "7", "3.0000"), ("BOND", "partially_filled", "15", "5.00")],
        [("EQ", "partially_filled", "8", "2.0000"), ("BOND", "partially_filled", "17", "3.00")],
        [("EQ", "partially_filled", "9", "1.0000"), ("BOND", "partially_filled", "18", "2.00")],
        [("EQ", "filled", "10.0000", "0"), ("BOND", "partially_filled", "19", "1.00")],
        [("EQ", "filled", "10.0000", "0"), ("BOND", "filled", "20.00", "0")],
    ]
    assert [[c["instrument"] for c in p["changes"]] for p in positions] == [["EQ", "BOND", "CASH"]] * 5 + [
        ["BOND", "CASH"]
    ]
    assert {leg["avg_price"] for r in reports for leg in r["legs"]} == {"132.34", "50.01"}
    # the same end as filled at once: 10 * 132.34 in, 20 * 50.01 out
    assert ledger.accounts["A"].qty == {"EQ": D("590"), "BOND": D("820.00"), "CASH": D("323.2")}
    assert ledger.accounts["A"].seq == 9 and desk.working == {}
    assert (stats.filled, stats.parts, stats.partly_filled, stats.positions_published) == (1, 6, 5, 6)


async def test_with_latency_a_part_is_due_that_long_after_the_one_before() -> None:
    ledger, stats = _lots(book()), FillStats()
    desk = Desk(ledger, MemoryClaims(), stats, Policy(ratio=D("0.5"), latency_ms=100))
    out = await desk.take(_order(), T0)
    assert len(out.positions) == len(out.executions) == 1
    assert desk.idle_ms(T0 + 30, 200) == 70
    assert desk.due(T0 + 99) == Outbox()
    due = T0 + 100
    while desk.working:
        part = desk.due(due)
        (report,) = decoded(part.executions, "executions")
        assert report["ts"] == due and len(part.positions) == 1
        due += 100
    assert report["exec_id"].endswith(":6") and {leg["state"] for leg in report["legs"]} == {"filled"}
    assert desk.idle_ms(due, 200) == 200 and (stats.filled, stats.parts) == (1, 6)


async def test_a_part_never_sells_more_than_is_held_then_and_the_leg_ends_with_what_it_has() -> None:
    ledger, stats = _lots(book()), FillStats()
    desk = Desk(ledger, MemoryClaims(), stats, Policy(ratio=D("0.5"), latency_ms=100))
    await desk.take(_order(), T0)  # sold 5 EQ of 600
    assert ledger.on_position(*position("A", "EQ", 1, 5))  # a transfer out between the parts
    out = desk.due(T0 + 100)
    (report,) = decoded(out.executions, "executions")
    (doc,) = decoded(out.positions)
    assert (doc["changes"][0]["instrument"], doc["changes"][0]["qty"]) == ("EQ", "0")
    eq, bond = report["legs"]
    assert (eq["state"], eq["cum_qty"], eq["leaves_qty"], eq["reason"]) == (
        "cancelled",
        "6",
        "0",
        "not enough held or cash",
    )
    assert (bond["state"], bond["cum_qty"], bond["leaves_qty"]) == ("partially_filled", "15", "5.00")
    _drain(desk, T0)
    assert ledger.accounts["A"].qty["EQ"] == 0 and (stats.filled, stats.partial) == (1, 1)


@settings(max_examples=200, deadline=None)
@given(
    held=st.integers(0, 40),
    ordered=st.integers(1, 40),
    ratio=st.decimals(D("0.01"), D("1"), places=2),
)
async def test_parts_keep_cum_plus_leaves_at_the_order_and_never_sell_more_than_held(
    held: int, ordered: int, ratio: D
) -> None:
    ledger = _lots(Ledger(CONTRACT))
    ledger.on_position(*position("A", "EQ", held, 1))
    ledger.on_quote(*quote("EQ", 10.0, 1, spread_bps=0))
    desk = Desk(ledger, MemoryClaims(), FillStats(), Policy(ratio=ratio))
    out = await desk.take(rebalance("A", [a_leg("EQ", "sell", str(ordered))], positions_seq=1), T0)
    reports = decoded(out.executions, "executions")
    for r in reports[:-1]:
        (leg,) = r["legs"]
        assert leg["state"] == "partially_filled" and D(leg["cum_qty"]) + D(leg["leaves_qty"]) == ordered
    (last,) = reports[-1]["legs"]
    assert last["state"] == ("filled" if held >= ordered else "cancelled") and last["leaves_qty"] == "0"
    assert D(last["cum_qty"]) == min(held, ordered) == held - ledger.accounts["A"].qty["EQ"]
    assert len(reports) <= ordered  # at least one lot a part


def test_the_reject_share_draw_is_fixed_by_the_event_id_and_uniform() -> None:
    assert share("3f1f7c51-96a2-5d1e-9a55-0c86f0c9b0aa") == 0.6576995920260948  # blake2b, 8 bytes
    draws = [share(str(uuid.uuid5(uuid.NAMESPACE_URL, f"order|{n}"))) for n in range(4000)]
    assert all(0 <= d < 1 for d in draws)
    assert 0.23 < sum(d < 0.25 for d in draws) / len(draws) < 0.27


async def test_a_rejected_share_of_orders_is_rejected_whole_with_no_positions() -> None:
    ledger, stats = book(), FillStats()
    claims = MemoryClaims()
    desk = Desk(ledger, claims, stats, Policy(reject_share=1.0))
    order = _order()
    out = await desk.take(order, T0)
    (report,) = decoded(out.executions, "executions")
    assert out.positions == [] and report["exec_id"] == f"{order['event_id']}:1"
    assert [(*leg, r["reason"]) for leg, r in zip(_legs(report), report["legs"], strict=True)] == [
        ("EQ", "rejected", "0", "0", "rejected by the fill stand-in (--reject-share)"),
        ("BOND", "rejected", "0", "0", "rejected by the fill stand-in (--reject-share)"),
    ]
    assert (stats.rejected, stats.filled, ledger.accounts["A"].seq) == (1, 0, 3)
    assert await desk.take(order, T0 + 1) == Outbox() and stats.duplicates == 1
    kept = Desk(book(), MemoryClaims(), FillStats(), Policy(reject_share=0.0))
    assert (await kept.take(order, T0)).positions


async def test_legs_on_restricted_instruments_are_rejected_and_the_others_fill() -> None:
    ledger, stats = book(), FillStats()
    desk = Desk(ledger, MemoryClaims(), stats, Policy(reject_instruments=frozenset({"BOND"})))
    out = await desk.take(_order(), T0)
    (doc,) = decoded(out.positions)
    (report,) = decoded(out.executions, "executions")
    assert [(c["instrument"], c["qty"]) for c in doc["changes"]] == [("EQ", "590.0000"), ("CASH", "1323.4")]
    assert _legs(report) == [("EQ", "filled", "10.0000", "0"), ("BOND", "rejected", "0", "0")]
    assert report["legs"][1]["reason"] == "restricted instrument" and "avg_price" not in report["legs"][1]
    assert (stats.filled, stats.legs_rejected, stats.rejected) == (1, 1, 0)
    only = rebalance("A", [a_leg("BOND", "buy", "1.00")], positions_seq=4)
    out = await desk.take(only, T0 + 1)
    assert out.positions == [] and _legs(decoded(out.executions, "executions")[0]) == [
        ("BOND", "rejected", "0", "0")
    ]
    assert (stats.rejected, stats.legs_rejected) == (1, 2)


async def test_a_cancel_stops_the_parts_to_come_and_reports_what_was_filled() -> None:
    ledger, stats = _lots(book()), FillStats()
    desk = Desk(ledger, MemoryClaims(), stats, Policy(ratio=D("0.5"), latency_ms=100))
    order = rebalance("A", [a_leg("EQ", "sell", "10.0000"), a_leg("BOND", "buy", "1.00")], positions_seq=3)
    await desk.take(order, T0)  # EQ 5 of 10, BOND 1 of 1
    cancel = cancel_of(order)
    out = await desk.answer(cancel, T0 + 50)
    (report,) = decoded(out.executions, "executions")
    assert out.positions == [] and report["exec_id"] == f"{order['event_id']}:2"
    assert _legs(report) == [("EQ", "cancelled", "5", "0"), ("BOND", "filled", "1.00", "0")]
    assert report["legs"][0]["reason"] == f"cancelled by {cancel['event_id']}"
    assert report["legs"][0]["avg_price"] == "132.34" and "reason" not in report["legs"][1]
    assert desk.due(T0 + 10**6) == Outbox() and desk.working == {}
    assert ledger.accounts["A"].qty["EQ"] == D("595") and ledger.accounts["A"].seq == 4
    assert await desk.answer(cancel, T0 + 60) == Outbox()  # delivered again: its order is done
    assert (stats.cancels, stats.cancelled, stats.cancels_ignored, stats.filled) == (2, 1, 1, 0)


async def test_cancels_for_orders_complete_unknown_not_yet_seen_or_of_another_account_are_ignored() -> None:
    ledger, stats = _lots(book()), FillStats()
    desk = Desk(ledger, MemoryClaims(), stats, Policy(ratio=D("0.5"), latency_ms=100))
    early = rebalance("A", [a_leg("EQ", "sell", "2")], positions_seq=3, attempt=1)
    assert await desk.answer(cancel_of(early), T0) == Outbox()  # before its order
    first = await desk.take(early, T0)  # parts of 1 and 1 EQ: the second due later
    assert len(first.executions) == 1 and early["event_id"] in desk.working
    order = _order()
    await desk.take(order, T0)
    assert await desk.answer(cancel_of(order, account="B"), T0 + 1) == Outbox()  # not B's order
    _drain(desk, T0)
    assert await desk.answer(cancel_of(order), T0 + 10**6) == Outbox()  # complete
    assert (stats.cancels, stats.cancels_ignored, stats.cancelled, stats.filled) == (3, 3, 0, 2)


async def test_with_ignore_cancels_an_order_named_by_a_cancel_fills_on() -> None:
    ledger, stats = _lots(book()), FillStats()
    desk = Desk(ledger, MemoryClaims(), stats, Policy(ratio=D("0.5"), latency_ms=100, ignore_cancels=True))
    order = _order()
    await desk.take(order, T0)
    assert await desk.answer(cancel_of(order), T0 + 1) == Outbox()
    reports = _drain(desk, T0)
    assert {leg["state"] for leg in reports[-1]["legs"]} == {"filled"}
    assert ledger.accounts["A"].qty["EQ"] == D("590")
    assert (stats.cancels_ignored, stats.cancelled, stats.filled, stats.parts) == (1, 0, 1, 6)
