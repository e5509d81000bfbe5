"""Platform limits on the real broker and Redis, from a limits file: every leg of an order is cut to the
max notional and carries its limit price; an instrument quoted wider than its spread budget is not
bought and the account's drift document says why; reference data naming an undeclared tier is
dead-lettered while a declared one in capitals is taken."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest

from streamproc.calendars import load
from streamproc.core.sessions import CLOSED
from streamproc.settings import Settings
from streamproc.sim.messages import instrument, now_ms, position, produce, quote, targets
from streamproc.state.keys import Keys
from streamproc.wire.contract import Contract
from tests.integration.alerts import alerts_of
from tests.integration.oncall import cli
from tests.integration.runbook import Runbook
from tests.integration.scenario import for_account
from tests.integration.workers import TopicReader, wait_for

pytestmark = pytest.mark.integration

LIMITS = """\
version = "it-1"
tiers = ["large", "bond", "micro"]

[default]
max_leg_notional = 20000
slippage_bps = 10

[tier.bond]
spread_budget_bps = 40

[tier.micro]
max_participation = 0.1

[instrument."R-EQ"]
eligible = false
"""


def _report(done: subprocess.CompletedProcess[str]) -> str | None:
    """The command's output once it reports depth waiting (the worker's summary is written each second)."""
    return done.stdout if "depth waiting  buy" in done.stdout else None


async def test_limits_reach_the_stream(
    settings: Settings, workers, stack, redis_client, tmp_path: Path, ns
) -> None:
    t, keys = settings.topics, Keys(settings.redis_prefix)
    contract = Contract(settings.schemas_dir)
    path = tmp_path / "limits.toml"
    path.write_text(LIMITS)
    recs: list[Any] = [
        (t.instruments, instrument("N-EQ", lot=0.0001, tier="LARGE")),
        (t.instruments, instrument("N-BOND", lot=0.01, tier="Bond")),
        (t.instruments, instrument("S-BOND", lot=0.01, tier="bond")),
        (t.instruments, instrument("X-MC", lot=1, tier="microcap")),
        (t.quotes, quote("N-EQ", 100.0, 1)),
        (t.quotes, quote("N-BOND", 50.0, 1)),
        (t.quotes, quote("S-BOND", 50.0, 1, spread_bps=85.0)),
        (t.instruments, instrument("D-MC", lot=1, tier="micro")),
    ]
    # a thin microcap book: 1,000 shares shown at 10 -> at most 100 a leg
    thin = {"instrument": "D-MC", "bid": 9.99, "ask": 10.01, "seq": 1, "bid_size": 1000, "ask_size": 1000}
    recs.append((t.quotes, (b"D-MC", orjson.dumps({**thin, "ts": now_ms()}))))
    recs.append((t.positions, position("D", "CASH", 10_000.0, 1)))
    recs.append((t.targets, targets("D", {"D-MC": 0.5}, band={"abs": 0.03})))
    # N: 60/40 of 1,000,000; S: 100,000 in cash to go into S-BOND
    held = [("N-EQ", 6000.0), ("N-BOND", 8000.0), ("CASH", 0.0)]
    recs += [(t.positions, position("N", i, q, n)) for n, (i, q) in enumerate(held, 1)]
    recs.append((t.targets, targets("N", {"N-EQ": 0.6, "N-BOND": 0.4}, band={"abs": 0.03})))
    recs.append((t.positions, position("S", "CASH", 100_000.0, 1)))
    # reference data naming calendars: one the library has (in lower case), one nobody has
    recs += [(t.instruments, instrument("C-EQ", lot=0.0001, tier="large", calendar="xnys"))]
    recs += [
        (t.quotes, quote("C-EQ", 30.0, 1)),
        (t.instruments, instrument("U-EQ", lot=1, calendar="NYSE-ISH")),
    ]
    # R: its model holds R-EQ, which the limits restrict: the advisor must adjust the targets
    recs += [
        (t.instruments, instrument("R-EQ", lot=0.0001, tier="large")),
        (t.quotes, quote("R-EQ", 20.0, 1)),
    ]
    recs += [
        (t.positions, position("R", i, q, n))
        for n, (i, q) in enumerate([("R-EQ", 300.0), ("CASH", 4000.0)], 1)
    ]
    recs.append((t.targets, targets("R", {"R-EQ": 0.6, "N-BOND": 0.4}, band={"abs": 0.03})))
    recs.append((t.targets, targets("S", {"S-BOND": 1.0}, band={"abs": 0.03})))
    async with (
        TopicReader(stack, t.deadletter) as dead,
        TopicReader(stack, t.orders) as orders,
        TopicReader(stack, t.alerts) as alerts,
    ):
        await produce(stack.bootstrap, recs)
        worker = workers(STREAMPROC_LIMITS_FILE=str(path))
        drift = await wait_for(
            "S evaluated", lambda: redis_client.hget(keys.account("S"), "drift"), timeout=60
        )
        doc = orjson.loads(drift)
        assert (doc["status"], doc["why"]) == ("untradable", "spread S-BOND 85 bps > 40")
        # the undeclared tier: a dead letter that names the declared ones
        letters = await dead.wait("the microcap tier", lambda v: [d for d in v if "X-MC" in d["error"]])
        (rejected,) = [d for d in letters if "X-MC" in d["error"]]
        assert (
            rejected["reason"] == "semantic"
            and "tier 'microcap' of X-MC is not a declared tier" in rejected["error"]
        )

        (fired,) = await alerts.wait("R needs adjustment", lambda v: alerts_of(v, "needs_adjustment", "R"))
        assert fired["details"]["restricted"] == ["R-EQ"]
        async with Runbook("needs_adjustment", stack, ns.prefix, ACCOUNT="R", ID="R-EQ") as rb:
            account = (await rb.run("streamproc inspect account")).stdout
            assert "needs_adjustment: restricted R-EQ" in account, account
            assert "needs_adjustment firing since" in account and '"restricted":["R-EQ"]' in account
            shown = (await rb.run("streamproc inspect instrument")).stdout
            assert "restricted     1 accounts need adjustment for it (e.g. R); limits version it-1" in shown
            status = (await rb.run("streamproc inspect status")).stdout
            assert "limits it-1" in status and re.search(r"needs_adjustment\s+account R\b", status), status

        letters = await dead.wait("the unknown calendar", lambda v: [d for d in v if "U-EQ" in d["error"]])
        (unknown,) = [d for d in letters if "U-EQ" in d["error"]]
        assert unknown["reason"] == "semantic" and "calendar 'NYSE-ISH' is not known" in unknown["error"]
        shown = cli(stack, ns.prefix, "inspect", "instrument", "C-EQ").stdout
        xnys = load("XNYS", now_ms())  # the session now, as the library has it
        state = "open since" if xnys.open_since(now_ms()) != CLOSED else "closed, opens"
        assert f"session        XNYS: {state}" in shown, shown

        await wait_for("N evaluated", lambda: redis_client.hget(keys.account("N"), "drift"), timeout=60)
        await produce(stack.bootstrap, [(t.quotes, quote("N-EQ", 132.0, 2))])
        values = await orders.wait("N's order", lambda v: for_account(v, "N"))
        (order,) = for_account(values, "N")
        contract.validate("orders", order)
        legs = {leg["instrument"]: leg for leg in order["legs"]}
        assert {i: leg["side"] for i, leg in legs.items()} == {"N-EQ": "sell", "N-BOND": "buy"}
        for leg in legs.values():
            assert float(leg["notional"]) <= 20_000.0 + 1e-6  # 76,800 wanted: cut to the max notional
            assert float(leg["notional"]) > 19_900.0
        sell, buy = legs["N-EQ"], legs["N-BOND"]
        assert float(sell["limit_price"]) == pytest.approx(float(sell["price"]) * 0.999, rel=1e-9)
        assert float(buy["limit_price"]) == pytest.approx(float(buy["price"]) * 1.001, rel=1e-9)
        assert for_account(orders.values(), "S") == []
        values = await orders.wait("D's order", lambda v: for_account(v, "D"))
        (thin_order,) = for_account(values, "D")
        assert [(leg["instrument"], leg["side"], leg["qty"]) for leg in thin_order["legs"]] == [
            ("D-MC", "buy", "100")
        ]
    # the capacity report: of the 499 wanted (5,000 at the 10.01 ask), 399 wait for a later order
    shown = await wait_for(
        "the capacity report",
        lambda: _report(cli(stack, ns.prefix, "inspect", "instrument", "D-MC")),
        every=1.0,
    )
    assert "depth waiting  buy 399 / sell 0 for 1 accounts" in shown
    assert "displayed size bid 1000 / ask 1000" in shown
    assert "it-1" in worker.logs()  # the version it runs is logged (and exposed as streamproc_limits_info)
