"""Sessions in-process, driven through a real calendar (XNYS, the library's data) by a settable clock:
over a night and a weekend no quote_stale and no feed_silent, the accounts `closed` and not ordered; at
the open a price from the last session is not traded on, and an instrument still silent past its open
plus its max age alerts; Christmas Day is a closed day; an unknown calendar is dead-lettered."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from tests.app.kit import open_account, orders
from tests.app.markets import Market, sent


async def test_a_weekend_is_quiet_and_a_feed_silent_past_the_open_alerts() -> None:
    m = Market("2026-12-04T20:50:00")  # Friday, ten minutes before the NYSE close
    await m.start()
    assert (await m.drift())["status"] == "ok"
    for _ in range(9):  # quoting every minute up to the close
        m.quote("EQ", 100.0)
        m.quote("BOND", 50.0)
        await m.step(60)
    await m.step(120)  # 21:01: closed
    drift = await m.drift()
    assert drift["status"] == "closed"
    assert drift["why"].startswith("market closed: EQ (XNYS, opens 2026-12-07T14:30Z)"), drift
    m.quote("EQ", 140.0)  # an after-hours print far out of band: not traded on while closed
    for _ in range(2 * 24 * 6 + 17 * 6):  # Friday 21:01 to Monday 14:01 in 10-minute steps
        await m.step(600)
    assert m.alerts("quote_stale") == [] and m.alerts("feed_silent") == []
    assert orders(m.w) == [] and (await m.drift())["status"] == "closed"

    await m.step(29 * 60 + 29)  # Monday 14:30:30, the open: no quote of this session yet
    assert datetime.datetime.fromtimestamp(m.clock.time(), tz=datetime.UTC).strftime("%a %H:%M:%S") == (
        "Mon 14:30:30"
    )
    assert m.alerts("quote_stale") == [] and orders(m.w) == []
    assert (await m.drift())["status"] == "closed"  # Friday's prices are not this session's
    prices = m.w.parts.prices
    line = prices.session_line(prices.book.instrument("EQ"), m.ms())
    assert line == "XNYS, open since 2026-12-07T14:30Z, no quote yet this session"
    await m.step(40)  # 70 s after the open, still silent: past its max age (60 s) from the open
    stale = m.alerts("quote_stale")
    assert {a["subject"]["instrument"] for a in stale} == {"EQ", "BOND"}
    assert all(a["state"] == "firing" for a in stale)
    await m.step(1)
    (silent,) = m.alerts("feed_silent")  # the quotes topic: silent for 60 s of session time
    assert silent["state"] == "firing"
    assert (await m.drift())["status"] == "suppressed"

    m.quote("EQ", 100.0)  # the feed comes back: evaluated on this session's prices only
    m.quote("BOND", 50.0)
    await m.step(1)
    assert (await m.drift())["status"] == "ok" and orders(m.w) == []
    assert [a["state"] for a in m.alerts("quote_stale")] == ["firing"] * 2 + ["resolved"] * 2


async def test_christmas_is_a_closed_day() -> None:
    m = Market("2026-12-24T17:55:00")  # Christmas Eve: NYSE closes early, at 13:00 New York
    await m.start()
    for _ in range(24 * 6 + 20 * 6):  # to Saturday 14:00 in 10-minute steps: never open
        await m.step(600)
    assert m.alerts("quote_stale") == [] and m.alerts("feed_silent") == []
    assert (await m.drift())["why"].startswith("market closed: EQ (XNYS, opens 2026-12-28T14:30Z)")


async def test_an_instrument_on_24_7_ages_as_before() -> None:
    m = Market("2026-12-05T12:00:00")  # a Saturday
    await m.start()
    m.reference("EQ", "24/7")
    m.reference("BOND", "24/7")
    m.quote("EQ", 100.0)
    m.quote("BOND", 50.0)
    await m.step(1)
    await m.step(61)
    assert {a["subject"]["instrument"] for a in m.alerts("quote_stale")} == {"EQ", "BOND"}


async def test_an_unknown_calendar_is_dead_lettered_with_what_to_use() -> None:
    m = Market("2026-12-04T15:00:00")
    await m.start()
    m.reference("EQ", "NYSE-ISH")
    await m.step(1)
    (dead,) = sent(m.w, m.w.parts.settings.topics.deadletter)
    assert dead["reason"] == "semantic"
    assert dead["error"].startswith("EQ: calendar 'NYSE-ISH' is not known: use an ISO 10383 MIC")


async def test_an_overnight_gap_is_a_new_level_and_an_intraday_jump_is_still_held() -> None:
    m = Market("2026-12-04T20:58:00", STREAMPROC_OUTLIER_MOVE="0.05")  # Friday, before the close
    await m.start()
    await m.step(180)  # closed
    await m.step(2 * 86_400 + 17 * 3600 + 29 * 60 + 10)  # Monday 14:30:11
    m.quote("EQ", 108.0)  # +8 % over the weekend: the opening level
    m.quote("BOND", 50.0)
    await m.step(1)
    assert m.alerts("quote_outlier") == []
    assert m.w.parts.prices.book.price("EQ")[:2] == (107.99, 108.01)
    m.quote("EQ", 117.0)  # +8 % within the session: held until confirmed
    await m.step(1)
    (held,) = m.alerts("quote_outlier")
    assert held["details"]["last_mid"] == 108.0 and m.w.parts.prices.book.price("EQ")[:2] == (107.99, 108.01)


WAVE = {f"W{i}": (620.0, 760.0) for i in range(4)} | {f"C{i}": (580.0, 840.0) for i in range(6)}


async def wave(start: str, **env: str) -> Market:
    """Ten accounts on target 60/40 +-3: four at 62 % equity, six at 58 %; EQ +10 % takes the four out."""
    m = Market(
        start,
        STREAMPROC_STORM_MIN_ACCOUNTS="3",
        STREAMPROC_STORM_SHARE="0.2",
        **env,
    )
    await m.start()
    for account, (eq, bond) in WAVE.items():
        await open_account(m.w, account, eq=eq, bond=bond)
    await m.step(1)
    return m


@pytest.mark.parametrize("open_share", ["0.5", "0.3"])
async def test_an_opening_wave_trades_after_the_opening_delay_judged_by_its_own_share(
    open_share: str,
) -> None:
    m = await wave(
        "2026-12-04T20:59:00", STREAMPROC_OPENING_DELAY_S="300", STREAMPROC_STORM_OPEN_SHARE=open_share
    )
    await m.step(120)  # closed for the weekend
    await m.step(2 * 86_400 + 17 * 3600 + 28 * 60 + 55)  # Monday 14:30:56
    m.quote("EQ", 110.0)
    m.quote("BOND", 50.0)
    await m.step(1)
    assert orders(m.w) == []  # in the opening delay: the auction's prices are not traded on
    for _ in range(6):  # quoting through the delay (to 14:35:58)
        m.quote("EQ", 110.0)
        m.quote("BOND", 50.0)
        await m.step(60)
    if open_share == "0.5":  # 40 % of the accounts breach as the market opens: below its share
        assert {o["account"] for o in orders(m.w)} == {f"W{i}" for i in range(4)}
        assert m.alerts("breach_storm") == []
    else:  # above it: the storm holds them, as an intraday wave beyond 0.2 would
        assert orders(m.w) == [] and m.alerts("breach_storm")[0]["details"]["opening_breaches_in_window"] == 4


async def test_the_same_wave_intraday_trips_the_storm() -> None:
    m = await wave("2026-12-07T16:00:00", STREAMPROC_STORM_OPEN_SHARE="0.5")  # Monday, mid-session
    m.quote("EQ", 110.0)
    await m.step(1)
    assert orders(m.w) == []  # 4 of 10 in band -> out of band at once: 40 % > 0.2
    (storm,) = m.alerts("breach_storm")
    assert storm["state"] == "firing"


async def test_what_is_open_at_the_close_ends_with_it_and_monday_is_a_new_episode() -> None:
    m = Market("2026-12-04T20:56:00")
    await m.start()  # EQ and BOND quoted at 20:56:00; EQ stays silent from here
    await m.step(174)  # 20:58:55
    m.seq["BOND"] += 2  # BOND's seqs jump: a gap, open as the market closes
    m.quote("BOND", 50.0)
    await m.step(1)
    assert [a["state"] for a in m.alerts("quote_gap")] == ["firing"]
    (friday,) = [a for a in m.alerts("quote_stale") if a["subject"] == {"instrument": "EQ"}]
    await m.step(120)  # 21:00:56: closed
    assert [a["state"] for a in m.alerts("quote_gap")] == ["firing", "resolved"]
    assert m.alerts("quote_gap")[1]["details"]["superseded_by"] == "closed"
    assert [a["state"] for a in m.alerts("quote_stale") if a["alert_id"] == friday["alert_id"]] == [
        "firing",
        "resolved",
    ]
    await m.step(2 * 86_400 + 17 * 3600 + 29 * 60 + 4)  # Monday 14:30:00, nothing quoted since Friday
    await m.step(61)
    monday = [a for a in m.alerts("quote_stale") if a["subject"] == {"instrument": "EQ"}][-1]
    assert monday["state"] == "firing" and monday["alert_id"] != friday["alert_id"]  # not deduplicated away


async def test_a_calendar_is_reloaded_before_its_loaded_sessions_run_out() -> None:
    m = Market("2026-12-04T15:00:00")
    await m.start()
    prices = m.w.parts.prices
    loads: list[int] = []
    real = prices.venues.load
    assert real is not None

    def counting(name: str, now_ms: int) -> Any:
        loads.append(now_ms)
        return real(name, now_ms)

    prices.venues.load = counting
    await m.step(86_400)  # a day on: a year of sessions still ahead, nothing reloaded
    assert loads == []
    await m.step(340 * 86_400)  # within a month of the end of what was loaded: reloaded, once a day
    await m.step(60)
    assert len(loads) == 1
    k = prices.venues.sessions.get("XNYS")
    assert k is not None and prices.venues.sessions.calendars[k].closes[-1] > m.ms() + 300 * 86_400_000


async def test_the_stored_feed_state_names_the_calendar_from_reference_data_alone() -> None:
    m = Market("2026-12-05T12:00:00")  # a Saturday: nothing quotes
    await m.start()
    m.reference("NQ", "xlon")  # never quoted, on a calendar of its own
    await m.step(1)
    await m.w.parts.feed.checkpoint()
    stored = await m.w.store.load_quote("NQ")
    assert stored is not None and stored.calendar == "XLON" and stored.ts == 0
    m.reference("EQ", "XETR")  # moved venue over the weekend, before its next quote
    await m.step(1)
    await m.w.parts.feed.checkpoint()
    eq = await m.w.store.load_quote("EQ")
    assert eq is not None and eq.calendar == "XETR" and eq.ts > 0
