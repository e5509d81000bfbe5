"""Sessions over the wire: an instrument whose venue is closed right now (a real calendar, chosen when
the test runs) keeps its account `closed` and raises no quote_stale however long it is silent, while a
24/7 instrument held beside it still goes stale; on-call sees which and why."""

from __future__ import annotations

import time

import pytest

from streamproc.calendars import load
from streamproc.core.sessions import CLOSED
from streamproc.settings import Settings
from streamproc.sim.messages import instrument, position, produce, quote, targets
from tests.integration.alerts import Ticker, account_field, alerts_of, status_is, ticking
from tests.integration.oncall import cli
from tests.integration.passes import passes_after
from tests.integration.workers import TopicReader, wait_for

pytestmark = pytest.mark.integration

VENUES = ("XNYS", "XLON", "XTKS", "XHKG", "XASX", "XBOM", "XSES", "XJSE", "XETR")


def a_closed_venue() -> str:
    """A venue closed now and for the next five minutes (the markets of the world span the clock)."""
    now = int(time.time() * 1000)
    for name in VENUES:
        cal = load(name, now)
        nxt = cal.next_open(now)
        if cal.open_since(now) == CLOSED and nxt is not None and nxt - now > 300_000:
            return name
    raise AssertionError(f"every one of {VENUES} is open or opening: add a venue")


async def test_a_closed_venue_keeps_its_accounts_closed_and_quiet(
    settings: Settings, workers, stack, redis_client
):
    t = settings.topics
    venue = a_closed_venue()
    await produce(
        stack.bootstrap,
        [
            (t.instruments, instrument("Z-EQ", lot=0.0001, tier="large", calendar=venue)),
            (t.instruments, instrument("Z-BOND", lot=0.01, tier="bond")),  # 24/7
            (t.quotes, quote("Z-EQ", 100.0, 1)),
            (t.positions, position("Z", "Z-EQ", 600, 1)),
            (t.positions, position("Z", "CASH", 40_000.0, 2)),
            (t.targets, targets("Z", {"Z-EQ": 0.6, "Z-BOND": 0.4}, band={"abs": 0.03})),
        ],
    )
    ticker = Ticker(stack.bootstrap, t.quotes, {"Z-BOND": 50.0}, {"Z-BOND": 0})  # the 24/7 one quotes on
    async with TopicReader(stack, t.alerts) as alerts, ticking(ticker):
        worker = workers(STREAMPROC_QUOTE_MAX_AGE_S="2")
        drift = await wait_for(
            "Z closed", lambda: status_is(redis_client, settings, "Z", "closed"), timeout=60
        )
        assert drift["why"].startswith(f"market closed: Z-EQ ({venue}, opens "), drift
        # both silent now: the 24/7 one goes stale, the closed venue's does not
        del ticker.mids["Z-BOND"]
        await alerts.wait("Z-BOND stale", lambda v: alerts_of(v, "quote_stale", "Z-BOND"), timeout=30)
        await passes_after(worker)  # Z-EQ's quote is as old: on 24/7 it would be stale by now
        await alerts.to_end()
        assert alerts_of(alerts.values(), "quote_stale", "Z-EQ") == []
        listed = cli(stack, settings.namespace, "inspect", "accounts", "--state", "suppressed").stdout
        assert "quote_stale Z-BOND" in listed  # stale beats closed: there is a real problem to see
        shown = cli(stack, settings.namespace, "inspect", "instrument", "Z-EQ").stdout
        assert f"session        {venue}: closed, opens " in shown and "alerts firing: none" in shown, shown
    assert (await account_field(redis_client, settings, "Z", "drift"))["status"] == "suppressed"
