"""The fill simulator's pure part: legs filled at the quotes (hand-computed), never overselling or
overdrawing cash, position seqs continuing the account's, echoes ignored, and each order id filled once."""

from __future__ import annotations

from decimal import Decimal as D

import orjson
import pytest

from streamproc.sim.fill_desk import Desk, FillStats, MemoryClaims, Outbox, Policy
from streamproc.sim.fill_logic import Execution, fill_legs, plain, position_records
from streamproc.sim.messages import position, quote
from tests.sim.fill_kit import CONTRACT, QUOTES, a_leg, book, cancel_of, decoded, rebalance


def test_sells_at_the_bid_and_buys_at_the_ask_not_the_orders_prices() -> None:
    held = {"EQ": D("600"), "BOND": D("800.00"), "CASH": D("0")}
    legs = [a_leg("EQ", "sell", "58.9", "110.35"), a_leg("BOND", "buy", "155.80", "48.01")]
    fill = fill_legs(legs, held, QUOTES)
    # proceeds 58.9 * 132.30 = 7792.47; cost 155.80 * 50.01 = 7791.558; cash 0.912
    assert fill.executions == [
        Execution("EQ", "sell", D("58.9"), D("132.30")),
        Execution("BOND", "buy", D("155.80"), D("50.01")),
    ]
    assert fill.holdings == {"EQ": D("541.1"), "BOND": D("955.80"), "CASH": D("0.912")}
    assert list(fill.holdings) == ["EQ", "BOND", "CASH"]
    assert not fill.partial


def test_sells_fund_buys_whatever_the_order_of_the_legs() -> None:
    held = {"EQ": D("100"), "CASH": D("0")}
    fill = fill_legs([a_leg("BOND", "buy", "20.00"), a_leg("EQ", "sell", "10")], held, QUOTES)
    # 10 * 132.30 = 1323.00 in; 20 * 50.01 = 1000.20 out
    assert fill.holdings == {"EQ": D("90"), "BOND": D("20.00"), "CASH": D("322.80")}
    assert [e.side for e in fill.executions] == ["sell", "buy"]


def test_never_sells_more_than_held() -> None:
    fill = fill_legs([a_leg("EQ", "sell", "700")], {"EQ": D("600"), "CASH": D("5")}, QUOTES)
    assert fill.holdings == {"EQ": D("0"), "CASH": D("5") + D("600") * D("132.30")}
    assert fill.executions[0].qty == D("600") and fill.partial
    nothing = fill_legs([a_leg("BOND", "sell", "10.00")], {"CASH": D("5")}, QUOTES)
    assert nothing.executions == [] and nothing.holdings == {} and nothing.partial


def test_buys_are_cut_to_the_cash_at_the_ordered_precision() -> None:
    fill = fill_legs([a_leg("BOND", "buy", "30.00")], {"CASH": D("1000")}, QUOTES)
    # 30 * 50.01 = 1500.30 > 1000: 19.99 * 50.01 = 999.6999 fits, 20.00 would cost 1000.20
    assert fill.holdings == {"BOND": D("19.99"), "CASH": D("0.3001")}
    assert fill.partial
    whole = fill_legs([a_leg("BOND", "buy", "30")], {"CASH": D("1000")}, QUOTES)
    assert whole.holdings == {"BOND": D("19"), "CASH": D("1000") - 19 * D("50.01")}


def test_a_fee_in_bps_of_each_legs_notional_comes_out_of_cash() -> None:
    quotes = {"EQ": (D("100"), D("100.10")), "BOND": (D("50"), D("50"))}
    fill = fill_legs(
        [a_leg("EQ", "sell", "10"), a_leg("BOND", "buy", "10")],
        {"EQ": D("10"), "CASH": D("0")},
        quotes,
        D("10"),
    )
    # sell 1000 - 1.00 fee = 999; buy 500 + 0.50 fee = 500.50
    assert fill.holdings["CASH"] == D("498.50")


def test_a_fill_is_one_atomic_positions_record_with_the_next_seq_cash_last_and_plain_decimals() -> None:
    records = position_records("A", {"EQ": D("0E-4"), "BOND": D("1.50"), "CASH": D("-0")}, 6, 1795000000000)
    ((key, _),) = records
    (doc,) = decoded(records)
    CONTRACT.validate("positions", doc)
    assert key == b"A" and doc["seq"] == 7 and doc["ts"] == 1795000000000
    assert [(c["instrument"], c["qty"]) for c in doc["changes"]] == [
        ("EQ", "0.0000"),
        ("BOND", "1.50"),
        ("CASH", "0"),
    ]
    assert plain(D("12345.6789")) == "12345.6789"


def test_ledger_ignores_replays_bad_records_and_crossed_quotes_and_the_latest_quote_wins() -> None:
    ledger = book()
    assert not ledger.on_position(*position("A", "EQ", 1, 3))  # seq not above the last: a replay
    assert not ledger.on_position(b"A", b"{not json")
    assert ledger.accounts["A"].qty == {"EQ": D("600"), "BOND": D("800.00"), "CASH": D("0")}
    assert ledger.accounts["A"].seq == 3
    assert not ledger.on_quote(
        b"EQ", orjson.dumps({"instrument": "EQ", "bid": 2, "ask": 1, "seq": 2, "ts": 1})
    )
    assert not ledger.on_quote(b"EQ", b"garbage")
    assert ledger.quotes["EQ"] == (132.34, 132.34)
    assert ledger.on_quote(*quote("EQ", 120.0, 2, spread_bps=0))
    assert ledger.quotes["EQ"] == (120.0, 120.0)


async def test_an_order_is_filled_once_its_seqs_continue_and_its_echo_is_ignored() -> None:
    ledger, stats = book(), FillStats()
    desk = Desk(ledger, MemoryClaims(), stats)
    order = rebalance("A", [a_leg("EQ", "sell", "10.0000"), a_leg("BOND", "buy", "20.00")], positions_seq=3)
    out = await desk.take(order, 1795000000000)
    # 10 * 132.34 = 1323.40 in, 20 * 50.01 (the ask of 50 ± 2 bps) = 1000.20 out
    (doc,) = decoded(out.positions)
    assert doc["seq"] == 4 and [(c["instrument"], c["qty"]) for c in doc["changes"]] == [
        ("EQ", "590.0000"),
        ("BOND", "820.00"),
        ("CASH", "323.2"),
    ]
    (report,) = decoded(out.executions, "executions")
    CONTRACT.validate("executions", report)
    assert report["event_id"] == order["event_id"] and report["exec_id"] == f"{order['event_id']}:1"
    assert [
        (leg["instrument"], leg["state"], leg["cum_qty"], leg["leaves_qty"]) for leg in report["legs"]
    ] == [
        ("EQ", "filled", "10.0000", "0"),
        ("BOND", "filled", "20.00", "0"),
    ]
    assert await desk.take(order, 1795000000001) == Outbox()
    assert (stats.filled, stats.duplicates, stats.positions_published) == (1, 1, 1)
    assert not any(ledger.on_position(k, v) for k, v in out.positions)  # our own echo
    again = rebalance("A", [a_leg("EQ", "sell", "1")], positions_seq=4)
    assert [d["seq"] for d in decoded((await desk.take(again, 1795000000002)).positions)] == [5]
    assert ledger.accounts["A"].seq == 5 and ledger.accounts["A"].qty["EQ"] == D("589.0000")


async def test_an_order_with_a_restricted_instrument_is_rejected_with_a_report_and_nothing_filled() -> None:
    ledger, stats = book(), FillStats()
    desk = Desk(ledger, MemoryClaims(), stats, Policy(reject=frozenset({"BOND"})))
    order = rebalance("A", [a_leg("EQ", "sell", "10.0000"), a_leg("BOND", "buy", "20.00")], positions_seq=3)
    out = await desk.take(order, 1)
    (report,) = decoded(out.executions, "executions")
    CONTRACT.validate("executions", report)
    assert out.positions == [] and stats.rejected == 1 and stats.filled == 0
    assert {leg["state"] for leg in report["legs"]} == {"rejected"}
    assert report["legs"][0]["reason"] == "restricted: BOND"


async def test_unquoted_instruments_make_an_order_unfillable_until_quoted() -> None:
    ledger, stats = book(), FillStats()
    desk = Desk(ledger, MemoryClaims(), stats)
    order = rebalance("A", [a_leg("EQ", "sell", "10"), a_leg("NEW", "buy", "1")], positions_seq=3)
    assert await desk.take(order, 1) == Outbox() and stats.unfillable == 1
    ledger.on_quote(*quote("NEW", 10.0, 1))
    assert (await desk.take(order, 2)).positions and stats.filled == 1 and stats.duplicates == 0


async def test_orders_for_positions_not_yet_seen_are_not_filled() -> None:
    ledger, stats = book(), FillStats()
    desk = Desk(ledger, MemoryClaims(), stats)
    assert await desk.take(rebalance("A", [a_leg("EQ", "sell", "1")], positions_seq=4), 1) == Outbox()
    assert await desk.take(rebalance("B", [a_leg("EQ", "sell", "1")], positions_seq=1), 1) == Outbox()
    assert stats.behind == 2 and stats.filled == 0


@pytest.mark.parametrize(
    "value",
    [
        b"{not json",
        b"[1, 2]",
        orjson.dumps({"event_id": "x", "account": "A"}),
        None,
    ],
)
def test_orders_breaking_the_contract_are_counted_invalid(value: bytes | None) -> None:
    stats = FillStats()
    assert Desk(book(), MemoryClaims(), stats).parse(value) is None
    assert (stats.orders, stats.invalid) == (1, 1)


def test_a_valid_order_parses() -> None:
    stats = FillStats()
    order = rebalance("A", [a_leg("EQ", "sell", "1")], positions_seq=3)
    assert Desk(book(), MemoryClaims(), stats).parse(orjson.dumps(order)) == order
    assert (stats.orders, stats.invalid) == (1, 0)


async def test_a_cancel_on_the_orders_topic_is_never_filled_as_anrebalance() -> None:
    ledger, stats = book(), FillStats()
    desk = Desk(ledger, MemoryClaims(), stats)
    cancel = desk.parse(orjson.dumps(cancel_of(rebalance("A", [a_leg("EQ", "sell", "1")], positions_seq=3))))
    assert cancel is not None and cancel["type"] == "cancel"
    assert await desk.answer(cancel, 1) == Outbox()
    assert (stats.orders, stats.invalid, stats.cancels_ignored, stats.filled, stats.behind) == (1, 0, 1, 0, 0)
    assert ledger.accounts["A"].seq == 3
