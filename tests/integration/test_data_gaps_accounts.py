"""Account and topic level faults on a live worker: a position seq gap quarantines the account until the
gap is filled or an operator reconciles it; a silent quotes topic, a dead-letter burst and a breach storm
each alert once and resolve once."""

from __future__ import annotations

import asyncio
import re
import subprocess

import orjson
import pytest

from streamproc.settings import Settings
from streamproc.sim.messages import now_ms, position, produce, quote
from streamproc.wire.contract import Contract
from tests.integration.alerts import (
    Ticker,
    account_field,
    alerts_of,
    quote_seen,
    states,
    status_is,
    ticking,
)
from tests.integration.oncall import cli
from tests.integration.passes import passes_after
from tests.integration.runbook import Runbook
from tests.integration.scenario import for_account, setup_records
from tests.integration.workers import TopicReader, wait_for

pytestmark = pytest.mark.integration


def _all_held(stack, settings: Settings, n: int) -> bool:
    out = _cli(stack, settings, "inspect", "accounts", "--state", "held", "--limit", "1").stdout
    return f"{n} accounts held" in out


def _cli(stack, settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return cli(stack, settings.namespace, *args)


async def test_a_position_gap_quarantines_the_account_until_filled_or_reconciled(
    settings: Settings, workers, stack, redis_client
):
    t = settings.topics
    contract = Contract(settings.schemas_dir)
    await produce(stack.bootstrap, setup_records(t, {"A": ("EQ1", 600, 800), "B": ("EQ2", 600, 800)}))
    async with TopicReader(stack, t.alerts) as alerts, TopicReader(stack, t.orders) as orders:
        workers(STREAMPROC_QUOTE_MAX_AGE_S="600")
        await wait_for("A evaluated", lambda: account_field(redis_client, settings, "A", "drift"), timeout=60)
        await wait_for("B evaluated", lambda: account_field(redis_client, settings, "B", "drift"), timeout=60)

        # A: seq 5 arrives before seq 4 (selling most of BOND: far out of band) -> quarantined, no order
        await produce(stack.bootstrap, [(t.positions, position("A", "BOND", 100, 5))])
        values = await alerts.wait("position_gap for A", lambda v: alerts_of(v, "position_gap", "A"))
        (fired,) = alerts_of(values, "position_gap", "A")
        contract.validate("alerts", fired)
        assert fired["severity"] == "critical" and fired["subject"] == {"account": "A"}
        assert (fired["details"]["missing_from"], fired["details"]["missing_to"]) == (4, 4)
        drift = await wait_for(
            "A suppressed",
            lambda: status_is(redis_client, settings, "A", "suppressed"),
        )
        assert drift["why"] == "suppressed: position_gap seq 4"
        assert (await account_field(redis_client, settings, "A", "gap"))["ranges"] == [[4, 4]]
        quarantined = _cli(stack, settings, "inspect", "accounts", "--state", "quarantined").stdout
        assert (
            "position_gap seq 4" in quarantined and "1 accounts quarantined" in quarantined
        )  # runbook's list

        # the late seq 4 (cash) fills the gap: resolved, and A is evaluated at once -> one order
        await produce(stack.bootstrap, [(t.positions, position("A", "CASH", 0.0, 4))])
        values = await orders.wait("A's order after the fill", lambda v: for_account(v, "A"))
        (order,) = for_account(values, "A")
        assert order["inputs"]["positions_seq"] == 5
        values = await alerts.wait("resolved", lambda v: len(alerts_of(v, "position_gap", "A")) == 2)
        resolved = alerts_of(values, "position_gap", "A")[1]
        assert resolved["state"] == "resolved" and resolved["details"]["filled_at_seq"] == 4
        assert resolved["alert_id"] == fired["alert_id"]

        # B: a gap that never fills; the operator checks the holdings and reconciles
        await produce(stack.bootstrap, [(t.positions, position("B", "EQ2", 10, 9))])
        await alerts.wait("position_gap for B", lambda v: alerts_of(v, "position_gap", "B"))
        await wait_for("B suppressed", lambda: status_is(redis_client, settings, "B", "suppressed"))
        async with Runbook("position_gap", stack, settings.namespace, ACCOUNT="B") as rb:
            shown = (await rb.run("streamproc inspect account")).stdout
            assert "QUARANTINED" in shown and "[[4, 8]]" in shown and "positions seq  9" in shown, shown
            assert "holding        EQ2" in shown  # the holdings to check against the book of record
            listed = (await rb.run("streamproc inspect accounts --state quarantined")).stdout
            assert "1 accounts quarantined" in listed and re.search(r"^\s*B\b.*position_gap", listed, re.M)
            letters = (await rb.run("streamproc inspect deadletters")).stdout
            assert "0 dead letters shown" in letters  # the missing seqs were not malformed: reconcile
            done = await rb.run("streamproc reconcile")
            assert "B" in done.stdout
        values = await alerts.wait("B reconciled", lambda v: len(alerts_of(v, "position_gap", "B")) == 2)
        assert "reconciled_at" in alerts_of(values, "position_gap", "B")[1]["details"]
        await orders.wait("B's order after reconciliation", lambda v: for_account(v, "B"))
        assert await account_field(redis_client, settings, "B", "gap") is None
        assert _cli(stack, settings, "reconcile", "B").returncode == 1  # nothing left to reconcile
        await alerts.poll()
        assert states(alerts_of(alerts.values(), "position_gap")) == ["firing", "resolved"] * 2


async def test_a_silent_quotes_topic_and_a_dead_letter_burst_alert_once_each(
    settings: Settings, workers, stack, redis_client
):
    t = settings.topics
    await produce(stack.bootstrap, setup_records(t, {"A": ("EQ1", 600, 800)}))
    ticker = Ticker(stack.bootstrap, t.quotes, {"EQ1": 100.0, "BOND": 50.0}, {"EQ1": 1, "BOND": 1})
    async with TopicReader(stack, t.alerts) as alerts:
        workers(
            STREAMPROC_FEED_SILENT_S="quotes=3",
            STREAMPROC_QUOTE_MAX_AGE_S="600",
            STREAMPROC_DEADLETTER_RATE_PER_MIN="60",
            STREAMPROC_DEADLETTER_WINDOW_S="5",
        )
        await wait_for("A evaluated", lambda: account_field(redis_client, settings, "A", "drift"), timeout=60)
        async with ticking(ticker):
            await wait_for("quotes flowing", lambda: quote_seen(redis_client, settings, "EQ1", 5))
        stopped = ticker.last_ts["EQ1"]
        values = await alerts.wait("feed_silent", lambda v: alerts_of(v, "feed_silent"), timeout=30)
        (silent,) = alerts_of(values, "feed_silent")
        assert silent["subject"] == {"topic": t.quotes} and silent["severity"] == "critical"
        async with Runbook("feed_silent", stack, settings.namespace) as rb:
            topics = (await rb.run("streamproc inspect topics")).stdout
            assert re.search(rf"{t.quotes}\s+\d+\s+.*s ago", topics) and "quotes=3s (" in topics, topics
            status = (await rb.run("streamproc inspect status")).stdout
            assert re.search(rf"feed_silent\s+topic\s+{t.quotes}", status), status
        latency_ms = silent["ts"] - (stopped + 3000)
        print(f"feed_silent detection latency: {latency_ms} ms after the 3 s threshold (1 s watch tick)")
        assert latency_ms >= 0
        async with ticking(ticker):  # the feed resumes (and keeps going)
            values = await alerts.wait(
                "feed_silent resolved", lambda v: len(alerts_of(v, "feed_silent")) == 2
            )
            assert states(alerts_of(values, "feed_silent")) == ["firing", "resolved"]

            # 10 dead letters in a 5 s window = 120/min > 60/min; then none: resolved after the window
            garbage = [(t.positions, (b"A", b"not json")) for _ in range(10)]
            await produce(stack.bootstrap, garbage)
            values = await alerts.wait(
                "deadletter_rate", lambda v: alerts_of(v, "deadletter_rate"), timeout=30
            )
            assert alerts_of(values, "deadletter_rate")[0]["details"]["per_min"] >= 60
            async with Runbook("deadletter_rate", stack, settings.namespace) as rb:
                letters = (await rb.run("streamproc inspect deadletters")).stdout
                assert "10 dead letters shown" in letters and '{"invalid_json":10}' in letters, letters
                assert re.search(rf"{t.positions}@\d+:\d+ \[invalid_json\]", letters)  # where, and why
                topics = (await rb.run("streamproc inspect topics")).stdout
                assert re.search(rf"{t.deadletter}\s+10\s", topics), topics
            values = await alerts.wait(
                "deadletter_rate resolved", lambda v: len(alerts_of(v, "deadletter_rate")) == 2, timeout=30
            )
            assert states(alerts_of(values, "deadletter_rate")) == ["firing", "resolved"]
            burst = alerts_of(values, "deadletter_rate")[0]["alert_id"]
            # in a thread: the ticker goes on quoting (a blocked loop would make the feed silent again)
            report = await asyncio.to_thread(
                _cli, stack, settings, "incident", "report", "--alert", burst, "--since", "10m"
            )
            text = report.stdout
            assert f"- {t.positions}: invalid_json 10" in text, text  # the dead letters, by reason
            # the report of everything in the last 10 minutes: both episodes, the silence first
            every = (
                await asyncio.to_thread(_cli, stack, settings, "incident", "report", "--since", "10m")
            ).stdout
            assert every.startswith("# Incident report: 2 episodes")
            assert every.index("## feed_silent topic") < every.index("## deadletter_rate topic")
            await alerts.poll()
            assert len(alerts_of(alerts.values(), "feed_silent")) == 2


async def test_a_breach_storm_holds_every_order_until_an_operator_releases_them(
    settings: Settings, workers, stack, redis_client
):
    t = settings.topics
    accounts = {f"S{i:02d}": ("EQ1", 600, 800) for i in range(30)}
    await produce(stack.bootstrap, setup_records(t, accounts))
    async with TopicReader(stack, t.alerts) as alerts, TopicReader(stack, t.orders) as orders:
        worker = workers(
            STREAMPROC_STORM_MIN_ACCOUNTS="10", STREAMPROC_STORM_SHARE="0.2", STREAMPROC_QUOTE_MAX_AGE_S="600"
        )
        for a in accounts:
            await wait_for(
                f"{a} evaluated", lambda a=a: account_field(redis_client, settings, a, "drift"), timeout=60
            )

        # one market-wide move takes every account out of band: a storm, not 30 orders
        await produce(stack.bootstrap, [(t.quotes, quote("EQ1", 132.34, 2))])
        values = await alerts.wait("breach_storm", lambda v: alerts_of(v, "breach_storm"), timeout=30)
        (storm,) = alerts_of(values, "breach_storm")
        assert storm["subject"] == {"topic": t.orders} and storm["runbook"] == "runbooks/breach_storm.md"
        drift = await wait_for("S00 held", lambda: status_is(redis_client, settings, "S00", "held"))
        assert "streamproc storm release" in drift["why"]
        await wait_for("every account held", lambda: _all_held(stack, settings, len(accounts)), every=1.0)
        async with Runbook("breach_storm", stack, settings.namespace, ID="EQ1", ACCOUNT="S07") as rb:
            status = (await rb.run("streamproc inspect status")).stdout
            assert "BREACH STORM" in status and "held 30" in status, status
            topics = (await rb.run("streamproc inspect topics")).stdout
            assert re.search(rf"{t.orders}\s+0\s", topics), topics  # nothing went out
            shown = (await rb.run("streamproc inspect instrument")).stdout
            assert "mid 132.34" in shown  # the price to verify against an independent source
            held = (await rb.run("streamproc inspect accounts --state held")).stdout
            assert "S00" in held and "held: breach_storm" in held and "30 accounts held" in held, held
            account = (await rb.run("streamproc inspect account")).stdout
            assert "drift status   held" in account and "holding        EQ1" in account, account
            await passes_after(worker)
            await orders.to_end()
            assert orders.values() == []

            released_at = now_ms()
            done = await rb.run("streamproc storm release")
            assert "released" in done.stdout, done
        values = await orders.wait("the held orders", lambda v: len(v) == len(accounts), timeout=30)
        assert {o["account"] for o in values} == set(accounts)
        assert all(o["ts"] >= released_at for o in values)
        values = await alerts.wait("storm resolved", lambda v: len(alerts_of(v, "breach_storm")) == 2)
        assert states(alerts_of(values, "breach_storm")) == ["firing", "resolved"]
        report = _cli(stack, settings, "incident", "report", "--alert", storm["alert_id"], "--format", "json")
        (episode,) = orjson.loads(report.stdout)["episodes"]
        assert episode["accounts"] == sorted(accounts) and len(episode["orders_after_recovery"]) == 30
        assert episode["orders_during"] == []  # nothing went out while the storm held them
        await passes_after(worker)
        await orders.to_end()
        assert len(orders.values()) == len(accounts)
