"""Quote faults injected into a running worker: a silent instrument, a seq gap, a crossed quote and an
outlier. Each alert fires once and resolves once, and no order is computed from the bad data."""

from __future__ import annotations

import re
import subprocess

import orjson
import pytest

from streamproc.settings import Settings
from streamproc.sim.messages import produce
from streamproc.wire.contract import Contract
from tests.integration.alerts import Ticker, account_field, alerts_of, quote_seen, states, ticking
from tests.integration.oncall import cli
from tests.integration.passes import passes_after
from tests.integration.runbook import Runbook
from tests.integration.scenario import for_account, setup_records
from tests.integration.workers import TopicReader, wait_for

pytestmark = pytest.mark.integration


async def account_a(stack, settings: Settings) -> Ticker:
    """Account A, 60/40 in EQ1 and BOND (quoted once at 100 and 50), and a ticker for both."""
    t = settings.topics
    await produce(stack.bootstrap, setup_records(t, {"A": ("EQ1", 600, 800)}))
    return Ticker(stack.bootstrap, t.quotes, {"EQ1": 100.0, "BOND": 50.0}, {"EQ1": 1, "BOND": 1})


async def a_evaluated(redis_client, settings: Settings) -> None:
    await wait_for(
        "A evaluated in band", lambda: account_field(redis_client, settings, "A", "drift"), timeout=60
    )


async def test_a_silent_instrument_goes_stale_suppresses_its_accounts_and_recovers(
    settings: Settings, workers, stack, redis_client
):
    t = settings.topics
    contract = Contract(settings.schemas_dir)
    ticker = await account_a(stack, settings)
    async with (
        ticking(ticker),
        TopicReader(stack, t.alerts) as alerts,
        TopicReader(stack, t.orders) as orders,
    ):
        worker = workers(STREAMPROC_QUOTE_MAX_AGE_S="2")
        await a_evaluated(redis_client, settings)

        del ticker.mids["BOND"]  # BOND's feed stops; EQ1 keeps quoting
        last_bond_ts = ticker.last_ts["BOND"]
        fired = await alerts.wait(
            "quote_stale for BOND", lambda v: alerts_of(v, "quote_stale", "BOND"), timeout=30
        )
        (alert,) = alerts_of(fired, "quote_stale", "BOND")
        contract.validate("alerts", alert)
        assert alert["state"] == "firing" and alert["runbook"] == "runbooks/quote_stale.md"
        assert alert["details"]["last_quote_ts"] == last_bond_ts
        latency_ms = alert["ts"] - (last_bond_ts + 2000)
        print(f"quote_stale detection latency: {latency_ms} ms after max age (eval interval 20 ms)")
        assert latency_ms >= 0

        # EQ1 rallies: A is out of band on EQ1, but BOND's price is stale -> suppressed, no order.
        ticker.mids["EQ1"] = 132.34
        moved_at = ticker.seq["EQ1"] + 1
        await wait_for(
            "the rally processed",
            lambda: quote_seen(redis_client, settings, "EQ1", moved_at + 3),
        )
        drift = await account_field(redis_client, settings, "A", "drift")
        assert drift["status"] == "suppressed" and drift["why"] == "suppressed: quote_stale BOND"
        async with Runbook("quote_stale", stack, settings.namespace, ID="BOND") as rb:
            shown = (await rb.run("streamproc inspect instrument")).stdout
            assert "accounts suppressed by it: 1" in shown and "quote_stale" in shown
            assert f"seq {ticker.seq['BOND']}," in shown  # the last quote seen, and its age
            status = (await rb.run("streamproc inspect status")).stdout
            assert "accounts suppressed: 1" in status and "quote_stale" in status
            topics = (await rb.run("streamproc inspect topics")).stdout
            assert re.search(rf"{t.quotes}\s+[1-9]\d*\s+\S", topics)  # the feed is live: EQ1 quotes
            suppressed = (await rb.run("streamproc inspect accounts --state suppressed")).stdout
            assert re.search(r"^\s*A\b.*quote_stale BOND", suppressed, flags=re.M), suppressed
        await passes_after(worker)
        await orders.to_end()
        assert orders.values() == []

        ticker.mids["BOND"] = 50.0  # the feed resumes: resolved, and A gets its order at once
        order = for_account(await orders.wait("an order for A", lambda v: for_account(v, "A")), "A")[0]
        assert order["reason"]["instrument"] == "EQ1"
        assert order["as_of"] > last_bond_ts
        values = await alerts.wait(
            "quote_stale resolved", lambda v: len(alerts_of(v, "quote_stale", "BOND")) == 2
        )
        assert states(alerts_of(values, "quote_stale", "BOND")) == ["firing", "resolved"]
        # EQ2 and EQ3 went stale too, but no account holds them: no alert about them.
        await wait_for("more ticks", lambda: quote_seen(redis_client, settings, "BOND", ticker.seq["BOND"]))
        await alerts.poll()
        assert {a["subject"]["instrument"] for a in alerts_of(alerts.values(), "quote_stale")} == {"BOND"}
        assert len(alerts_of(alerts.values(), "quote_stale")) == 2
        assert len(for_account(orders.values(), "A")) == 1

        # afterwards (the ticker paused meanwhile): the report on-call files, from the topics and the state
        def report(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
            return cli(
                stack, settings.namespace, "incident", "report", "--alert", alert["alert_id"], *args, **env
            )

        done = report()
        assert done.returncode == 0, done.stdout + done.stderr
        text = done.stdout
        assert "## quote_stale instrument BOND: resolved after" in text, text
        assert "- accounts kept from trading: 1 for" in text and "suppressed while flagged): A" in text
        assert "- their orders published while it lasted: 0" in text
        assert f"- orders withheld and published after recovery: 1 (A rebalance {order['event_id']}" in text
        assert (
            "streamproc inspect instrument BOND" in text and "| runbook | runbooks/quote_stale.md |" in text
        )
        doc = orjson.loads(report("--format", "json").stdout)
        (episode,) = doc["episodes"]
        assert episode["orders_after_recovery"] == [order["event_id"]] and episode["accounts"] == ["A"]
        resolved = alerts_of(alerts.values(), "quote_stale", "BOND")[1]
        assert (episode["fired_ms"], episode["resolved_ms"]) == (alert["ts"], resolved["ts"])
        assert episode["duration_ms"] == resolved["ts"] - alert["ts"]
        # with Redis down the topics still tell the story, and the one thing missing is said in one line
        blind = report(REDIS_URL="redis://127.0.0.1:1/0")
        assert blind.returncode == 0 and "BOND: unknown, Redis was not reachable" in blind.stdout
        assert (
            blind.stderr.strip().startswith("streamproc: Redis is not reachable")
            and "Traceback" not in blind.stderr
        )


async def test_gap_crossed_and_outlier_quotes_alert_once_and_never_trade(
    settings: Settings, workers, stack, redis_client
):
    t = settings.topics
    contract = Contract(settings.schemas_dir)
    ticker = await account_a(stack, settings)
    async with (
        TopicReader(stack, t.alerts) as alerts,
        TopicReader(stack, t.orders) as orders,
        TopicReader(stack, t.deadletter) as dead,
    ):
        worker = workers(
            STREAMPROC_OUTLIER_MOVE="0.2", STREAMPROC_QUOTE_MAX_AGE_S="600"
        )  # BOND is quoted once
        await a_evaluated(redis_client, settings)

        async def send(*records) -> None:
            await produce(stack.bootstrap, list(records))

        # 1. a gap: EQ1 seq 2 -> 5 (3 and 4 lost), then 6 in sequence
        ticker.seq["EQ1"] = 4
        await send(ticker.next("EQ1"))
        values = await alerts.wait("quote_gap firing", lambda v: alerts_of(v, "quote_gap"))
        (gap,) = alerts_of(values, "quote_gap")
        assert gap["subject"] == {"instrument": "EQ1"} and gap["state"] == "firing"
        assert (gap["details"]["missing_from"], gap["details"]["missing_to"]) == (2, 4)
        async with Runbook("quote_gap", stack, settings.namespace, ID="EQ1") as rb:
            shown = (await rb.run("streamproc inspect instrument")).stdout
            assert "last seq seen  5" in shown and "quote_gap firing since" in shown, shown
            assert '"missing_from":2,"missing_to":4' in shown
            assert re.search(rf"{t.quotes}\s+[1-9]", (await rb.run("streamproc inspect topics")).stdout)
            letters = (await rb.run("streamproc inspect deadletters")).stdout
            assert "0 dead letters shown" in letters  # the lost seqs were not malformed records
        await send(ticker.next("EQ1"))
        await alerts.wait("quote_gap resolved", lambda v: len(alerts_of(v, "quote_gap")) == 2)

        # 2. a crossed quote (dead-lettered, flags EQ1), then a valid one
        ticker.seq["EQ1"] += 1
        crossed = {"instrument": "EQ1", "bid": 101.0, "ask": 100.0, "seq": ticker.seq["EQ1"], "ts": 1}
        await send((t.quotes, (b"EQ1", orjson.dumps({**crossed, "ts": ticker.now()}))))
        values = await alerts.wait("quote_crossed firing", lambda v: alerts_of(v, "quote_crossed"))
        assert alerts_of(values, "quote_crossed")[0]["details"]["bid"] == 101.0
        await dead.wait("the crossed quote dead-lettered", lambda v: len(v) == 1)
        async with Runbook("quote_crossed", stack, settings.namespace, ID="EQ1") as rb:
            shown = (await rb.run("streamproc inspect instrument")).stdout
            assert "quote_crossed firing since" in shown and '"bid":101.0' in shown, shown
            assert "last price     bid 100.0" in shown or "mid 100" in shown  # the crossed one not applied
            letters = (await rb.run("streamproc inspect deadletters")).stdout
            assert re.search(rf"{t.quotes}.*\[semantic\].*cross", letters), letters
        await send(ticker.next("EQ1"))
        await alerts.wait("quote_crossed resolved", lambda v: len(alerts_of(v, "quote_crossed")) == 2)

        # 3. an outlier (+40 %, would breach A's band) held, then a quote back at the old level
        await send(ticker.next("EQ1", 140.0))
        values = await alerts.wait("quote_outlier firing", lambda v: alerts_of(v, "quote_outlier"))
        first_outlier = alerts_of(values, "quote_outlier")[0]
        assert first_outlier["details"]["move"] == pytest.approx(0.4, abs=1e-3)
        async with Runbook("quote_outlier", stack, settings.namespace, ID="EQ1") as rb:
            shown = (await rb.run("streamproc inspect instrument")).stdout
            assert "outlier held at mid 140" in shown and "quote_outlier firing since" in shown, shown
            assert '"last_mid":' in shown and '"mid":140' in shown  # to compare with another source
        await send(ticker.next("EQ1", 100.5))
        await alerts.wait("quote_outlier resolved", lambda v: len(alerts_of(v, "quote_outlier")) == 2)
        await wait_for("EQ1 applied", lambda: quote_seen(redis_client, settings, "EQ1", ticker.seq["EQ1"]))
        await passes_after(worker)
        await orders.to_end()
        assert orders.values() == []  # nothing traded on the gap, the crossed quote or the blip

        # 4. a real move: held (+32 %) until the next quote confirms it, then A trades once
        await send(ticker.next("EQ1", 132.34))
        await alerts.wait("second outlier", lambda v: len(alerts_of(v, "quote_outlier")) == 3)
        await passes_after(worker)
        await orders.to_end()
        assert orders.values() == []
        await send(ticker.next("EQ1", 132.4))
        (order,) = await orders.wait("A's order on the confirmed price", lambda v: for_account(v, "A"))
        (eq_leg,) = [leg for leg in order["legs"] if leg["instrument"] == "EQ1"]
        assert float(eq_leg["price"]) == pytest.approx(132.4, rel=1e-3)

        values = await alerts.wait("outlier resolved", lambda v: len(alerts_of(v, "quote_outlier")) == 4)
        for a in values:
            contract.validate("alerts", a)
        for type_ in ("quote_gap", "quote_crossed"):
            assert states(alerts_of(values, type_)) == ["firing", "resolved"]
        assert states(alerts_of(values, "quote_outlier")) == ["firing", "resolved"] * 2
        assert alerts_of(values, "quote_outlier")[3]["details"]["confirmed_at_seq"] == ticker.seq["EQ1"]
        ids = [a["alert_id"] for a in values]
        assert len(set(ids)) * 2 == len(ids)  # firing and resolved share an id; episodes do not


async def test_a_quote_stamped_a_day_ahead_is_refused_and_its_instrument_still_goes_stale(
    settings: Settings, workers, stack, redis_client
):
    # the case: a BOND quote stamped +1 day, then silence; A must not trade on BOND past its max age
    t = settings.topics
    contract = Contract(settings.schemas_dir)
    ticker = await account_a(stack, settings)
    async with (
        ticking(ticker),
        TopicReader(stack, t.alerts) as alerts,
        TopicReader(stack, t.deadletter) as dead,
    ):
        workers(STREAMPROC_QUOTE_MAX_AGE_S="10")  # the runbook runs before stale supersedes
        await a_evaluated(redis_client, settings)
        del ticker.mids["BOND"]  # BOND's feed stops after one quote from the future
        last_good = ticker.last_ts["BOND"]
        ticker.seq["BOND"] += 1
        future = {"instrument": "BOND", "bid": 50.0, "ask": 50.02, "seq": ticker.seq["BOND"]}
        await produce(
            stack.bootstrap,
            [(t.quotes, (b"BOND", orjson.dumps({**future, "ts": ticker.now() + 86_400_000})))],
        )
        (letter,) = await dead.wait("the future quote dead-lettered", lambda v: v)
        assert letter["reason"] == "semantic" and letter["error"].startswith("future timestamp")
        values = await alerts.wait("clock_skew firing", lambda v: alerts_of(v, "clock_skew", "BOND"))
        (skew,) = alerts_of(values, "clock_skew", "BOND")
        contract.validate("alerts", skew)
        assert skew["runbook"] == "runbooks/clock_skew.md" and skew["details"]["ahead_ms"] > 86_000_000
        assert skew["ts"] <= ticker.now()  # stamped when it was read, not a day from now
        async with Runbook("clock_skew", stack, settings.namespace, ID="BOND") as rb:
            shown = (await rb.run("streamproc inspect instrument")).stdout
            assert f"ts {last_good} (" in shown and "clock_skew firing since" in shown, shown  # last good
            quote_ts = skew["details"]["quote_ts"]
            assert f'"quote_ts":{quote_ts}' in shown and '"ahead_ms":' in shown  # the refused quote's
            letters = (await rb.run("streamproc inspect deadletters")).stdout
            assert re.search(rf"{t.quotes}.*\[semantic\] future timestamp", letters), letters
            now = int((await rb.run("date -u")).stdout)
            assert quote_ts - now > 86_000_000  # a day ahead of the time now: the producer's clock
        values = await alerts.wait(
            "quote_stale for BOND", lambda v: alerts_of(v, "quote_stale", "BOND"), timeout=30
        )
        (stale,) = alerts_of(values, "quote_stale", "BOND")
        assert stale["details"]["last_quote_ts"] == last_good  # the day-ahead quote kept nothing fresh
        drift = await account_field(redis_client, settings, "A", "drift")
        assert drift["status"] == "suppressed"
