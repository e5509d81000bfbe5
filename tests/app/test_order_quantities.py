"""Property: whatever the holdings (off the lot grid too), lots, prices and modes, no published order
sells more than is held, and every leg's notional is its emitted quantity times its price (within a
cent); the document checked is the one published, bytes and all."""

from __future__ import annotations

import math
from decimal import Decimal

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamproc.testkit import worker
from tests.app.kit import CONTRACT
from tests.app.kit import settings as worker_settings

LOTS = (1.0, 0.1, 0.01, 0.0001)
S = worker_settings(STREAMPROC_OUTLIER_MOVE="100", STREAMPROC_ORDER_SETTLE_S="0.1")
holding = st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("5000"), places=6).map(str)


@st.composite
def books(draw: st.DrawFn) -> dict[str, object]:
    n = draw(st.integers(2, 4))
    names = [f"I{i}" for i in range(n)]
    raw = [draw(st.floats(0.05, 1.0)) for _ in names]
    total = sum(raw) * draw(st.floats(1.0, 1.3))  # some cash target left over
    return {
        "names": names,
        "lots": [draw(st.sampled_from(LOTS)) for _ in names],
        "held": [draw(holding) for _ in names],
        "exits": [draw(st.booleans()) for _ in names],  # a target of 0: sell it all
        "weights": [math.floor(r / total * 1e6) / 1e6 for r in raw],  # never above 1 in sum
        "prices": [draw(st.floats(0.5, 500.0)) for _ in names],
        "moves": [draw(st.floats(0.3, 3.0)) for _ in names],
        "cash": draw(st.decimals(min_value=Decimal(0), max_value=Decimal(10_000), places=2).map(str)),
        "mode": draw(st.sampled_from(["target", "edge", "half"])),
    }


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books())
def test_no_published_order_sells_more_than_is_held_and_notionals_add_up(book: dict) -> None:  # type: ignore[type-arg]
    w = worker(S, CONTRACT)
    parts, now = w.parts, w.clock.time()
    accounts, prices = parts.accounts, parts.prices
    ts = int(now * 1000)
    names, held = book["names"], dict(zip(book["names"], book["held"], strict=True))
    for name, lot, price in zip(names, book["lots"], book["prices"], strict=True):
        prices.set_reference({"instrument": name, "lot": lot})
        prices.accept([{"instrument": name, "bid": price * 0.999, "ask": price * 1.001, "seq": 1, "ts": ts}])
    positions = [*held.items(), ("CASH", book["cash"])]
    for seq, (name, qty) in enumerate(positions, start=1):
        doc = {"account": "A", "instrument": name, "qty": float(qty), "seq": seq, "ts": ts}
        accounts.apply_position(doc, 0, now)
    accounts.owned[accounts.row("A")] = True
    weights = {
        n: (0.0 if exit_ else wt) for n, wt, exit_ in zip(names, book["weights"], book["exits"], strict=True)
    }
    targets = {
        "account": "A",
        "version": 1,
        "weights": weights,
        "band": {"abs": 0.01},
        "mode": book["mode"],
        "ts": ts,
    }
    accounts.apply_targets(targets, 0, now)
    for seq_name, move, price in zip(names, book["moves"], book["prices"], strict=True):
        mid = price * move
        prices.accept([{"instrument": seq_name, "bid": mid * 0.999, "ask": mid * 1.001, "seq": 2, "ts": ts}])
    decisions = parts.evaluator.step(now + 1)
    for draft in decisions.orders:
        published = orjson.loads(orjson.dumps(draft.doc))
        CONTRACT.validate("orders", published)
        for leg in published["legs"]:
            qty, price, notional = (Decimal(leg[k]) for k in ("qty", "price", "notional"))
            assert qty > 0
            if leg["side"] == "sell":
                assert qty <= Decimal(held[leg["instrument"]]), (leg, held[leg["instrument"]])
            assert abs(qty * price - notional) <= Decimal("0.01"), leg
