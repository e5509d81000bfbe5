"""Incident episodes from alert records, in-process: firing and resolved records pair up by alert_id
(a repeat after a crash counts once), each episode's affected accounts, its orders withheld during it
and published after it, its dead letters and overlapping alerts, its runbook commands filled in."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from streamproc.incidents.command import parse_time
from streamproc.incidents.episodes import episodes, report
from streamproc.incidents.render import as_json, markdown
from tests.conftest import ROOT


def alert(type_: str, state: str, ts: int, subject: dict[str, str], ident: str = "") -> dict[str, Any]:
    return {
        "alert_id": ident or f"{type_}:{next(iter(subject.values()))}:1",
        "type": type_,
        "severity": "warning",
        "state": state,
        "subject": subject,
        "ts": ts,
        "details": {"n": ts},
        "runbook": f"runbooks/{type_}.md",
    }


STALE = {"instrument": "BOND"}
RECORDS = [
    alert("quote_stale", "firing", 1_000, STALE),
    alert("quote_stale", "firing", 1_500, STALE),  # announced again by the next owner after a crash
    alert("position_gap", "firing", 2_000, {"account": "B"}),
    alert("quote_stale", "resolved", 9_000, STALE),
    alert("feed_silent", "resolved", 500, {"topic": "quotes"}),  # its firing is before the range read
]


def test_firing_and_resolved_records_pair_up_once_per_alert_id() -> None:
    stale, gap = episodes(RECORDS)
    assert (stale.type, stale.fired_ms, stale.resolved_ms, stale.duration_ms(99_000)) == (
        "quote_stale",
        1_000,
        9_000,
        8_000,
    )
    assert stale.fired_details == {"n": 1_000} and stale.resolved_details == {"n": 9_000}
    assert gap.resolved_ms is None and gap.duration_ms(12_000) == 10_000  # still firing


def test_a_report_counts_what_the_episode_withheld_and_what_went_out_after_it() -> None:
    every = episodes(RECORDS)
    orders = [
        {"event_id": "o1", "type": "rebalance", "account": "A", "ts": 9_000},  # at the recovery
        {"event_id": "o2", "type": "rebalance", "account": "Z", "ts": 5_000},  # not a holder
        {"event_id": "o3", "type": "rebalance", "account": "C", "ts": 400_000},  # past the grace
    ]
    dead = [
        {"topic": "quotes", "reason": "schema", "ts": 3_000},
        {"topic": "quotes", "reason": "schema", "ts": 4_000},
        {"topic": "positions", "reason": "invalid_json", "ts": 100_000},  # after it
    ]
    runbook = (ROOT / "runbooks" / "quote_stale.md").read_text()
    r = report(every[0], every, {"BOND": ["C", "A"]}, orders, dead, 99_000, 300_000, runbook)
    assert r.affected.accounts == ("A", "C")
    assert [o["event_id"] for o in r.orders_after] == ["o1"] and r.orders_during == []
    assert dict(r.dead_letters) == {("quotes", "schema"): 2}
    assert [e.type for e in r.related] == ["position_gap"]
    assert "streamproc inspect instrument BOND" in r.runbook_commands
    text = markdown([r], 0, 99_000, "ns", 99_000)
    assert "- orders withheld and published after recovery: 1 (A rebalance o1" in text
    assert "- quotes: schema 2" in text and "- position_gap account B" in text
    (doc,) = orjson.loads(as_json([r], 0, 99_000, "ns", 99_000))["episodes"]
    assert doc["orders_after_recovery"] == ["o1"] and doc["accounts"] == ["A", "C"]


def test_a_storm_affects_the_accounts_whose_orders_went_out_at_its_release() -> None:
    storm = [
        alert("breach_storm", "firing", 1_000, {"topic": "orders"}),
        alert("breach_storm", "resolved", 5_000, {"topic": "orders"}),
    ]
    orders = [{"event_id": f"o{a}", "type": "rebalance", "account": a, "ts": 5_100} for a in "QP"]
    (ep,) = episodes(storm)
    r = report(ep, [ep], {}, orders, [], 9_000, 300_000, None)
    assert r.affected.accounts == ("P", "Q") and len(r.orders_after) == 2
    assert "still firing" not in markdown([r], 0, 9_000, "ns", 9_000)


def test_a_still_firing_episode_says_so() -> None:
    (ep,) = episodes([alert("position_gap", "firing", 2_000, {"account": "B"})])
    r = report(ep, [ep], {}, [], [], 62_000, 300_000, (ROOT / "runbooks" / "position_gap.md").read_text())
    text = markdown([r], 0, 62_000, "ns", 62_000)
    assert "## position_gap account B: STILL FIRING (60.0 s so far)" in text
    assert "streamproc inspect account B" in text and "accounts kept from trading: 1" in text


@pytest.mark.parametrize(
    ("raw", "want"),
    [("30m", 10_000_000 - 1_800_000), ("2h", 10_000_000 - 7_200_000), ("1796317476370", 1796317476370)],
)
def test_times_are_relative_epoch_ms_or_iso(raw: str, want: int) -> None:
    assert parse_time(raw, 10_000_000) == want


def test_an_iso_time_without_a_zone_is_utc_and_garbage_is_refused() -> None:
    assert parse_time("2026-12-03T17:00:00", 0) == parse_time("2026-12-03T17:00:00Z", 0) == 1796317200000
    with pytest.raises(ValueError, match="is not a time: use 30m"):
        parse_time("yesterday", 0)


def test_an_alert_id_that_fires_again_later_is_a_second_episode() -> None:
    again = [
        alert("feed_silent", "firing", 1_000, {"topic": "quotes"}, "f:1"),
        alert("feed_silent", "resolved", 2_000, {"topic": "quotes"}, "f:1"),
        alert("feed_silent", "firing", 9_000, {"topic": "quotes"}, "f:1"),
    ]
    first, second = episodes(reversed(again))
    assert (first.fired_ms, first.resolved_ms) == (1_000, 2_000)
    assert (second.fired_ms, second.resolved_ms) == (9_000, None)
